"""§15.3.1 problems: the cumulative products ᾱ_t, sampling q(x_t | x_0) in one draw (15.8), and two
Gaussian steps composed into one (Problem 15.3.1 as computation)."""
import torch

from companion_lib import diffusion
from companion_lib.grading.compare import float32_aware
from companion_lib.grading.registry import Mistake, Problem, case_seed
from companion_lib.settings import cpu_float64

_F64 = torch.float64


# ---------------------------------------------------------------- ᾱ_t = ∏_{s≤t} (1 − β_s)
def _alpha_bar_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1531))
    T = int(torch.randint(3, 12, (1,), generator=g))
    return [
        (diffusion.NoiseSchedule.linear(1000).betas,),                             # Ho et al.'s schedule
        (diffusion.NoiseSchedule.cosine(50).betas,),                               # ends at β_T = 0.999
        (0.3 * torch.rand(T, generator=g, dtype=_F64) + 1e-3,),                     # arbitrary β's
        (torch.tensor([0.25], dtype=_F64),),                                        # T = 1
    ]


@cpu_float64()                            # exact schedule arithmetic, on the CPU
def _alpha_bar_reference(betas):
    return diffusion.NoiseSchedule(betas).alpha_bars


def _wrong_product_of_betas(betas):       # ∏ β_s instead of ∏ (1 − β_s)
    return torch.cumprod(betas, 0)


def _wrong_linearised(betas):             # 1 − Σ β_s: the first-order approximation of ∏ (1 − β_s)
    return 1 - torch.cumsum(betas, 0)


def _wrong_off_by_one(betas):             # ᾱ_{t−1} at index t − 1 (starts at ᾱ_0 = 1)
    return torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, 0)[:-1]])


def _wrong_square_root(betas):            # ∏ √(1 − β_s) = √ᾱ_t: the mean's factor, not ᾱ_t
    return torch.cumprod(torch.sqrt(1 - betas), 0)


_ALPHA_BAR = Problem(
    id="15.3.1.alpha_bar",
    section="15.3",
    title="ᾱ_t from the schedule β_1..β_T",
    statement=("Write alpha_bar(betas): betas (T,) is a float64 tensor whose entry t − 1 is β_t, t = 1..T. "
               "Return the (T,) tensor whose entry t − 1 is ᾱ_t = ∏_{i=1}^t α_i with α_i = 1 − β_i "
               "(the notation of (15.8)), in betas's dtype."),
    kind="function",
    reference=_alpha_bar_reference,
    cases=_alpha_bar_cases,
    hint=("ᾱ_t keeps the part of the signal that survives t steps: each step keeps the factor α_s = 1 − β_s "
          "of the one before.",
          "That is a running product over the steps, one entry per t (a cumulative product along the "
          "single axis). Entry 0 is ᾱ_1 = α_1, not 1."),
    mistakes=(
        Mistake(_wrong_product_of_betas, "a product of the β's: ᾱ_t multiplies α_s = 1 − β_s."),
        Mistake(_wrong_linearised, "1 − Σ β_s is only the first-order approximation of ∏ (1 − β_s)."),
        Mistake(_wrong_off_by_one, "off by one step: entry t − 1 is ᾱ_t, so entry 0 is α_1, not 1."),
        Mistake(_wrong_square_root, "this is √ᾱ_t, the factor of x_0 in (15.8): the problem asks for ᾱ_t."),
    ),
    rtol=1e-6, atol=1e-12,
    reference_names=("companion_lib.diffusion.NoiseSchedule",),
)


# ---------------------------------------------------------------- x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε
def _q_sample_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1532))
    lin = diffusion.NoiseSchedule.linear(1000).alpha_bars
    cos = diffusion.NoiseSchedule.cosine(100).alpha_bars
    t1 = torch.cat([torch.tensor([1, 1000]), torch.randint(1, 1001, (3,), generator=g)])
    x1 = 2 * torch.rand(5, 64, generator=g) - 1                                   # float32 images, [−1, 1]
    t2 = torch.randint(1, 101, (4,), generator=g)
    x2 = torch.randn(4, 1, 8, 8, generator=g, dtype=_F64)                          # float64, (batch, c, h, w)
    x3 = torch.randn(3, generator=g)                                              # scalars, shape (batch,)
    x4 = torch.randn(6, 2, generator=g)
    return [
        (lin, x1, t1, torch.randn(5, 64, generator=g)),
        (cos, x2, t2, torch.randn(4, 1, 8, 8, generator=g, dtype=_F64)),
        (lin, x3, torch.tensor([1, 2, 1000]), torch.randn(3, generator=g)),
        (cos, x4, torch.tensor([100, 50, 1, 7, 99, 3]), torch.randn(6, 2, generator=g, dtype=_F64)),
    ]


