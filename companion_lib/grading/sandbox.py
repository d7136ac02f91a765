"""The sandbox's side: :func:`respond` runs one sliced answer.

Imported, from a copy of ``companion_lib`` in which the problem's reference and its forbidden names are
stubs that raise ``ForbiddenReference``, by a child of the fork server (``grading/sandbox_server.py``)
once that child is isolated (own mount namespace, another uid). The request (:func:`pack` /
:func:`unpack`: JSON + ``.npz`` bytes, never pickle) holds the problem id, the sliced source (see
``instructor.slicing``) and the grader's test inputs. It runs the source, evaluates ``__answer__`` on
the inputs with the problem's harness (``judge.evaluate``) and returns the outcomes as data. It decides
nothing: the grader judges the outcomes against its own references. Student code cannot reach the
grader's files, processes or the inputs of other problems from here.
"""
from __future__ import annotations

import builtins
import io
import json

import numpy as np

from companion_lib.grading import limits
from companion_lib.grading.transport import decode, encode

MAGIC = b"CGSB1"
MAX_REQUEST_BYTES = limits.MAX_FILE_BYTES
#: The exception class name every stub raises (the grader turns it into "no-credit").
FORBIDDEN = "ForbiddenReference"
#: Outcome kinds the sandbox adds to ``judge.evaluate``'s: the slice itself failed.
SLICE_NAME, SLICE_RAISED = "slice-name", "slice-raised"


def pack(obj) -> bytes:
    """``obj`` (plain data: see ``transport.encode``) as bytes: magic, JSON length, JSON, .npz."""
    arrays: dict = {}
    meta = json.dumps(encode(obj, arrays), allow_nan=True).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return MAGIC + len(meta).to_bytes(8, "big") + meta + buffer.getvalue()


def unpack(data: bytes, cap: int = limits.MAX_FILE_BYTES):
    """The inverse of :func:`pack`, within ``limits`` (size checked before anything is inflated)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"unpack expects bytes, got {type(data).__name__}")
    if len(data) > cap:
        raise limits.LimitError(f"{len(data)} bytes, over the limit of {cap}")
    head = len(MAGIC) + 8
    if len(data) < head or data[:len(MAGIC)] != MAGIC:
        raise limits.LimitError("not a sandbox message")
    n = int.from_bytes(data[len(MAGIC):head], "big")
    if n > len(data) - head:
        raise limits.LimitError("truncated sandbox message")
    return decode(json.loads(data[head:head + n]), limits.load_npz(bytes(data[head + n:])))


def _run(request: dict) -> list:
    from companion_lib import settings
    from companion_lib.grading.judge import error_line, evaluate, is_unsolved
    from companion_lib.grading.registry import PROBLEMS

    for module in request.get("modules", []):  # problems registered outside the package (stubbed copies)
        __import__(str(module))
    problem = PROBLEMS[str(request["pid"])]
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(str(request["source"]), "<the cells defining your answer>", "exec"), namespace)
    except NameError as err:
        return [(SLICE_NAME, str(err))]
    except BaseException as err:  # noqa: BLE001 (student code: report it, whatever it raised)
        if isinstance(err, NotImplementedError):
            return [("unsolved", "")]
        return [(SLICE_RAISED, error_line(err))]
    answer = namespace.get("__answer__")
    if is_unsolved(answer):
        return [("unsolved", "no answer yet (None or ...)")]
    cases = [tuple(c) for c in request.get("cases", [])]
    with settings.cpu_float64():
        return evaluate(problem, answer, cases)


def respond(request: bytes) -> bytes:
    """The packed outcomes of one packed request (``sandbox_server`` calls this in its child)."""
    try:
        outcomes = _run(unpack(request, MAX_REQUEST_BYTES))
    except BaseException as err:  # noqa: BLE001 (e.g. an exception class that cannot even be printed)
        name = getattr(type(err), "__name__", "exception")
        try:
            text = str(err)[:300]
        except BaseException:  # noqa: BLE001
            text = "(not printable)"
        outcomes = [("raised", f"{name if isinstance(name, str) else 'exception'}: {text}")]
    return pack({"outcomes": [[str(k), p] for k, p in outcomes]})
