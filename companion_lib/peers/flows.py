"""``flows.RealNVP`` against zuko's ``RealNVP``: held-out bits/dim at equal steps, and time per step.

The two are different models (zuko's couplings, masks and networks are its own), so nothing here is
identical to round-off: the comparison trains both the same way for the same number of steps and
reports what each reaches on ``data.heldout_digits()`` (the companion's bits/dim convention, (15.2)
with the dequantisation term of ``data.dequantized_bits_per_dim``) and how long a training step takes.

Setup of both sides: 8 affine couplings of ``hidden × 2`` MLPs on the 64 pixels of the 8×8 digits,
the same ``flows.LogitTransform(64, alpha=0.05)`` in front (zuko's flow gets it as a fixed
pre-transform with its log-Jacobian counted), the 1149 fitting images of ``data.load_digits_split()``
dequantised afresh at every step (seed 0), ``training.train`` with Adam at 1e-3, batch ``batch``,
``steps`` steps, no validation and no early stopping, weights initialised from ``torch.manual_seed(0)``
(inside ``torch.random.fork_rng``: the caller's global generator is left as it was).

What ``Comparison.ours`` / ``theirs`` time (the harness's medians) is one complete run: building the
flow and ``steps`` training steps. ``agree`` then scores both trained flows on the held-out digits and
reports, besides both bits/dim, the training loop's own time per step (``TrainResult.seconds / steps``)
of the last timed round.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from companion_lib import data, flows, training
from companion_lib._checks import check_int
from companion_lib.peers._harness import Comparison

#: The logit transform's α, shared by both sides.
LOGIT_ALPHA = 0.05
#: Couplings in both flows.
N_LAYERS = 8


@dataclass(frozen=True)
class _Trained:
    """One trained flow: its log-density of [0, 1)^64 data, its parameter count, seconds per step."""

    log_prob: Callable[[torch.Tensor], torch.Tensor]
    n_params: int
    step_seconds: float


def _train(build: Callable[[], torch.nn.Module], log_prob_of: Callable, fit_data: torch.Tensor, steps: int,
           batch: int) -> _Trained:
    """Build a flow from seed 0 and train it ``steps`` steps on dequantised ``fit_data`` (levels)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build().to(fit_data.device)
    log_prob = log_prob_of(model)
    g_deq = torch.Generator().manual_seed(0)

    def loss(m, levels):
        return data.dequantized_bits_per_dim(log_prob(data.dequantize(levels, g_deq)), 64).mean()

    fit = training.train(model, loss, fit_data, steps=steps, batch_size=batch, lr=1e-3, eval_every=steps,
                         generator=torch.Generator().manual_seed(0), progress=False)
    model.eval()
    return _Trained(log_prob, sum(p.numel() for p in model.parameters()), fit.seconds / steps)


def _heldout_bpd(trained: _Trained, device: str) -> float:
    with torch.no_grad():
        return data.dequantized_bits_per_dim(trained.log_prob(data.heldout_digits().to(device)), 64).mean().item()


def comparisons(device: str = "cpu", steps: int = 300, hidden: int = 128, batch: int = 128) -> list[Comparison]:
    """The RealNVP comparison on ``device``: both flows trained ``steps`` steps of ``batch`` images with
    ``hidden``-wide coupling networks. Returns one ``Comparison`` (its ``agree`` gives ``identical``
    None: different models, compared by held-out bits/dim and time per step). Needs zuko (``ModuleNotFoundError`` without it: ``bench peers``
    reports the row as skipped)."""
    import zuko  # the peer library, a bench-only extra

    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {type(device).__name__}")
    steps = check_int(steps, "steps", low=1)
    hidden = check_int(hidden, "hidden", low=1)
    batch = check_int(batch, "batch", low=1)
    fit_data = torch.as_tensor(data.load_digits_split().X_fit, dtype=torch.float32, device=device)
    logit = flows.LogitTransform(64, alpha=LOGIT_ALPHA).to(device)

    def zuko_log_prob(model):
        def log_prob(y):
            u, log_det = logit(y)
            return model().log_prob(u) + log_det
        return log_prob

    def ours():
        return _train(lambda: flows.RealNVP(64, n_layers=N_LAYERS, hidden=hidden, masks="checkerboard",
                                            logit_alpha=LOGIT_ALPHA),
                      lambda m: m.log_prob, fit_data, steps, batch)

    def theirs():
        return _train(lambda: zuko.flows.RealNVP(64, transforms=N_LAYERS, hidden_features=(hidden, hidden)),
                      zuko_log_prob, fit_data, steps, batch)

    def agree(a: _Trained, b: _Trained) -> tuple[bool, str]:
        return None, (f"different models: held-out {_heldout_bpd(a, device):.3f} vs {_heldout_bpd(b, device):.3f} "
                       f"bits/dim after {steps} steps each; {1e3 * a.step_seconds:.2f} vs "
                       f"{1e3 * b.step_seconds:.2f} ms per training step (last round's loop); "
                       f"parameters {a.n_params:,} vs {b.n_params:,}")

    size = (f"{steps} training steps of batch {batch} on the 8×8 digits, {N_LAYERS} couplings, "
            f"hidden {hidden} × 2")
    return [Comparison("RealNVP, held-out bits/dim at equal steps", size, f"zuko {zuko.__version__}", device,
                       ours, theirs, agree)]
