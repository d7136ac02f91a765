"""§14.3 problems: the score of a Gaussian-mixture energy, and one Langevin step."""
import math

import torch

from companion_lib import ebm
from companion_lib.grading import Problem, case_seed, register


def _score_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 143))
    f64 = torch.float64
    cases = [(torch.tensor([[0.0, 0.0], [1.0, -0.5], [-2.0, 3.0]], dtype=f64),
              torch.tensor([0.3, 0.3, 0.4], dtype=f64),
              torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 0.9]], dtype=f64),
              torch.tensor([0.25, 0.15, 0.2], dtype=f64))]
    w = torch.rand(4, generator=g, dtype=f64) + 0.1
    cases.append((torch.randn(30, 2, generator=g, dtype=f64) * 2, w / w.sum(),
                  torch.randn(4, 2, generator=g, dtype=f64) * 1.5,
                  torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=f64)))
    cases.append((torch.randn(5, 2, generator=g, dtype=f64), torch.tensor([1.0], dtype=f64),
                  torch.tensor([[0.5, -0.5]], dtype=f64), torch.tensor([0.7], dtype=f64)))
    return cases


def _wrong_energy_gradient(x, w, m, v):      # returns ∇E (the sign of footnote 3), not −∇E
    return -ebm.gmm_score(x, w, m, v)


def _wrong_unnormalised(x, w, m, v):         # drops the 1/σ_k^d of each Gaussian in r_k(x)
    d = x.shape[1]
    return ebm.gmm_score(x, w * v ** (d / 2), m, v)


def _wrong_no_weights(x, w, m, v):           # forgets the mixing weights ρ_k
    return ebm.gmm_score(x, torch.ones_like(w), m, v)


def _wrong_std(x, w, m, v):                  # divides by σ_k instead of σ_k²
    resp = torch.softmax(torch.log(w) - 0.5 * ((x[:, None] - m[None]) ** 2).sum(-1) / v
                         - torch.log(v) * x.shape[1] / 2, dim=1)
    return torch.einsum("nk,nkd->nd", resp / v.sqrt(), m[None] - x[:, None])


register(Problem(
    id="14.3.gmm_score",
    section="14.3",
    title="Score of a Gaussian-mixture energy",
    statement=("Write gmm_score(x, weights, means, variances) for the energy E(x) = −log Σ_k ρ_k "
               "N(x; μ_k, σ_k² I): x (n, 2), weights (K,), means (K, 2), variances (K,). Return the score "
               "−∇_x E(x) (eq. 15.1), shape (n, 2), in closed form (no autograd)."),
    kind="function",
    reference=ebm.gmm_score,
    cases=_score_cases,
    hint=("−∇E(x) = Σ_k r_k(x) (μ_k − x) / σ_k², where r_k(x) = ρ_k N(x; μ_k, σ_k² I) / Σ_j ρ_j N(x; μ_j, "
          "σ_j² I) are the responsibilities of §14.1 (the normaliser (2πσ_k²)^(−d/2) differs between "
          "components, so keep it; torch.softmax over log terms is safest)."),
    wrong_answers=(_wrong_energy_gradient, _wrong_unnormalised, _wrong_no_weights, _wrong_std),
    rtol=1e-6, atol=1e-9,
))


def _step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1431))
    f64 = torch.float64
    cases = []
    for n, eta in ((4, 0.1), (50, 0.01), (7, 0.5)):
        cases.append((torch.randn(n, 2, generator=g, dtype=f64), torch.randn(n, 2, generator=g, dtype=f64) * 3,
                      eta, torch.randn(n, 2, generator=g, dtype=f64)))
    return cases


def _wrong_full_step(x, s, eta, xi):         # η·score instead of (η/2)·score
    return x + eta * s + math.sqrt(eta) * xi


def _wrong_noise_scale(x, s, eta, xi):       # η·ξ instead of √η·ξ
    return x + 0.5 * eta * s + eta * xi


def _wrong_descent_sign(x, s, eta, xi):      # walks down the log-density (treats the score as ∇E)
    return x - 0.5 * eta * s + math.sqrt(eta) * xi


def _wrong_no_noise(x, s, eta, xi):          # plain gradient ascent: finds a mode, never samples
    return x + 0.5 * eta * s


register(Problem(
    id="14.3.langevin_step",
    section="14.3",
    title="One step of unadjusted Langevin dynamics",
    statement=("Write langevin_step(x, score, step_size, noise): x, score and noise are (n, 2) tensors "
               "(score = −∇E at x, noise ξ ~ N(0, I) drawn for you), step_size η > 0 a float. Return the "
               "(n, 2) tensor x + (η/2)·score + √η·ξ."),
    kind="function",
    reference=ebm.langevin_step,
    cases=_step_cases,
    hint="The drift is half the step size times the score; the noise is scaled by the square root of η.",
    wrong_answers=(_wrong_full_step, _wrong_noise_scale, _wrong_descent_sign, _wrong_no_noise),
    rtol=1e-9, atol=1e-12,
))
