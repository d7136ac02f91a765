"""The autograder students meet in every notebook: ``check(problem_id, answer)``.

* ``PROBLEMS`` maps a problem id (``"14.1.e_step"``) to its :class:`Problem`: section, title,
  statement, reference, tolerances, hint, and at least three known-wrong answers (the tests check
  that the right answer passes and each wrong one fails).
* ``check`` never raises on a malformed answer (wrong type or shape, NaN, a function that raises):
  the result fails and says what was expected. An unsolved exercise (``None``, ``...`` or a function
  raising ``NotImplementedError``) reports "not yet solved".
* ``result.or_reference()`` gives the student's answer when it passed, else the reference, so a
  lesson goes on either way.

Problems are defined in ``companion_lib/problems/p*.py`` (one file per section) and registered here
on import. Answers are compared numerically against the project's own reference implementation.
"""
from __future__ import annotations

import html
import importlib
import pkgutil
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["Problem", "Result", "PROBLEMS", "HISTORY", "register", "check", "grade_answer",
           "problems_for_section"]


@dataclass(frozen=True)
class Problem:
    """One autograded exercise.

    kind="value":    ``reference()`` returns the expected value (number, array, tuple or dict of them).
    kind="function": the student passes a function; it is called on every ``cases()`` entry (a tuple
                     of positional arguments) and compared with ``reference(*args)``.
    ``wrong_answers``: at least three answers that must fail (used by the test-suite).
    """

    id: str
    section: str
    title: str
    statement: str
    kind: str
    reference: Callable
    hint: str
    wrong_answers: tuple
    cases: Callable[[], list] | None = None
    rtol: float = 1e-5
    atol: float = 1e-8

    def __post_init__(self):
        if self.kind not in ("value", "function"):
            raise ValueError(f"Problem {self.id}: kind must be 'value' or 'function', got {self.kind!r}")
        if self.kind == "function" and self.cases is None:
            raise ValueError(f"Problem {self.id}: a function problem needs cases()")
        if len(self.wrong_answers) < 3:
            raise ValueError(f"Problem {self.id}: give at least three wrong answers")

    def expected(self):
        """The reference answer: a value, or for function problems the reference function."""
        return self.reference if self.kind == "function" else self.reference()


PROBLEMS: dict[str, Problem] = {}


def register(problem: Problem) -> Problem:
    if problem.id in PROBLEMS and PROBLEMS[problem.id] is not problem:
        raise ValueError(f"problem id {problem.id!r} is registered twice")
    PROBLEMS[problem.id] = problem
    return problem


def problems_for_section(section: str) -> list[Problem]:
    return [p for p in PROBLEMS.values() if p.section == section]


# --------------------------------------------------------------------------------------------------
# Results
STATUS_STYLE = {
    "passed": ("#e6f4ea", "#1e7e34", "✔ Correct"),
    "failed": ("#fdecea", "#b02a37", "✘ Not yet right"),
    "unsolved": ("#fff8e1", "#8a6d00", "… Not yet solved"),
    "unknown": ("#fdecea", "#b02a37", "✘ Unknown problem"),
}


@dataclass
class Result:
    """Truthy exactly when the answer passed. Shows itself as a coloured box in Jupyter."""

    problem_id: str
    status: str
    message: str
    hint: str = ""
    answer: Any = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.status == "passed"

    @property
    def passed(self) -> bool:
        return bool(self)

    def or_reference(self, announce: bool = True):
        """The student's answer if it passed, else the reference (saying so), so the lesson goes on."""
        if self:
            return self.answer
        problem = PROBLEMS.get(self.problem_id)
        if problem is None:
            raise KeyError(f"unknown problem {self.problem_id!r}")
        if announce:
            print(f"[{self.problem_id}] using the reference implementation for the rest of the lesson.")
        return problem.expected()

    def __str__(self) -> str:
        label = STATUS_STYLE[self.status][2]
        text = f"{label} [{self.problem_id}] {self.message}"
        if self.hint and self.status != "passed":
            text += f"\n  Hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        bg, fg, label = STATUS_STYLE[self.status]
        hint = ""
        if self.hint and self.status != "passed":
            hint = f"<div style='margin-top:4px'><i>Hint:</i> {html.escape(self.hint)}</div>"
        return (
            f"<div style='background:{bg};border-left:4px solid {fg};padding:6px 10px;"
            f"font-family:sans-serif;color:#222'><b style='color:{fg}'>{label}</b> "
            f"<code>{html.escape(self.problem_id)}</code>: {html.escape(self.message)}{hint}</div>"
        )


# --------------------------------------------------------------------------------------------------
# Comparison
class _Mismatch(Exception):
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
        raise _Mismatch(f"{where}expected numbers, got {type(x).__name__}") from err
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise _Mismatch(f"{where}expected numbers, got {type(x).__name__}"
                        + (f" of dtype {arr.dtype}" if hasattr(arr, "dtype") else ""))
    if np.iscomplexobj(arr):
        raise _Mismatch(f"{where}expected real numbers, got complex values")
    return arr.astype(np.float64)


