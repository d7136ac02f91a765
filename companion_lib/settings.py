"""Run settings shared by every notebook: device, seed, run mode, threads.

Floor 1 of the package: imports nothing else from ``companion_lib``.

Environment variables (all optional):

``COMPANION_DEVICE``  ``cuda``, ``cuda:1``, ``mps`` or ``cpu``; default: CUDA, then MPS, then CPU.
``COMPANION_MODE``    ``quick`` (small, real runs; < 60 s a notebook on a 2-core CPU) or ``full``
                      (larger budgets); default ``full`` when CUDA is available, else ``quick``.
``COMPANION_THREADS`` torch CPU threads; default 1 in quick mode (robust and bit-for-bit
                      reproducible when other processes share the cores), torch's default in full.
``COMPANION_NO_FLOAT64`` ``1``: a stand-in for Apple's MPS on any machine: every float64 torch
                      operation outside ``cpu_float64()`` raises (see the dtype rule below).

The dtype rule (MPS has no float64)
-----------------------------------
* Everything on ``run.device`` (training, sampling, whatever a student runs on a GPU) is float32.
* float64 is for exact and oracle computations, and only on the CPU: such code runs inside
  ``with cpu_float64():`` (or a function decorated ``@cpu_float64()``), which documents the exemption
  and lets the stand-in check it. Exempt by design: the EM of ``mixture`` that must equal
  scikit-learn's, the grader's references, quadratures, and float64 schedules that are cast to the
  data's dtype before they meet the data.
"""
from __future__ import annotations

import contextlib
import os
import random
import threading
from dataclasses import dataclass

import numpy as np
import torch

MODES = ("quick", "full")

_F64 = threading.local()


class cpu_float64(contextlib.ContextDecorator):
    """Mark a block (or, as a decorator, a function) that computes in float64 on the CPU.

    Outside the stand-in (``COMPANION_NO_FLOAT64=1``) it does nothing; under it, float64 torch
    operations are allowed only inside such blocks, as they would be on the CPU of an MPS machine.
    Tensors computed inside must be on the CPU; cast them (``.float()``) before they go to
    ``run.device``.
    """

    def __enter__(self):
        _F64.depth = getattr(_F64, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _F64.depth -= 1
        return False


def float64_allowed() -> bool:
    """True inside ``cpu_float64()`` (or when the stand-in is off)."""
    return getattr(_F64, "depth", 0) > 0


def get_device() -> torch.device:
    """The device notebooks compute on: ``COMPANION_DEVICE`` if set, else CUDA → MPS → CPU."""
    requested = os.environ.get("COMPANION_DEVICE", "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise ValueError(
                f"COMPANION_DEVICE={requested!r} is not a device torch knows; "
                "expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"COMPANION_DEVICE={requested!r} but CUDA is not available here; use 'cpu'")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"COMPANION_DEVICE={requested!r} but MPS is not available here; use 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_mode() -> str:
    """``'quick'`` or ``'full'``, from ``COMPANION_MODE`` (default: full on CUDA, quick otherwise)."""
    mode = os.environ.get("COMPANION_MODE", "").strip().lower()
    if not mode:
        return "full" if torch.cuda.is_available() else "quick"
    if mode not in MODES:
        raise ValueError(f"COMPANION_MODE={mode!r}; expected one of {MODES}")
    return mode


def is_quick() -> bool:
    return get_mode() == "quick"


def budget(*, quick, full):
    """Pick a budget by run mode: ``budget(quick=800, full=20_000)``.

    Quick mode is a smaller *real* run, not a stub: choose quick budgets that already show the point.
    """
    return quick if is_quick() else full


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU ``torch.Generator`` seeded likewise."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators
    return torch.Generator().manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Set torch's CPU thread count (``COMPANION_THREADS``; default 1 in quick mode). Returns it."""
    if n is None:
        env = os.environ.get("COMPANION_THREADS", "").strip()
        if env:
            try:
                n = int(env)
            except ValueError as err:
                raise ValueError(f"COMPANION_THREADS={env!r}; expected a positive integer") from err
        elif is_quick():
            n = 1
        else:
            return torch.get_num_threads()
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


@dataclass(frozen=True)
class Run:
    """What a notebook's header cell sets up; ``run.device``, ``run.mode``, ``run.seed``."""

    device: torch.device
    mode: str
    seed: int
    threads: int
    generator: torch.Generator

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def budget(self, *, quick, full):
        return quick if self.quick else full

    def __str__(self) -> str:
        return (
            f"torch {torch.__version__} | device: {self.device} | mode: {self.mode} | "
            f"seed: {self.seed} | threads: {self.threads}"
        )


def setup(seed: int = 0, verbose: bool = True) -> Run:
    """The one call in every notebook's header cell: seed, threads, device, mode; prints them."""
    run = Run(
        device=get_device(),
        mode=get_mode(),
        seed=int(seed),
        threads=set_threads(),
        generator=seed_everything(seed),
    )
    if verbose:
        print(run)
    return run
