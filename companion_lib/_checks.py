"""Shared input validation: bad input becomes a ``ValueError`` (a wrong value or shape) or a
``TypeError`` (a wrong kind of object) whose message names the argument and says what was expected.
Every module validates through these helpers, so bad input fails the same way everywhere.

Finiteness policy: a tensor that may live on an accelerator (a batch in a training or sampling loop)
is checked for NaN/inf only when it is on the CPU (``check_finite_on_cpu``): on CUDA or MPS the check
would read a value back, one host synchronisation per step. Values the caller passes once (parameters,
arrays, Python numbers) are always checked (``as_tensor``, ``as_array``, ``check_float``).

Imports nothing else from ``companion_lib`` (the table: ``companion_lib._layers``).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def as_tensor(x, name: str = "x", *, ndim=None, dtype=torch.float64, device=None,
              finite: bool = True, min_rows: int | None = None, shape=None,
              nonempty: bool = False, shape_of: str | None = None) -> torch.Tensor:
    """Convert NumPy/list/tensor input to a floating tensor and validate it.

    ndim: required number of dimensions (int or tuple of allowed ints).
    shape: expected shape, ``None`` entries are free, e.g. ``(None, 2)``; ``shape_of`` names the
    argument it comes from (the message then says "to match x").
    dtype: target dtype; ``None`` keeps a floating tensor's dtype (ints become float32).
    nonempty: at least one value (for elementwise maps, which take any shape, 0-D included).
    Raises ``ValueError`` naming ``name`` and what was expected.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as err:  # ragged lists and the like
            raise ValueError(f"{name} must be array-like of numbers, got {_describe(x)}") from err
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric, got {_describe(x)}")
        t = torch.from_numpy(np.array(arr, copy=True, order="C"))  # own, writable memory
    if t.is_complex():
        raise ValueError(f"{name} must be real, got {_describe(x)}")
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
    t = t.to(dtype=dtype, device=device if device is not None else t.device)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(f"{n}-D" for n in allowed)
            raise ValueError(f"{name} must be {want}, got shape {tuple(t.shape)}")
    if shape is not None:
        ok = t.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            of = f" (to match {shape_of})" if shape_of else ""
            raise ValueError(f"{name} must have shape {want}{of}, got {tuple(t.shape)}")
    if min_rows is not None and (t.ndim == 0 or t.shape[0] < min_rows):
        rows = 0 if t.ndim == 0 else t.shape[0]
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {rows}")
    if nonempty and not t.numel():
        raise ValueError(f"{name} must hold at least one value, got shape {tuple(t.shape)}")
    if finite and not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite; it holds {bad} NaN or infinite value(s)")
    return t


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """A Python/NumPy integer in [low, high]; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_float(value, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the given (closed unless ``*_open``) interval; returns ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_weights(weights, name: str = "weights", *, K: int | None = None, dtype=None, device=None,
                  positive: bool = False, atol: float = 1e-6) -> torch.Tensor:
    """Mixture weights: a non-empty 1-D vector (of length ``K`` if given) of non-negative numbers
    (``positive=True``: > 0) that sum to 1 within ``atol``. Never renormalised silently: a vector that
    does not sum to 1 is a bug upstream. Returns the tensor (``dtype``/``device`` as in ``as_tensor``)."""
    w = as_tensor(weights, name, ndim=1, min_rows=1, dtype=dtype, device=device,
                  shape=(K,) if K is not None else None)
    want = f"{name} must be {'> 0 (positive)' if positive else '>= 0'} and sum to 1 (mixture weights"
    if (w <= 0).any() if positive else (w < 0).any():
        raise ValueError(f"{want}), got min {float(w.min()):.3g}")
    total = float(w.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{want}; never renormalised for you), got sum {total:.6g}")
    return w


def check_labels(labels, name: str = "labels", *, n: int | None = None, n_classes: int | None = None,
                 device=None) -> torch.Tensor:
    """Class labels: a 1-D array or tensor of non-negative integers (floats that are whole numbers are
    accepted), of length ``n`` and below ``n_classes`` if given. Returns a ``torch.long`` tensor."""
    if isinstance(labels, torch.Tensor):
        t = labels.detach()
    else:
        try:
            arr = np.asarray(labels)
        except Exception as err:
            raise ValueError(f"{name} must be a 1-D array of integer class labels, got {_describe(labels)}") from err
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
            raise ValueError(f"{name} must hold integer class labels, got {_describe(labels)}")
        t = torch.from_numpy(np.array(arr, copy=True))
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold integer class labels, got {_describe(labels)}")
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per row), got shape {tuple(t.shape)}")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one label per row), got {tuple(t.shape)}")
    if t.is_floating_point():
        if not torch.isfinite(t).all() or (t != t.round()).any():
            raise ValueError(f"{name} must hold whole numbers (class labels 0, 1, ...), got non-integer values")
    if t.numel() and (t < 0).any():
        raise ValueError(f"{name} must be >= 0 (class labels 0, 1, ...), got min {t.min().item():g}")
    t = t.long()
    if n_classes is not None and t.numel() and int(t.max()) >= n_classes:
        raise ValueError(f"{name} must be < {n_classes} (the number of classes), got max {int(t.max())}")
    return t.to(device) if device is not None else t


def check_generator(generator, name: str = "generator"):
    """``None`` or a ``torch.Generator`` (the companion draws noise on a CPU generator)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) "
                        f"or None, got a {type(generator).__name__}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU torch.Generator (the companion draws noise on the CPU, "
                         f"reproducible on every device), got one on {generator.device}")
    return generator


