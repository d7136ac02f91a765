"""§15.3: telling two Gaussians apart (Problem 15.3.2) and why the forward steps must be small (15.9).

* ``error_probability``  P(error) = 1 − Φ(t / 2σ) of the nearest-mean classifier between N(μ₁, σ²) and
                         N(μ₂, σ²), t = |μ₁ − μ₂|, equal priors                  (Problem 15.3.2 (i))
* ``error_bound``        its bound ½ exp(−t² / 8σ²)                                 (Problem 15.3.2 (ii))
* ``nearest_mean_error_mc``  the same error rate by simulation, with a confidence interval
* ``noised_mixture``     a 1-D Gaussian-mixture data distribution pushed through (15.8): q(x_t), again
                         a mixture
* ``reverse_conditional``        q(x_{t−1} | x_t) ∝ q(x_t | x_{t−1}) q(x_{t−1}) on a grid, by quadrature
* ``reverse_conditional_mixture`` the same in closed form when q(x_{t−1}) is a Gaussian mixture (oracle)
* ``reverse_gaussian_kl``        the best Gaussian fit of q(x_{t−1} | x_t) (moment matching, the
                                 minimiser of KL(q ‖ N)) and that KL, per x_t
* ``expected_reverse_kl``        E_{x_t}[KL]: how far one reverse step is from a Gaussian, for a step β

Here t (in Problem 15.3.2) is a *distance* between means, as in the text, not a diffusion step.
Everything is float64 on the CPU (exact computations: the dtype rule of ``settings``), except the
simulation, which runs in float32 on any device.

Torch, ``divergences`` (1-D Gaussian densities, quadrature KL), ``gaussian_mixture`` (the mixture
pushed through (15.8)) and ``forward_diffusion`` (the schedule); no plotting.
"""
from __future__ import annotations

import math

import torch

from companion_lib import forward_diffusion
from companion_lib._checks import as_tensor, check_callable, check_float, check_generator, check_int
from companion_lib.divergences import kl_quadrature, log_normal, mixture_log_pdf
from companion_lib.gaussian_mixture import MixtureOfGaussians, as_mixture
from companion_lib.settings import cpu_float64

__all__ = ["error_probability", "error_bound", "nearest_mean_error_mc", "noised_mixture",
           "reverse_conditional", "reverse_conditional_mixture", "reverse_gaussian_kl",
           "expected_reverse_kl"]

F64 = torch.float64


# ---------------------------------------------------------------- Problem 15.3.2
def _distance_and_sigma(t, sigma):
    t = as_tensor(t, "t", dtype=F64, device="cpu", nonempty=True)
    sigma = as_tensor(sigma, "sigma", dtype=F64, device="cpu", nonempty=True)
    if (t < 0).any():
        raise ValueError("t is the distance |μ₁ − μ₂| between the means: it must be >= 0")
    if (sigma <= 0).any():
        raise ValueError("sigma (the common standard deviation) must be > 0")
    try:
        return torch.broadcast_tensors(t, sigma)
    except RuntimeError as err:
        raise ValueError(f"t {tuple(t.shape)} and sigma {tuple(sigma.shape)} do not broadcast") from err


@cpu_float64()
def error_probability(t, sigma) -> torch.Tensor:
    """P(error) = 1 − Φ(t / 2σ) of the nearest-mean rule between N(μ₁, σ²) and N(μ₂, σ²), t = |μ₁ − μ₂|,
    each drawn with probability ½ (Problem 15.3.2 (i)). t ≥ 0 and σ > 0 broadcast (numbers or
    tensors); returns a float64 CPU tensor of the broadcast shape. Computed as ½ erfc(z/√2), z = t/2σ,
    which keeps its relative accuracy far into the tail (1 − Φ(z) rounds to 0 from z ≈ 8.3 on, and
    torch.special.ndtr(−z) returns 0 from about z = 10 in torch 2.13)."""
    t, sigma = _distance_and_sigma(t, sigma)
    return 0.5 * torch.special.erfc(t / (2 * sigma) / math.sqrt(2))


