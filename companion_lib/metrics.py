"""Measuring models: bits per dimension under the companion's one dequantisation convention.

Convention (see ``companion_lib.data.dequantize``): a model density p on y = (x + u) / L in [0, 1)^d,
for discrete data x with L levels, scores

    bits/dim = log2(L) - E[log p(y)] / (d ln 2),

an upper bound on the model's discrete code length per pixel. Uniform over 17 levels: log2 17 = 4.09.
"""
from __future__ import annotations

import math

import torch

from companion_lib._checks import as_tensor, check_int


def bits_per_dim(log_prob, n_dims: int, levels: int = 17) -> float:
    """Mean bits/dim from log-densities ``log_prob`` (n,) in nats of dequantised y in [0, 1)^n_dims.

    ``levels=None`` gives plain ``-E[log p] / (d ln 2)`` for continuous data (no discretisation term).
    """
    n_dims = check_int(n_dims, "n_dims", low=1)
    lp = as_tensor(log_prob, "log_prob", ndim=1)
    base = 0.0 if levels is None else math.log2(check_int(levels, "levels", low=2))
    return base - lp.mean().item() / (n_dims * math.log(2))


def nats_to_bits_per_dim(nats_per_sample: float, n_dims: int, levels: int = 17) -> float:
    """Convert a mean negative log-likelihood in nats per sample (of y) to bits/dim."""
    return bits_per_dim(torch.tensor([-float(nats_per_sample)]), n_dims, levels)
