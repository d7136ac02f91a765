"""§15.2 Normalizing flows: the affine coupling layer and a RealNVP stack.

* ``coupling_forward`` / ``coupling_inverse``  one affine coupling, as functions        eqs. 15.3–15.6
* ``AffineCoupling``    the layer as a module: a small MLP conditioner with a bounded log-scale
* ``rational_quadratic_spline`` / ``SplineCoupling``  a monotone spline in place of the scale and
  shift (Durkan et al. 2019, "Neural Spline Flows"), same masks: bends one bump into several
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

from companion_lib._checks import (check_batch, check_bool, check_callable, check_choice,
                                   check_finite_on_cpu, check_float, check_int, check_model_input)
from companion_lib.gaussian import log_normal_diag
from companion_lib.nets import mlp
from companion_lib._moved import moved_getattr
from companion_lib.settings import cpu_float64

__all__ = ["coupling_forward", "coupling_inverse", "AffineCoupling", "rational_quadratic_spline",
           "SplineCoupling", "LogitTransform", "RealNVP",
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


# ---------------------------------------------------------------- the rational-quadratic spline coupling
def _spline_knots(raw: torch.Tensor, bound: float, min_bin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw bin sizes (..., K) → (knots (..., K + 1) from −bound to bound, sizes (..., K)): a softmax,
    each share at least ``min_bin``, the ends exactly ±bound."""
    k = raw.shape[-1]
    share = min_bin + (1 - min_bin * k) * torch.softmax(raw, dim=-1)
    knots = torch.nn.functional.pad(torch.cumsum(share, dim=-1), (1, 0)) * (2 * bound) - bound
    knots = torch.cat([torch.full_like(knots[..., :1], -bound), knots[..., 1:-1],
                       torch.full_like(knots[..., :1], bound)], dim=-1)
    return knots, knots[..., 1:] - knots[..., :-1]


def _derivative_shift(min_derivative: float) -> float:
    """c with min_derivative + softplus(0 + c) = 1: a raw interior slope 0 gives slope 1."""
    return math.log(math.expm1(1 - min_derivative))


