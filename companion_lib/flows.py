"""§15.2 Normalizing flows: the affine coupling layer and a RealNVP stack.

* ``coupling_forward`` / ``coupling_inverse``  one affine coupling, as functions        eqs. 15.3–15.6
* ``AffineCoupling``    the layer as a module: a small MLP conditioner with a bounded log-scale
* ``LogitTransform``    [0, 1) → R, y ↦ logit(α + (1 − 2α) y), with its log-determinant (for images)
* ``RealNVP``           a stack of couplings with alternating masks: ``log_prob`` by (15.2), ``sample``
* ``alternating_masks`` the default masks (coordinates A of each layer)
* ``squeeze`` / ``unsqueeze``, ``InvertibleConv1x1``  GLOW's channel mix (LU-parameterised), for the
  lesson's note on the text's claim about 1×1 convolutions

Direction (the text's): ``f_θ`` maps data x to the latent z, which is standard normal, so

    log ρ(x) = log μ(f_θ(x)) + log |det J_f(x)|                                        (15.2)

and ``model(x)`` returns ``(z, log|det J_f(x)|)``; ``model.inverse(z)`` maps back (sampling).
Each coupling keeps the coordinates A (``mask`` True) and moves the others, B, by an affine map
whose scale h_θ = exp(r_θ) and shift s_θ depend on z_A only:

    z_A^{l+1} = z_A^l,    z_B^{l+1} = z_B^l ⊙ h_θ(z_A^l) + s_θ(z_A^l)                   (15.3), (15.4)
    z_A^l = z_A^{l+1},    z_B^l = (z_B^{l+1} − s_θ(z_A^l)) ⊘ h_θ(z_A^l)                 (15.5), (15.6)

(⊘: component-wise division. The text prints ⊙ in (15.6); that does not invert (15.4) unless
h = 1: see the lesson ``15_2_coupling_flows``.) The Jacobian of (15.3)–(15.4), coordinates A
first, is block lower-triangular with diag(h_θ(z_A)) in the B block, so log|det| = Σ_B r_θ(z_A).

Shapes: b = batch, d = dim, |A| + |B| = d. Device-agnostic; float32 on a device, float64 works
after ``.double()`` (on the CPU). Imports: ``companion_lib._layers``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from companion_lib._checks import (check_batch, check_callable, check_float, check_int,
                                   check_model_input)
from companion_lib.gaussian import log_normal_diag
from companion_lib.nets import mlp
from companion_lib._moved import moved_getattr

__all__ = ["coupling_forward", "coupling_inverse", "AffineCoupling", "LogitTransform", "RealNVP",
           "alternating_masks", "standard_normal_log_prob", "squeeze", "unsqueeze", "InvertibleConv1x1"]

#: Names that moved out of this module, importable from here for this release (a DeprecationWarning
#: names the new home); listed in companion_lib._layers.DEPRECATED_ALIASES.
_MOVED = {'fit_digits': 'recipes.fit_realnvp_digits'}
__getattr__ = moved_getattr(__name__, _MOVED)


# ---------------------------------------------------------------- input checks
def _check_mask(mask, dim: int | None = None, *, count: bool = True, of: str | None = None) -> torch.Tensor:
    """mask: a boolean (dim,) tensor (``of`` names the input whose columns it marks); ``count``: it must
    mark some but not all coordinates (reads the mask back: a host synchronisation off the CPU, so the
    per-step check of a coupling skips it)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = f"dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a boolean torch.Tensor marking the coordinates A, got {got}")
    if mask.ndim != 1 or (dim is not None and mask.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(dim,)"
        per = f" (one entry per column of {of})" if of else ""
        raise ValueError(f"mask must have shape {want}{per}, got {tuple(mask.shape)}")
    if not count:
        return mask
    n_a = int(mask.sum())
    if n_a == 0 or n_a == mask.shape[0]:
        raise ValueError("mask must mark some coordinates A (True) and leave some B (False); "
                         f"it marks {n_a} of {mask.shape[0]}")
    return mask


# ---------------------------------------------------------------- one coupling, as functions
def _check_coupling(z, mask, conditioner, name: str):
    """The arguments of ``coupling_forward``/``coupling_inverse``, checked without a host synchronisation
    off the CPU (they run once per layer and step)."""
    z = check_batch(z, name)
    mask = _check_mask(mask, z.shape[1], count=False, of=name)
    check_callable(conditioner, "conditioner", "z_A (b, |A|) to (r, s), both (b, |B|)")
    return z, mask


def coupling_forward(z: torch.Tensor, mask: torch.Tensor, conditioner: Callable):
    """One affine coupling, eqs. (15.3)–(15.4): ``(z_next, log_det)``.

    z (b, d); mask (d,) bool, True on the coordinates A; ``conditioner(z_A)`` maps (b, |A|) to
    ``(r, s)``, both (b, |B|), with r = log h_θ(z_A) and s = s_θ(z_A). Returns z_next (b, d) and
    log_det (b,) = log|det ∂z_next/∂z| = Σ_B r.
    """
    z, mask = _check_coupling(z, mask, conditioner, "z")
    z_a, z_b = z[:, mask], z[:, ~mask]
    r, s = conditioner(z_a)                      # log h_θ(z_A^l), s_θ(z_A^l)
    z_next = torch.empty_like(z)
    z_next[:, mask] = z_a                        # (15.3)
    z_next[:, ~mask] = z_b * torch.exp(r) + s    # (15.4)
    return z_next, r.sum(1)


def coupling_inverse(z_next: torch.Tensor, mask: torch.Tensor, conditioner: Callable) -> torch.Tensor:
    """The inverse of ``coupling_forward``, eqs. (15.5)–(15.6) with the division (15.6) needs.

    z_next (b, d), mask and conditioner as in ``coupling_forward``. Returns z (b, d).
    """
    z_next, mask = _check_coupling(z_next, mask, conditioner, "z_next")
    z_a, z_b_next = z_next[:, mask], z_next[:, ~mask]
    r, s = conditioner(z_a)                      # z_A^l = z_A^{l+1}: the same h and s
    z = torch.empty_like(z_next)
    z[:, mask] = z_a                             # (15.5)
    z[:, ~mask] = (z_b_next - s) * torch.exp(-r)  # (15.6), corrected: ⊘ h_θ, not ⊙ h_θ
    return z


# ---------------------------------------------------------------- the layer
class AffineCoupling(nn.Module):
    """An affine coupling layer (15.3)–(15.6) with an MLP conditioner.

    ``AffineCoupling(dim, mask, hidden=64, depth=2)``: ``mask`` (dim,) bool marks the coordinates A.
    The conditioner ``nets.mlp(|A|, hidden, 2|B|, depth)`` gives raw outputs (ρ, s); the log-scale is
    bounded, r = c ⊙ tanh(ρ) with a learned factor c (one per B coordinate, starting at 1), and the
    MLP's last layer starts at zero, so a new layer is the identity (r = 0, s = 0).

    ``layer(z) -> (z_next, log_det)`` with z (b, dim), log_det (b,); ``layer.inverse(z_next) -> z``.
    ``forward_fn`` / ``inverse_fn``: functions with the signatures of ``coupling_forward`` /
    ``coupling_inverse`` to use instead of those (the lesson plugs a student's own in).
    """

    def __init__(self, dim: int, mask, hidden: int = 64, depth: int = 2,
                 forward_fn: Callable | None = None, inverse_fn: Callable | None = None):
        super().__init__()
        self.dim = check_int(dim, "dim", low=2)
        mask = _check_mask(mask, self.dim)
        self.register_buffer("mask", mask.clone())
        n_a = int(mask.sum())
        n_b = self.dim - n_a
        self.net = mlp(n_a, check_int(hidden, "hidden", low=1), 2 * n_b, check_int(depth, "depth", low=0))
        nn.init.zeros_(self.net[-1].weight)      # a new layer is the identity
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(n_b))
        for fn, name in ((forward_fn, "forward_fn"), (inverse_fn, "inverse_fn")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a function, got a {type(fn).__name__}")
        self.forward_fn = forward_fn or coupling_forward
        self.inverse_fn = inverse_fn or coupling_inverse

    def conditioner(self, z_a: torch.Tensor):
        """(b, |A|) → (r, s), each (b, |B|): r = log h_θ(z_A) = c ⊙ tanh(ρ) (bounded), s = s_θ(z_A)."""
        rho, s = self.net(z_a).chunk(2, dim=1)
        return self.scale * torch.tanh(rho), s

    def forward(self, z: torch.Tensor):
        check_model_input(self, check_batch(z, "z", self.dim), "z", "the coupling")
        return self.forward_fn(z, self.mask, self.conditioner)

    def inverse(self, z_next: torch.Tensor) -> torch.Tensor:
        check_model_input(self, check_batch(z_next, "z_next", self.dim), "z_next")
        return self.inverse_fn(z_next, self.mask, self.conditioner)


class LogitTransform(nn.Module):
    """[0, 1)^d → R^d: u = logit(p), p = α + (1 − 2α) y, so flows model images on an unbounded scale.

    ``layer(y) -> (u, log_det)`` with log_det (b,) = Σ_i [log(1 − 2α) − log p_i − log(1 − p_i)], the
    log-Jacobian (15.2) needs so that densities stay densities of y; ``layer.inverse(u) -> y``.
    α keeps p inside [α, 1 − α] (the logit of 0 is −∞). No parameters.
    """

    def __init__(self, dim: int, alpha: float = 0.05):
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        self.alpha = check_float(alpha, "alpha", low=0.0, high=0.5, low_open=True, high_open=True)

    def forward(self, y: torch.Tensor):
        check_batch(y, "y", self.dim)
        p = self.alpha + (1 - 2 * self.alpha) * y
        if ((p <= 0) | (p >= 1)).any():          # logit would be ±inf or NaN
            raise ValueError("y must lie in [0, 1] (dequantised images on the [0, 1) scale); "
                             f"got values in [{float(y.min()):.3g}, {float(y.max()):.3g}]")
        u = torch.log(p) - torch.log1p(-p)
        log_det = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).sum(1)
        return u, log_det

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        check_batch(u, "u", self.dim)
        return (torch.sigmoid(u) - self.alpha) / (1 - 2 * self.alpha)


