"""Comparing an answer with the reference: the default elementwise comparison and the ``compare=``
comparators a :class:`~companion_lib.grading.registry.Problem` may name.

``compare(expected, got) -> None | str``: ``None`` when ``got`` passes, else why not. The default
(:func:`compare_values`) raises :class:`Mismatch` with a message that says where and by how much the
answer differs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["at_most", "at_least", "float32_aware", "compare_values", "holds_float32", "Mismatch", "RTOL32", "ATOL32"]


def at_most(margin: float = 0.0) -> Callable:
    """``compare=`` for a result that must not exceed the reference value plus ``margin``
    (a held-out bits/dim, a loss): the answer is one finite number (a float32 one is compared with the
    limit rounded to float32)."""
    return _threshold(+1, float(margin))


def at_least(margin: float = 0.0) -> Callable:
    """``compare=`` for a result that must reach the reference value minus ``margin`` (a bound, an
    accuracy): the answer is one finite number."""
    return _threshold(-1, float(margin))


# A reference is computed in float64; a correct answer computed in float32 differs from it by float32
# round-off (and by how the installed torch rounds it: torch 2.11 and 2.13 differ), which a float64
# tolerance would call wrong: every comparison (compare_values, so every problem) holds a float32
# array of the answer to float32's precision, at least (RTOL32, ATOL32), and when even that fails,
# says that the dtype may be part of the cause.
RTOL32, ATOL32 = 2e-5, 1e-6
_FLOAT32_NOTE = (" Your answer is float32, which carries about 7 significant digits; the inputs are float64: "
                 "compute in their dtype (avoid .float() and float32 constants).")


def holds_float32(x) -> bool:
    """Whether an answer (a tensor, an array, or a tuple/list/dict of them) holds a float32, float16 or
    bfloat16 array."""
    if isinstance(x, torch.Tensor):
        return x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    if isinstance(x, (np.ndarray, np.generic)):
        return x.dtype in (np.float32, np.float16)
    if isinstance(x, (tuple, list)):
        return any(holds_float32(v) for v in x)
    if isinstance(x, dict):
        return any(holds_float32(v) for v in x.values())
    return False


def float32_aware(rtol: float, atol: float, rtol32: float = RTOL32, atol32: float = ATOL32):
    """``compare=``: (rtol, atol) for float64 answers, (rtol32, atol32) for answers holding float32
    (the default comparison, :func:`compare_values`, with a problem's own float32 tolerances)."""

    def compare(expected, got):
        try:
            compare_values(expected, got, rtol, atol, rtol32=rtol32, atol32=atol32)
        except Mismatch as err:
            return str(err)
        return None

    compare.__qualname__ = f"float32_aware(rtol={rtol:g}, atol={atol:g})"
    return compare


def _threshold(sign: int, margin: float) -> Callable:
    def compare(expected, got):
        value = _to_array(got, "")
        if value.ndim != 0:
            return f"expected one number, got shape {value.shape} (use .item() or float(...))"
        value = float(value.reshape(()))
        limit = float(_to_array(expected, "").reshape(())) + sign * margin
        if holds_float32(got):   # the mark itself, handed in as float32, may round past it by an ulp
            limit = float(np.float32(limit))
        if not np.isfinite(value):
            return "the answer is NaN or infinite"
        if sign * (value - limit) > 0:
            word = "at most" if sign > 0 else "at least"
            return f"got {value:.4g}; a passing result is {word} {limit:.4g}"
        return None

    compare.__qualname__ = f"{'at_most' if sign > 0 else 'at_least'}({margin:g})"
    return compare


class Mismatch(Exception):
    pass


def _to_array(x, where: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise Mismatch(f"{where}expected numbers, got {type(x).__name__}") from err
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise Mismatch(f"{where}expected numbers, got {type(x).__name__}"
                        + (f" of dtype {arr.dtype}" if hasattr(arr, "dtype") else ""))
    if np.iscomplexobj(arr):
        raise Mismatch(f"{where}expected real numbers, got complex values")
    return arr.astype(np.float64)


def compare_values(expected, got, rtol: float, atol: float, where: str = "", *,
                   rtol32: float = RTOL32, atol32: float = ATOL32) -> None:
    """Raise Mismatch with a helpful message unless ``got`` matches ``expected``: elementwise within
    (rtol, atol), or within (max(rtol, rtol32), max(atol, atol32)) for an array of the answer that is
    float32 (or float16/bfloat16), whose message then names its dtype."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            raise Mismatch(f"{where}expected a dict with keys {sorted(expected)}, got {type(got).__name__}")
        missing = sorted(set(expected) - set(got))
        if missing:
            raise Mismatch(f"{where}missing key(s) {missing}")
        for key in expected:
            compare_values(expected[key], got[key], rtol, atol, f"{where}[{key!r}] ", rtol32=rtol32, atol32=atol32)
        return
    if isinstance(expected, (tuple, list)) and not _is_numeric_leaf(expected):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else "not a tuple"
            raise Mismatch(f"{where}expected a tuple of {len(expected)} items, got {n}")
        for i, (e, g) in enumerate(zip(expected, got)):
            compare_values(e, g, rtol, atol, f"{where}item {i}: ", rtol32=rtol32, atol32=atol32)
        return
    low = holds_float32(got)
    if low:   # atol=0 (relative everywhere: tails, tiny values) stays relative in float32 too
        rtol, atol = max(rtol, rtol32), (max(atol, atol32) if atol > 0 else 0.0)
    e = _to_array(expected, where)
    g = _to_array(got, where)
    if g.shape != e.shape:
        raise Mismatch(f"{where}expected shape {e.shape}, got {g.shape}")
    if not np.isfinite(g).all():
        raise Mismatch(f"{where}the answer holds NaN or infinite values")
    if not np.allclose(g, e, rtol=rtol, atol=atol):
        err = np.abs(g - e)
        worst = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
        at = f" at index {tuple(int(i) for i in worst)}" if err.ndim else ""
        raise Mismatch(f"{where}values differ from the reference{at} (largest error {err.max():.3g}, "
                        f"tolerance rtol={rtol:g}, atol={atol:g})" + (_FLOAT32_NOTE if low else ""))


def _is_numeric_leaf(x) -> bool:
    """A (nested) list/tuple of plain numbers counts as one array, not as a tuple of answers."""
    try:
        arr = np.asarray(x)
    except Exception:
        return False
    return arr.dtype != object and np.issubdtype(arr.dtype, np.number)
