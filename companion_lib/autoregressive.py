"""An autoregressive model of the 8×8 digits: MADE (Germain et al. 2015), the family §15.1 leaves out.

An autoregressive model writes the density of a D-pixel image as a product of one-dimensional
conditionals along an ordering π of the pixels (the chain rule of probability, exact for any π):

    p(x) = ∏_{k=1..D} p(x_{π(k)} | x_{π(1)}, …, x_{π(k−1)}).

MADE computes all D conditionals in **one** pass of a masked MLP: each unit gets a degree, and a weight
from a unit of degree m to a unit of degree m' is kept only where the later unit may depend on the
earlier one (``made_mask``), so output k sees only the pixels before it in π. Each pixel of the digits
has 17 levels 0..16 (``data.DIGIT_LEVELS``), so each conditional is a 17-way categorical (a softmax of
17 logits). The log-likelihood of a batch is one pass (training is parallel); a sample needs D passes,
one pixel at a time (``sample``).

* ``made_mask``      the mask of one masked layer from the degrees of its inputs and outputs
* ``made_degrees``   the degrees of the input, hidden and output units for an ordering
* ``MaskedLinear``   ``nn.Linear`` with a fixed 0/1 mask on its weight
* ``MADE``           the network: levels (b, D) → logits (b, D, levels); ``log_prob_levels``, ``log_prob``
* ``nll_bits_per_dim``  the training loss: −log₂ p(x) / D, per image
* ``sample``         the D sequential passes, ancestral sampling along π

Density convention (the companion's, as the categorical-decoder VAE of ``vae``): a probability P(ℓ) of
the integer levels ℓ is the density P(ℓ)·levels^D of the dequantised y = (ℓ + u)/levels on [0, 1)^D,
constant on each cell, so its bits/dim is exactly −log₂ P(ℓ)/D whatever the dequantisation noise.
Shapes: b = batch, D = pixels (64), L = levels (17).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from companion_lib._checks import check_batch, check_generator, check_int
from companion_lib.data import DIGIT_LEVELS

__all__ = ["made_mask", "made_degrees", "MaskedLinear", "MADE", "nll_bits_per_dim", "sample"]


def _degrees(d, name: str) -> torch.Tensor:
    if not isinstance(d, torch.Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor of shape (n,), got a {type(d).__name__}")
    if d.ndim != 1 or not d.shape[0]:
        raise ValueError(f"{name} must have shape (n,) with n ≥ 1, got {tuple(d.shape)}")
    if d.is_floating_point() or d.is_complex() or d.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer degrees (torch.long), got dtype {d.dtype}")
    if int(d.min()) < 0:
        raise ValueError(f"{name} must hold degrees ≥ 0, got {int(d.min())}")
    return d.detach().long()


def made_mask(in_degrees, out_degrees, output_layer: bool = False) -> torch.Tensor:
    """The 0/1 mask of one MADE layer (Germain et al. 2015, eqs. 12–13), shaped like ``nn.Linear``'s weight.

    in_degrees (n_in,), out_degrees (n_out,): integer degrees of the layer's inputs and outputs (an input
    pixel's degree is its position 1..D in the ordering; a hidden unit of degree m may depend on the
    pixels of degree 1..m). Returns a float32 tensor (n_out, n_in) with entry [k, j] equal to 1 where
    output k may see input j: ``out_degrees[k] ≥ in_degrees[j]`` for a hidden layer, and strictly
    ``out_degrees[k] > in_degrees[j]`` for the output layer (``output_layer=True``), whose units of
    degree d predict pixel d, which must not see itself.
    """
    d_in = _degrees(in_degrees, "in_degrees")
    d_out = _degrees(out_degrees, "out_degrees")
    if not isinstance(output_layer, bool):
        raise TypeError(f"output_layer must be True or False, got {output_layer!r}")
    rows, cols = d_out[:, None], d_in[None, :]
    return (rows > cols if output_layer else rows >= cols).to(torch.float32)


def _ordering(ordering, n_dims: int) -> torch.Tensor:
    if ordering is None:
        return torch.arange(n_dims)
    if not isinstance(ordering, torch.Tensor):
        ordering = torch.as_tensor(ordering)
    if ordering.is_floating_point() or ordering.ndim != 1 or ordering.shape[0] != n_dims:
        raise ValueError(f"ordering must be an integer tensor of shape ({n_dims},), a permutation of "
                         f"0..{n_dims - 1}, got {ordering.dtype} of shape {tuple(ordering.shape)}")
    if not torch.equal(torch.sort(ordering.long()).values, torch.arange(n_dims)):
        raise ValueError(f"ordering must be a permutation of 0..{n_dims - 1}")
    return ordering.long().clone()


def made_degrees(n_dims: int, hidden: tuple, ordering=None) -> list:
    """Degrees of MADE's units for ``ordering`` (a permutation of 0..n_dims−1; default 0, 1, …).

    Returns a list of long tensors: the input degrees (n_dims,), pixel ``ordering[k]`` getting degree
    k + 1; then one per hidden layer (h,), cycling through 1..n_dims−1 so that every degree has units
    (a unit of degree n_dims would feed no output). Hidden widths must be ≥ n_dims − 1.
    """
    n_dims = check_int(n_dims, "n_dims", low=2)
    if not isinstance(hidden, (tuple, list)) or not all(isinstance(h, int) for h in hidden) or not len(hidden):
        raise ValueError(f"hidden must be a non-empty tuple of widths, got {hidden!r}")
    for h in hidden:
        check_int(h, "hidden width", low=n_dims - 1)
    order = _ordering(ordering, n_dims)
    d_in = torch.empty(n_dims, dtype=torch.long)
    d_in[order] = torch.arange(1, n_dims + 1)
    return [d_in] + [torch.arange(h) % (n_dims - 1) + 1 for h in hidden]


class MaskedLinear(nn.Linear):
    """``nn.Linear(n_in, n_out)`` whose weight is multiplied by a fixed 0/1 ``mask`` (n_out, n_in), a
    buffer (it moves with the module and is saved, never trained)."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(check_int(n_in, "n_in", low=1), check_int(n_out, "n_out", low=1))
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (n_out, n_in):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a tensor of shape ({n_out}, {n_in}) (n_out, n_in), got {got}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0 and 1")
        self.register_buffer("mask", mask.detach().to(self.weight.dtype).clone())

    def forward(self, x):
        """x (..., n_in) → (..., n_out), any batch shape (as ``nn.Linear``)."""
        check_batch(x, "x", self.in_features, any_batch_shape=True)
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """MADE for images of D pixels with L levels each: levels (b, D) → logits (b, D, L).

    Input: the levels ℓ ∈ 0..L−1 (any numeric dtype), fed to the network as 2ℓ/(L−1) − 1. Hidden layers
    ``hidden`` (widths ≥ D − 1) with ReLU; output: L logits per pixel, the logits of pixel i having the
    degree of input i, so p(ℓ_i | ·) depends only on the pixels before i in ``ordering``. ``mask_fn``:
    the function that builds each layer's mask (default ``made_mask``; a lesson passes the student's).
    Seed torch before building one for reproducible weights.
    """

    def __init__(self, n_dims: int = 64, levels: int = DIGIT_LEVELS, hidden: tuple = (512, 512), ordering=None,
                 mask_fn=None):
        super().__init__()
        self.n_dims = check_int(n_dims, "n_dims", low=2)
        self.levels = check_int(levels, "levels", low=2)
        mask_fn = made_mask if mask_fn is None else mask_fn
        if not callable(mask_fn):
            raise TypeError(f"mask_fn must be a function (in_degrees, out_degrees, output_layer), got "
                            f"{type(mask_fn).__name__}")
        degrees = made_degrees(self.n_dims, hidden, ordering)
        self.register_buffer("ordering", _ordering(ordering, self.n_dims))
        out_degrees = degrees[0].repeat_interleave(self.levels)        # pixel i's L logits, in a row
        layers = []
        for k, (d_in, d_out) in enumerate(zip(degrees, degrees[1:] + [out_degrees])):
            last = k == len(degrees) - 1
            mask = torch.as_tensor(mask_fn(d_in, d_out, last), dtype=torch.float32)
            layers.append(MaskedLinear(len(d_in), len(d_out), mask))
            if not last:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def _levels(self, levels_x) -> torch.Tensor:
        if not isinstance(levels_x, torch.Tensor):
            raise TypeError(f"levels_x must be a torch.Tensor of levels, shape (batch, {self.n_dims}), got "
                            f"a {type(levels_x).__name__}")
        if levels_x.ndim != 2 or levels_x.shape[1] != self.n_dims or not levels_x.shape[0]:
            raise ValueError(f"levels_x must have shape (batch, {self.n_dims}), got {tuple(levels_x.shape)}")
        if levels_x.device.type == "cpu" and levels_x.numel() and (
                bool((levels_x < 0).any()) or bool((levels_x > self.levels - 1).any())
                or bool((levels_x != levels_x.round()).any())):
            raise ValueError(f"levels_x must hold integer levels in 0..{self.levels - 1}")
        return levels_x

    def forward(self, levels_x) -> torch.Tensor:
        """Logits (b, D, L) of every conditional p(ℓ_i | ℓ before i) in one pass."""
        x = self._levels(levels_x)
        w = self.net[0].weight
        h = x.to(w.dtype) * (2.0 / (self.levels - 1)) - 1.0
        return self.net(h).reshape(x.shape[0], self.n_dims, self.levels)

    def log_prob_levels(self, levels_x) -> torch.Tensor:
        """log P(ℓ) (b,) in nats: Σ_i log softmax(logits_i)[ℓ_i], exact (the chain rule)."""
        logits = self(levels_x)
        picked = torch.log_softmax(logits, -1).gather(-1, levels_x.long().unsqueeze(-1)).squeeze(-1)
        return picked.sum(-1)

    def log_prob(self, y) -> torch.Tensor:
        """Exact log-density (b,) in nats of dequantised y (b, D) in [0, 1): log P(⌊L·y⌋) + D log L
        (constant on each cell of width 1/L; ``metrics.heldout_bits_per_dim`` takes it as is)."""
        y = check_batch(y, "y", self.n_dims)
        level = torch.floor(y * self.levels).clamp(0, self.levels - 1)
        return self.log_prob_levels(level) + self.n_dims * math.log(self.levels)


