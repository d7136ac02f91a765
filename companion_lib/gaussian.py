"""The Gaussian log-density, written once (floor 2: a building block, no section's mathematics).

* ``LOG_2PI``          log 2π
* ``log_normal``       log N(x; mean, var), elementwise (a 1-D Gaussian per entry)
* ``log_normal_diag``  log N(x; mean, diag(var)), summed over the last dimension (the event)

Parameterisation: always the **variance** var = σ² (never σ, never log σ²), as in the text's
N(x; μ, σ²) and in the diffusion posterior q(x_{t−1} | x_t, x_0) (15.10), whose variance β̃_t is
what the formulas give. A scalar var (or one of shape (..., 1)) is an isotropic N(μ, σ² I).
Full covariances: ``mixture.log_gaussian`` (Cholesky of the precision, as scikit-learn does).

    log N(x; μ, σ²) = −½ [log 2π + log σ² + (x − μ)² / σ²]
"""
from __future__ import annotations

import math

import torch

from companion_lib._checks import as_tensor

__all__ = ["LOG_2PI", "log_normal", "log_normal_diag"]

#: log 2π, the constant of every Gaussian log-density.
LOG_2PI = math.log(2 * math.pi)


def _inputs(x, mean, var, check: bool):
    if not isinstance(x, torch.Tensor) and not check:
        raise TypeError(f"x must be a torch.Tensor when check=False, got {type(x).__name__}")
    x = as_tensor(x, "x", dtype=None, finite=check)          # integers become float32
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
