"""§15.3 Problem 15.3.2: how often the nearest-mean rule confuses N(μ₁, σ²) with N(μ₂, σ²), and its bound."""
import math

import torch

from companion_lib import distinguish
from companion_lib.grading.registry import Problem, case_seed

F64 = torch.float64


def _cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1533))
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0, 8.0], dtype=F64)
    sigma_many = 0.2 + 2.0 * torch.rand(6, generator=g, dtype=F64)
    return [
        (t, torch.tensor(1.0, dtype=F64)),                                  # σ = 1, t from 0 to 8σ
        (4.0 * torch.rand(6, generator=g, dtype=F64), sigma_many),          # σ ≠ 1, one per t
        (torch.tensor(3.0, dtype=F64), torch.tensor([0.5, 1.5, 3.0, 6.0], dtype=F64)),   # broadcast σ
        (torch.tensor([[0.3, 1.7], [2.4, 5.0]], dtype=F64), torch.tensor(0.7, dtype=F64)),  # 2-D
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
    hint=("Put the means at −t/2 and +t/2: the boundary is 0. A sample of N(−t/2, σ²) is misclassified "
          "when it exceeds 0; standardise. By symmetry both classes err equally often. "
          "1 − Φ(z) = ½ erfc(z/√2) (torch.special.erfc), accurate far into the tail."),
    wrong_answers=(_wrong_full_distance, _wrong_success, _wrong_both_tails, _wrong_variance),
    rtol=1e-7, atol=1e-12,
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
    hint="Substitute the z of part (i), z = t/(2σ), into ½ exp(−z²/2) and simplify the exponent.",
    wrong_answers=(_wrong_z_is_t_over_sigma, _wrong_no_half, _wrong_z_squared_halved_twice, _wrong_not_squared),
    rtol=1e-7, atol=1e-12,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_ERROR_PROBABILITY, _ERROR_BOUND)
