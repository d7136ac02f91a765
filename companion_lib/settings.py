"""Run settings shared by every notebook: device, seed, run mode, threads, the dtype rule.

Imports only ``_checks`` from ``companion_lib`` (the table: ``companion_lib._layers``).

Environment variables (all optional):

``COMPANION_DEVICE``  ``cuda``, ``cuda:1``, ``mps`` or ``cpu``; default: CUDA if available, else the
                      CPU, or MPS when ``COMPANION_MODE=full`` is asked for on a Mac (quick mode's
                      small networks gain nothing from MPS: see README, "Run modes and settings").
``COMPANION_MODE``    ``quick`` (small, real runs; < 60 s a notebook on a 2-core CPU) or ``full``
                      (larger budgets); default ``full`` when the chosen device is CUDA, else ``quick``
                      (so ``COMPANION_DEVICE=cpu`` on a CUDA machine runs quick mode).
``COMPANION_THREADS`` torch CPU threads; default 1 in quick mode (robust and bit-for-bit
                      reproducible when other processes share the cores), torch's default in full.
``COMPANION_NO_FLOAT64`` ``1``: a stand-in for Apple's MPS on any machine: after ``setup()``, every
                      float64 torch operation outside ``cpu_float64()`` raises (see the dtype rule).

The dtype rule (MPS has no float64)
-----------------------------------
* Everything on ``run.device`` (training, sampling, whatever a student runs on a GPU) is float32.
* float64 is for exact and oracle computations, and only on the CPU: such code runs inside
  ``with cpu_float64():`` (or a function decorated ``@cpu_float64()``), which documents the exemption
  and lets the stand-in check it. Exempt by design: the EM of ``mixture`` that must equal
  scikit-learn's, the grader's references, quadratures, and float64 schedules that are cast to the
  data's dtype before they meet the data.
* Outside such blocks a float64 tensor (one a ``cpu_float64`` function returned) may still be read
  out (``.numpy()`` after ``.cpu()``, ``.item()``, ``.tolist()``, printing, indexing, its shape) or
  cast to float32 (``.float()``), as on a Mac, where it sits on the CPU; computing with it there, or
  moving it with ``.to(...)`` without a cast, is what MPS would refuse.

The stand-in (``COMPANION_NO_FLOAT64=1``, or ``with no_float64():``) is a torch function mode: it
checks every torch call. It cannot see where a tensor would live on a Mac (here every tensor is on
the CPU), so it checks the rule instead: a float64 tensor in or out of any call outside
``cpu_float64()`` raises ``TypeError``, as MPS does. Inside ``cpu_float64()`` it checks what a GPU
machine can check: float64 results must be on the CPU (on a CUDA machine, with
``COMPANION_DEVICE=cuda``, that catches float64 sent to the device from inside a block too).
"""
from __future__ import annotations

import contextlib
import os
import random
import threading
from dataclasses import dataclass

import numpy as np
import torch

from companion_lib._checks import check_choice, check_generator, check_int

__all__ = ["MODES", "cpu_float64", "float64_allowed", "NoFloat64Error", "NoFloat64ArithmeticError",
           "no_float64_active", "no_float64", "check_same_device", "get_device", "get_mode", "is_quick",
           "budget", "seed_everything", "set_threads", "Run", "setup"]

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


def _in_cpu_float64() -> bool:
    return getattr(_F64, "depth", 0) > 0


def float64_allowed() -> bool:
    """True inside ``cpu_float64()`` (or when the stand-in is off)."""
    return _in_cpu_float64() or not no_float64_active()


# --------------------------------------------------------------------------- the stand-in
_F64_MESSAGE = ("float64 outside settings.cpu_float64(): MPS has no float64; use float32 on run.device, "
                "or compute exactly on the CPU inside settings.cpu_float64()")

# Calls that only read a tensor out (or select stored values, or take it to the CPU): allowed on a
# float64 tensor anywhere, as on a Mac, where such a tensor lives on the CPU. ``__get__`` covers the
# attributes (.shape, .dtype, .device, .grad, .T, ...); ``unbind`` is what iteration calls.
_READ_OUTS = frozenset({
    "numpy", "item", "tolist", "__repr__", "__str__", "__format__", "__array__", "__len__",
    "__bool__", "__float__", "__int__", "__index__", "__complex__", "__get__", "__getitem__", "unbind",
    "dim", "ndimension", "size", "numel", "nelement", "element_size", "stride", "storage_offset",
    "is_floating_point", "is_complex", "is_contiguous", "data_ptr", "cpu", "detach",
    "__reduce_ex__", "__deepcopy__",
})
# Casts: allowed with a float64 input when the result is not float64 (``.float()``, ``.to(torch.float32)``).
_CASTS = frozenset({"float", "half", "bfloat16", "to", "type", "type_as", "long", "int", "short",
                    "bool", "byte", "char"})


