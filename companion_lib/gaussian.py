"""The Gaussian, written once: log-density, KL divergence, entropy (a building block, no
section's mathematics; every section that meets a Gaussian calls these).

* ``LOG_2PI``          log 2π
* ``log_normal``       log N(x; mean, var), elementwise (a 1-D Gaussian per entry)
* ``log_normal_diag``  log N(x; mean, diag(var)), summed over the last dimension (the event)
* ``kl``               KL(N(mean1, var1) ‖ N(mean2, var2)), elementwise (sum it for a diagonal Gaussian)
* ``entropy``          H[N(mean, var)] = ½ (1 + log 2π + log var), elementwise
* ``kl_full``          KL(N(m1, S1) ‖ N(m2, S2)) with full covariances (..., k, k)
* ``entropy_full``     H[N(μ, Σ)] = ½ log det(2πe Σ) with a full covariance (..., d, d)

The mixture of isotropic Gaussians as a value (weights, means, variances) is
``gaussian_mixture.MixtureOfGaussians``.

Parameterisation: always the **variance** var = σ² (never σ, never log σ²), as in the text's
N(x; μ, σ²) and in the diffusion posterior q(x_{t−1} | x_t, x_0) (15.10), whose variance β̃_t is
what the formulas give. A scalar var (or one of shape (..., 1)) is an isotropic N(μ, σ² I).
Full-covariance log-densities: ``mixture.log_gaussian`` (Cholesky of the precision, as scikit-learn
does). A standard deviation σ (the VAE's encoder and decoder outputs, eq. 14.11) is squared by the
caller: ``log_normal_diag(x, mu, sigma ** 2)``.

    log N(x; μ, σ²) = −½ [log 2π + log σ² + (x − μ)² / σ²]
    KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) = ½ [log(σ₂²/σ₁²) + σ₁²/σ₂² + (μ₁ − μ₂)²/σ₂² − 1]
    H[N(μ, σ²)] = ½ [1 + log 2π + log σ²]
"""
from __future__ import annotations

import math

import torch

from companion_lib._checks import as_tensor

__all__ = ["LOG_2PI", "log_normal", "log_normal_diag", "kl", "entropy", "kl_full", "entropy_full"]

#: log 2π, the constant of every Gaussian log-density.
LOG_2PI = math.log(2 * math.pi)


def _inputs(x, mean, var, check: bool):
    if not isinstance(x, torch.Tensor) and not check:
        raise TypeError(f"x must be a torch.Tensor when check=False, got {type(x).__name__}")
    x = as_tensor(x, "x", dtype=None, finite=check, nonempty=True)   # integers become float32
    mean = as_tensor(mean, "mean", dtype=x.dtype, device=x.device, finite=check)
    var = as_tensor(var, "var", dtype=x.dtype, device=x.device, finite=check)
    try:
        torch.broadcast_shapes(x.shape, mean.shape, var.shape)
    except RuntimeError as err:
        raise ValueError(f"x {tuple(x.shape)}, mean {tuple(mean.shape)} and var {tuple(var.shape)} "
                         "must broadcast to one shape") from err
    if check and var.numel() and bool((var <= 0).any()):
        raise ValueError(f"var must be > 0 (variances σ², not σ or log σ²), got min {float(var.min()):.3g}")
    return x, mean, var


def log_normal(x, mean, var, *, check: bool = True) -> torch.Tensor:
    """log N(x; mean, var) elementwise, with broadcasting; var is the variance σ² > 0.

    Returns a tensor of the broadcast shape, in x's dtype and on x's device; differentiable in all
    three. ``check=False`` skips the value checks (finite inputs, var > 0) that cost a device-to-host
    synchronisation: for training loops whose inputs are known to be valid.
    """
    x, mean, var = _inputs(x, mean, var, check)
    return -0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


def log_normal_diag(x, mean, var, *, check: bool = True) -> torch.Tensor:
    """log N(x; mean, diag(var)) of vectors: x, mean (..., d), var (..., d), (..., 1) or scalar
    (isotropic σ² I) → (...), the sum of ``log_normal`` over the last dimension."""
    x, mean, var = _inputs(x, mean, var, check)
    if x.ndim < 1:
        raise ValueError("x must have a last (event) dimension (..., d), got a scalar")
    return (-0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)).sum(-1)