def rational_quadratic_spline(x: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
                              derivatives: torch.Tensor, bound: float = 3.0, inverse: bool = False,
                              min_bin: float = 1e-3, min_derivative: float = 1e-3):
    """A monotone rational-quadratic spline, element-wise (Durkan et al. 2019, "Neural Spline Flows",
    eqs. 4–6 for the map and its derivative, the quadratic of their appendix A for the inverse).

    x (...,); raw parameters per element: ``widths`` (..., K), ``heights`` (..., K), ``derivatives``
    (..., K − 1). On [−bound, bound] the K bins have widths and heights 2·bound·softmax(raw) (each at
    least a share ``min_bin``), the K − 1 interior knots slopes ``min_derivative`` + softplus(raw + c)
    with c such that a raw 0 gives slope 1, and the two end knots slope 1; outside [−bound, bound] the
    map is the identity, so it is continuous with a continuous derivative everywhere. In bin k, with
    ξ = (x − x_k)/w_k, s_k = h_k/w_k and slopes δ_k, δ_{k+1} at its knots,

        g(x) = y_k + h_k [s_k ξ² + δ_k ξ(1 − ξ)] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)],
        g'(x) = s_k² [δ_{k+1} ξ² + 2 s_k ξ(1 − ξ) + δ_k (1 − ξ)²] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)]²  > 0.

    Returns ``(y, log_abs_det)``, both shaped like x: y = g(x) and log g'(x) (identity: 0), or with
    ``inverse=True`` y = g⁻¹(x) and log (g⁻¹)'(x) = −log g'(g⁻¹(x)). All zeros for the raw parameters
    give the identity.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating torch.Tensor, got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    for t, name in ((widths, "widths"), (heights, "heights"), (derivatives, "derivatives")):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating torch.Tensor of shape (..., K), got "
                            f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
        check_finite_on_cpu(t, name)
    check_finite_on_cpu(x, "x")
    k = widths.shape[-1] if widths.ndim else 0
    if k < 2 or widths.shape != (*x.shape, k):
        raise ValueError(f"widths must have shape x.shape + (K,) = {(*x.shape, 'K')} with K >= 2 bins, "
                         f"got {tuple(widths.shape)}")
    if heights.shape != widths.shape:
        raise ValueError(f"heights must have the shape of widths, {tuple(widths.shape)}, got {tuple(heights.shape)}")
    if derivatives.shape != (*x.shape, k - 1):
        raise ValueError(f"derivatives must have shape x.shape + (K − 1,) = {(*x.shape, k - 1)} "
                         f"(one slope per interior knot), got {tuple(derivatives.shape)}")
    bound = check_float(bound, "bound", low=0.0, low_open=True)
    inverse = check_bool(inverse, "inverse")
    min_bin = check_float(min_bin, "min_bin", low=0.0, high=1.0 / k, high_open=True)
    min_derivative = check_float(min_derivative, "min_derivative", low=0.0, high=1.0, high_open=True)

    xs, w = _spline_knots(widths, bound, min_bin)                     # knots and widths along x
    ys, h = _spline_knots(heights, bound, min_bin)                    # along y
    inner = min_derivative + torch.nn.functional.softplus(derivatives + _derivative_shift(min_derivative))
    one = torch.ones_like(inner[..., :1])
    slopes = torch.cat([one, inner, one], dim=-1)                    # (..., K + 1): slope 1 at ±bound

    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound)                                       # the spline's branch stays finite
    knots = ys if inverse else xs
    k_bin = (xc[..., None] >= knots[..., 1:-1]).sum(-1, keepdim=True)  # bin index in 0..K-1

    def at(t, shift=0):
        return t.gather(-1, k_bin + shift)[..., 0]
    x_k, w_k, y_k, h_k = at(xs), at(w), at(ys), at(h)
    d_k, d_k1 = at(slopes), at(slopes, 1)
    s_k = h_k / w_k
    curve = d_k1 + d_k - 2 * s_k
    if inverse:                                                       # solve a ξ² + b ξ + c = 0 for ξ in [0, 1]
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * curve
        b = h_k * d_k - dy * curve
        c = -s_k * dy
        disc = (b * b - 4 * a * c).clamp(min=0)
        xi = (2 * c / (-b - disc.sqrt())).clamp(0, 1)
        out = x_k + xi * w_k
    else:
        xi = (xc - x_k) / w_k
    one_minus = 1 - xi
    denom = s_k + curve * xi * one_minus
    log_deriv = (2 * torch.log(s_k) + torch.log(d_k1 * xi**2 + 2 * s_k * xi * one_minus + d_k * one_minus**2)
                 - 2 * torch.log(denom))
    if inverse:
        return torch.where(inside, out, x), torch.where(inside, -log_deriv, torch.zeros_like(x))
    out = y_k + h_k * (s_k * xi**2 + d_k * xi * one_minus) / denom
    return torch.where(inside, out, x), torch.where(inside, log_deriv, torch.zeros_like(x))


class SplineCoupling(nn.Module):
    """A coupling layer whose map of z_B is a monotone rational-quadratic spline (Durkan et al. 2019)
    instead of (15.4)'s scale and shift; the same mask convention as ``AffineCoupling``.

    ``SplineCoupling(dim, mask, bins=8, bound=3.0, hidden=64, depth=2)``: z_A passes through (15.3);
    each coordinate j of B goes through its own ``rational_quadratic_spline`` on [−bound, bound]
    (identity outside) with K = ``bins`` bins, whose 3K − 1 raw parameters are the outputs of
    ``nets.mlp(|A|, hidden, |B|·(3K − 1), depth)`` at z_A. The MLP's last layer starts at zero, so a
    new layer is the identity. The Jacobian, A first, is block lower-triangular with diag(g_j'(z_B,j))
    in the B block, so log|det| = Σ_B log g_j'(z_B,j) (each g_j' > 0: the spline is monotone).

    ``layer(z) -> (z_next, log_det)`` with z (b, dim), log_det (b,); ``layer.inverse(z_next) -> z``.
    An affine layer maps the conditional of z_B given z_A by a scale and a shift, so a one-bump
    conditional stays one bump; a spline can stretch some stretches of the line and squeeze others,
    and so turn one bump into several.
    """

    def __init__(self, dim: int, mask, bins: int = 8, bound: float = 3.0, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.dim = check_int(dim, "dim", low=2)
        mask = _check_mask(mask, self.dim)
        self.register_buffer("mask", mask.clone())
        self.bins = check_int(bins, "bins", low=2)
        self.bound = check_float(bound, "bound", low=0.0, low_open=True)
        self.n_b = self.dim - int(mask.sum())
        self.net = mlp(int(mask.sum()), check_int(hidden, "hidden", low=1), self.n_b * (3 * self.bins - 1),
                       check_int(depth, "depth", low=0))
        nn.init.zeros_(self.net[-1].weight)      # raw parameters 0: the identity
        nn.init.zeros_(self.net[-1].bias)

    def _spline(self, z: torch.Tensor, inverse: bool):
        z_a, z_b = z[:, self.mask], z[:, ~self.mask]
        raw = self.net(z_a).reshape(z.shape[0], self.n_b, 3 * self.bins - 1)
        widths, heights, derivs = raw.split([self.bins, self.bins, self.bins - 1], dim=-1)
        out_b, log_det = rational_quadratic_spline(z_b, widths, heights, derivs, self.bound, inverse)
        out = torch.empty_like(z)
        out[:, self.mask] = z_a                  # (15.3) / (15.5)
        out[:, ~self.mask] = out_b
        return out, log_det.sum(1)

    def forward(self, z: torch.Tensor):
        check_model_input(self, check_batch(z, "z", self.dim), "z", "the coupling")
        return self._spline(z, inverse=False)

    def inverse(self, z_next: torch.Tensor) -> torch.Tensor:
        check_model_input(self, check_batch(z_next, "z_next", self.dim), "z_next")
        return self._spline(z_next, inverse=True)[0]


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
    passed to every ``AffineCoupling``. ``coupling="spline"`` stacks ``SplineCoupling`` layers
    instead (``bins``, ``bound``: their spline; a neural spline flow, RQ-NSF (C) of Durkan et al.).

    * ``model(x) -> (z, log_det)``: x (b, dim) data, z = f_θ(x), log_det (b,) = log|det J_f(x)|
    * ``model.inverse(z) -> x``
    * ``model.log_prob(x) -> (b,)``: log ρ(x) by (15.2) with μ = N(0, I)
    * ``model.sample(n, generator=None) -> (n, dim)``: x = f_θ⁻¹(z), z ~ N(0, I)
    * ``model.stages(x) -> list``: x and its image after each layer (the lesson's layer widget)
    """

    def __init__(self, dim: int, n_layers: int = 8, hidden: int = 64, depth: int = 2, masks="parity",
                 logit_alpha: float | None = None, forward_fn: Callable | None = None,
                 inverse_fn: Callable | None = None, coupling: str = "affine", bins: int = 8,
                 bound: float = 3.0):
        super().__init__()
        self.dim = check_int(dim, "dim", low=2)
        n_layers = check_int(n_layers, "n_layers", low=1)
        check_choice(coupling, "coupling", ("affine", "spline"))
        if coupling == "spline" and (forward_fn is not None or inverse_fn is not None):
            raise ValueError("forward_fn / inverse_fn replace the affine coupling's functions; "
                             "they need coupling='affine'")
        if isinstance(masks, str):
            masks = alternating_masks(self.dim, n_layers, masks)
        elif not isinstance(masks, (list, tuple)) or len(masks) != n_layers:
            raise ValueError(f"masks must be 'parity', 'checkerboard' or a list of {n_layers} bool tensors")
        layers = [] if logit_alpha is None else [LogitTransform(self.dim, logit_alpha)]
        if coupling == "affine":
            layers += [AffineCoupling(self.dim, m, hidden, depth, forward_fn, inverse_fn) for m in masks]
        else:
            layers += [SplineCoupling(self.dim, m, bins, bound, hidden, depth) for m in masks]
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
        with cpu_float64():                          # the start (a random rotation) exactly, on the CPU
            q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g, dtype=torch.float64))
            p, lower, upper = torch.linalg.lu(q)
            s = torch.diagonal(upper)
            p, sign_s, lower = p.float(), torch.sign(s).float(), lower.float()
            upper, log_s = torch.triu(upper, 1).float(), torch.log(s.abs()).float()
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", sign_s)
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper)
        self.log_s = nn.Parameter(log_s)

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
