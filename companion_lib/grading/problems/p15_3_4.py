"""§15.3.4 problems: the optimal noise predictor of a Gaussian mixture, by eq. 15.13; the denoising
score-matching loss of a score network s_θ(x_t, t) (Vincent 2011), whose weighted form is (15.10)."""
import math

import torch

from companion_lib import diffusion, ebm, scores
from companion_lib.grading.compare import holds_float32
from companion_lib.grading.problems._autograd import compare_loss, loss_and_gradient
from companion_lib.grading.problems.p15_3_3 import _schedules, _steps
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


# ---------------------------------------------------------------- denoising score matching for s_θ
def _dsm_reference(schedule, score_model, x0, t, noise, weight):
    """mean_i λ_i ‖s_θ(x_t, t) − ∇ log q(x_t | x_0)‖², ∇ log q(x_t | x_0) = −ε/√(1 − ᾱ_t) (Vincent 2011)."""
    xt = diffusion.q_sample(schedule, x0, t, noise)
    target = -noise / schedule.at("one_minus_alpha_bars", t, x0).sqrt()
    return (weight * (score_model(xt, t) - target).pow(2).sum(1)).mean()


def _toy_score_model(weight, bias, T):
    """A fixed s_θ(x_t, t) from plain tensors, large where t is small as a score is: (x W + b)/(t/T)."""
    def score_model(x, t):
        return (x @ weight.to(x.dtype) + bias.to(x.dtype)) / (t.to(x.dtype)[:, None] / T)
    return score_model


def _dsm_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1539))
    cases = []
    for i, (betas, (n, d), dtype) in enumerate(zip(_schedules(g), [(16, 2), (32, 64), (9, 5)],
                                                   [torch.float32, torch.float64, torch.float64])):
        T = betas.shape[0]
        t = _steps(g, T, n)
        one_m = 1 - torch.cumprod(1 - betas, 0)[t - 1]
        weight = [one_m, torch.ones(n, dtype=torch.float64), 0.2 + torch.rand(n, generator=g, dtype=torch.float64)][i]
        cases.append((betas, torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d),
                      torch.randn(d, generator=g, dtype=torch.float64),
                      (2 * torch.rand(n, d, generator=g, dtype=torch.float64) - 1).to(dtype), t,
                      torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype), weight.to(dtype)))
    return cases


def _dsm_harness(answer, betas, weight_matrix, bias, x0, t, noise, weight):
    """The loss on a toy s_θ whose parameters require grad, and its gradient in them (what training uses)."""
    schedule = diffusion.NoiseSchedule(betas)
    params = (weight_matrix.detach().clone().requires_grad_(True), bias.detach().clone().requires_grad_(True))
    loss = answer(schedule, _toy_score_model(*params, schedule.T), x0, t, noise, weight)
    return loss_and_gradient(loss, params, scalar=True)


def _dsm_with_target(target_fn):
    def wrong(s, score_model, x0, t, noise, weight):
        xt = diffusion.q_sample(s, x0, t, noise)
        return (weight * (score_model(xt, t) - target_fn(s, t, noise)).pow(2).sum(1)).mean()
    return wrong


# +ε/√(1 − ᾱ_t): the score points back toward the clean data, against the noise that was added
_wrong_dsm_sign = _dsm_with_target(lambda s, t, e: e / s.at("one_minus_alpha_bars", t, e).sqrt())
# ε/(1 − ᾱ_t): the variance where its square root belongs (x_t − √ᾱ x_0 is √(1 − ᾱ) ε, not ε)
_wrong_dsm_no_sqrt = _dsm_with_target(lambda s, t, e: -e / s.at("one_minus_alpha_bars", t, e))
# the ε-network's target: s_θ regressed onto the noise itself
_wrong_dsm_eps_target = _dsm_with_target(lambda s, t, e: e)


def _wrong_dsm_unweighted(s, score_model, x0, t, noise, weight):   # λ_t never applied
    return _dsm_reference(s, score_model, x0, t, noise, torch.ones_like(weight))