@cpu_float64()                            # exact schedule arithmetic, on the CPU
def _q_sample_reference(alpha_bars, x0, t, noise):
    """The library's q_sample on the schedule with these ᾱ's (β_t = 1 − ᾱ_t / ᾱ_{t−1})."""
    ab = torch.cat([torch.ones(1, dtype=alpha_bars.dtype), alpha_bars])
    schedule = diffusion.NoiseSchedule(1 - ab[1:] / ab[:-1])
    return diffusion.q_sample(schedule, x0, t, noise)


def _compare_q_sample(expected, got):
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.dtype != expected.dtype:
        return (f"the result must keep x0's dtype {expected.dtype}, got {got.dtype} (cast the float64 "
                "schedule to x0's dtype, never the data to the schedule's)")
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected x0's shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    e = expected.detach().cpu().double()
    d = got.detach().cpu().double()
    if not torch.isfinite(d).all():
        return "the answer holds NaN or infinite values"
    err = (d - e).abs()
    # float32 answers may form 1 − ᾱ_t in float32 (relative error ~1e-3 when ᾱ_t ≈ 1 − 1e-4): allowed
    atol = 1e-4 if expected.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9
    if not (err <= atol + 1e-5 * e.abs()).all():
        return f"values differ from the reference (largest error {float(err.max()):.3g}, tolerance {atol:g})"
    return None


def _shape(ab, x0):
    return ab.reshape(-1, *([1] * (x0.ndim - 1))).to(x0)


def _wrong_no_square_roots(alpha_bars, x0, t, noise):     # ᾱ x0 + (1 − ᾱ) ε: variances used as scales
    ab = _shape(alpha_bars[t - 1], x0)
    return ab * x0 + (1 - ab) * noise.to(x0)


def _wrong_swapped(alpha_bars, x0, t, noise):             # √(1 − ᾱ) x0 + √ᾱ ε
    ab = _shape(alpha_bars[t - 1], x0)
    return (1 - ab).sqrt() * x0 + ab.sqrt() * noise.to(x0)


