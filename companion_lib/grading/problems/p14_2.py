"""§14.2 problems: KL between Gaussians in closed form; the Monte-Carlo estimate of KL(P‖Q) from
samples of P, with its standard error; the maximum-likelihood σ² of N(μ, σ²I)."""
import math

import torch

from companion_lib import divergences
from companion_lib.grading.compare import float32_aware
from companion_lib.grading.registry import Mistake, Problem, case_seed

_F64 = dict(dtype=torch.float64)


def _kl_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1421))
    cases = [
        (torch.tensor(0.0, **_F64), torch.tensor(1.0, **_F64), torch.tensor(0.0, **_F64), torch.tensor(1.0, **_F64)),
        (torch.tensor(0.3, **_F64), torch.tensor(0.5, **_F64), torch.tensor(-1.0, **_F64), torch.tensor(2.0, **_F64)),
        (torch.tensor(2.0, **_F64), torch.tensor(4.0, **_F64), torch.tensor(0.5, **_F64), torch.tensor(0.25, **_F64)),
    ]
    d = 5
    cases.append((torch.randn(d, generator=g, **_F64), torch.rand(d, generator=g, **_F64) + 0.2,
                  torch.randn(d, generator=g, **_F64), torch.rand(d, generator=g, **_F64) * 3 + 0.1))
    return cases


def _kl_swapped(mu1, var1, mu2, var2):     # KL(Q ‖ P): the arguments the wrong way round
    return divergences.kl_gaussians(mu2, var2, mu1, var1)


def _kl_std_for_var(mu1, var1, mu2, var2):  # treats the variances as standard deviations
    return divergences.kl_gaussians(mu1, var1 ** 2, mu2, var2 ** 2)


def _kl_no_minus_one(mu1, var1, mu2, var2):  # forgets the −1 (KL(P‖P) would not be 0)
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mu1 - mu2) ** 2) / var2).sum()


def _kl_not_summed(mu1, var1, mu2, var2):   # per-coordinate KLs instead of their sum
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mu1 - mu2) ** 2) / var2 - 1)


_KL_GAUSSIANS = Problem(
    id="14.2.kl_gaussians",
    section="14.2",
    title="KL divergence between two Gaussians in closed form",
    statement=("Write kl_gaussians(mu1, var1, mu2, var2) returning KL(N(mu1, diag var1) ‖ N(mu2, diag var2)) "
               "as a 0-d tensor. The four inputs share one shape: 0-d (1-D Gaussians) or (d,) (diagonal "
               "Gaussians; the KL is then a sum over the d coordinates). var1, var2 are variances."),
    kind="function",
    reference=divergences.kl_gaussians,
    cases=_kl_cases,
    hint=("KL(P‖Q) is the expectation under P of log p − log q; for Gaussians every term is a moment of "
          "P, so it has a closed form. Check yours: KL(P‖P) = 0.",
          "Per coordinate it involves the log of the variance ratio, P's variance plus the squared "
          "distance of the means, both over Q's variance, and a constant; diagonal Gaussians add up the "
          "coordinates."),
    mistakes=(
        Mistake(_kl_swapped, "this is KL(Q‖P): KL is not symmetric; the expectation is under the first "
                "argument, N(mu1, var1)."),
        Mistake(_kl_std_for_var, "the inputs are treated as standard deviations (squared again): var1, "
                "var2 already are variances."),
        Mistake(_kl_no_minus_one, "the −1 per coordinate is missing: KL(P‖P) should be 0."),
        Mistake(_kl_not_summed, "one KL per coordinate: the KL of the diagonal Gaussians is their sum."),
    ),
    rtol=1e-6, atol=1e-10,
)


