"""One timing harness for every peer comparison: interleaved runs, medians, spread.

A peer module (``peers.gmm``, ``peers.sampling``, ``peers.flows``) returns ``Comparison`` objects; ``measure``
times each one and returns a row (a dict with the keys ``ROW_KEYS``) that ``bench peers`` prints and writes
to JSON, and README's peer table is generated from.

Timing rule: one warm-up call of each side, then ``repeats`` rounds, each round ``ours()`` then ``theirs()``
(interleaved, so a slow minute of the machine hits both sides alike). The ratio reported is
``median(ours) / median(theirs)`` (> 1: companion_lib slower), its spread the smallest and largest
per-round ratio. On CUDA each call is bracketed by ``torch.cuda.synchronize()``.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

ROW_KEYS = ("name", "size", "peer", "device", "repeats", "ours_s", "theirs_s", "ratio", "ratio_min",
            "ratio_max", "identical", "agreement")


@dataclass(frozen=True)
class Comparison:
    """One side-by-side measurement.

    ``ours`` / ``theirs``: zero-argument callables doing one complete timed run (same data, same seed) and
    returning what ``agree`` compares. ``agree(ours_result, theirs_result) -> (identical, text)``: whether the
    two results are the same to round-off (``None`` where the two sides are different models that cannot
    agree, e.g. two flows trained alike), and what was compared (e.g. ``"max |Δ lower bound| 7e-15 over 50
    iterations"``). ``name`` is the row label (e.g. ``"EM, full covariance"``), ``size`` the problem size in
    words, ``peer`` the other library with its version, ``device`` ``"cpu"`` or ``"cuda"``.
    """

    name: str
    size: str
    peer: str
    device: str
    ours: Callable[[], Any]
    theirs: Callable[[], Any]
    agree: Callable[[Any, Any], tuple[bool, str]]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def measure(comparison: Comparison, repeats: int = 5) -> dict:
    """Time one ``Comparison`` (warm-up, then ``repeats`` interleaved rounds); return its row."""
    if not isinstance(comparison, Comparison):
        raise TypeError(f"expected a peers Comparison, got {type(comparison).__name__}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    dev = comparison.device
    _time(comparison.ours, dev)
    _time(comparison.theirs, dev)
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        a, ta = _time(comparison.ours, dev)
        b, tb = _time(comparison.theirs, dev)
        t_ours.append(ta)
        t_theirs.append(tb)
    identical, text = comparison.agree(a, b)
    per_round = [x / y for x, y in zip(t_ours, t_theirs)]
    return {
        "name": comparison.name, "size": comparison.size, "peer": comparison.peer, "device": dev,
        "repeats": repeats, "ours_s": statistics.median(t_ours), "theirs_s": statistics.median(t_theirs),
        "ratio": statistics.median(t_ours) / statistics.median(t_theirs),
        "ratio_min": min(per_round), "ratio_max": max(per_round),
        "identical": None if identical is None else bool(identical), "agreement": str(text),
    }
