"""Measuring models: bits per dimension under the companion's one dequantisation convention.

Convention (see ``companion_lib.data.dequantize``): a model density p on y = (x + u) / L in [0, 1)^d,
for discrete data x with L levels, scores

    bits/dim = log2(L) - E[log p(y)] / (d ln 2),

an upper bound on the model's discrete code length per pixel. Uniform over 17 levels: log2 17 = 4.09.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from companion_lib._checks import as_tensor, check_int
from companion_lib.data import dequantized_bits_per_dim


def bits_per_dim(log_prob, n_dims: int, levels: int = 17) -> float:
    """Mean bits/dim from log-densities ``log_prob`` (n,) in nats of dequantised y in [0, 1)^n_dims.

    ``levels=None`` gives plain ``-E[log p] / (d ln 2)`` for continuous data (no discretisation term).
    """
    n_dims = check_int(n_dims, "n_dims", low=1)
    if isinstance(log_prob, torch.Tensor):
        log_prob = log_prob.detach().cpu()  # float64 below; MPS has no float64
    lp = as_tensor(log_prob, "log_prob", ndim=1)
    if levels is not None:
        levels = check_int(levels, "levels", low=2)
    return dequantized_bits_per_dim(lp.mean(), n_dims, levels).item()


def nats_to_bits_per_dim(nats_per_sample: float, n_dims: int, levels: int = 17) -> float:
    """Convert a mean negative log-likelihood in nats per sample (of y) to bits/dim."""
    return bits_per_dim(torch.tensor([-float(nats_per_sample)]), n_dims, levels)


def chi_square_gof(counts, probs, n_params: int, min_expected: float = 5.0):
    """Pearson's (1900) chi-square goodness-of-fit test of binned counts against a fitted model.

    counts (B,) observed; probs (B,) model probabilities of the bins, which must sum to 1 (make the
    outer bins open-ended). Adjacent bins are merged until each expects ≥ ``min_expected``.
    Degrees of freedom: merged bins − 1 − n_params. Returns a dict with ``statistic``, ``dof``,
    ``p_value`` and ``n_bins``.
    """
    from scipy.stats import chi2

    counts = as_tensor(counts, "counts", ndim=1).cpu().numpy()
    probs = as_tensor(probs, "probs", shape=(len(counts),)).cpu().numpy().copy()
    if (probs < 0).any() or abs(probs.sum() - 1) > 1e-6:
        raise ValueError(f"probs must be non-negative and sum to 1 (open-ended outer bins), "
                         f"got sum {probs.sum():.6g}")
    n = counts.sum()
    obs, exp, o, e = [], [], 0.0, 0.0
    for c, p in zip(counts, probs * n):
        o, e = o + c, e + p
        if e >= min_expected:
            obs.append(o), exp.append(e)
            o, e = 0.0, 0.0
    if e > 0:  # fold the remainder into the last bin
        obs[-1] += o
        exp[-1] += e
    obs, exp = np.array(obs), np.array(exp)
    dof = len(obs) - 1 - check_int(n_params, "n_params", low=0)
    if dof < 1:
        raise ValueError(f"too few bins ({len(obs)}) for {n_params} fitted parameters")
    stat = float(((obs - exp) ** 2 / exp).sum())
    return {"statistic": stat, "dof": dof, "p_value": float(chi2.sf(stat, dof)), "n_bins": len(obs)}