@cpu_float64()
def error_bound(t, sigma) -> torch.Tensor:
    """The bound ½ exp(−t² / 8σ²) ≥ P(error) (Problem 15.3.2 (ii): 1 − Φ(z) ≤ ½ e^{−z²/2} at
    z = t/2σ). Same inputs and output as ``error_probability``."""
    t, sigma = _distance_and_sigma(t, sigma)
    return 0.5 * torch.exp(-t ** 2 / (8 * sigma ** 2))


def nearest_mean_error_mc(t: float, sigma: float = 1.0, n: int = 100_000,
                          generator: torch.Generator | None = None, device=None, z: float = 1.96) -> dict:
    """Simulate Problem 15.3.2: n draws, each from N(−t/2, σ²) or N(+t/2, σ²) with probability ½,
    classified by the nearer mean (the sign of x). float32 on ``device`` (default CPU); the draws come
    from the CPU ``generator`` and are moved there. Returns a dict: ``rate`` (float),
    ``se`` (its standard error), ``ci`` (Wilson interval at normal quantile ``z``), ``errors``, ``n``."""
    t = check_float(t, "t", low=0.0)
    sigma = check_float(sigma, "sigma", low=0.0, low_open=True)
    n = check_int(n, "n", low=1)
    z = check_float(z, "z", low=0.0, low_open=True)
    generator = check_generator(generator)
    label = torch.randint(0, 2, (n,), generator=generator)                         # 1: from Q at +t/2
    eps = torch.randn(n, generator=generator, dtype=torch.float32)
    label, eps = label.to(device), eps.to(device)
    x = (label.float() - 0.5) * t + sigma * eps
    wrong = int(((x > 0).long() != label).sum())                                 # boundary at 0
    rate = wrong / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"rate": rate, "se": math.sqrt(max(rate * (1 - rate), 1.0 / n) / n),
            "ci": (centre - half, centre + half), "errors": wrong, "n": n}


# ---------------------------------------------------------------- eq. 15.9: one reverse step
def _mixture(weights, means, variances):
    """The 1-D mixture (a ``MixtureOfGaussians`` or the triple) as float64 CPU tensors w, μ, s² (K,)."""
    mix = as_mixture(weights, means, variances, dtype=F64, device="cpu")
    if mix.d != 1:
        raise ValueError(f"means must have shape ({mix.K},): a 1-D mixture, got ({mix.K}, {mix.d})")
    return mix.weights, mix.means[:, 0], mix.variances


def _beta(beta) -> float:
    return check_float(beta, "beta", low=0.0, high=1.0, low_open=True, high_open=True)


@cpu_float64()
def noised_mixture(weights, means=None, variances=None, alpha_bar: float | None = None):
    """q(x_t) for 1-D data x_0 ~ Σ_k w_k N(μ_k, s_k²): by (15.8) each component stays Gaussian,
    N(√ᾱ μ_k, ᾱ s_k² + 1 − ᾱ) (``MixtureOfGaussians.noised`` with d = 1). ᾱ in (0, 1] (1: the data).
    Call it with the triple, ``noised_mixture(w, mu, s2, alpha_bar)``, or with a 1-D
    ``MixtureOfGaussians``, ``noised_mixture(mix, alpha_bar=ab)``.
    Returns (weights, means, variances), float64 CPU tensors (K,)."""
    if alpha_bar is None:
        raise TypeError("alpha_bar (ᾱ_t in (0, 1]) is required")
    noised = MixtureOfGaussians(*_mixture(weights, means, variances)).noised(alpha_bar)
    return noised.weights, noised.means[:, 0], noised.variances


