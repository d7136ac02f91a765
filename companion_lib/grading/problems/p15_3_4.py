"""§15.3.4 problem: the optimal noise predictor of a Gaussian mixture, by eq. 15.13."""
import torch

from companion_lib import diffusion, ebm, scores
from companion_lib.grading.registry import Mistake, Problem, case_seed

_F64 = torch.float64


def _eps_star_reference(x, alpha_bar, weights, means, variances):
    """ε*(x_t) = −√(1 − ᾱ_t) ∇ log p(x_t), p(x_t) the mixture after the forward process (15.8)."""
    w, m, v = diffusion.noisy_mixture(alpha_bar, weights, means, variances)
    return scores.eps_from_score(ebm.gmm_score(x, w, m, v), 1.0 - alpha_bar)


def _eps_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1538))
    cases = []
    for K, d, ab in [(3, 2, 0.9), (4, 2, 0.3), (2, 5, 0.02), (3, 2, 0.999)]:
        weights = torch.rand(K, generator=g, dtype=_F64) + 0.2
        weights = weights / weights.sum()
        means = 2 * torch.randn(K, d, generator=g, dtype=_F64)
        variances = 0.05 + 0.3 * torch.rand(K, generator=g, dtype=_F64)
        x = 2 * torch.randn(20, d, generator=g, dtype=_F64)
        cases.append((x, ab, weights, means, variances))
    return cases


def _wrong_sign(x, ab, w, m, v):                 # +√(1 − ᾱ) ∇ log p: points toward the data, not the noise
    return -_eps_star_reference(x, ab, w, m, v)


def _wrong_no_sqrt(x, ab, w, m, v):              # (1 − ᾱ_t) where √(1 − ᾱ_t) belongs
    return _eps_star_reference(x, ab, w, m, v) * (1 - ab) ** 0.5


def _wrong_clean_score(x, ab, w, m, v):          # the score of the data p(x_0), not of p(x_t)
    return scores.eps_from_score(ebm.gmm_score(x, w, m, v), 1.0 - ab)


def _wrong_means_only(x, ab, w, m, v):           # shrinks the means but keeps the variances σ_k²
    return scores.eps_from_score(ebm.gmm_score(x, w, ab ** 0.5 * m, v), 1.0 - ab)


_EPS_STAR = Problem(
    id="15.3.4.eps_star",
    section="15.3",
    title="The optimal noise prediction ε* of a Gaussian mixture (15.13)",
    statement=("Write eps_star(x, alpha_bar, weights, means, variances): the data are the isotropic "
               "mixture Σ_k ρ_k N(μ_k, σ_k² I) (weights (K,), means (K, d), variances (K,)); x (n, d) are "
               "noisy points x_t at a step with ᾱ_t = alpha_bar (a number). Return ε*(x_t) (n, d) of "
               "eq. 15.13, using the distribution p(x_t) that (15.8) makes of the mixture."),
    kind="function",
    reference=_eps_star_reference,
    cases=_eps_cases,
    hint=("(15.13) turns the score of the noisy data p(x_t) into the optimal noise prediction. A mixture "
          "of Gaussians stays a mixture of Gaussians under (15.8), with the same weights.",
          "Push each component through (15.8): its mean is scaled by √ᾱ and its variance becomes "
          "ᾱσ_k² plus the added noise's variance. The score of a mixture is §14.3's gmm_score; (15.13) "
          "scales it by −√(1 − ᾱ)."),
    mistakes=(
        Mistake(_wrong_sign, "the sign is flipped: ε* points away from the data, −√(1 − ᾱ) times the score."),
        Mistake(_wrong_no_sqrt, "scaled by 1 − ᾱ_t: (15.13) takes its square root (the noise's standard "
                "deviation)."),
        Mistake(_wrong_clean_score, "the score of the clean data p(x_0): ε* needs the score of p(x_t), "
                "the mixture after (15.8)."),
        Mistake(_wrong_means_only, "the means are shrunk but the variances kept: (15.8) also adds the "
                "noise's variance, ᾱσ_k² + 1 − ᾱ."),
    ),
    rtol=1e-6, atol=1e-9,
    reference_names=("companion_lib.diffusion.noisy_mixture", "companion_lib.scores.eps_from_score"),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_EPS_STAR,)