# ---------------------------------------------------------------- KL(P‖Q) from samples of P
def _kl_estimate_ref(log_p, log_q):
    """The reference: the average of log P(x_i) − log Q(x_i) over the last axis (n samples of P) and
    its standard error, the sample standard deviation (divisor n − 1) over √n; shapes (...)."""
    log_p, log_q = torch.as_tensor(log_p), torch.as_tensor(log_q)
    terms = log_p - log_q
    n = terms.shape[-1]
    return terms.mean(-1), terms.std(-1, correction=1) / math.sqrt(n)


def _kl_estimate_cases(rng=None):
    """log P and log Q at samples of P: P a two-component mixture, Q a Gaussian (a misspecified model)
    or a second mixture; one short data set (n = 5, where the divisor n − 1 matters), batches of data
    sets (..., n)."""
    g = torch.Generator().manual_seed(case_seed(rng, 1423))
    cases = []
    for shape in ((5,), (3, 40), (2, 4, 25)):
        w = 0.2 + 0.6 * torch.rand((), generator=g, dtype=torch.float64)
        P = dict(weights=torch.stack([w, 1 - w]), means=torch.randn(2, generator=g, dtype=torch.float64) * 1.5,
                 variances=0.2 + torch.rand(2, generator=g, dtype=torch.float64))
        n_total = math.prod(shape)
        x = divergences.sample_mixture(n_total, **P, generator=g)
        log_p = divergences.mixture_log_pdf(x, **P).reshape(shape)
        mu, var = torch.randn((), generator=g, dtype=torch.float64), 0.5 + torch.rand((), generator=g, dtype=torch.float64)
        log_q = divergences.log_normal(x, mu, var).reshape(shape)
        cases.append((log_p, log_q))
    return cases


def _kl_est_reversed(log_p, log_q):          # log Q − log P: minus the estimate
    est, se = _kl_estimate_ref(log_p, log_q)
    return -est, se


def _kl_est_cross_entropy(log_p, log_q):     # the average −log Q alone: the NLL, = KL + H(P)
    est, se = _kl_estimate_ref(torch.zeros_like(torch.as_tensor(log_q)), log_q)
    return est, se


def _kl_est_log_mean_ratio(log_p, log_q):    # log of the average ratio P/Q instead of the average log ratio
    terms = torch.as_tensor(log_p) - torch.as_tensor(log_q)
    est = torch.logsumexp(terms, -1) - math.log(terms.shape[-1])
    return est, _kl_estimate_ref(log_p, log_q)[1]


def _kl_est_sd_not_se(log_p, log_q):         # the spread of one term, not of the average of n
    terms = torch.as_tensor(log_p) - torch.as_tensor(log_q)
    return terms.mean(-1), terms.std(-1, correction=1)


def _kl_est_divisor_n(log_p, log_q):         # standard deviation with divisor n
    terms = torch.as_tensor(log_p) - torch.as_tensor(log_q)
    return terms.mean(-1), terms.std(-1, correction=0) / math.sqrt(terms.shape[-1])


_KL_ESTIMATE = Problem(
    id="14.2.kl_estimate",
    section="14.2",
    title="KL(P‖Q) from samples of P, with its standard error",
    statement=("Write kl_estimate(log_p, log_q): log_p and log_q, of one shape (..., n), hold log P(x_i) and "
               "log Q(x_i) at n independent samples x_1..x_n of P (the last axis; any leading axes index "
               "separate data sets). Return (estimate, standard_error), each of shape (...): the Monte-Carlo "
               "estimate of KL(P‖Q) from those samples, and its standard error, the sample standard "
               "deviation (divisor n − 1) of the averaged terms divided by √n."),
    kind="function",
    reference=_kl_estimate_ref,
    cases=_kl_estimate_cases,
    hint=("KL(P‖Q) is an expectation under P; samples of P turn an expectation into an average over the "
          "samples, here along the last axis.",
          "Average the per-sample log ratio of P to Q. The standard error of an average of n independent "
          "terms is their standard deviation over √n."),
    mistakes=(
        Mistake(_kl_est_reversed, "the sign is reversed: KL(P‖Q) averages log P − log Q (it is ≥ 0 in "
                "expectation)."),
        Mistake(_kl_est_cross_entropy, "this is the average of −log Q alone, the negative log-likelihood: it "
                "estimates KL(P‖Q) + H(P), not the KL."),
        Mistake(_kl_est_log_mean_ratio, "this is the log of the average ratio P/Q: KL is the average of the "
                "log ratio (the two differ, by Jensen's inequality)."),
        Mistake(_kl_est_sd_not_se, "the standard error is the spread of one term: the average of n terms "
                "has that spread divided by √n."),
        Mistake(_kl_est_divisor_n, "the standard deviation divides by n: the statement asks for the sample "
                "standard deviation with divisor n − 1 (it matters for the 5-sample case)."),
    ),
    rtol=1e-9, atol=1e-12, compare=float32_aware(1e-9, 1e-12, rtol32=1e-4, atol32=1e-5),
)