@cpu_float64()
def reverse_conditional(x_t, beta: float, log_prior, grid) -> torch.Tensor:
    """log q(x_{t−1} | x_t) on a grid, by Bayes' rule and quadrature:
    q(x_{t−1} | x_t) ∝ N(x_t; √(1 − β) x_{t−1}, β) q(x_{t−1})    (the forward step (15.7) times the prior).

    x_t (n,) points; β the step's variance in (0, 1); ``log_prior`` maps a float64 tensor of points to
    log q(x_{t−1}) there (any 1-D density, e.g. a mixture's ``divergences.mixture_log_pdf``); grid
    (g,) one increasing grid for all x_t, or (n, g) one per x_t. Returns (n, g) log-densities
    normalised so that the trapezoidal rule integrates each row to 1. The grid must cover the
    conditional's mass."""
    beta = _beta(beta)
    check_callable(log_prior, "log_prior", "a float64 tensor of points to log q(x_{t−1}) there")
    x_t = as_tensor(x_t, "x_t", ndim=1, dtype=F64, device="cpu", min_rows=1)
    grid = as_tensor(grid, "grid", ndim=(1, 2), dtype=F64, device="cpu")
    grid = grid.expand(x_t.shape[0], -1) if grid.ndim == 1 else grid
    if grid.shape[0] != x_t.shape[0] or grid.shape[1] < 3:
        raise ValueError(f"grid must be (g,) or (n, g) with n = {x_t.shape[0]} rows and g >= 3, "
                         f"got {tuple(grid.shape)}")
    if not (grid[:, 1:] > grid[:, :-1]).all():
        raise ValueError("each grid row must be strictly increasing")
    log_p = log_prior(grid.reshape(-1)).reshape(grid.shape)
    log_un = log_normal(x_t[:, None], math.sqrt(1 - beta) * grid, beta) + log_p       # (15.7) × prior
    top = log_un.max(1, keepdim=True).values
    log_mass = torch.log(torch.trapezoid((log_un - top).exp(), grid, dim=1))[:, None] + top
    return log_un - log_mass


@cpu_float64()
def reverse_conditional_mixture(x_t, beta: float, weights, means=None, variances=None):
    """q(x_{t−1} | x_t) in closed form when q(x_{t−1}) = Σ_k w_k N(μ_k, s_k²): Bayes' rule for Gaussians
    per component, a mixture again. With a = √(1 − β):
    v_k = (1/s_k² + a²/β)⁻¹,  m_k(x_t) = v_k (μ_k/s_k² + a x_t/β),  r_k(x_t) ∝ w_k N(x_t; a μ_k, a² s_k² + β).
    Returns (r (n, K), m (n, K), v (K,)), float64."""
    beta = _beta(beta)
    w, mu, s2 = _mixture(weights, means, variances)
    x_t = as_tensor(x_t, "x_t", ndim=1, dtype=F64, device="cpu", min_rows=1)
    a = math.sqrt(1 - beta)
    v = 1.0 / (1.0 / s2 + a * a / beta)
    m = v * (mu / s2 + a * x_t[:, None] / beta)
    log_r = torch.log(w) + log_normal(x_t[:, None], a * mu, a * a * s2 + beta)
    return torch.softmax(log_r, 1), m, v


def _posterior_moments(r, m, v):
    mean = (r * m).sum(1)
    return mean, (r * (v + m * m)).sum(1) - mean ** 2


@cpu_float64()
def reverse_gaussian_kl(x_t, beta: float, weights, means=None, variances=None, n_points: int = 401,
                        reach: float = 12.0) -> dict:
    """How far q(x_{t−1} | x_t) is from a Gaussian, for a Gaussian-mixture q(x_{t−1}) (the prior).

    For each x_t (n,): the conditional by quadrature (``reverse_conditional``) on a grid of
    ``n_points`` that follows it (its mean ± ``reach`` standard deviations, placed with the closed
    form), its best Gaussian fit N(m, s²) (moment matching by quadrature: the argmin over Gaussians of
    KL(q ‖ N)) and KL(q(x_{t−1} | x_t) ‖ N(m, s²)) by quadrature (≥ 0, and 0 exactly when q is
    Gaussian). Returns a dict of (n,) float64 tensors: ``kl``, ``mean``, ``var``, and the grids and
    log-densities (``grid``, ``log_q``: (n, n_points)) for plotting."""
    w, mu, s2 = _mixture(weights, means, variances)
    n_points = check_int(n_points, "n_points", low=11)
    reach = check_float(reach, "reach", low=1.0)
    x_t = as_tensor(x_t, "x_t", ndim=1, dtype=F64, device="cpu", min_rows=1)
    r, m, v = reverse_conditional_mixture(x_t, beta, w, mu, s2)
    centre, spread = _posterior_moments(r, m, v)
    z = torch.linspace(-reach, reach, n_points, dtype=F64)
    grid = centre[:, None] + spread.clamp_min(1e-300).sqrt()[:, None] * z               # (n, g)
    log_q = reverse_conditional(x_t, beta, lambda x: mixture_log_pdf(x, w, mu, s2), grid)
    q = log_q.exp()
    mean = torch.trapezoid(q * grid, grid, dim=1)                                        # moment matching
    var = torch.trapezoid(q * (grid - mean[:, None]) ** 2, grid, dim=1)
    # KL is invariant under x = centre + spread·z: integrate on the common z grid, densities in z
    log_dx_dz = 0.5 * torch.log(spread.clamp_min(1e-300))[:, None]
    kl = kl_quadrature(log_q + log_dx_dz, log_normal(grid, mean[:, None], var[:, None]) + log_dx_dz, z)
    return {"kl": kl.clamp_min(0.0), "mean": mean, "var": var, "grid": grid, "log_q": log_q}


