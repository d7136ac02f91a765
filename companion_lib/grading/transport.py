"""Plain-data transport between a student's kernel and the instructor's grader.

The grader writes each notebook's test inputs (``write_inputs``); inside the kernel, ``check`` calls
``export_answer``, which evaluates the answer on those inputs and writes the outcomes at once, one
file pair per ``check`` call (``NNNNNN.json`` + ``NNNNNN.npz``, written under a temporary name and
renamed). The grader reads them back with ``read_exports`` as data only: JSON and ``numpy.load``
with ``allow_pickle=False``; nothing in them is executed, imported or unpickled.

Encoding (``encode``/``decode``): ``None``, bools, ints, floats and strings stay JSON; tensors and
numeric arrays go to the ``.npz`` (a tensor keeps its torch dtype); tuples, lists and dicts with str
or int keys nest. Anything else becomes a placeholder named after its type, which compares as
"expected numbers, got <type>", as it would in the notebook.
"""
from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading import limits
from companion_lib.grading.judge import evaluate, is_unsolved

MAX_DEPTH = 32
MAX_STRING = 10_000
MAX_EXPORTS = 2000

_INPUTS: dict | None = None


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


# --------------------------------------------------------------------------------------------------
# Files (written atomically: a temporary name in the same folder, then os.replace)
def _write_pair(stem: Path, meta: dict, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp_npz, tmp_json = stem.with_name(stem.name + ".npz.tmp"), stem.with_name(stem.name + ".json.tmp")
    tmp_npz.write_bytes(buffer.getvalue())
    os.replace(tmp_npz, stem.with_suffix(".npz"))
    tmp_json.write_text(json.dumps(meta, allow_nan=True))
    os.replace(tmp_json, stem.with_suffix(".json"))  # the .json appears last: a pair is complete


def _read_pair(stem: Path, budget: limits.Budget | None = None) -> tuple[dict, dict]:
    """A pair read within ``limits`` (regular files, one link, sizes checked before inflating)."""
    files = [stem.with_suffix(".json"), stem.with_suffix(".npz")]
    try:
        data = [limits.read_bytes(f) for f in files]
        if sum(map(len, data)) > limits.MAX_FILE_BYTES:
            raise limits.LimitError(f"{stem.name}: over the limit of {limits.MAX_FILE_BYTES} bytes")
        if budget is not None:
            budget.take(sum(map(len, data)), stem.name)
        meta = json.loads(data[0])
        arrays = limits.load_npz(data[1])
    except limits.LimitError as err:
        raise _Limit(str(err)) from err
    return meta, arrays


def write_inputs(stem, cases_by_problem: dict) -> None:
    """The grader's side: every problem's test inputs (pid -> list of tuples) for one notebook."""
    arrays: dict = {}
    meta = {"problems": {pid: encode(list(cases), arrays) for pid, cases in cases_by_problem.items()}}
    _write_pair(Path(stem), meta, arrays)


def read_inputs(stem) -> dict:
    """pid -> list of input tuples, as ``write_inputs`` wrote them."""
    meta, arrays = _read_pair(Path(stem))
    return {pid: [tuple(c) for c in decode(skel, arrays)] for pid, skel in meta["problems"].items()}


# --------------------------------------------------------------------------------------------------
# The kernel's side
def _describe(answer, problem) -> dict:
    inner = answer
    for attr in ("func", "__func__", "__wrapped__"):  # functools.partial, bound methods, decorators
        inner = getattr(inner, attr, inner)
    module = getattr(inner, "__module__", None) or type(inner).__module__ or ""
    reference = problem.reference
    return {
        "type": type(answer).__name__,
        "name": str(getattr(answer, "__name__", "") or ""),
        "module": str(module),
        "library": bool(answer is reference or inner is reference
                        or str(module).startswith("companion_lib")),
    }


@settings.cpu_float64()  # the grader's inputs are CPU oracle data, often float64
def export_answer(problem, answer) -> None:
    """Called by ``check`` under the grader: evaluate ``answer`` on the grader's inputs, write it."""
    global _INPUTS
    if _INPUTS is None:
        _INPUTS = read_inputs(os.environ["COMPANION_GRADE_INPUTS"])
    folder = Path(os.environ["COMPANION_GRADE_EXPORT"])
    if problem.kind == "function" and problem.id not in _INPUTS:
        return  # not part of the graded assignment
    cases = _INPUTS.get(problem.id, [])
    if is_unsolved(answer):
        outcomes = [("unsolved", "no answer yet (None or ...)")]
    else:
        outcomes = evaluate(problem, answer, cases)
    arrays: dict = {}
    try:
        cell = int(get_ipython().execution_count)  # noqa: F821 (defined in IPython kernels)
    except Exception:
        cell = -1
    meta = {"problem": problem.id, "cell": cell,
            "answer": _describe(answer, problem) if problem.kind == "function" else {},
            "outcomes": encode([[kind, payload] for kind, payload in outcomes], arrays)}
    seq = len(list(folder.glob("*.json")))
    _write_pair(folder / f"{seq:06d}", meta, arrays)


# --------------------------------------------------------------------------------------------------
# The grader's side
@settings.cpu_float64()
def read_exports(folder) -> tuple[dict, list]:
    """The last export of each problem in ``folder``: pid -> {"cell", "answer", "outcomes"}, and a
    list of notes about files that could not be read (they count as not handed in)."""
    folder = Path(folder)
    latest: dict = {}
    notes: list = []
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return latest, notes
    if not stat.S_ISDIR(st.st_mode):
        return latest, [f"the answers folder was replaced by a {'link' if stat.S_ISLNK(st.st_mode) else 'file'}"]
    stems = sorted(p.with_suffix("") for p in folder.glob("[0-9]*.json"))
    if len(stems) > MAX_EXPORTS:
        notes.append(f"{len(stems)} answers exported; only the first {MAX_EXPORTS} read")
        stems = stems[:MAX_EXPORTS]
    budget = limits.Budget()
    for stem in stems:
        try:
            meta, arrays = _read_pair(stem, budget)
            pid = str(meta["problem"])
            outcomes = [(str(kind), payload) for kind, payload in decode(meta["outcomes"], arrays)]
            answer = meta.get("answer") or {}
            latest[pid] = {"cell": int(meta.get("cell", -1)), "outcomes": outcomes,
                           "answer": {k: answer.get(k) for k in ("type", "name", "module", "library")}}
        except _Limit as err:  # refused by a limit: say which
            notes.append(f"{stem.name}: refused ({err})")
        except Exception as err:  # a damaged or forged file: note it and move on
            notes.append(f"{stem.name}: unreadable ({type(err).__name__})")
    return latest, notes
