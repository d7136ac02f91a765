"""Grading one notebook's answers without the student's kernel: the public evaluation API.

:func:`evaluate_submission` reads a notebook as text, slices out for each problem the source that
rebuilds the answer handed to ``check(pid, answer)`` (``slicing``), runs that slice in a fresh
sandbox of the grader's making (``sandboxing``: one fork server per notebook, a fresh child per problem
with a stubbed copy of ``companion_lib``, another uid or a user namespace, the grader's test inputs in
over a pipe, the outputs back as data) and judges the outputs here, in the grader's process, against
references computed here (``verdict``).

Nothing the student's kernel writes or prints is read. Used by ``processes`` (the class grader) and
by the Gradescope autograder.
"""
from __future__ import annotations

from companion_lib import settings
from companion_lib.grading.instructor.sandboxing import SandboxServer, is_forbidden, job_slots, uids
from companion_lib.grading.instructor.slicing import SliceError, slice_answer
from companion_lib.grading.instructor.submissions import code_cells
from companion_lib.grading.instructor.verdict import judge_outcomes
from companion_lib.grading.registry import PROBLEMS
from companion_lib.grading.sandbox import SLICE_NAME, SLICE_RAISED

__all__ = ["evaluate_submission", "evaluate_cells", "grading_cases"]


def grading_cases(pid: str, seed: int) -> list:
    """The grader's test inputs of problem ``pid`` for a notebook's ``seed`` (none for a value)."""
    problem = PROBLEMS[pid]
    if problem.kind != "function":
        return []
    with settings.cpu_float64():
        return problem.cases_for(problem.grading_rng(seed))


def evaluate_submission(notebook_bytes: bytes, problem_ids, seed: int, *, timeout: float = 120.0,
                        uid: int | None = None) -> dict:
    """pid -> {"status": one of ``grading.STATUSES``, "message": str} for one notebook.

    ``notebook_bytes``: the .ipynb file's content; ``problem_ids``: the assignment (registered ids);
    ``seed``: the notebook's seed (``submissions.notebook_seed``) from which each function problem's
    test inputs are drawn (``Problem.grading_rng``); ``timeout``: seconds per sandbox (one problem);
    ``uid``: the unprivileged uid sandboxes run as when the grader is root (default: the sandbox uid of
    this process's own job slot, ``sandboxing.job_slots``, claimed machine-wide, so that two
    evaluations running at once in two processes never share a uid).
    Never raises on a bad notebook: an unreadable one gives "missing" for every problem, a failure of
    the analysis "no-credit" with the reason.
    """
    if not isinstance(notebook_bytes, (bytes, bytearray)):
        raise TypeError(f"notebook_bytes must be bytes, got {type(notebook_bytes).__name__}")
    try:
        cells = code_cells(bytes(notebook_bytes))
    except Exception as err:  # noqa: BLE001 (any unreadable file)
        why = f"the notebook could not be read ({type(err).__name__})"
        return {pid: {"status": "missing", "message": why} for pid in _known(problem_ids)}
    return evaluate_cells(cells, problem_ids, seed, timeout=timeout, uid=uid)


def _known(problem_ids) -> list:
    ids = list(problem_ids)
    unknown = [pid for pid in ids if pid not in PROBLEMS]
    if unknown:
        raise ValueError(f"unknown problem id(s) {unknown}; see python -m companion_lib.grading")
    return ids


def evaluate_cells(cells, problem_ids, seed: int, *, timeout: float = 120.0, uid: int | None = None,
                   server: SandboxServer | None = None) -> dict:
    """:func:`evaluate_submission` on a notebook's code cells (a list of strings, in order).

    ``server``: a running :class:`SandboxServer` to use (its uid and time limit apply; it stays open);
    by default one is started for this notebook and closed after. A server holds nothing of the
    notebooks it served (each problem runs in a fresh child), so one may serve many notebooks."""
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    ids = _known(problem_ids)
    if server is not None:
        return {pid: _grade(cells, pid, int(seed), server) for pid in ids}
    if uid is None:
        uid = uids(job_slots(1)[0])[1]  # this process's slot: not another grader's (slot 0 for all, before)
    with SandboxServer(int(uid), float(timeout)) as own:
        return {pid: _grade(cells, pid, int(seed), own) for pid in ids}


def _grade(cells, pid: str, seed: int, server: SandboxServer) -> dict:
    problem = PROBLEMS[pid]
    try:
        piece = slice_answer(cells, pid)
    except SliceError as err:
        return {"status": "no-credit", "message": str(err)}
    if piece is None:
        return {"status": "missing", "message": f"never handed in with check(\"{pid}\", ...)"}
    try:
        cases = grading_cases(pid, seed)
    except Exception as err:  # noqa: BLE001 (a broken problem must not stop the class's grading)
        return {"status": "missing", "message": f"the grader could not draw this problem's inputs ({err})"}
    outcomes = server.run(pid, piece.source, cases)
    withheld = is_forbidden(outcomes)
    if withheld:
        return {"status": "no-credit", "message": f"the answer calls what the grader withholds ({withheld}); "
                "an answer must be your own code, not a call to the reference"}
    kind, payload = outcomes[0] if outcomes else ("raised", "no outcome")
    if kind == SLICE_NAME:
        return {"status": "no-credit", "message": f"the code defining your answer (read from the notebook, from "
                f"code cell {piece.cell} back) needs a name no earlier cell defines as plain code ({payload})"}
    if kind == SLICE_RAISED:
        return {"status": "failed", "message": f"the cells defining your answer raised {payload}"}
    if kind == "unsolved":
        return {"status": "unsolved", "message": f"{problem.title}: not yet solved "
                + ("(the function raises NotImplementedError)" if not payload else "(None or ... handed in)")}
    return judge_outcomes(problem, cases, outcomes)
