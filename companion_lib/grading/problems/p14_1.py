"""§14.1 problems: the E-step, the M-step, and the closed-form maximum-likelihood Gaussian."""
import torch

from companion_lib import mixture, settings
from companion_lib._checks import as_tensor
from companion_lib.data import load_pearson_crabs
from companion_lib.grading.compare import float32_aware
from companion_lib.grading.registry import Mistake, Problem, case_seed


def _e_step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 141))
    x = torch.as_tensor(load_pearson_crabs().data[::7, 0])
    cases = [(x, torch.tensor([0.41, 0.59], dtype=torch.float64), torch.tensor([0.633, 0.656], dtype=torch.float64),
              torch.tensor([0.0183, 0.0129], dtype=torch.float64) ** 2)]
    w = torch.rand(3, generator=g, dtype=torch.float64)
    cases.append((torch.randn(50, generator=g, dtype=torch.float64) * 3, w / w.sum(),
                  torch.tensor([-2.0, 0.0, 2.5], dtype=torch.float64), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)))
    # far-away points: every ρ_k N(x; μ_k, σ_k²) underflows to 0 in float64 (0/0 in probability space),
    # while the responsibilities are well defined (the nearest component takes them)
    cases.append((torch.tensor([-60.0, -3.0, 0.7, 45.0, 80.0], dtype=torch.float64),
                  torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([-1.0, 1.5], dtype=torch.float64),
                  torch.tensor([0.05, 0.08], dtype=torch.float64)))
    return cases


def _wrong_no_weights(x, w, m, v):       # forgets the mixing weights ρ_k
    return mixture.responsibilities(x, torch.ones_like(w) / len(w), m, v)


def _wrong_std_for_var(x, w, m, v):      # passes σ where σ² belongs
    return mixture.responsibilities(x, w, m, v.sqrt())


def _wrong_unnormalised(x, w, m, v):     # the joint p(h, x) instead of the posterior p(h | x)
    return w * torch.exp(-0.5 * (x[:, None] - m) ** 2 / v) / torch.sqrt(2 * torch.pi * v)


def _wrong_probability_space(x, w, m, v):  # right formula, but normalised after exp: 0/0 far away
    joint = _wrong_unnormalised(x, w, m, v)
    return joint / joint.sum(1, keepdim=True)


_E_STEP = Problem(
    id="14.1.e_step",
    section="14.1",
    title="E-step responsibilities p(h | x)",
    statement=("Write e_step(x, weights, means, variances) for a 1-D mixture of K Gaussians: x (n,), the "
               "other three (K,). Return the (n, K) matrix of responsibilities p(h = k | x_i). Work in "
               "log space (torch.logsumexp) so that far-away points do not underflow."),
    kind="function",
    reference=mixture.responsibilities,
    cases=_e_step_cases,
    hint=("By Bayes' rule the responsibility of component k for x is its share of the mixture density at "
          "x: weight times component density, normalised over the components, so each row sums to 1.",
          "Far from every mean all the densities underflow to 0 and the shares become 0/0: form the log "
          "of each weighted density and normalise in log space (a log-sum-exp over the components)."),
    mistakes=(
        Mistake(_wrong_no_weights, "the mixing weights ρ_k are missing: each share is weight times density."),
        Mistake(_wrong_std_for_var, "σ is used where σ² belongs: the variances argument already holds σ²."),
        Mistake(_wrong_unnormalised, "the joint ρ_k N(x; μ_k, σ_k²), not yet normalised over k: rows must "
                "sum to 1."),
        Mistake(_wrong_probability_space, "right on ordinary points, but 0/0 = NaN far from every mean: "
                "normalise in log space."),
    ),
    rtol=1e-6, atol=1e-9, compare=float32_aware(1e-6, 1e-9, rtol32=1e-4, atol32=1e-5),
)


def _m_step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1411))
    f64 = dict(generator=g, dtype=torch.float64)
    x = torch.as_tensor(load_pearson_crabs().data[::5, 0])
    cases = []
    for xs, K in ((x, 2), (torch.randn(40, **f64) * 2 + 1, 3)):
        logits = torch.randn(xs.shape[0], K, **f64) * 2
        cases.append((xs, torch.softmax(logits, 1)))
    return cases


@settings.cpu_float64()
def _m_step_ref(x, resp):
    x = as_tensor(x, "x", ndim=1, min_rows=1)
    resp = as_tensor(resp, "resp", shape=(x.shape[0], None))
    weights, means, variances = mixture.m_step(x[:, None], resp, "diag")
    return weights, means[:, 0], variances[:, 0]


