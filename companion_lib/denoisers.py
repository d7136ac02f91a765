"""Small time-conditioned networks ε_θ(x_t, t) (and ε_θ(x_t, t, c)) for the diffusion lessons of §15.3.

* ``ResidualDenoiser``  an MLP of residual blocks (LayerNorm, SiLU) for flat data (b, d): the embedding
                        of the step t (``nets.time_embedding``), plus that of a class label c when the
                        network is conditional, is added inside **every** block, so each layer knows the
                        noise level. A conditional network has one extra label, the null label ∅
                        (index ``n_classes``), that classifier-free guidance trains with (§15.3, eq. 15.12).

Shapes: b = batch, d = data dimension. No section's mathematics, no plotting.
"""
from __future__ import annotations

import torch
from torch import nn

from companion_lib._checks import check_batch, check_int, check_model_input, check_steps
from companion_lib.nets import time_embedding

__all__ = ["ResidualDenoiser"]


class _Block(nn.Module):
    """h ← h + W₂ SiLU(W₁ SiLU(LayerNorm(h) + A e)), e the step (and label) embedding."""

    def __init__(self, hidden: int, emb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.emb = nn.Linear(emb_dim, hidden)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h, e):
        return h + self.net(self.norm(h) + self.emb(e))


class ResidualDenoiser(nn.Module):
    """ε_θ(x_t, t) or, with ``n_classes``, ε_θ(x_t, t, c): input (b, dim), steps t (b,) long in 1..T,
    labels c (b,) long in 0..n_classes (the last, ``n_classes``, is the null label ∅; ``c=None`` means ∅
    for every row). Output (b, dim), the predicted noise.

    ``hidden`` width, ``blocks`` residual blocks, ``emb_dim`` the width of the step/label embedding.
    Defaults (dim 64): about 490k parameters. Seed torch before building one for reproducible weights.
    """

    def __init__(self, dim: int, hidden: int = 256, blocks: int = 3, emb_dim: int = 128,
                 n_classes: int | None = None):
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        hidden = check_int(hidden, "hidden", low=1)
        blocks = check_int(blocks, "blocks", low=1)
        self.emb_dim = check_int(emb_dim, "emb_dim", low=2)
        self.n_classes = None if n_classes is None else check_int(n_classes, "n_classes", low=1)
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = None if n_classes is None else nn.Embedding(n_classes + 1, emb_dim)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, emb_dim) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))

    @property
    def null_label(self) -> int | None:
        """The index of ∅ (``n_classes``), or None for an unconditional network."""
        return self.n_classes

    def _check(self, x, t, c):
        """x (b, dim) floating, t (b,) integer steps, c None or (b,) labels in 0..n_classes; no host
        synchronisation off the CPU (``_checks``)."""
        check_model_input(self, check_batch(x, "x", self.dim), "x", "the denoiser")
        check_steps(t, "t", 0, None, "t must hold steps >= 0 (the text's t = 1..T)", length=x.shape[0])
        if c is not None:
            if self.n_classes is None:
                raise ValueError("this denoiser is unconditional (n_classes=None); call it without labels (c)")
            check_steps(c, "c", 0, self.n_classes, f"c (labels) must lie in 0..{self.n_classes} "
                        f"({self.n_classes} is the null label)", what="integer class labels", length=x.shape[0])

    def forward(self, x, t, c=None):
        self._check(x, t, c)
        e = self.time_mlp(time_embedding(t, self.emb_dim))
        if self.label_emb is not None:
            if c is None:
                c = torch.full_like(t, self.n_classes)
            e = e + self.label_emb(c.long())
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)
