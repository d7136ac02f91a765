"""Scores: the gradient of a log-density, how to learn it, and how to sample with it (§14.3; §15.3).

Torch only; no plotting, no grading. x has shape (n, d) throughout.

* ``score``         s(x) = ∇_x log P(x) = −∇_x E(x), by autograd; Z drops out           (eq. 15.1)
* ``dsm_loss``      denoising score matching for an energy: x̃ = x + σε,
                    minimise E‖σ·s_θ(x̃) + ε‖² / 2 (the score of N(x̃; x, σ²I) at x̃ is −ε/σ)
* ``langevin_step`` one unadjusted Langevin move  x ← x + (η/2)·s(x) + √η·ξ,  ξ ~ N(0, I)
* ``langevin``      a chain of such moves, reproducible on any device
* ``eps_from_score``, ``score_from_eps``  ε*(x_t, t) = −√(1 − ᾱ_t) ∇ log p(x_t)              (eq. 15.13)

``ebm`` (§14.3) uses and re-exports all four; eq. 15.13 of §15.3 (below) lives here too.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion_lib._checks import as_tensor, check_float, check_generator, check_int

__all__ = ["score", "dsm_loss", "langevin_step", "langevin", "eps_from_score", "score_from_eps"]


def _callable(fn, name: str, contract: str):
    if not callable(fn):
        raise TypeError(f"{name} must be a function {contract}, got a {type(fn).__name__}")
    return fn


# ------------------------------------------------------------------------------ the score (15.1)
def score(energy_fn: Callable, x, create_graph: bool = False) -> torch.Tensor:
    """The score −∇_x E(x) by autograd (eq. 15.1). x (n, d) → (n, d). Z never appears.

    ``energy_fn`` maps (n, d) to (n,). ``create_graph=True`` keeps the graph so that a loss of the
    score can be differentiated again with respect to the energy's parameters (score matching).
    """
    _callable(energy_fn, "energy_fn", "mapping x (n, d) to energies (n,)")
    x = as_tensor(x, "x", ndim=2, min_rows=1, dtype=None)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        energy = energy_fn(x)
        if not isinstance(energy, torch.Tensor) or energy.shape != (x.shape[0],):
            got = tuple(energy.shape) if isinstance(energy, torch.Tensor) else type(energy).__name__
            raise ValueError(f"energy_fn must map (n, d) to (n,), got {got}")
        if not energy.requires_grad:
            raise ValueError("energy_fn's output does not depend on x through torch operations "
                             "(no gradient): compute the energy with torch, not NumPy")
        (grad,) = torch.autograd.grad(energy.sum(), x, create_graph=create_graph)
    return -grad if create_graph else -grad.detach()


# ------------------------------------------------------------------------------ learning a score
def dsm_loss(energy_fn: Callable, x, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching for an energy: x̃ = x + σε, loss = mean ‖σ·(−∇E_θ(x̃)) + ε‖² / 2.

    Its minimiser is the score of the data blurred by N(0, σ²I); the graph is kept
    (create_graph) so the loss can be back-propagated into θ. x (n, d) → scalar. The noise ε is
    drawn on the CPU ``generator`` (reproducible on any device) and moved to x's device.
    """
    sigma = check_float(sigma, "sigma", low=0.0, low_open=True)
    check_generator(generator)
    x = as_tensor(x, "x", ndim=2, min_rows=1, dtype=None)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    s = score(energy_fn, x + sigma * eps, create_graph=True)
    return 0.5 * ((sigma * s + eps) ** 2).sum(1).mean()


# ------------------------------------------------------------------------------ Langevin dynamics
def langevin_step(x, score, step_size, noise) -> torch.Tensor:
    """One unadjusted Langevin step x + (η/2)·score + √η·ξ with the noise ξ given: all (n, d)."""
    x = as_tensor(x, "x", ndim=2, min_rows=1, dtype=None)
    score = as_tensor(score, "score", shape=tuple(x.shape), shape_of="x", dtype=x.dtype, device=x.device)
    noise = as_tensor(noise, "noise", shape=tuple(x.shape), shape_of="x", dtype=x.dtype, device=x.device)
    eta = check_float(step_size.item() if isinstance(step_size, torch.Tensor) and step_size.numel() == 1
                      else step_size, "step_size", low=0.0, low_open=True)
    return x + 0.5 * eta * score + math.sqrt(eta) * noise


