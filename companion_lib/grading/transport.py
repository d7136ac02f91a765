"""Plain-data encoding between the instructor's grader and its sandboxes (``grading.sandbox``).

The grader's test inputs go into a sandbox, and the outcomes come back, as data only: a JSON skeleton
and arrays (``grading.sandbox.pack``: JSON + ``.npz``, read with ``allow_pickle=False`` within
``limits``); nothing in them is executed, imported or unpickled.

Encoding (``encode``/``decode``): ``None``, bools, ints, floats and strings stay JSON; tensors and
numeric arrays go to the ``.npz`` (a tensor keeps its torch dtype); tuples, lists and dicts with str
or int keys nest. Anything else becomes a placeholder named after its type, which compares as
"expected numbers, got <type>", as it would in the notebook.
"""
from __future__ import annotations

import numpy as np
import torch

MAX_DEPTH = 32
MAX_STRING = 10_000


class _Limit(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# Encoding
def encode(obj, arrays: dict, depth: int = 0):
    """The JSON skeleton of ``obj``; tensors and arrays are added to ``arrays`` (name -> ndarray)."""
    if depth > MAX_DEPTH:
        return {"__opaque__": "nested too deeply"}
    if obj is None or isinstance(obj, (bool, str)):
        return obj if not isinstance(obj, str) else str(obj)[:MAX_STRING]
    if isinstance(obj, int):
        return int(obj) if abs(obj) < 2**63 else float(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, torch.Tensor):
        dtype = str(obj.dtype).removeprefix("torch.")
        try:
            t = obj.detach().cpu()
            if t.layout != torch.strided:
                return {"__opaque__": "Tensor"}
            if t.dtype in (torch.bfloat16, torch.float16):
                t = t.float()
            arr = t.resolve_conj().resolve_neg().numpy().copy()
        except Exception:
            return {"__opaque__": "Tensor"}
        return {"__tensor__": _add(arrays, arr), "dtype": dtype}
    if isinstance(obj, (np.ndarray, np.generic)):
        arr = np.asarray(obj)
        if arr.dtype.kind not in "biufc":
            return {"__opaque__": type(obj).__name__}
        return {"__array__": _add(arrays, np.array(arr)), "scalar": isinstance(obj, np.generic)}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(x, arrays, depth + 1) for x in obj]}
    if isinstance(obj, list):
        return [encode(x, arrays, depth + 1) for x in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in obj):
            return {"__opaque__": type(obj).__name__}
        return {"__dict__": [[k if isinstance(k, int) else str(k), encode(v, arrays, depth + 1)]
                             for k, v in obj.items()]}
    return {"__opaque__": type(obj).__name__}


def _add(arrays: dict, arr: np.ndarray) -> str:
    name = f"a{len(arrays)}"
    arrays[name] = arr
    return name


def decode(skeleton, arrays, depth: int = 0):
    """The inverse of ``encode`` (``arrays``: a mapping name -> ndarray, e.g. an opened ``.npz``)."""
    if depth > MAX_DEPTH + 1:
        raise _Limit("nested too deeply")
    if skeleton is None or isinstance(skeleton, (bool, int, float, str)):
        return skeleton
    if isinstance(skeleton, list):
        return [decode(x, arrays, depth + 1) for x in skeleton]
    if not isinstance(skeleton, dict) or len(skeleton) > 2:
        raise _Limit("unreadable skeleton")
    if "__tensor__" in skeleton:
        arr = np.array(arrays[str(skeleton["__tensor__"])])
        dtype = getattr(torch, str(skeleton.get("dtype", "")), None)
        t = torch.from_numpy(arr)
        return t.to(dtype) if isinstance(dtype, torch.dtype) and dtype.is_floating_point else t
    if "__array__" in skeleton:
        arr = np.array(arrays[str(skeleton["__array__"])])
        return arr[()] if skeleton.get("scalar") else arr
    if "__tuple__" in skeleton:
        return tuple(decode(x, arrays, depth + 1) for x in skeleton["__tuple__"])
    if "__dict__" in skeleton:
        return {(k if isinstance(k, (int, str)) else str(k)): decode(v, arrays, depth + 1)
                for k, v in skeleton["__dict__"]}
    if "__opaque__" in skeleton:
        return _placeholder(str(skeleton["__opaque__"]))
    raise _Limit("unreadable skeleton")


def _placeholder(type_name: str):
    """An empty object whose type carries the original type's name (for the failure message)."""
    name = "".join(c for c in type_name if c.isalnum() or c == "_")[:60] or "object"
    return type(name, (), {"__repr__": lambda self: f"<{name}>"})()
