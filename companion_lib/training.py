"""One training loop for every model of the companion (VAE, EBM, flows, diffusion).

Minibatch Adam with a tqdm.auto progress bar, optional linear warm-up + cosine learning-rate decay,
gradient clipping, an exponential moving average (EMA) of the weights with a warm-up, and early
stopping on a validation split (the likelihood models overfit 1437 digits within seconds). The best
weights (by validation loss) are restored at the end.

No host synchronisation per step (on a GPU each one stalls the queue of kernels): minibatches come
from one random permutation of the rows per epoch, drawn on the data's device; the training loss is
summed on the device and read (and checked for NaN/inf) only at evaluation steps; the EMA is one
fused update. The host waits for the device only every ``eval_every`` steps.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from companion_lib._checks import check_float, check_int
from companion_lib.settings import check_same_device

__all__ = ["EMA", "TrainResult", "lr_factor", "train"]


class EMA:
    """Exponential moving average of a model's parameters, with a warm-up.

    Update number t = 0, 1, 2, ... uses the decay ``d_t = min(decay, (1 + t) / (10 + t))``:
    ``shadow ← d_t · shadow + (1 − d_t) · param``. Without the warm-up (``warmup=False``: d_t = decay)
    a fraction decay^T of the random initialisation is still in the average after T updates (0.22
    after 1500 updates at 0.999); with it, that fraction is ∏ (1+t)/(10+t) = 9!·T!/(T+9)! (below
    1e-20 after 1500 updates), so the average starts from the first trained weights and settles
    into decay's window (about 1/(1 − decay) updates) once (1+t)/(10+t) passes decay
    (t ≥ 9·decay/(1 − decay) − 1, about 9000 updates for 0.999). Buffers (e.g. batch-norm
    statistics) are copied, not averaged.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999, warmup: bool = True):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
        self.decay = check_float(decay, "decay", low=0.0, high=1.0, high_open=True)
        self.warmup = bool(warmup)
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def decay_at(self, t: int) -> float:
        """The decay d_t used by update number t (0-based)."""
        t = check_int(t, "t", low=0)
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One step of the average towards ``model``'s current parameters (one fused kernel)."""
        d = self.decay_at(self.updates)
        shadow = [s for s in self.model.parameters() if s.is_floating_point()]
        params = [p.detach() for p in model.parameters() if p.is_floating_point()]
        if len(shadow) != len(params):
            raise ValueError("EMA.update: the model's parameters do not match the averaged copy")
        if shadow:
            torch._foreach_lerp_(shadow, params, 1.0 - d)
        for s, b in zip(self.model.buffers(), model.buffers()):
            s.copy_(b)
        self.updates += 1


@dataclass
class TrainResult:
    """What ``train`` returns.

    ``history`` lists are aligned with ``history['step']`` (the evaluation steps): ``train`` is the
    mean training loss over the steps since the previous evaluation, ``val`` the validation score
    (NaN without validation data), ``lr`` the learning rate of that step.
    """

    model: torch.nn.Module
    history: dict = field(default_factory=lambda: {"step": [], "train": [], "val": [], "lr": []})
    best_step: int = 0
    best_val: float = math.inf
    stopped_early: bool = False
    steps_run: int = 0
    seconds: float = 0.0
    ema: EMA | None = None


def lr_factor(step: int, steps: int, warmup: int = 0, cosine: bool = False) -> float:
    """Multiplier of the base learning rate at step ``step`` (0-based) of ``steps``.

    Linear warm-up ``(step + 1) / warmup`` for the first ``warmup`` steps, then 1, or with ``cosine``
    ``(1 + cos(π (step − warmup) / (steps − warmup))) / 2``, from 1 down towards 0 at the end.
    """
    step = check_int(step, "step", low=0)
    steps = check_int(steps, "steps", low=1)
    warmup = check_int(warmup, "warmup", low=0)
    if step < warmup:
        return (step + 1) / warmup
    if cosine:
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return 1.0


def _as_rows(data, name: str):
    """A tensor (n, ...) or a tuple/list of tensors with n rows each → (tuple of tensors, n, is_tuple)."""
    parts = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if not parts or not all(isinstance(t, torch.Tensor) for t in parts):
        raise TypeError(f"{name} must be a tensor (n, ...) or a tuple of tensors with n rows each, "
                        f"got {type(data).__name__}" + (" of " + ", ".join(type(t).__name__ for t in parts)
                                                        if isinstance(data, (tuple, list)) else ""))
    if any(t.ndim == 0 for t in parts):
        raise ValueError(f"{name} must have a first (row) dimension; got a 0-D tensor")
    n = parts[0].shape[0]
    if any(t.shape[0] != n for t in parts):
        raise ValueError(f"{name}: every tensor needs the same number of rows, got "
                         f"{[t.shape[0] for t in parts]}")
    if n < 1:
        raise ValueError(f"{name} has no rows")
    if any(t.device != parts[0].device for t in parts):
        raise ValueError(f"{name}: tensors on different devices {[str(t.device) for t in parts]}")
    return parts, n, isinstance(data, (tuple, list))