def _wrong_float64(alpha_bars, x0, t, noise):             # right values, but the data cast to the schedule
    ab = alpha_bars[t - 1].reshape(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double()


def _wrong_index_t(alpha_bars, x0, t, noise):             # ᾱ at index t: step t + 1 (fails at t = T)
    ab = _shape(alpha_bars[t.clamp(max=len(alpha_bars) - 1)], x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise.to(x0)


_Q_SAMPLE = Problem(
    id="15.3.1.q_sample",
    section="15.3",
    title="Sampling x_t from x_0 in one draw (15.8)",
    statement=("Write q_sample(alpha_bars, x0, t, noise): alpha_bars (T,) float64 (entry t − 1 is ᾱ_t), "
               "x0 (batch, ...) a floating tensor, t (batch,) integer steps in 1..T (one per row), noise "
               "(same shape as x0) standard normal draws ε (possibly of another float dtype). Return "
               "x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, row i using step t[i], with x0's shape, dtype and device."),
    kind="function",
    reference=_q_sample_reference,
    cases=_q_sample_cases,
    hint=("(15.8) mixes the clean data and the noise with the square roots of ᾱ_t and 1 − ᾱ_t; each row "
          "uses its own step t.",
          "The text's steps start at 1, Python's indices at 0. The per-row factor needs a shape that "
          "broadcasts over the row's other dimensions, and the float64 schedule must take x0's dtype "
          "and device before it meets the data, not the other way round."),
    mistakes=(
        Mistake(_wrong_no_square_roots, "ᾱ_t and 1 − ᾱ_t are variances: x_0 and ε are scaled by their "
                "square roots."),
        Mistake(_wrong_swapped, "the factors are swapped: x_0 gets √ᾱ_t, the noise √(1 − ᾱ_t)."),
        Mistake(_wrong_float64, "right values, but the data were cast to the float64 schedule: the "
                "result keeps x0's dtype."),
        Mistake(_wrong_index_t, "ᾱ at index t is step t + 1: the text's step t sits at index t − 1."),
    ),
    compare=_compare_q_sample,
    reference_names=("companion_lib.diffusion.q_sample", "companion_lib.diffusion.NoiseSchedule"),
)

# ---------------------------------------------------------------- two Gaussian steps composed (Problem 15.3.1)
def _compose_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1534))

    def draw(*shape, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(*shape, generator=g, dtype=_F64)

    lin = diffusion.NoiseSchedule.linear(1000)
    t = torch.randint(2, 1001, (5,), generator=g)
    return [
        # two steps of (15.7): a = √α_t, v = β_t after b = √α_{t−1}, u = β_{t−1}
        (lin.alphas[t - 1].sqrt(), lin.betas[t - 1], lin.alphas[t - 2].sqrt(), lin.betas[t - 2]),
        # a step of (15.7) after (15.8) at t − 1: b = √ᾱ_{t−1}, u = 1 − ᾱ_{t−1}
        (lin.alphas[t - 1].sqrt(), lin.betas[t - 1], lin.alpha_bars[t - 2].sqrt(), 1 - lin.alpha_bars[t - 2]),
        # any linear-Gaussian steps: coefficients of either sign, above 1, variances of any size
        (draw(6, low=-2.0, high=2.0), draw(6, high=3.0), draw(6, low=-1.5, high=1.5), draw(6, high=2.0)),
        # scalars that broadcast against a batch
        (torch.tensor(0.7, dtype=_F64), torch.tensor(0.3, dtype=_F64), draw(4, low=0.2, high=1.2), draw(4)),
        # a deterministic second step (v = 0) and a deterministic first step (u = 0)
        (draw(3, low=0.5, high=1.5), torch.zeros(3, dtype=_F64), draw(3), draw(3, high=0.5)),
        (draw(3), draw(3, high=0.5), draw(3, low=0.5, high=1.5), torch.zeros(3, dtype=_F64)),
    ]


def _compose_reference(a, v, b, u):
    """x_t = a x_{t−1} + √v ε, x_{t−1} = b x_{t−2} + √u ε′ (ε, ε′ independent standard normal)
    → (coefficient a·b, variance a²u + v) of x_t given x_{t−2}."""
    return a * b, a * a * u + v


def _wrong_adds_standard_deviations(a, v, b, u):   # the standard deviations a√u and √v added
    return a * b, (a * u.sqrt() + v.sqrt()) ** 2


def _wrong_forgets_a_squared(a, v, b, u):          # u passed through the second step unscaled
    return a * b, u + v


def _wrong_a_not_squared(a, v, b, u):              # the noise scaled by a, its variance by a (not a²)
    return a * b, a * u + v


def _wrong_multiplies_variances(a, v, b, u):       # variances multiplied like the coefficients
    return a * b, u * v


def _wrong_adds_coefficients(a, v, b, u):          # (α + β)μ of the text's hint read as a + b
    return a + b, a * a * u + v


def _wrong_scales_the_wrong_noise(a, v, b, u):     # the later step's noise shrunk by the earlier b
    return a * b, u + b * b * v


_COMPOSE = Problem(
    id="15.3.1.compose",
    section="15.3",
    title="Problem 15.3.1 as computation: two Gaussian steps make one",
    statement=("Write compose(a, v, b, u). Two linear-Gaussian steps: x_{t−1} = b·x_{t−2} + √u·ε′ and then "
               "x_t = a·x_{t−1} + √v·ε, with ε and ε′ independent standard normal draws (independent of "
               "x_{t−2} too). Then x_t given x_{t−2} is Gaussian with mean c·x_{t−2} and variance w (per "
               "coordinate). Return the pair (c, w). a, b are real coefficients, v, u ≥ 0 variances; all "
               "four are float64 tensors that broadcast: return two tensors of the broadcast shape."),
    kind="function",
    reference=_compose_reference,
    cases=_compose_cases,
    hint=("Substitute the first step into the second: x_t is c·x_{t−2} plus a sum of two independent "
          "Gaussian noises. The mean is the easy part.",
          "Each noise term is a constant times a standard normal; a constant k multiplies a variance by "
          "k², and the variances (not the standard deviations) of independent terms add."),
    mistakes=(
        Mistake(_wrong_adds_standard_deviations, "the standard deviations were added: for independent "
                "noises it is the variances that add."),
        Mistake(_wrong_forgets_a_squared, "the earlier noise √u·ε′ goes through the second step too: it "
                "is multiplied by a, so its variance by a²."),
        Mistake(_wrong_a_not_squared, "a multiplies the earlier noise, so its variance is multiplied by "
                "a² (not a): check with a negative a, a variance cannot become negative."),
        Mistake(_wrong_multiplies_variances, "the variances were multiplied: the noises are added, "
                "so their variances add (after scaling)."),
        Mistake(_wrong_adds_coefficients, "the coefficients compose by multiplication: x_{t−2} is "
                "scaled by b, then by a."),
        Mistake(_wrong_scales_the_wrong_noise, "the scaling was applied to the later step's noise: "
                "it is the earlier noise √u·ε′ that passes through the later step."),
    ),
    rtol=1e-10, atol=1e-12, compare=float32_aware(1e-10, 1e-12),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_ALPHA_BAR, _Q_SAMPLE, _COMPOSE)