def _m_wrong_unweighted_means(x, r):        # the overall mean for every component
    w, m, v = _m_step_ref(x, r)
    return w, torch.full_like(m, float(x.mean())), v


def _m_wrong_counts(x, r):                  # N_k instead of N_k / n
    w, m, v = _m_step_ref(x, r)
    return w * x.shape[0], m, v


def _m_wrong_divide_by_n(x, r):             # variances divided by n instead of N_k
    w, m, v = _m_step_ref(x, r)
    return w, m, v * w


def _m_wrong_global_centre(x, r):           # spread around the overall mean, not μ_k
    w, m, _ = _m_step_ref(x, r)
    nk = r.sum(0)
    return w, m, (r * (x[:, None] - x.mean()) ** 2).sum(0) / nk


_M_STEP = Problem(
    id="14.1.m_step",
    section="14.1",
    title="M-step: weights, means and variances from responsibilities",
    statement=("Write m_step(x, resp) for a 1-D mixture of K Gaussians: x (n,) the data, resp (n, K) the "
               "responsibilities p(h = k | x_i) of the E-step (rows sum to 1). Return (weights, means, "
               "variances), each (K,): the parameters that maximise Σ_i Σ_k r_ik log[ρ_k N(x_i; μ_k, σ_k²)], "
               "the expected complete-data log-likelihood."),
    kind="function",
    reference=_m_step_ref,
    reference_names=("companion_lib.mixture.m_step",),
    cases=_m_step_cases,
    hint=("Each component is a maximum-likelihood fit in which point i counts with weight r_ik; the "
          "weights ρ_k come out as the components' shares of the data.",
          "First the effective counts N_k (column sums of resp); then weighted averages: of x for μ_k, of "
          "the squared deviations from that μ_k for σ_k², each divided by N_k; ρ_k is N_k over n."),
    mistakes=(
        Mistake(_m_wrong_unweighted_means, "every mean is the overall mean: weight each x_i by r_ik."),
        Mistake(_m_wrong_counts, "the weights are the counts N_k: ρ_k is N_k / n, so they sum to 1."),
        Mistake(_m_wrong_divide_by_n, "the variances are divided by n: a weighted average divides by N_k."),
        Mistake(_m_wrong_global_centre, "the spread is measured around the overall mean: σ_k² is around "
                "that component's μ_k."),
    ),
    rtol=1e-6, atol=1e-12,
)


def _mle_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 142))
    crabs = torch.as_tensor(load_pearson_crabs().data)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return [(crabs,), (torch.randn(40, 3, generator=g, dtype=torch.float64) @ A + 1.0,)]


def _wrong_unbiased(X):                   # 1/(n-1): unbiased, but not the maximum-likelihood estimate
    X = torch.as_tensor(X)
    return X.mean(0), torch.cov(X.T).reshape(X.shape[1], X.shape[1])


def _wrong_diagonal(X):                   # keeps only the variances
    mean, cov = mixture.gaussian_mle(X)
    return mean, torch.diag(torch.diagonal(cov))


def _wrong_uncentred(X):                  # second moment instead of covariance
    X = torch.as_tensor(X)
    return X.mean(0), X.T @ X / X.shape[0]


_GAUSSIAN_MLE = Problem(
    id="14.1.gaussian_mle",
    section="14.1",
    title="Maximum-likelihood Gaussian in closed form",
    statement=("Write gaussian_mle(X) for X of shape (n, d): return (mean, cov) with mean (d,) and cov "
               "(d, d), the parameters of N(mean, cov) that maximise the log-likelihood (14.2)."),
    kind="function",
    reference=mixture.gaussian_mle,
    cases=_mle_cases,
    hint=("Set the gradient of the log-likelihood (14.2) in μ and in Σ to zero: both come out as sample "
          "averages.",
          "μ is the sample mean; Σ is the average outer product of the centred data, an average over n "
          "points (the maximum-likelihood estimate, not the unbiased one)."),
    mistakes=(
        Mistake(_wrong_unbiased, "the covariance divides by n − 1 (unbiased): the maximum-likelihood one "
                "divides by n."),
        Mistake(_wrong_diagonal, "only the variances: the covariances off the diagonal are zeroed."),
        Mistake(_wrong_uncentred, "the second moment xᵀx / n: subtract the mean first."),
    ),
    rtol=1e-6, atol=1e-12, compare=float32_aware(1e-6, 1e-12, rtol32=1e-4, atol32=1e-8),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_E_STEP, _M_STEP, _GAUSSIAN_MLE)