# Calls Python's operators reach (``a + b``, ``a < b``, ``a += b``, ``2 ** a``): torch turns a TypeError
# raised in them into NotImplemented, which would hide the message; they raise ArithmeticError.
_OPERATORS = frozenset(
    [n for base in ("add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "pow",
                    "matmul", "and", "or", "xor", "lshift", "rshift", "bitwise_and", "bitwise_or",
                    "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift")
     for n in (base, base + "_", f"__{base}__", f"__r{base}__", f"__i{base}__")]
    + ["lt", "le", "gt", "ge", "eq", "ne", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__",
       "__truediv__", "__rtruediv__", "__itruediv__", "__floordiv__", "__rfloordiv__", "__ifloordiv__",
       "__mod__", "__rmod__", "__imod__"])


class NoFloat64Error(TypeError):
    """A float64 torch call outside ``cpu_float64()`` under the stand-in (MPS raises TypeError too)."""


class NoFloat64ArithmeticError(ArithmeticError):
    """The same, raised from Python operators (``+``, ``<``, ...), where a TypeError would be lost."""


def _violation(name: str, what: str):
    cls = NoFloat64ArithmeticError if name in _OPERATORS else NoFloat64Error
    return cls(f"{_F64_MESSAGE} (torch.{name} {what} float64)")


def _any_f64(obj, depth: int = 0) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.dtype is torch.float64
    if obj is torch.float64:
        return True
    if depth < 2 and isinstance(obj, (list, tuple)):
        return any(_any_f64(o, depth + 1) for o in obj)
    if depth < 2 and isinstance(obj, dict):
        return any(_any_f64(o, depth + 1) for o in obj.values())
    return False


def _f64_off_cpu(obj, depth: int = 0):
    """The device of a float64 tensor in ``obj`` that is not on the CPU, else None."""
    if isinstance(obj, torch.Tensor):
        return obj.device if obj.dtype is torch.float64 and obj.device.type != "cpu" else None
    if depth < 2 and isinstance(obj, (list, tuple)):
        for o in obj:
            dev = _f64_off_cpu(o, depth + 1)
            if dev is not None:
                return dev
    return None


class _NoFloat64Mode(torch.overrides.TorchFunctionMode):
    """Raise ``TypeError`` on float64 torch calls outside ``cpu_float64()`` (see the module docstring)."""

    def __enter__(self):
        out = super().__enter__()
        _F64.modes = getattr(_F64, "modes", 0) + 1
        return out

    def __exit__(self, *exc):
        _F64.modes -= 1
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if _in_cpu_float64():
            out = func(*args, **kwargs)
            dev = _f64_off_cpu(out)
            if dev is not None:
                cls = NoFloat64ArithmeticError if name in _OPERATORS else NoFloat64Error
                raise cls(f"float64 on {dev} inside settings.cpu_float64() (torch.{name}): "
                          "MPS has no float64; keep exact float64 work on the CPU")
            return out
        if name in _READ_OUTS:
            return func(*args, **kwargs)
        if name not in _CASTS and (_any_f64(args) or _any_f64(kwargs)):
            raise _violation(name, "got")
        out = func(*args, **kwargs)
        if _any_f64(out):
            raise _violation(name, "made")
        return out


_GLOBAL_MODE: _NoFloat64Mode | None = None


def no_float64_active() -> bool:
    """True when the no-float64 stand-in checks this thread's torch calls."""
    return getattr(_F64, "modes", 0) > 0


@contextlib.contextmanager
def no_float64():
    """Run a block under the no-float64 stand-in (what ``COMPANION_NO_FLOAT64=1`` turns on in
    ``setup()``): float64 torch calls outside ``cpu_float64()`` raise ``TypeError``, as on MPS."""
    with _NoFloat64Mode():
        yield


def _enable_no_float64() -> None:
    """Turn the stand-in on for the rest of this thread (``setup()`` with ``COMPANION_NO_FLOAT64=1``)."""
    global _GLOBAL_MODE
    if not no_float64_active():
        _GLOBAL_MODE = _NoFloat64Mode()
        _GLOBAL_MODE.__enter__()


