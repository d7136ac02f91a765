"""§14.2 problems: KL between Gaussians in closed form; the maximum-likelihood σ² of N(μ, σ²I)."""
import torch

from companion_lib import divergences
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
SECTION_PROBLEMS = (_KL_GAUSSIANS, _SIGMA2_MLE)
