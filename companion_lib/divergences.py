"""§14.2: maximum likelihood is minimum KL divergence, in PyTorch (any device).

Theorem 14.2.2 in one line: for data x ~ P and a model Q_θ,

    E_{x~P}[-log Q_θ(x)]  =  H(P)  +  KL(P ‖ Q_θ),          H(P) = E_{x~P}[-log P(x)],

so the average negative log-likelihood on n samples (an estimate of the left side) differs from
KL(P ‖ Q_θ) by a constant that does not depend on θ, and its minimiser approaches the KL minimiser
as n grows. This module holds the pieces the lesson needs:

* exact 1-D densities (``log_normal``, ``mixture_log_pdf``, ``sample_mixture``, ``mixture_moments``: a
  1-D ``gaussian_mixture.MixtureOfGaussians`` or its (weights, means, variances));
* KL divergences: closed form between (diagonal) Gaussians (``kl_gaussians``) and by quadrature on a
  grid (``kl_quadrature``, ``entropy_quadrature``);
* the isotropic Gaussian N(μ, σ²I) of Example 14.2.1: its maximum-likelihood estimates
  (``isotropic_gaussian_mle``) and negative log-likelihood (``isotropic_gaussian_nll``);
* the two ways of fitting one Gaussian to P: ``fit_forward_kl`` (min KL(P‖Q): moment matching,
  mass covering) and ``fit_reverse_kl`` (min KL(Q‖P) by gradient descent: mode seeking), with
  ``kl_gaussian_to_density`` (KL(Q‖P) by quadrature on a grid that moves with Q) and ``bimodal_fits``.

Torch (and ``_checks``) only; no plotting, no grading.
"""
from __future__ import annotations

import math

import torch

from companion_lib._checks import as_tensor, check_float, check_int
from companion_lib.gaussian import log_normal, log_normal_diag
from companion_lib.gaussian import entropy as gaussian_entropy
from companion_lib.gaussian import kl as gaussian_kl
from companion_lib.gaussian_mixture import MixtureOfGaussians, as_mixture
from companion_lib.settings import cpu_float64

# (``log_normal`` is ``gaussian``'s, re-exported for the lesson.)
__all__ = ["mixture_log_pdf", "sample_mixture", "mixture_moments", "kl_gaussians", "trapezoid",
           "kl_quadrature", "entropy_quadrature", "isotropic_gaussian_mle", "isotropic_gaussian_nll",
           "fit_forward_kl", "kl_gaussian_to_density", "fit_reverse_kl", "bimodal_fits"]


# ---------------------------------------------------------------- helpers
def _positive(t: torch.Tensor, name: str) -> torch.Tensor:
    if (t <= 0).any():
        raise ValueError(f"{name} must be > 0 (variances), got min {float(t.min()):.3g}")
    return t


def _check_log_p_fn(fn):
    if not callable(fn):
        raise TypeError(f"log_p_fn must be a function mapping a 1-D tensor of points to P's log-density "
                        f"there, got a {type(fn).__name__}")
    return fn


def _check_grid(grid) -> torch.Tensor:
    grid = as_tensor(grid, "grid", ndim=1, dtype=None, min_rows=3)
    if not (grid[1:] > grid[:-1]).all():
        raise ValueError("grid must be strictly increasing (a 1-D quadrature grid)")
    return grid


# ---------------------------------------------------------------- exact 1-D densities
# ``log_normal(x, mean, var)``: log N(x; mean, var) elementwise, var the variance (``gaussian``'s, re-exported)


def _check_log_density(log_p, name: str, grid: torch.Tensor, *, batch: bool = False) -> torch.Tensor:
    """A log-density on ``grid`` (g,): shape (g,) (``batch``: (..., g)), no NaN and no +inf; −inf is
    allowed (log 0 where the density vanishes)."""
    g = grid.shape[0]
    t = as_tensor(log_p, name, dtype=grid.dtype, device=grid.device, finite=False,
                  ndim=None if batch else 1)
    if t.ndim == 0 or t.shape[-1] != g:
        want = f"(..., {g})" if batch else f"({g},)"
        raise ValueError(f"{name} must end in the grid length {g}: shape {want}, one value per grid point, "
                         f"got {tuple(t.shape)}")
    if torch.isnan(t).any() or (t == math.inf).any():
        raise ValueError(f"{name} must be a log-density: finite, or -inf where the density is 0 (no NaN, no +inf)")
    return t


