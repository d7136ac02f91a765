"""One training loop for every model of the companion (VAE, EBM, flows, diffusion).

Minibatch Adam with a tqdm.auto progress bar, optional warm-up + cosine learning-rate decay,
gradient clipping, an exponential moving average (EMA) of the weights, and early stopping on a
validation split (the likelihood models overfit 1437 digits within seconds). The best weights
(by validation loss) are restored at the end.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from companion_lib._checks import check_float, check_int


class EMA:
    """Exponential moving average of a model's parameters: ``shadow ← d·shadow + (1-d)·param``."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = check_float(decay, "decay", low=0.0, high=1.0, high_open=True)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for s, p in zip(self.model.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.model.buffers(), model.buffers()):
            s.copy_(b)


@dataclass
class TrainResult:
    """What ``train`` returns. ``history`` lists are aligned with ``history['step']``."""

    model: torch.nn.Module
    history: dict = field(default_factory=lambda: {"step": [], "train": [], "val": []})
    best_step: int = 0
    best_val: float = math.inf
    stopped_early: bool = False
    steps_run: int = 0
    seconds: float = 0.0
    ema: EMA | None = None


def _n_rows(data) -> int:
    first = data[0] if isinstance(data, (tuple, list)) else data
    return first.shape[0]


def _take(data, idx):
    if isinstance(data, (tuple, list)):
        return tuple(d[idx] for d in data)
    return data[idx]


def train(model: torch.nn.Module, loss_fn: Callable, train_data, *, steps: int,
          val_data=None, val_fn: Callable | None = None, batch_size: int = 128, lr: float = 1e-3,
          weight_decay: float = 0.0, warmup: int = 0, cosine: bool = False,
          grad_clip: float | None = None, eval_every: int = 50, patience: int | None = None,
          ema_decay: float | None = None, generator: torch.Generator | None = None,
          progress: bool = True, desc: str = "training") -> TrainResult:
    """Train ``model`` by minimising ``loss_fn(model, batch)`` (a scalar tensor) over minibatches.

    train_data / val_data: a tensor (n, ...) or a tuple of tensors with n rows each, on the model's
    device. ``val_fn(model, val_data) -> float`` scores the validation split (lower is better;
    default: ``loss_fn`` on the whole split without gradients), every ``eval_every`` steps.
    ``patience``: stop after that many evaluations without improvement (None: never stop early).
    With ``ema_decay`` the EMA weights are evaluated and returned in ``result.ema``.
    """
    import time

    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    eval_every = check_int(eval_every, "eval_every", low=1)
    check_float(lr, "lr", low=0.0, low_open=True)
    if patience is not None:
        check_int(patience, "patience", low=1)
    n = _n_rows(train_data)
    if n < 1:
        raise ValueError("train_data has no rows")
    if val_fn is None and val_data is not None:
        def val_fn(m, data):
            return float(loss_fn(m, data))

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def lr_factor(step):  # linear warm-up, then constant or cosine decay to 0
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cosine:
            t = (step - warmup) / max(1, steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    ema = EMA(model, ema_decay) if ema_decay is not None else None
    result = TrainResult(model=model, ema=ema)
    best_state, bad_evals, running = None, 0, None
    device = next(model.parameters()).device
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=True, mininterval=0.5)
    for step in bar:
        model.train()
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator).to(device)
        loss = loss_fn(model, _take(train_data, idx))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr (now {lr}) "
                                     "or set grad_clip")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        last = step + 1 == steps
        if (step + 1) % eval_every == 0 or last:
            val = math.nan
            if val_data is not None:
                scored = ema.model if ema is not None else model
                scored.eval()
                with torch.no_grad():
                    val = float(val_fn(scored, val_data))
                if val < result.best_val:
                    result.best_val, result.best_step, bad_evals = val, step + 1, 0
                    best_state = copy.deepcopy(scored.state_dict())
                else:
                    bad_evals += 1
            result.history["step"].append(step + 1)
            result.history["train"].append(running)
            result.history["val"].append(val)
            bar.set_postfix(train=f"{running:.4g}", val=f"{val:.4g}")
            if patience is not None and bad_evals >= patience:
                result.stopped_early = True
                result.steps_run = step + 1
                break
        result.steps_run = step + 1
    bar.close()
    if best_state is not None:
        (ema.model if ema is not None else model).load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