def kl(mean1, var1, mean2, var2, *, check: bool = True) -> torch.Tensor:
    """KL(N(mean1, var1) ‖ N(mean2, var2)) elementwise, with broadcasting; var1, var2 variances > 0.

    The divergence of Theorem 14.2.2 (maximum likelihood minimises it), the gap (14.5) of a Gaussian
    q, and each term L_{t−1} of the diffusion bound (§15.3):

        ½ [log(var2/var1) + var1/var2 + (mean1 − mean2)²/var2 − 1].

    Returns the broadcast shape in mean1's dtype and on its device; sum over the last dimension for
    diagonal Gaussians. ``check=False`` skips the value checks (finite, variances > 0) that cost a
    device-to-host synchronisation (training and sampling loops on an accelerator).
    """
    if not isinstance(mean1, torch.Tensor) and not check:
        raise TypeError(f"mean1 must be a torch.Tensor when check=False, got {type(mean1).__name__}")
    mean1 = as_tensor(mean1, "mean1", dtype=None, finite=check)
    kw = dict(dtype=mean1.dtype, device=mean1.device, finite=check)
    var1, mean2, var2 = (as_tensor(v, n, **kw) for v, n in ((var1, "var1"), (mean2, "mean2"), (var2, "var2")))
    try:
        torch.broadcast_shapes(mean1.shape, var1.shape, mean2.shape, var2.shape)
    except RuntimeError as err:
        raise ValueError(f"mean1 {tuple(mean1.shape)}, var1 {tuple(var1.shape)}, mean2 {tuple(mean2.shape)} and "
                         f"var2 {tuple(var2.shape)} must broadcast to one shape") from err
    if check:
        for v, n in ((var1, "var1"), (var2, "var2")):
            if v.numel() and bool((v <= 0).any()):
                raise ValueError(f"{n} must be > 0 (variances σ², not σ or log σ²), got min {float(v.min()):.3g}")
    return 0.5 * (torch.log(var2 / var1) + var1 / var2 + (mean1 - mean2) ** 2 / var2 - 1.0)


def entropy(var, *, check: bool = True) -> torch.Tensor:
    """Differential entropy H[N(μ, var)] in nats, elementwise: ½ (1 + log 2π + log var) (the H of
    eq. 14.5 for a Gaussian q; it does not depend on μ). var: any shape, > 0 → the same shape; sum
    over the last dimension for a diagonal Gaussian."""
    var = as_tensor(var, "var", dtype=None, finite=check, nonempty=True)
    if check and var.numel() and bool((var <= 0).any()):
        raise ValueError(f"var must be > 0 (variances σ², not σ or log σ²), got min {float(var.min()):.3g}")
    return 0.5 * (1.0 + LOG_2PI + torch.log(var))


def _check_covariance(S, name: str = "cov"):
    """A covariance (..., d, d), symmetric positive definite → (S, its Cholesky factor); a ValueError
    naming ``name`` otherwise (the one check of full covariances, used by ``elbo`` too)."""
    S = as_tensor(S, name, dtype=None, nonempty=True)
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise ValueError(f"{name} must be a covariance matrix (d, d) or a batch (..., d, d), "
                         f"got shape {tuple(S.shape)}")
    if not torch.allclose(S, S.transpose(-1, -2), rtol=1e-8, atol=1e-10):
        raise ValueError(f"{name} must be symmetric (..., d, d)")
    chol, info = torch.linalg.cholesky_ex(S)
    if (info > 0).any():
        raise ValueError(f"{name} must be positive definite (..., d, d)")
    return S, chol


def entropy_full(cov) -> torch.Tensor:
    """Differential entropy of N(μ, Σ) in nats, ½ log det(2πe Σ) (the H of eq. 14.5; no μ).

    cov: (d, d) or a batch (..., d, d), symmetric positive definite → shape (...).
    """
    S, chol = _check_covariance(cov)
    d = S.shape[-1]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (d * (1 + LOG_2PI) + logdet)


def kl_full(m1, S1, m2, S2) -> torch.Tensor:
    """KL(N(m1, S1) ‖ N(m2, S2)) in nats, closed form (the gap (14.5) of a Gaussian q); shapes broadcast.

    m: (..., k); S: (..., k, k).  ½[tr(S2⁻¹S1) + (m2−m1)ᵀS2⁻¹(m2−m1) − k + log det S2 − log det S1].
    """
    m1 = as_tensor(m1, "m1", dtype=None)
    m2 = as_tensor(m2, "m2", dtype=None, device=m1.device)
    S1, L1 = _check_covariance(as_tensor(S1, "S1", dtype=m1.dtype, device=m1.device), "S1")
    S2, L2 = _check_covariance(as_tensor(S2, "S2", dtype=m1.dtype, device=m1.device), "S2")
    k = m1.shape[-1] if m1.ndim else 0
    if m1.ndim < 1 or m2.ndim < 1 or m2.shape[-1] != k or S1.shape[-1] != k or S2.shape[-1] != k:
        raise ValueError(f"m1 (..., k), S1 (..., k, k), m2, S2 must share k; got {tuple(m1.shape)}, "
                         f"{tuple(S1.shape)}, {tuple(m2.shape)}, {tuple(S2.shape)}")
    batch = torch.broadcast_shapes(m1.shape[:-1], m2.shape[:-1], S1.shape[:-2], S2.shape[:-2])
    L2 = L2.expand(*batch, k, k)
    trace = torch.cholesky_solve(S1.expand(*batch, k, k), L2).diagonal(dim1=-2, dim2=-1).sum(-1)
    diff = (m2 - m1).expand(*batch, k).unsqueeze(-1)
    maha = (torch.linalg.solve_triangular(L2, diff, upper=False) ** 2).sum((-1, -2))
    logdet1 = 2 * torch.log(torch.diagonal(L1, dim1=-2, dim2=-1)).sum(-1)
    logdet2 = 2 * torch.log(torch.diagonal(L2, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + maha - k + logdet2 - logdet1)