def _mixture_1d(weights, means, variances, dtype=torch.float64, device=None) -> MixtureOfGaussians:
    mix = as_mixture(weights, means, variances, dtype=dtype, device=device)
    if mix.d != 1:
        raise ValueError(f"means must have shape ({mix.K},): a 1-D mixture, got ({mix.K}, {mix.d})")
    return mix


def mixture_log_pdf(x, weights, means=None, variances=None) -> torch.Tensor:
    """Exact log-density of the 1-D mixture Σ_k w_k N(μ_k, σ_k²): x (n,) → (n,); the mixture is a
    ``gaussian_mixture.MixtureOfGaussians`` or weights, means, variances (K,)."""
    x = as_tensor(x, "x", ndim=1, dtype=None, min_rows=1)
    return _mixture_1d(weights, means, variances, dtype=x.dtype, device=x.device).log_prob(x[:, None])


@cpu_float64()
def sample_mixture(n: int, weights, means=None, variances=None, generator: torch.Generator | None = None,
                   device=None) -> torch.Tensor:
    """n i.i.d. draws (n,) float64 from the 1-D mixture (ancestral: component, then Gaussian)."""
    n = check_int(n, "n", low=1)
    x = _mixture_1d(weights, means, variances).sample(n, generator)[:, 0]
    return x.to(device) if device is not None else x


