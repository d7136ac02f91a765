"""Tolerances that fit an answer's own precision (shared by the problem files, not a problem set).

A reference is computed in float64; a correct answer computed in float32 differs from it by float32
round-off, which a float64 tolerance would call wrong. ``float32_aware(rtol, atol)`` is a ``compare=``
for function problems: float64 answers are held to (rtol, atol); an answer that holds float32 numbers
is held to float32's precision instead (``rtol32``, ``atol32``), and when even that fails the message
says that the dtype may be part of the cause.
"""
from __future__ import annotations

import numpy as np
import torch

from companion_lib.grading import _compare, _Mismatch


def _has_float32(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    if isinstance(x, np.ndarray):
        return x.dtype in (np.float32, np.float16)
    if isinstance(x, (tuple, list)):
        return any(_has_float32(v) for v in x)
    if isinstance(x, dict):
        return any(_has_float32(v) for v in x.values())
    return False


def float32_aware(rtol: float, atol: float, rtol32: float = 2e-5, atol32: float = 1e-6):
    """``compare=``: (rtol, atol) for float64 answers, (rtol32, atol32) for answers holding float32."""

    def compare(expected, got):
        low = _has_float32(got)
        try:
            _compare(expected, got, rtol32 if low else rtol, atol32 if low else atol)
        except _Mismatch as err:
            if low:
                return (f"{err} Your answer is float32, which carries about 7 significant digits; the "
                        "inputs are float64: compute in their dtype (avoid .float() and float32 constants).")
            return str(err)
        return None

    compare.__qualname__ = f"float32_aware(rtol={rtol:g}, atol={atol:g})"
    return compare