def check_values_in(t: torch.Tensor, low: int, high: int | None, expected: str) -> None:
    """Raise ``ValueError(expected + ", got values in [min, max]")`` unless every value of the integer
    tensor t lies in low..high (``high=None``: no upper bound).

    On the CPU the check reads the values. On an accelerator reading them back would cost a host
    synchronisation per call (one per step of a training or sampling loop), so there it is a
    device-side assertion (``torch._assert_async``, message ``expected``) that stops the run without
    waiting for the device; a backend without such assertions leaves the values unchecked.
    """
    if not t.numel():
        return
    if t.device.type == "cpu":
        lo, hi = int(t.min()), int(t.max())
        if lo < low or (high is not None and hi > high):
            raise ValueError(f"{expected}, got values in [{lo}, {hi}]")
        return
    ok = (t >= low) if high is None else (t >= low) & (t <= high)
    try:
        torch._assert_async(ok.all(), expected)
    except NotImplementedError:
        pass


def check_steps(t, name: str, low: int, high: int | None, expected: str, *, what: str = "integer steps",
                length: int | None = None, nonempty: bool = False) -> torch.Tensor:
    """Integer steps (or, with ``what``, other integer codes such as class labels): a 1-D integer
    tensor (batch,) (of ``length`` if given; ``nonempty``: at least one) with values in low..high
    (``check_values_in``: no host synchronisation off the CPU). Returns it detached, as ``torch.long``,
    on its device."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor of shape (batch,), got {type(t).__name__}")
    if t.ndim != 1 or (length is not None and t.shape[0] != length):
        want = "(batch,)" if length is None else f"({length},) (one per row)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if nonempty and not t.shape[0]:
        raise ValueError(f"{name} must hold at least one value, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold {what} (torch.long), got dtype {t.dtype}")
    t = t.detach().long()
    check_values_in(t, low, high, expected)
    return t


def check_bool(value, name: str) -> bool:
    """A Python or NumPy bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_array(x, name: str = "x", *, ndim=None, shape=None, min_rows: int | None = None,
             finite: bool = True, shape_of: str | None = None) -> np.ndarray:
    """NumPy twin of ``as_tensor`` for code that draws or tabulates: a tensor (any device and float
    dtype; detached, taken to the CPU) or array-like → a float64 NumPy array, validated the same way."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.is_complex():
            raise ValueError(f"{name} must be real, got {_describe(x)}")
        x = (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise ValueError(f"{name} must be array-like of numbers, got {_describe(x)}") from err
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got {_describe(x)}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got {_describe(x)}")
    arr = arr.astype(np.float64)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must be {' or '.join(f'{n}-D' for n in allowed)}, got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or not all(s is None or s == d for s, d in zip(shape, arr.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            of = f" (to match {shape_of})" if shape_of else ""
            raise ValueError(f"{name} must have shape {want}{of}, got {arr.shape}")
    if min_rows is not None and (arr.ndim == 0 or arr.shape[0] < min_rows):
        raise ValueError(f"{name} needs at least {min_rows} rows, got {0 if arr.ndim == 0 else arr.shape[0]}")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    return arr


def as_component_values(x, name: str, K: int) -> np.ndarray:
    """One number per mixture component of a 1-D mixture: shape (K,), (K, 1) or (K, 1, 1) (the shapes
    1-D means, variances and covariances come in), finite; returns a float64 NumPy array (K,)."""
    arr = as_array(x, name, ndim=(1, 2, 3))
    if arr.shape[0] != K or arr.size != K:
        raise ValueError(f"{name} must have shape ({K},) (or ({K}, 1[, 1])): K values, one per entry of "
                         f"weights, got {arr.shape}")
    return arr.reshape(K)


def check_axes(ax, name: str = "ax", *, count: int | None = None):
    """``None`` or a Matplotlib Axes (``count`` given: ``None`` or a sequence of ``count`` Axes, e.g. the
    array ``plt.subplots(1, count)`` returns). Returns it unchanged (a sequence as a flat list)."""
    if ax is None:
        return None
    from matplotlib.axes import Axes

    if count is None:
        if not isinstance(ax, Axes):
            raise TypeError(f"{name} must be a Matplotlib Axes (e.g. from plt.subplots()) or None, got {_describe(ax)}")
        return ax
    items = list(np.ravel(np.asarray(ax, dtype=object))) if not isinstance(ax, Axes) else [ax]
    if len(items) != count or not all(isinstance(a, Axes) for a in items):
        raise TypeError(f"{name} must be {count} Matplotlib Axes (e.g. plt.subplots(1, {count})[1]) or None, "
                        f"got {_describe(ax)}")
    return items


def check_callable(fn, name: str, expected: str):
    """A callable; ``expected`` says what it should map (e.g. "z (m, 2) to images (m, 64)")."""
    if not callable(fn):
        raise TypeError(f"{name} must be a function mapping {expected}, got {_describe(fn)}")
    return fn


def check_text(value, name: str, *, optional: bool = True):
    """A string (or ``None`` where ``optional``), e.g. a title or an axis label."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string{' or None' if optional else ''}, got {_describe(value)}")
    return value