def nll_bits_per_dim(model: MADE, levels_x) -> torch.Tensor:
    """The training loss: mean over the batch of −log₂ P(ℓ) / D (scalar, keeps autograd). Equal to the
    model's bits/dim of the dequantised images under the companion's convention (module docstring)."""
    if not isinstance(model, MADE):
        raise TypeError(f"model must be an autoregressive.MADE, got a {type(model).__name__}")
    return -model.log_prob_levels(levels_x).mean() / (model.n_dims * math.log(2))


def sample(model: MADE, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n images drawn pixel by pixel along ``model.ordering``: D passes of the network, pass k filling
    pixel π(k) from its conditional given the pixels already drawn (ancestral sampling of the chain rule).

    Draw order: pass k uses n uniforms from ``generator`` (CPU; None: torch's global RNG), one per
    image, and takes the level ℓ whose cumulative probability interval [F(ℓ−1), F(ℓ)) holds it.
    Returns the levels (n, D) as float32 on the model's device (``data.to_unit`` puts them on [0, 1)).
    """
    if not isinstance(model, MADE):
        raise TypeError(f"model must be an autoregressive.MADE, got a {type(model).__name__}")
    n = check_int(n, "n", low=1)
    check_generator(generator)
    device = model.ordering.device
    x = torch.zeros(n, model.n_dims, device=device)
    with torch.no_grad():
        for i in model.ordering.tolist():
            probs = torch.softmax(model(x)[:, i].float(), -1)
            u = torch.rand(n, generator=generator).to(device)
            level = (torch.cumsum(probs, -1)[:, :-1] <= u[:, None]).sum(-1)
            x[:, i] = level.to(x.dtype)
    return x