def _wrong_dsm_mse(s, score_model, x0, t, noise, weight):          # a mean over coordinates too (1/d)
    return _dsm_reference(s, score_model, x0, t, noise, weight) / x0.shape[1]


def _wrong_dsm_item(s, score_model, x0, t, noise, weight):         # right value, as a Python number
    return _dsm_reference(s, score_model, x0, t, noise, weight).item()


_COMPARE_DSM64 = compare_loss(1e-5, 1e-6, grad_rtol=1e-4, grad_atol=1e-6)
_COMPARE_DSM32 = compare_loss(1e-4, 1e-5, grad_rtol=1e-3, grad_atol=1e-3)


def _compare_dsm(expected, got):
    """float64 cases to 1e-5 (value) and 1e-4 (gradient). On the float32 case an honest route (x_t − √ᾱ x_0
    divided by 1 − ᾱ) moves the gradient by float32 round-off of its largest entries (~1e-4 of 40), which
    an entry near 0 cannot absorb relatively: 1e-3 absolute there. The float64 cases still hold every
    catalogued mistake to the tight tolerance; a loss computed in float32 on them gets the float32 case's."""
    low = holds_float32(expected.get("loss")) or (isinstance(got, dict) and holds_float32(got.get("loss")))
    return (_COMPARE_DSM32 if low else _COMPARE_DSM64)(expected, got)


_DSM = Problem(
    id="15.3.4.dsm_loss",
    section="15.3",
    title="Denoising score matching for a score network s_θ(x_t, t)",
    statement=("Write score_matching_loss(schedule, score_model, x0, t, noise, weight): x0 (batch, d) data, "
               "noise ε (batch, d) standard normal, t (batch,) steps in 1..T, weight λ (batch,) one "
               "nonnegative number per row, score_model(x_t, t) -> (batch, d) an estimate of ∇ log p(x_t). "
               "Build x_t by (15.8) and return the scalar mean over the batch of λ·‖s_θ(x_t, t) − "
               "∇_{x_t} log q(x_t | x_0)‖² (the squared norm sums over the d coordinates): denoising "
               "score matching, which regresses the network onto the score of the noising kernel q, "
               "known in closed form, instead of the unknown score of p(x_t)."),
    kind="function",
    reference=_dsm_reference,
    cases=_dsm_cases,
    harness=_dsm_harness,
    hint=("q(x_t | x_0) is the Gaussian of (15.8); the score of a Gaussian in its variable is minus the "
          "offset from its mean divided by its variance. Write that offset with the noise that made x_t. "
          "The loss is what training differentiates, so it must stay a tensor in the graph.",
          "The offset x_t − √ᾱ_t x_0 is a multiple of ε; the variance is 1 − ᾱ_t (read it with "
          "schedule.at, shaped like x0). λ multiplies each row's squared norm, then average over the batch."),
    mistakes=(
        Mistake(_wrong_dsm_sign, "the target has the wrong sign: the score of q(x_t | x_0) points from "
                "x_t back toward its mean, against the noise that was added."),
        Mistake(_wrong_dsm_no_sqrt, "the target is divided by 1 − ᾱ_t where the noise needs √(1 − ᾱ_t): "
                "x_t − √ᾱ_t x_0 is √(1 − ᾱ_t) ε, and the score divides that offset by the variance."),
        Mistake(_wrong_dsm_eps_target, "the target is the noise ε, the ε-network's target of (15.10): a "
                "score network regresses onto the score of q(x_t | x_0), a rescaled −ε."),
        Mistake(_wrong_dsm_unweighted, "the weights λ are not applied: each row's squared error is "
                "multiplied by its λ before the mean."),
        Mistake(_wrong_dsm_mse, "off by a factor d: a mean over every entry (mse_loss) averages the "
                "coordinates too; the squared norm sums them."),
        Mistake(_wrong_dsm_item, "right value, but the loss has no gradient: did you call .item()? "
                "Training needs the tensor."),
    ),
    compare=_compare_dsm,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_EPS_STAR, _DSM)
