"""Evaluating an answer (in the student's process) and judging the outcomes (in any process).

:func:`evaluate` runs an answer on a problem's test inputs and records one outcome per input: a pair
(kind, payload): ("ok", output), ("raised", "ValueError: ..."), ("unsolved", "") or
("invalid", "why the answer cannot be used"). A value problem has one outcome; a function problem one
per test case, stopping at the first that is not "ok". :func:`judge` decides a grade from outcomes
against references computed in the calling process (the instructor's grader calls it on outcomes
read back as plain data).
"""
from __future__ import annotations

import traceback

import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading.compare import Mismatch, compare_values
from companion_lib.grading.registry import Problem

__all__ = ["STATUSES", "evaluate", "judge", "is_unsolved", "error_line", "instructor_status"]

#: Every per-problem status a grade can have (the instructor's CSV uses exactly these).
#: "self-reported": a value only the student can produce (``Problem.self_reported``), never credit.
STATUSES = ("passed", "failed", "unsolved", "missing", "no-credit", "self-reported")


def instructor_status(problem: Problem, status: str, message: str) -> tuple[str, str]:
    """The instructor's status for a judged answer: a self-reported value (a training outcome the
    grader cannot verify: the data ship with the package) is never credit, whatever it is."""
    if problem.self_reported and status in ("passed", "failed"):
        return "self-reported", f"{message} (self-reported: the grader cannot verify it; no credit)"
    return status, message


def _compare_with(problem: Problem, expected, got, where: str) -> None:
    if problem.compare is None:
        compare_values(expected, got, problem.rtol, problem.atol, where)
        return
    message = problem.compare(expected, got)
    if message:
        raise Mismatch(f"{where}{message}")


def _clone(x):
    """A private copy of test inputs (tensors, arrays, and tuples/lists/dicts of them)."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        return tuple(_clone(a) for a in x)
    if isinstance(x, list):
        return [_clone(a) for a in x]
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


def is_unsolved(answer) -> bool:
    """An exercise not yet attempted: ``None`` or ``...`` handed in."""
    return answer is None or answer is Ellipsis


def error_line(err: BaseException) -> str:
    """The last line of ``err``'s traceback (``"ValueError: ..."``), for a failure message."""
    return traceback.format_exception_only(type(err), err)[-1].strip()


@settings.cpu_float64()
def evaluate(problem: Problem, answer, cases) -> list:
    """The outcomes of ``answer`` on ``cases`` (see the module docstring); never raises."""
    if problem.kind == "value":
        if callable(answer) and not isinstance(answer, (torch.Tensor, np.ndarray)):
            return [("invalid", "expected a value (a number or an array), got a function; call it first")]
        return [("ok", answer)]
    if not callable(answer):
        return [("invalid", f"expected a function, got {type(answer).__name__}")]
    outcomes = []
    for args in cases:
        try:
            got = problem.run(answer, _clone(tuple(args)))
        except NotImplementedError:
            outcomes.append(("unsolved", ""))
            break
        except Exception as err:  # the student's code failed: report it, do not raise
            outcomes.append(("raised", error_line(err)))
            break
        outcomes.append(("ok", got))
    return outcomes


@settings.cpu_float64()
def judge(problem: Problem, cases, outcomes, expected_value=None) -> tuple[str, str]:
    """Decide ``(status, message)`` from an answer's outcomes on ``cases`` (see :func:`evaluate`).

    The references are computed here, in the calling process; for a value problem
    ``expected_value`` may carry ``problem.reference()`` computed beforehand.
    """
    try:
        if not outcomes:
            raise Mismatch("the answer was not evaluated")
        if problem.kind == "value":
            kind, got = outcomes[0]
            if kind != "ok":
                raise Mismatch(str(got))
            impossible = problem.impossible(got)
            if impossible:
                raise Mismatch(impossible)
            expected = problem.reference() if expected_value is None else expected_value
            _compare_with(problem, expected, got, "")
        else:
            for i, (args, (kind, got)) in enumerate(zip(cases, outcomes)):
                if kind == "unsolved":
                    return "unsolved", f"{problem.title}: the function still raises NotImplementedError."
                if kind == "invalid":
                    raise Mismatch(str(got))
                if kind == "raised":
                    raise Mismatch(f"on test case {i + 1} your function raised {got}")
                if kind != "ok":
                    raise Mismatch(f"test case {i + 1}: unreadable outcome")
                _compare_with(problem, problem.run(problem.reference, _clone(tuple(args))), got,
                              f"test case {i + 1}: ")
            if len(outcomes) < len(cases):
                raise Mismatch(f"the answer was evaluated on {len(outcomes)} of {len(cases)} test cases")
    except Mismatch as err:
        return "failed", str(err)
    except Exception as err:  # anything else odd about the answer: fail, never raise
        return "failed", f"could not grade this answer ({error_line(err)})"
    return "passed", f"{problem.title}: matches the reference."