def alternating_masks(dim: int, n_layers: int, kind: str = "parity") -> list[torch.Tensor]:
    """Masks (dim,) bool for ``n_layers`` couplings; each layer's A is the previous layer's B.

    ``kind="parity"``: A = even coordinates, then odd (in 2-D: x₁, then x₂).
    ``kind="checkerboard"``: for a square image of side √dim, A = pixels with (row + col) even,
    then the complement, and every third pair the top half / bottom half (so information also
    travels between distant pixels).
    """
    dim = check_int(dim, "dim", low=2)
    n_layers = check_int(n_layers, "n_layers", low=1)
    idx = torch.arange(dim)
    if kind == "parity":
        base = [idx % 2 == 0]
    elif kind == "checkerboard":
        side = math.isqrt(dim)
        if side * side != dim:
            raise ValueError(f"kind='checkerboard' needs a square image, dim = side², got dim = {dim}")
        board = (idx // side + idx % side) % 2 == 0
        base = [board, board, idx < dim // 2]
    else:
        raise ValueError(f"kind must be 'parity' or 'checkerboard', got {kind!r}")
    masks = []
    for layer in range(n_layers):
        m = base[(layer // 2) % len(base)]
        masks.append(m if layer % 2 == 0 else ~m)
    return masks


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log μ(z) for the standard normal μ = N(0, I_d): z (b, d) → (b,), in z's dtype.

    ``gaussian.log_normal_diag`` with mean 0 and variance 1; z is checked by ``_checks.check_batch``
    (finite only on the CPU: no host synchronisation in a training loop)."""
    return log_normal_diag(check_batch(z, "z"), 0.0, 1.0, check=False)


# ---------------------------------------------------------------- the stack
class RealNVP(nn.Module):
    """A RealNVP-style flow: f_θ = coupling_L ∘ … ∘ coupling_1 (∘ an optional logit transform).

    ``RealNVP(dim, n_layers=8, hidden=64, depth=2, masks="parity", logit_alpha=None)``:
    ``masks`` is ``"parity"``, ``"checkerboard"`` (see ``alternating_masks``) or a list of
    ``n_layers`` bool tensors (dim,). With ``logit_alpha`` the data are taken to lie in [0, 1)^dim and
    a ``LogitTransform`` comes first (its log-Jacobian counted). ``forward_fn`` / ``inverse_fn`` are
    passed to every ``AffineCoupling``.

    * ``model(x) -> (z, log_det)``: x (b, dim) data, z = f_θ(x), log_det (b,) = log|det J_f(x)|
    * ``model.inverse(z) -> x``
    * ``model.log_prob(x) -> (b,)``: log ρ(x) by (15.2) with μ = N(0, I)
    * ``model.sample(n, generator=None) -> (n, dim)``: x = f_θ⁻¹(z), z ~ N(0, I)
    * ``model.stages(x) -> list``: x and its image after each layer (the lesson's layer widget)
    """

    def __init__(self, dim: int, n_layers: int = 8, hidden: int = 64, depth: int = 2, masks="parity",
                 logit_alpha: float | None = None, forward_fn: Callable | None = None,
                 inverse_fn: Callable | None = None):
        super().__init__()
        self.dim = check_int(dim, "dim", low=2)
        n_layers = check_int(n_layers, "n_layers", low=1)
        if isinstance(masks, str):
            masks = alternating_masks(self.dim, n_layers, masks)
        elif not isinstance(masks, (list, tuple)) or len(masks) != n_layers:
            raise ValueError(f"masks must be 'parity', 'checkerboard' or a list of {n_layers} bool tensors")
        layers = [] if logit_alpha is None else [LogitTransform(self.dim, logit_alpha)]
        layers += [AffineCoupling(self.dim, m, hidden, depth, forward_fn, inverse_fn) for m in masks]
        self.layers = nn.ModuleList(layers)

    def _check(self, x: torch.Tensor, name: str) -> torch.Tensor:
        check_model_input(self, check_batch(x, name, self.dim), name)
        return x

    def forward(self, x: torch.Tensor):
        z = self._check(x, "x")
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld               # log|det J_f| = Σ_l log|det J_l| (footnote 1)
        return z, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        x = self._check(z, "z")
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det   # (15.2), in logs

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = check_int(n, "n", low=1)
        p = next(self.parameters())
        z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype).to(p.device)
        return self.inverse(z)

    @torch.no_grad()
    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self._check(x, "x")
        out = [z]
        for layer in self.layers:
            z, _ = layer(z)
            out.append(z)
        return out


# ---------------------------------------------------------------- GLOW: the squeeze and the 1×1 convolution
def squeeze(x: torch.Tensor, side: int = 8) -> torch.Tensor:
    """RealNVP's squeeze (space to depth): flat square images x (b, side·side), row-major, →
    (b, 4, side/2, side/2). Channel k = 2·dy + dx at position (i, j) holds pixel (2i + dy, 2j + dx).
    A permutation of the coordinates: its log|det| is 0. The 8×8 digits become 4 channels of 4×4."""
    side = check_int(side, "side", low=2)
    if side % 2:
        raise ValueError(f"side must be even to squeeze 2×2 blocks, got {side}")
    check_batch(x, "x", side * side)
    b, half = x.shape[0], side // 2
    return x.reshape(b, half, 2, half, 2).permute(0, 2, 4, 1, 3).reshape(b, 4, half, half)


def unsqueeze(z: torch.Tensor) -> torch.Tensor:
    """The inverse of ``squeeze``: z (b, 4, h, h) → flat images (b, 4h²)."""
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise TypeError(f"z must be a floating torch.Tensor of shape (b, 4, h, h), got "
                        f"{z.dtype if isinstance(z, torch.Tensor) else type(z).__name__}")
    if z.ndim != 4 or z.shape[1] != 4 or z.shape[2] != z.shape[3] or z.shape[0] < 1:
        raise ValueError(f"z must have shape (b, 4, h, h), got {tuple(z.shape)}")
    check_batch(z, "z", any_batch_shape=True)                    # finite (on the CPU)
    b, half = z.shape[0], z.shape[2]
    return z.reshape(b, 2, 2, half, half).permute(0, 3, 1, 4, 2).reshape(b, 4 * half * half)


class InvertibleConv1x1(nn.Module):
    """GLOW's invertible 1×1 convolution (Kingma & Dhariwal 2018, §3.2), LU-parameterised.

    ``InvertibleConv1x1(channels, generator=None)``: a learned c × c matrix W applied to the channel
    vector at every spatial position, W = P L (U + diag(sign_s ⊙ exp(log_s))) with P a fixed
    permutation, L unit lower-triangular, U strictly upper-triangular (their eq. 10); initialised
    at a random rotation (QR of a Gaussian matrix drawn from ``generator``).

    * ``layer(x) -> (y, log_det)``: x (b, c, h, w); y[:, :, i, j] = W x[:, :, i, j]; log_det (b,) =
      h·w·Σ log_s = h·w·log|det W|, in O(c) (the Jacobian is block-diagonal: W once per position,
      not the diagonal matrix the text of §15.2 says).
    * ``layer.inverse(y) -> x``;  ``layer.weight() -> W`` (c, c).
    """

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        self.channels = check_int(channels, "channels", low=1)
        g = torch.Generator().manual_seed(0) if generator is None else generator
        if not isinstance(g, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(s.abs()).float())

    def weight(self) -> torch.Tensor:
        """W = P L (U + diag(sign_s exp(log_s))): (c, c)."""
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def _check(self, x, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating torch.Tensor of shape (b, {self.channels}, h, w), "
                            f"got {x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.channels or 0 in x.shape:
            raise ValueError(f"{name} must have shape (b, {self.channels}, h, w), got {tuple(x.shape)}")
        return check_model_input(self, check_batch(x, name, any_batch_shape=True), name)   # finite, device, dtype

    def forward(self, x: torch.Tensor):
        x = self._check(x, "x")
        y = torch.einsum("ij,bjhw->bihw", self.weight(), x)
        log_det = x.shape[2] * x.shape[3] * self.log_s.sum()
        return y, log_det.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y = self._check(y, "y")
        b, c, h, w = y.shape
        cols = y.permute(1, 0, 2, 3).reshape(c, -1)                  # (c, b·h·w): one column per position
        x = torch.linalg.solve(self.weight(), cols)
        return x.reshape(c, b, h, w).permute(1, 0, 2, 3)