def langevin(score_fn: Callable, x0, step_size: float, n_steps: int,
             generator: torch.Generator | None = None, record: tuple | list = ()):
    """Run ``n_steps`` of unadjusted Langevin dynamics from x0 (n, d) with score_fn (n, d) → (n, d).

    Noise is drawn on the CPU ``generator`` (reproducible on any device) and moved to x0's device.
    Returns the final (n, d) samples, or with ``record`` (step numbers ≥ 0; those beyond ``n_steps``
    are skipped, so one tuple serves several budgets) a dict {step: samples} that also holds the
    final step.
    """
    _callable(score_fn, "score_fn", "mapping x (n, d) to scores (n, d)")
    check_generator(generator)
    x = as_tensor(x0, "x0", ndim=2, min_rows=1, dtype=None).detach()
    eta = check_float(step_size, "step_size", low=0.0, low_open=True)
    n_steps = check_int(n_steps, "n_steps", low=0)
    if not isinstance(record, (tuple, list, range, set)):
        raise TypeError(f"record must be a tuple or list of step numbers, got a {type(record).__name__}")
    record = {check_int(t, "record step", low=0) for t in record}     # steps beyond n_steps never come
    kept = {0: x.clone()} if 0 in record else {}
    for t in range(1, n_steps + 1):
        xi = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        s = score_fn(x)
        if t == 1 and (not isinstance(s, torch.Tensor) or s.shape != x.shape):
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"score_fn must map x {tuple(x.shape)} to a score of the same shape, got {got}")
        x = (x + 0.5 * eta * s + math.sqrt(eta) * xi).detach()
        if t in record:
            kept[t] = x.clone()
    if record:
        kept[n_steps] = x
        return kept
    return x


# ------------------------------------------------------------------------------ §15.3: eq. 15.13
# The denoising view of diffusion (the score of q(x_t) from the noise predictor, eq. 15.13) is added
# here by the §15.3 work: keep it in this section, built on ``score`` / ``dsm_loss`` above.
def _noise_level(one_minus_alpha_bar, like: torch.Tensor) -> torch.Tensor:
    """√(1 − ᾱ_t) as a tensor broadcasting against ``like`` (a number, or (n,) / (n, 1) values in (0, 1])."""
    if isinstance(one_minus_alpha_bar, torch.Tensor):
        v = one_minus_alpha_bar.to(dtype=like.dtype, device=like.device)
        if v.ndim == 1:
            v = v[:, None]
    else:
        v = torch.tensor(check_float(one_minus_alpha_bar, "one_minus_alpha_bar", low=0.0, high=1.0, low_open=True),
                         dtype=like.dtype, device=like.device)
    if not torch.isfinite(v).all() or (v <= 0).any() or (v > 1).any():
        raise ValueError("one_minus_alpha_bar (1 − ᾱ_t) must lie in (0, 1]")
    return v.sqrt()


def eps_from_score(score_xt, one_minus_alpha_bar) -> torch.Tensor:
    """Eq. 15.13: the optimal noise prediction from the score of the noisy marginal,
    ε*(x_t, t) = −√(1 − ᾱ_t) ∇_{x_t} log p(x_t).

    score_xt (n, d); one_minus_alpha_bar: 1 − ᾱ_t, a number or (n,) per row. Returns (n, d).
    """
    s = as_tensor(score_xt, "score_xt", ndim=2, dtype=None, min_rows=1)
    return -_noise_level(one_minus_alpha_bar, s) * s


def score_from_eps(eps, one_minus_alpha_bar) -> torch.Tensor:
    """Eq. 15.13 read the other way: a noise predictor's implied score, −ε_θ(x_t, t) / √(1 − ᾱ_t).

    eps (n, d); one_minus_alpha_bar: a number or (n,) per row. Returns (n, d).
    """
    e = as_tensor(eps, "eps", ndim=2, dtype=None, min_rows=1)
    return -e / _noise_level(one_minus_alpha_bar, e)