def _compare(expected, got, rtol: float, atol: float, where: str = "") -> None:
    """Raise _Mismatch with a helpful message unless ``got`` matches ``expected``."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            raise _Mismatch(f"{where}expected a dict with keys {sorted(expected)}, got {type(got).__name__}")
        missing = sorted(set(expected) - set(got))
        if missing:
            raise _Mismatch(f"{where}missing key(s) {missing}")
        for key in expected:
            _compare(expected[key], got[key], rtol, atol, f"{where}[{key!r}] ")
        return
    if isinstance(expected, (tuple, list)) and not _is_numeric_leaf(expected):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else "not a tuple"
            raise _Mismatch(f"{where}expected a tuple of {len(expected)} items, got {n}")
        for i, (e, g) in enumerate(zip(expected, got)):
            _compare(e, g, rtol, atol, f"{where}item {i}: ")
        return
    e = _to_array(expected, where)
    g = _to_array(got, where)
    if g.shape != e.shape:
        raise _Mismatch(f"{where}expected shape {e.shape}, got {g.shape}")
    if not np.isfinite(g).all():
        raise _Mismatch(f"{where}the answer holds NaN or infinite values")
    if not np.allclose(g, e, rtol=rtol, atol=atol):
        err = np.abs(g - e)
        worst = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
        at = f" at index {tuple(int(i) for i in worst)}" if err.ndim else ""
        raise _Mismatch(f"{where}values differ from the reference{at} (largest error {err.max():.3g}, "
                        f"tolerance rtol={rtol:g}, atol={atol:g})")


def _is_numeric_leaf(x) -> bool:
    """A (nested) list/tuple of plain numbers counts as one array, not as a tuple of answers."""
    try:
        arr = np.asarray(x)
    except Exception:
        return False
    return arr.dtype != object and np.issubdtype(arr.dtype, np.number)


def _clone_args(args):
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(a.detach().clone())
        elif isinstance(a, np.ndarray):
            out.append(a.copy())
        else:
            out.append(a)
    return tuple(out)


def _unsolved(answer) -> bool:
    return answer is None or answer is Ellipsis


#: Every result ``check`` returned in this process, in order (the instructor's ``grade`` reads it).
HISTORY: list[Result] = []


def check(problem_id: str, answer) -> Result:
    """Grade ``answer`` for ``problem_id``. Never raises; returns a :class:`Result` (truthy on pass)."""
    result = grade_answer(problem_id, answer)
    HISTORY.append(result)
    return result


def grade_answer(problem_id: str, answer) -> Result:
    """``check`` without recording the result in ``HISTORY``."""
    problem = PROBLEMS.get(problem_id)
    if problem is None:
        known = ", ".join(sorted(PROBLEMS)) or "none"
        return Result(problem_id, "unknown", f"no such problem; known problems: {known}")
    if _unsolved(answer):
        return Result(problem_id, "unsolved", f"{problem.title}: fill in the answer, then run this cell again.",
                      problem.hint, answer)
    try:
        if problem.kind == "value":
            if callable(answer) and not isinstance(answer, (torch.Tensor, np.ndarray)):
                raise _Mismatch("expected a value (a number or an array), got a function; call it first")
            _compare(problem.reference(), answer, problem.rtol, problem.atol)
        else:
            if not callable(answer):
                raise _Mismatch(f"expected a function, got {type(answer).__name__}")
            for i, args in enumerate(problem.cases()):
                try:
                    got = answer(*_clone_args(args))
                except NotImplementedError:
                    return Result(problem_id, "unsolved",
                                  f"{problem.title}: the function still raises NotImplementedError.",
                                  problem.hint, answer)
                except Exception as err:  # the student's code failed: report it, do not raise
                    line = traceback.format_exception_only(type(err), err)[-1].strip()
                    raise _Mismatch(f"on test case {i + 1} your function raised {line}") from err
                _compare(problem.reference(*_clone_args(args)), got, problem.rtol, problem.atol,
                         f"test case {i + 1}: ")
    except _Mismatch as err:
        return Result(problem_id, "failed", str(err), problem.hint, answer)
    except Exception as err:  # anything else odd about the answer: fail, never raise
        line = traceback.format_exception_only(type(err), err)[-1].strip()
        return Result(problem_id, "failed", f"could not grade this answer ({line})", problem.hint, answer)
    return Result(problem_id, "passed", f"{problem.title}: matches the reference.", "", answer)


def _load_problem_modules() -> None:
    from companion_lib import problems

    for info in pkgutil.iter_modules(problems.__path__):
        if info.name.startswith("p"):
            importlib.import_module(f"companion_lib.problems.{info.name}")


_load_problem_modules()


def main() -> None:  # python -m companion_lib.grading
    """List every registered problem: id, section, title."""
    from companion_lib.grading import PROBLEMS as registry  # the imported module's registry, not __main__'s

    for pid in sorted(registry, key=lambda s: [int(t) if t.isdigit() else t for t in s.split(".")]):
        p = registry[pid]
        print(f"{pid:<32} §{p.section:<6} {p.title}")


if __name__ == "__main__":
    main()