def check_finite_on_cpu(t: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if the floating tensor t holds NaN or inf, but only on the CPU (the
    finiteness policy above: no host synchronisation per step on CUDA/MPS). Returns t."""
    if t.device.type == "cpu" and t.is_floating_point() and not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite; it holds {int((~torch.isfinite(t)).sum())} NaN or "
                         "infinite value(s)")
    return t


def check_batch(x, name: str, dim: int | None = None, *, min_rows: int = 1,
                any_batch_shape: bool = False) -> torch.Tensor:
    """A batch of vectors: a floating torch.Tensor of shape (batch, dim) (``dim=None``: any width;
    ``any_batch_shape``: (..., dim), any leading shape) with at least ``min_rows`` rows (vectors),
    finite where that costs no host synchronisation (``check_finite_on_cpu``). Returns it unchanged
    (same dtype and device)."""
    want = f"({'...' if any_batch_shape else 'batch'}, {dim if dim is not None else 'dim'})"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {want}, got {_describe(x)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float32, or float64 on the CPU), got {x.dtype}")
    if (x.ndim < 1 if any_batch_shape else x.ndim != 2) or (dim is not None and x.shape[-1] != dim):
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    rows = x.numel() // max(x.shape[-1], 1)
    if rows < min_rows or not x.shape[-1]:
        raise ValueError(f"{name} needs at least {min_rows} non-empty row(s), got shape {tuple(x.shape)}")
    return check_finite_on_cpu(x, name)


def check_model_input(model: torch.nn.Module, x: torch.Tensor, name: str, what: str = "the model") -> torch.Tensor:
    """x must sit on ``model``'s device and have its dtype (a model without parameters or buffers
    accepts any). Reads no value (no host synchronisation). Returns x."""
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    if p is None:
        return x
    if x.device != p.device:
        raise ValueError(f"{what} is on {p.device} but {name} is on {x.device}; move one of them "
                         "(e.g. x.to(run.device))")
    if x.dtype != p.dtype:
        raise TypeError(f"{what} is {p.dtype} but {name} is {x.dtype}; cast one of them "
                        "(model.double() for float64 on the CPU, or x.float())")
    return x