class _Batches:
    """Minibatch indices: one permutation of the n rows per epoch, drawn on ``device`` from a
    generator on that device (seeded once from ``generator``); the last incomplete batch of an
    epoch is dropped (every epoch draws ⌊n / b⌋ batches of b rows; b ≥ n: the whole permutation)."""

    def __init__(self, n: int, batch_size: int, device: torch.device, generator: torch.Generator | None):
        where = generator.device if generator is not None else None
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=where))  # one draw
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.n, self.b, self.device = n, min(batch_size, n), device
        self.per_epoch = n // self.b
        self.perm, self.i = None, self.per_epoch

    def next(self) -> torch.Tensor:
        if self.i == self.per_epoch:
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.i = 0
        idx = self.perm[self.i * self.b:(self.i + 1) * self.b]
        self.i += 1
        return idx


def train(model: torch.nn.Module, loss_fn: Callable, train_data, *, steps: int,
          val_data=None, val_fn: Callable | None = None, batch_size: int = 128, lr: float = 1e-3,
          weight_decay: float = 0.0, warmup: int = 0, cosine: bool = False,
          grad_clip: float | None = None, eval_every: int = 50, patience: int | None = None,
          ema_decay: float | None = None, generator: torch.Generator | None = None,
          progress: bool = True, desc: str = "training") -> TrainResult:
    """Train ``model`` by minimising ``loss_fn(model, batch)`` (a scalar tensor) over minibatches.

    train_data / val_data: a tensor (n, ...) or a tuple of tensors with n rows each, on the model's
    device (else ``ValueError`` naming both devices). Minibatches of ``batch_size`` rows follow one
    random permutation per epoch (reproducible from ``generator``, a CPU ``torch.Generator`` such as
    ``run.generator``; None: torch's global generator). ``val_fn(model, val_data) -> float`` scores
    the validation split (lower is better; default: ``loss_fn`` on the whole split without
    gradients), every ``eval_every`` steps and at the last step; the loss is checked for NaN/inf
    there too (``FloatingPointError``). ``patience``: stop after that many evaluations without
    improvement (None: never stop early). Learning rate: ``lr · lr_factor(step, steps, warmup,
    cosine)``. With ``ema_decay`` the EMA weights (``EMA``, with its warm-up) are the ones evaluated,
    restored to their best and returned in ``result.ema.model``; ``result.model`` is then the raw
    model at its last step. Without it, ``model`` itself is restored to its best evaluated weights.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
    if next(iter(model.parameters()), None) is None:
        raise ValueError("model has no parameters to train")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(model, batch), got {type(loss_fn).__name__}")
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    eval_every = check_int(eval_every, "eval_every", low=1)
    warmup = check_int(warmup, "warmup", low=0)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
    if grad_clip is not None:
        grad_clip = check_float(grad_clip, "grad_clip", low=0.0, low_open=True)
    if patience is not None:
        patience = check_int(patience, "patience", low=1)
    if val_fn is not None and not callable(val_fn):
        raise TypeError(f"val_fn must be callable as val_fn(model, val_data), got {type(val_fn).__name__}")
    if val_fn is not None and val_data is None:
        raise ValueError("val_fn was given without val_data")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got a {type(generator).__name__}")
    parts, n, is_tuple = _as_rows(train_data, "train_data")
    device = check_same_device(model, parts, names=["train_data"])
    if val_data is not None:
        check_same_device(model, _as_rows(val_data, "val_data")[0], names=["val_data"])
    if val_fn is None and val_data is not None:
        def val_fn(m, data):
            return float(loss_fn(m, data))

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(min(s, steps - 1), steps, warmup, cosine))
    ema = EMA(model, ema_decay) if ema_decay is not None else None
    result = TrainResult(model=model, ema=ema)
    batches = _Batches(n, batch_size, device, generator)
    best_state, bad_evals, since = None, 0, 0
    loss_sum = torch.zeros((), device=device)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=True, mininterval=0.5)
    for step in bar:
        model.train()
        idx = batches.next()
        batch = tuple(t[idx] for t in parts) if is_tuple else parts[0][idx]
        loss = loss_fn(model, batch)
        step_lr = opt.param_groups[0]["lr"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
        loss_sum += loss.detach()
        since += 1
        if (step + 1) % eval_every and step + 1 != steps:
            continue
        # evaluation step: the only place the host waits for the device
        train_loss = loss_sum.item() / since
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"the training loss became {train_loss} between steps {step + 2 - since} and {step + 1}; "
                f"lower lr (now {lr}), set grad_clip, or evaluate more often to find the step")
        loss_sum.zero_()
        since = 0
        val = math.nan
        if val_data is not None:
            scored = ema.model if ema is not None else model
            scored.eval()
            with torch.no_grad():
                val = float(val_fn(scored, val_data))
            if val < result.best_val:
                result.best_val, result.best_step, bad_evals = val, step + 1, 0
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
            else:
                bad_evals += 1
        result.history["step"].append(step + 1)
        result.history["train"].append(train_loss)
        result.history["val"].append(val)
        result.history["lr"].append(step_lr)
        bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val:.4g}", refresh=False)
        result.steps_run = step + 1
        if patience is not None and bad_evals >= patience:
            result.stopped_early = True
            break
    result.steps_run = step + 1
    bar.close()
    if best_state is not None:
        (ema.model if ema is not None else model).load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