@cpu_float64()
def mixture_moments(weights, means=None, variances=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the 1-D mixture (0-d tensors): E x = Σ w μ, Var x = Σ w (σ² + μ²) − (E x)²."""
    mean, cov = _mixture_1d(weights, means, variances).moments()
    return mean[0], cov[0, 0]


# ---------------------------------------------------------------- KL divergences
@cpu_float64()
def kl_gaussians(mu1, var1, mu2, var2) -> torch.Tensor:
    """Closed-form KL(N(μ₁, diag var₁) ‖ N(μ₂, diag var₂)), summed over the last dimension: the sum of
    ``gaussian.kl`` (the one Gaussian KL; this function adds the shape contract of Problem 14.2).

    Inputs: tensors of one common shape, 0-d (1-D Gaussians) or (d,) (diagonal Gaussians); variances
    > 0. Returns a 0-d tensor:  ½ Σ_j [ log(var₂/var₁) + (var₁ + (μ₁ − μ₂)²)/var₂ − 1 ].
    """
    mu1 = as_tensor(mu1, "mu1", ndim=(0, 1), dtype=None)
    shape = tuple(mu1.shape) if mu1.ndim else None
    kw = dict(dtype=mu1.dtype, device=mu1.device)
    if shape is None:
        var1 = as_tensor(var1, "var1", ndim=0, **kw)
        mu2 = as_tensor(mu2, "mu2", ndim=0, **kw)
        var2 = as_tensor(var2, "var2", ndim=0, **kw)
    else:
        var1 = as_tensor(var1, "var1", shape=shape, shape_of="mu1", **kw)
        mu2 = as_tensor(mu2, "mu2", shape=shape, shape_of="mu1", **kw)
        var2 = as_tensor(var2, "var2", shape=shape, shape_of="mu1", **kw)
    _positive(var1, "var1")
    _positive(var2, "var2")
    return gaussian_kl(mu1, var1, mu2, var2, check=False).sum()


def trapezoid(values, grid) -> torch.Tensor:
    """∫ f dx by the trapezoidal rule: values (..., g) of f on grid (g,) → (...)."""
    grid = _check_grid(grid)
    values = as_tensor(values, "values", dtype=grid.dtype, device=grid.device)
    if values.ndim == 0 or values.shape[-1] != grid.shape[0]:
        raise ValueError(f"values must end in the grid length {grid.shape[0]}, got {tuple(values.shape)}")
    return torch.trapezoid(values, grid, dim=-1)


def kl_quadrature(log_p, log_q, grid) -> torch.Tensor:
    """KL(P ‖ Q) = ∫ p (log p − log q) dx by the trapezoidal rule on a 1-D grid.

    log_p, log_q: log-densities on ``grid`` (g,), −inf allowed where a density is 0 (log_q only where p
    is 0 too); either may carry batch dimensions (..., g) that broadcast (one KL per model). The grid must cover P's mass (the integrand outside it is dropped). Returns (...).
    Differentiable in log_q and log_p (used by ``fit_reverse_kl``).
    """
    grid = _check_grid(grid)
    log_p = _check_log_density(log_p, "log_p", grid, batch=True)
    log_q = _check_log_density(log_q, "log_q", grid, batch=True)
    p = log_p.exp()
    if ((p > 0) & (log_q == -math.inf)).any():
        raise ValueError("log_q is -inf where P has mass: KL(P ‖ Q) is infinite (Q must cover P's support)")
    integrand = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))   # 0 log 0 = 0
    return torch.trapezoid(integrand, grid, dim=-1)


def entropy_quadrature(log_p, grid) -> torch.Tensor:
    """Differential entropy H(P) = −∫ p log p dx (nats) by the trapezoidal rule; log_p (..., g)."""
    grid = _check_grid(grid)
    log_p = _check_log_density(log_p, "log_p", grid, batch=True)
    p = log_p.exp()
    return -torch.trapezoid(torch.where(p > 0, p * log_p, torch.zeros_like(p)), grid, dim=-1)


# ---------------------------------------------------------------- Example 14.2.1: N(μ, σ²I)
def isotropic_gaussian_mle(X) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood N(μ, σ²I) for X (m, d): μ (d,) the sample mean and the 0-d tensor

        σ² = (1 / (m d)) Σ_i |x_i − μ|²        (the average per-pixel variance, divided by m·d).
    """
    X = as_tensor(X, "X", ndim=2, min_rows=1, dtype=None)
    mean = X.mean(0)                                                 # μ = (1/m) Σ x_i
    var = ((X - mean) ** 2).sum() / (X.shape[0] * X.shape[1])        # σ² = Σ|x_i − μ|² / (m d)
    return mean, var


def isotropic_gaussian_nll(X, mean, var) -> torch.Tensor:
    """Negative log-likelihood of N(mean, var·I) per sample, nats: X (m, d), mean (d,), var > 0 → (m,).

    −log N(x; μ, σ²I) = |x − μ|² / (2σ²) + (d/2) log(2πσ²)   (summed over i: the objective of Ex. 14.2.1).
    Differentiable in mean and var.
    """
    X = as_tensor(X, "X", ndim=2, min_rows=1, dtype=None)
    d = X.shape[1]
    mean = as_tensor(mean, "mean", shape=(d,), shape_of="X's columns", dtype=X.dtype, device=X.device)
    var = _positive(as_tensor(var, "var", ndim=0, dtype=X.dtype, device=X.device), "var")
    return -log_normal_diag(X, mean, var, check=False)


# ---------------------------------------------------------------- fitting one Gaussian to a 1-D P
def fit_forward_kl(log_p, grid) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin over N(m, s²) of KL(P ‖ N(m, s²)): moment matching, m = E_P x, s² = Var_P x (quadrature).

    log_p: P's log-density on ``grid`` (g,). Returns 0-d tensors (mean, var). Mass covering: the fit
    spreads over all of P's modes.
    """
    grid = _check_grid(grid)
    log_p = _check_log_density(log_p, "log_p", grid)
    p = log_p.exp()
    mass = torch.trapezoid(p, grid)
    mean = torch.trapezoid(p * grid, grid) / mass
    var = torch.trapezoid(p * (grid - mean) ** 2, grid) / mass
    return mean, var


@cpu_float64()
def kl_gaussian_to_density(mean, var, log_p_fn, n_points: int = 801, reach: float = 10.0) -> torch.Tensor:
    """KL(N(mean, var) ‖ P) = −H(Q) − E_Q[log P] for a 1-D Gaussian Q, by quadrature on a grid that
    moves with Q: x = mean + √var·z for z on ``n_points`` points of [−reach, reach] (trapezoidal rule
    against the standard normal density), so no fixed grid can cut off a wide Q's tails.

    mean, var: tensors of one shape, 0-d or (r,) (several Q's at once), var > 0; ``log_p_fn`` maps a
    1-D tensor of points to P's log-density there. Differentiable in mean and var. Returns mean's shape.
    """
    _check_log_p_fn(log_p_fn)
    n_points = check_int(n_points, "n_points", low=3)
    reach = check_float(reach, "reach", low=0.0, low_open=True)
    mean = as_tensor(mean, "mean", ndim=(0, 1), dtype=None)
    var = _positive(as_tensor(var, "var", shape=tuple(mean.shape), shape_of="mean", dtype=mean.dtype,
                              device=mean.device), "var")
    z = torch.linspace(-reach, reach, n_points, dtype=mean.dtype, device=mean.device)
    phi = torch.exp(log_normal(z, 0.0, 1.0, check=False))                    # N(0, 1) density
    x = mean[..., None] + var.sqrt()[..., None] * z                           # (..., g) points under Q
    log_p = log_p_fn(x.reshape(-1)).reshape(x.shape)
    entropy_q = gaussian_entropy(var, check=False)                            # H(Q), closed form
    return -entropy_q - torch.trapezoid(phi * log_p, z, dim=-1)               # E_Q[log q − log p]


@cpu_float64()
def fit_reverse_kl(log_p_fn, inits, init_var, steps: int = 400, lr: float = 0.05):
    """argmin over N(m, s²) of KL(N(m, s²) ‖ P) by Adam (mode seeking), from several starting means.

    ``log_p_fn``: P's log-density (1-D tensor of points → their log-densities); ``inits`` (r,) starting
    means, ``init_var`` the starting variance. The KL is ``kl_gaussian_to_density`` (quadrature on a
    grid that moves with Q). Returns a dict: ``mean``, ``var``, ``kl`` (0-d tensors, the best start) and
    ``runs`` (list of (mean, var, kl) floats, one per start: the local optima).
    """
    _check_log_p_fn(log_p_fn)
    steps = check_int(steps, "steps", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    inits = as_tensor(inits, "inits", ndim=1, min_rows=1, dtype=None)
    init_var = check_float(init_var, "init_var", low=0.0, low_open=True)
    m = inits.detach().clone().requires_grad_(True)
    log_s2 = torch.full_like(m, math.log(init_var)).detach().requires_grad_(True)
    opt = torch.optim.Adam([m, log_s2], lr=lr)
    for _ in range(steps):                       # the r starts are independent: optimise their sum
        opt.zero_grad()
        kl_gaussian_to_density(m, log_s2.exp(), log_p_fn).sum().backward()
        opt.step()
    with torch.no_grad():
        var = log_s2.exp()
        kl = kl_gaussian_to_density(m, var, log_p_fn)
        best = int(torch.argmin(kl))
        runs = [(float(a), float(b), float(c)) for a, b, c in zip(m.detach(), var, kl)]
        return {"mean": m[best].detach(), "var": var[best].detach(), "kl": kl[best], "runs": runs}


@cpu_float64()
def bimodal_fits(separation: float, weight: float = 0.5, std: float = 0.6, grid=None,
                 steps: int = 300) -> dict:
    """Both one-Gaussian fits to P = w N(−s/2, std²) + (1 − w) N(s/2, std²) (the asymmetry demo).

    Returns a dict: ``grid`` (g,), ``log_p`` (g,), ``forward`` = (mean, var) of argmin KL(P‖Q)
    (moment matching), ``reverse`` = (mean, var) of argmin KL(Q‖P) (gradient descent), both as
    floats, and the two divergences ``kl_forward`` = KL(P‖Q_fwd), ``kl_reverse`` = KL(Q_rev‖P).
    """
    separation = check_float(separation, "separation", low=0.0)
    weight = check_float(weight, "weight", low=0.0, high=1.0, low_open=True, high_open=True)
    std = check_float(std, "std", low=0.0, low_open=True)
    half = separation / 2
    if grid is None:
        reach = half + 8 * std + 1.0
        grid = torch.linspace(-reach, reach, 801, dtype=torch.float64)
    grid = _check_grid(grid)
    params = ([weight, 1 - weight], [-half, half], [std ** 2, std ** 2])
    log_p = mixture_log_pdf(grid, *params)
    fm, fv = fit_forward_kl(log_p, grid)
    inits = fm + fv.sqrt() * torch.linspace(-1.5, 1.5, 5, dtype=grid.dtype)   # 5 starts across P
    rev = fit_reverse_kl(lambda x: mixture_log_pdf(x, *params), inits, float(fv) / 4, steps=steps)
    kl_f = kl_quadrature(log_p, log_normal(grid, fm, fv), grid)
    return {"grid": grid, "log_p": log_p, "forward": (float(fm), float(fv)),
            "reverse": (float(rev["mean"]), float(rev["var"])),
            "kl_forward": float(kl_f), "kl_reverse": float(rev["kl"])}