def _env_flag(name: str, on: str = "on", off: str = "off") -> bool:
    """An on/off environment variable: unset, ``0``, ``false``, ``no`` → False; ``1``, ``true``,
    ``yes`` → True (any case); anything else raises ``ValueError`` naming the variable, with ``on``
    and ``off`` saying what 1 and 0 mean."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name}={value!r}; expected 1 ({on}) or 0 ({off})")


def _no_float64_requested() -> bool:
    return _env_flag("COMPANION_NO_FLOAT64")


def check_same_device(model: torch.nn.Module, *tensors, names=None) -> torch.device:
    """Raise ``ValueError`` unless every tensor is on ``model``'s device; returns that device.

    ``tensors`` may be tensors or tuples/lists of tensors (a batch ``(x, y)``); ``names`` optionally
    names them in the message. A model without parameters or buffers accepts any device.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    if first is None:
        return None
    device = first.device
    names = list(names) if names is not None else [f"input {i}" for i in range(len(tensors))]
    for name, obj in zip(names, tensors):
        parts = obj if isinstance(obj, (tuple, list)) else (obj,)
        for j, t in enumerate(parts):
            if isinstance(t, torch.Tensor) and t.device != device:
                label = name if len(parts) == 1 else f"{name}[{j}]"
                raise ValueError(f"the model is on {device} but {label} is on {t.device}; move them "
                                 f"to one device first (e.g. .to(run.device))")
    return device


def get_device() -> torch.device:
    """The device notebooks compute on.

    ``COMPANION_DEVICE`` if set; else CUDA if available; else MPS if available and
    ``COMPANION_MODE=full`` was asked for; else the CPU (quick mode's small networks run at least as
    fast on a Mac's CPU as on MPS, where every small kernel pays a launch; see README).
    """
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
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"COMPANION_DEVICE={requested!r}; expected 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available() and _requested_mode() == "full":
        return torch.device("mps")
    return torch.device("cpu")


def _requested_mode() -> str | None:
    mode = os.environ.get("COMPANION_MODE", "").strip().lower()
    if not mode:
        return None
    if mode not in MODES:
        raise ValueError(f"COMPANION_MODE={mode!r}; expected one of {MODES}")
    return mode


def get_mode() -> str:
    """``'quick'`` or ``'full'``: ``COMPANION_MODE``, by default ``full`` iff the device is CUDA."""
    mode = _requested_mode()
    if mode is None:
        return "full" if get_device().type == "cuda" else "quick"
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

    def __post_init__(self):
        if not isinstance(self.device, torch.device):
            raise TypeError(f"device must be a torch.device (e.g. settings.get_device()), got {self.device!r}")
        check_choice(self.mode, "mode", MODES)
        check_int(self.seed, "seed", low=0)
        check_int(self.threads, "threads", low=1)
        check_generator(self.generator, "generator")
        if self.generator is None:
            raise TypeError("generator must be a torch.Generator (settings.seed_everything returns one), got None")

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


#: Measured full-mode times of the lessons, shipped with the package (generated by ``tools/colab.py``
#: from ``results/gpu_check.json``, the GPU run's results): ``{"notebooks": {name: null | {"seconds",
#: "device"}}}``, one entry per lesson in ``chapters/``.
_FULL_MODE_TIMES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "datasets", "full_mode_times.json")
_QUICK_HINT = ("for quick mode instead: os.environ['COMPANION_MODE'] = 'quick' (import os), then run this cell "
               "again; or on Colab: Runtime > Change runtime type > CPU")


def _full_mode_times() -> dict:
    import json

    with open(_FULL_MODE_TIMES, encoding="utf-8") as f:
        return json.load(f)["notebooks"]


def _full_mode_note(notebook: str | None) -> str:
    """The line ``setup`` prints in full mode: the lesson's measured full-mode time (or "not
    measured") and how to choose quick mode."""
    entry = _full_mode_times().get(notebook) if notebook is not None else None
    if entry:
        took = f"{notebook} took {entry['seconds']:.0f} s in full mode on {entry['device']} when measured"
    else:
        took = f"full-mode time of {notebook or 'this notebook'}: not measured"
    return f"full mode (larger budgets than quick mode's): {took}; {_QUICK_HINT}"


def setup(seed: int = 0, verbose: bool = True, notebook: str | None = None) -> Run:
    """The one call in every notebook's header cell: seed, threads, device, mode; prints them.

    ``notebook``: the lesson's name (``"14_1_pearson_crabs"``, one of ``chapters/``; ``ValueError``
    otherwise). In full mode (by default on a CUDA GPU) ``setup`` prints a second line: that lesson's
    measured full-mode time, or "not measured", and how to choose quick mode instead.

    With ``COMPANION_NO_FLOAT64=1`` it also turns the no-float64 stand-in on for the rest of the
    session (kernel or process): see the dtype rule in this module's docstring.
    """
    if notebook is not None:
        if not isinstance(notebook, str):
            raise TypeError(f"notebook must be a lesson's name such as '14_1_pearson_crabs', got {notebook!r}")
        known = _full_mode_times()
        if notebook not in known:
            raise ValueError(f"notebook={notebook!r} is not a lesson; expected one of {sorted(known)}")
    run = Run(
        device=get_device(),
        mode=get_mode(),
        seed=int(seed),
        threads=set_threads(),
        generator=seed_everything(seed),
    )
    if _no_float64_requested():
        _enable_no_float64()
    if verbose:
        print(run)
        if run.mode == "full":
            print(_full_mode_note(notebook))
    return run