def _sigma2_mle(X):
    """The reference: σ² of the maximum-likelihood N(μ, σ²I) (a 0-d tensor)."""
    return divergences.isotropic_gaussian_mle(X)[1]


def _sigma2_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1422))
    return [
        (torch.randn(6, 3, generator=g, **_F64) * torch.tensor([0.5, 1.0, 2.0], **_F64) + 1.0,),
        (torch.rand(10, 64, generator=g, **_F64),),
        (torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 9.0]], **_F64),),
    ]


def _sigma2_text(X):                       # the printed formula: Σ_i |x_i − μ|² / m, no division by d
    X = torch.as_tensor(X)
    return ((X - X.mean(0)) ** 2).sum() / X.shape[0]


def _sigma2_unbiased(X):                   # divides by (m − 1) d: unbiased-style, not the MLE
    X = torch.as_tensor(X)
    return ((X - X.mean(0)) ** 2).sum() / ((X.shape[0] - 1) * X.shape[1])


def _sigma2_std(X):                        # returns σ instead of σ²
    return _sigma2_mle(X).sqrt()


def _sigma2_per_pixel(X):                  # one variance per pixel (the diagonal model), not one σ²
    X = torch.as_tensor(X)
    return X.var(0, unbiased=False)


def _sigma2_uncentred(X):                  # forgets to subtract μ
    X = torch.as_tensor(X)
    return (X ** 2).mean()


_SIGMA2_MLE = Problem(
    id="14.2.sigma2_mle",
    section="14.2",
    title="Maximum-likelihood σ² of N(μ, σ²I)",
    statement=("Write sigma2_mle(X) for data X of shape (m, d): return, as a 0-d tensor, the σ² that "
               "(together with μ = the sample mean) maximises Σ_i log N(x_i; μ, σ²I)."),
    kind="function",
    reference=_sigma2_mle,
    reference_names=("companion_lib.divergences.isotropic_gaussian_mle",),
    cases=_sigma2_cases,
    hint=("Write the log-likelihood of N(μ, σ²I) as a function of σ² and set its derivative to zero.",
          "The negative log-likelihood has the summed squared deviations over 2σ², plus a log σ² term "
          "counted once per coordinate of every point: m·d of them. σ² is an average over all m·d."),
    mistakes=(
        Mistake(_sigma2_text, "divided by m only: there are m·d squared deviations, one per coordinate of "
                "each point."),
        Mistake(_sigma2_unbiased, "divided by (m − 1)·d: the maximum-likelihood σ² divides by m·d."),
        Mistake(_sigma2_std, "this is σ: the problem asks for the variance σ²."),
        Mistake(_sigma2_per_pixel, "one variance per coordinate (a diagonal model): N(μ, σ²I) has one σ² "
                "for all."),
        Mistake(_sigma2_uncentred, "the mean is not subtracted: deviations are measured from μ."),
    ),
    rtol=1e-6, atol=1e-12,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_KL_GAUSSIANS, _KL_ESTIMATE, _SIGMA2_MLE)
