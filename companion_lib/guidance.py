"""§15.3 Conditional generation: classifier-free guidance (eq. 15.12).

* ``cfg_combine``   ε̂ = ε_uncond + w (ε_cond − ε_uncond)                                   eq. 15.12
* ``guided_eps``    the two forward passes of a conditional denoiser (label c and the null label ∅)
                    combined by (15.12), as a function ε̂(x_t, t) that ``ddpm.sample`` can run
* ``null_labels``   the training-time label dropout: each label replaced by ∅ with probability p

w = 0 is the unconditional model, w = 1 the plain conditional one, w > 1 extrapolates past it.
Uses ``forward_diffusion``'s conventions (steps t ∈ 1..T); torch only, no plotting, no grading.
"""
from __future__ import annotations

import torch

from companion_lib._checks import (check_batch, check_finite_on_cpu, check_float, check_generator, check_int,
                                   check_steps)

__all__ = ["cfg_combine", "guided_eps", "null_labels"]


def _check_pair(eps_cond, eps_uncond):
    for name, e in (("eps_cond", eps_cond), ("eps_uncond", eps_uncond)):
        check_batch(e, name, any_batch_shape=True)          # finite only on the CPU: no host sync per step
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"eps_cond and eps_uncond must have one shape, got {tuple(eps_cond.shape)} "
                         f"and {tuple(eps_uncond.shape)}")
    if eps_cond.device != eps_uncond.device:
        raise ValueError(f"eps_cond is on {eps_cond.device} but eps_uncond on {eps_uncond.device}")


def _check_w(w):
    """The guidance scale: a finite number, or a floating tensor (finite where checking costs no host
    synchronisation, ``_checks.check_finite_on_cpu``)."""
    if isinstance(w, torch.Tensor):
        if not w.is_floating_point():
            raise TypeError(f"w must be a number or a floating tensor, got dtype {w.dtype}")
        return check_finite_on_cpu(w, "w")
    return check_float(w, "w")


def cfg_combine(eps_cond, eps_uncond, w) -> torch.Tensor:
    """The guided noise prediction (15.12): ε̂ = ε_uncond + w · (ε_cond − ε_uncond).

    eps_cond, eps_uncond: (batch, ...) on one device; w: a number (the guidance scale), or a tensor
    that broadcasts against them (one w per row: shape (batch, 1, ...)). Returns (batch, ...).
    """
    _check_pair(eps_cond, eps_uncond)
    w = _check_w(w)
    if isinstance(w, torch.Tensor):
        w = w.to(device=eps_cond.device, dtype=eps_cond.dtype)
    return eps_uncond + w * (eps_cond - eps_uncond)                     # (15.12)


def guided_eps(model, labels, w, null_label: int, combine=None):
    """ε̂(x_t, t) of (15.12) for a conditional denoiser ``model(x_t, t, c)``: one batched pass with the
    labels and one with ``null_label`` (∅), combined by ``combine`` (default ``cfg_combine``; a lesson
    passes the student's own).

    labels: (batch,) long, the class asked for per row; w: a number or a (batch, 1, ...) tensor.
    Returns a function eps_fn(x_t, t) for ``ddpm.sample`` (x_t (batch, ...), t (batch,)).
    """
    combine = cfg_combine if combine is None else combine
    if not callable(model) or not callable(combine):
        raise TypeError("model must be callable as model(x_t, t, c), combine as combine(eps_cond, eps_uncond, w)")
    labels = check_steps(labels, "labels", 0, None, "labels must be >= 0 (class labels 0, 1, ...)",
                         what="integer class labels", nonempty=True)
    w = _check_w(w)
    null_label = check_int(null_label, "null_label", low=0)
    null = torch.full_like(labels, null_label)

    def eps_fn(x, t):
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"x_t has {x.shape[0]} rows but {labels.shape[0]} labels were given")
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels.to(x.device), null.to(x.device)]))
        eps_cond, eps_uncond = both.chunk(2)
        return combine(eps_cond, eps_uncond, w)

    return eps_fn


def null_labels(labels, null_label: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Classifier-free guidance's training trick: each label replaced by ``null_label`` (∅) with
    probability ``p`` (the text: 10–20% of the time). labels (batch,) long → (batch,) long."""
    labels = check_steps(labels, "labels", 0, None, "labels must be >= 0 (class labels 0, 1, ...)",
                         what="integer class labels", nonempty=True)
    null_label = check_int(null_label, "null_label", low=0)
    p = check_float(p, "p", low=0.0, high=1.0)
    generator = check_generator(generator)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    drop = (torch.rand(labels.shape, generator=generator, device=gen_device) < p).to(labels.device)
    return torch.where(drop, torch.full_like(labels, null_label), labels)
