"""Small networks that several sections share (no section's mathematics).

* ``mlp``            a plain multilayer perceptron: ``depth`` hidden layers of width ``hidden``, SiLU
* ``time_embedding`` the sinusoidal embedding of a diffusion step t ∈ {1, …, T} (Vaswani et al. 2017;
                     Ho et al. 2020), which denoisers ε_θ(x_t, t) of §15.3 take as input

Shapes: b = batch.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from companion_lib._checks import check_float, check_int, check_steps

__all__ = ["mlp", "time_embedding"]


def mlp(n_in: int, hidden: int, n_out: int, depth: int) -> nn.Sequential:
    """``n_in → [Linear(hidden), SiLU] × depth → Linear(n_out)``; ``depth = 0`` is one linear map.

    Input (b, n_in), output (b, n_out). Weights use PyTorch's default initialisation, so seed torch
    before building one when the result must be reproducible.
    """
    n_in = check_int(n_in, "n_in", low=1)
    hidden = check_int(hidden, "hidden", low=1)
    n_out = check_int(n_out, "n_out", low=1)
    depth = check_int(depth, "depth", low=0)
    layers, width = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def time_embedding(t, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps ``t`` (b,) → (b, dim), float32 on ``t``'s device.

    With ``h = dim // 2`` and frequencies ``ω_k = max_period^(−k/h)``, k = 0, …, h − 1, row i is

        [sin(t_i ω_0), …, sin(t_i ω_{h−1}), cos(t_i ω_0), …, cos(t_i ω_{h−1})],

    so column 0 is sin(t) and column h is cos(t); an odd ``dim`` gets one trailing zero column.
    Steps follow the text: integers 1..T (the embedding itself accepts any integer ≥ 0).
    """
    dim = check_int(dim, "dim", low=2)
    max_period = check_float(max_period, "max_period", low=0.0, low_open=True)
    t = check_steps(t, "t", 0, None, "t must hold steps >= 0 (the text's t = 1..T)",
                    nonempty=True)                                          # no host sync off the CPU
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / half)          # ω_k = max_period^(−k/h)
    angles = t.to(torch.float32)[:, None] * freqs[None, :]       # (b, h)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