@cpu_float64()
def expected_reverse_kl(beta: float, weights, means=None, variances=None, n_nodes: int = 161, reach: float = 8.0,
                        n_points: int = 401) -> float:
    """E_{x_t ~ q(x_t)} KL(q(x_{t−1} | x_t) ‖ best Gaussian), in nats, for one forward step of variance β
    from q(x_{t−1}) = Σ_k w_k N(μ_k, s_k²) (use ``noised_mixture`` for a later step of a chain).

    q(x_t) is the mixture Σ_k w_k N(√(1−β) μ_k, (1−β) s_k² + β); the expectation is a trapezoidal
    rule over ``n_nodes`` points of each component's ±``reach`` standard deviations. Returns a float."""
    beta = _beta(beta)
    w, mu, s2 = _mixture(weights, means, variances)
    n_nodes = check_int(n_nodes, "n_nodes", low=11)
    reach = check_float(reach, "reach", low=1.0)
    a = math.sqrt(1 - beta)
    z = torch.linspace(-reach, reach, n_nodes, dtype=F64)
    phi = torch.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
    x_t = a * mu[:, None] + (a * a * s2 + beta).sqrt()[:, None] * z         # (K, nodes): component k's
    kl = reverse_gaussian_kl(x_t.reshape(-1), beta, w, mu, s2, n_points=n_points)["kl"].reshape(x_t.shape)
    return float((w * torch.trapezoid(phi * kl, z, dim=1)).sum())          # E over each component, mixed


@cpu_float64()
def reverse_kl_per_step(schedule, weights, means=None, variances=None, n_nodes: int = 161,
                        n_points: int = 401) -> torch.Tensor:
    """For data x_0 ~ Σ_k w_k N(μ_k, s_k²) and a ``forward_diffusion.NoiseSchedule``, the expected KL between
    each true reverse step q(x_{t−1} | x_t) and its best Gaussian fit, t = 1..T: a float64 tensor (T,)
    (index t − 1 holds step t; q(x_{t−1}) is ``noised_mixture`` at ᾱ_{t−1}, with ᾱ_0 = 1).

    Because the reversed chain is Markov, their sum is KL(q(x_{0:T}) ‖ p(x_{0:T})) for the model p that
    starts from the true q(x_T) and takes the best Gaussian step at every t: a bound on what any
    Gaussian-step reverse process loses on this data (and, by data processing, on KL(q(x_0) ‖ p(x_0)))."""
    if not isinstance(schedule, forward_diffusion.NoiseSchedule):
        raise TypeError(f"schedule must be a forward_diffusion.NoiseSchedule, got {type(schedule).__name__}")
    w, mu, s2 = _mixture(weights, means, variances)
    betas = schedule.betas.tolist()
    alpha_bars = [1.0] + schedule.alpha_bars.tolist()[:-1]               # ᾱ_{t−1}, t = 1..T
    out = [expected_reverse_kl(b, *noised_mixture(w, mu, s2, ab), n_nodes=n_nodes, n_points=n_points)
           for b, ab in zip(betas, alpha_bars)]
    with cpu_float64():
        return torch.tensor(out, dtype=F64)
