"""§15.3 Problem 15.3.2: how often the nearest-mean rule confuses N(μ₁, σ²) with N(μ₂, σ²), and its bound."""
import math

import torch

from companion_lib import distinguish
from companion_lib.grading.registry import Mistake, Problem, case_seed

_F64 = torch.float64


def _cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1533))
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0, 8.0], dtype=_F64)
    sigma_many = 0.2 + 2.0 * torch.rand(6, generator=g, dtype=_F64)
    return [
        (t, torch.tensor(1.0, dtype=_F64)),                                  # σ = 1, t from 0 to 8σ
        (4.0 * torch.rand(6, generator=g, dtype=_F64), sigma_many),          # σ ≠ 1, one per t
        (torch.tensor(3.0, dtype=_F64), torch.tensor([0.5, 1.5, 3.0, 6.0], dtype=_F64)),   # broadcast σ
        (torch.tensor([[0.3, 1.7], [2.4, 5.0]], dtype=_F64), torch.tensor(0.7, dtype=_F64)),  # 2-D
        # the far tail, t/σ from 40 to 70: P ≈ 3e-89 .. 1e-267, compared with a relative tolerance; the
        # naive 1 − Φ(t/2σ) rounds to 0 there (and the log that a later cell takes to −∞)
        (torch.tensor([40.0, 48.0, 56.0, 70.0], dtype=_F64) * sigma_many[0], sigma_many[0]),
    ]


def _phi(z):                                                # standard normal CDF
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


# ---------------------------------------------------------------- (i) P(error) = 1 − Φ(t / 2σ)
def _wrong_full_distance(t, sigma):          # 1 − Φ(t/σ): the boundary put at the other mean's distance
    return 1 - _phi(t / sigma)


def _wrong_success(t, sigma):                # Φ(t/2σ): the probability of being right
    return _phi(t / (2 * sigma))


def _wrong_both_tails(t, sigma):             # the two classes' errors added without the priors ½
    return 2 * (1 - _phi(t / (2 * sigma)))


def _wrong_variance(t, sigma):               # σ² used where σ belongs
    return 1 - _phi(t / (2 * sigma ** 2))


def _wrong_naive_tail(t, sigma):             # right formula, 1 − Φ computed by subtraction: 0 in the far tail
    return 1 - _phi(t / (2 * sigma))


_ERROR_PROBABILITY = Problem(
    id="15.3.2.error_probability",
    section="15.3",
    title="Problem 15.3.2 (i): the error probability of the nearest-mean classifier",
    statement=("Write error_probability(t, sigma): P = N(μ₁, σ²), Q = N(μ₂, σ²), t = |μ₁ − μ₂| (a distance, "
               "not a diffusion step); a sample comes from P or Q with probability ½ each and is assigned "
               "to the nearer mean. Return the probability that the assignment is wrong. t ≥ 0 and sigma > 0 "
               "are float64 tensors that broadcast; return a tensor of the broadcast shape."),
    kind="function",
    reference=distinguish.error_probability,
    cases=_cases,
    hint=("Put the means at −t/2 and +t/2: the decision boundary is halfway, and a sample errs when it "
          "crosses it. Standardise that event; by symmetry both classes err equally often.",
          "The answer is a Gaussian upper tail 1 − Φ(z). Far in the tail, 1 − Φ(z) by subtraction rounds "
          "to 0: use a function that computes the tail itself (the complementary error function)."),
    mistakes=(
        Mistake(_wrong_naive_tail, "right in the bulk, but 0 in the far tail (t/σ ≥ 40): 1 − Φ(z) by "
                "subtraction loses everything below 1e-16; compute the tail directly (erfc)."),
        Mistake(_wrong_full_distance, "z = t/σ: the boundary sits halfway between the means, at distance "
                "t/2 from each."),
        Mistake(_wrong_success, "this is the probability of being right: the error is the other tail."),
        Mistake(_wrong_both_tails, "the two classes' errors are added without their priors ½ (twice the "
                "error)."),
        Mistake(_wrong_variance, "σ² where the standard deviation σ belongs in the standardisation."),
    ),
    rtol=1e-7, atol=0.0,
)


# ---------------------------------------------------------------- (ii) P(error) ≤ ½ exp(−t² / 8σ²)
def _wrong_z_is_t_over_sigma(t, sigma):      # ½ exp(−t²/2σ²): z = t/σ instead of t/2σ
    return 0.5 * torch.exp(-t ** 2 / (2 * sigma ** 2))


def _wrong_no_half(t, sigma):                # exp(−t²/8σ²): the ½ of the tail bound dropped
    return torch.exp(-t ** 2 / (8 * sigma ** 2))


def _wrong_z_squared_halved_twice(t, sigma):  # ½ exp(−t²/4σ²): z²/2 with z = t/2σ taken as t²/4σ²
    return 0.5 * torch.exp(-t ** 2 / (4 * sigma ** 2))


def _wrong_not_squared(t, sigma):            # ½ exp(−t/8σ): the square forgotten
    return 0.5 * torch.exp(-t / (8 * sigma))


_ERROR_BOUND = Problem(
    id="15.3.2.error_bound",
    section="15.3",
    title="Problem 15.3.2 (ii): the exponential bound on the error probability",
    statement=("Write error_bound(t, sigma): the upper bound on the error probability of (i) that follows "
               "from the Gaussian tail bound 1 − Φ(z) ≤ ½ exp(−z²/2) (z > 0), as a function of the distance "
               "t ≥ 0 and the common standard deviation sigma > 0 (float64 tensors that broadcast)."),
    kind="function",
    reference=distinguish.error_bound,
    cases=_cases,
    hint=("Part (i) wrote the error as a Gaussian tail at some z: bound that tail with the given inequality.",
          "Substitute the z of part (i) (a distance over a standard deviation) into ½ exp(−z²/2) and "
          "simplify the exponent."),
    mistakes=(
        Mistake(_wrong_z_is_t_over_sigma, "z = t/σ: part (i)'s z is t/(2σ), so the exponent is −t²/(8σ²)."),
        Mistake(_wrong_no_half, "the ½ in front of the tail bound is dropped (off by a factor 2)."),
        Mistake(_wrong_z_squared_halved_twice, "the exponent is −t²/(4σ²): z² = t²/(4σ²), and the bound "
                "halves it once more."),
        Mistake(_wrong_not_squared, "t is not squared in the exponent."),
    ),
    rtol=1e-7, atol=0.0,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_ERROR_PROBABILITY, _ERROR_BOUND)
