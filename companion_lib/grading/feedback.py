"""What a student sees: ``check(problem_id, answer)`` -> a :class:`Result`, ``hint(problem_id)`` and
``progress(section)``.

``check`` never raises on a malformed answer; the result says what was expected, and when the answer
is one of the problem's catalogued mistakes (:class:`~companion_lib.grading.registry.Mistake`: the
wrong answer run on the same inputs gives the same outputs) it says the specific thing. Hints come in
tiers (the idea, then a closer pointer, never the code): a wrong attempt shows one tier more than the
last, ``hint(problem_id)`` the next one on request; an unsolved exercise shows none (so a committed
notebook's "not yet solved" boxes give nothing away). ``check`` is feedback only: the instructor's
grader reads answers from the notebook's source and evaluates them in sandboxes of its own
(``companion_lib.grading.instructor.evaluation``); nothing ``check`` does in a kernel reaches a grade.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading.compare import compare_values
from companion_lib.grading.judge import error_line, evaluate, is_unsolved, judge
from companion_lib.grading.registry import PROBLEMS, Problem, _leaves

__all__ = ["Result", "Progress", "Hint", "HISTORY", "check", "grade_answer", "hint", "progress"]

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
        if self.hint and self.status == "failed":
            text += "".join(f"\n  {line}" for line in self.hint.splitlines())
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        bg, fg, label = STATUS_STYLE[self.status]
        hint = ""
        if self.hint and self.status == "failed":
            hint = "".join(f"<div style='margin-top:4px'><i>{html.escape(line.partition(':')[0])}:</i>"
                           f"{html.escape(line.partition(':')[2])}</div>" for line in self.hint.splitlines())
        return (
            f"<div style='background:{bg};border-left:4px solid {fg};padding:6px 10px;"
            f"font-family:sans-serif;color:#222'><b style='color:{fg}'>{label}</b> "
            f"<code>{html.escape(self.problem_id)}</code>: {html.escape(self.message)}{hint}</div>"
        )


#: Every result ``check`` returned in this process, in order (``progress`` reads it; the
#: instructor's grader does not: it reads the notebook's source).
HISTORY: list[Result] = []


def check(problem_id: str, answer) -> Result:
    """Grade ``answer`` for ``problem_id``. Never raises; returns a :class:`Result` (truthy on pass).

    A wrong answer's result carries the hint tiers revealed so far (one more per wrong attempt)."""
    result = grade_answer(problem_id, answer)
    if result.status == "failed" and problem_id in PROBLEMS:
        result.hint = _hint_text(PROBLEMS[problem_id], _reveal(problem_id))
    HISTORY.append(result)  # G1 (issue 17): no export to the grader any more; feedback only
    return result


def grade_answer(problem_id: str, answer) -> Result:
    """``check`` without recording the result in ``HISTORY`` and without hints (on the fixed test
    inputs); a recognised catalogued mistake is named in the message."""
    problem = PROBLEMS.get(problem_id)
    if problem is None:
        known = ", ".join(sorted(PROBLEMS)) or "none"
        return Result(problem_id, "unknown", f"no such problem; known problems: {known}")
    if is_unsolved(answer):
        return Result(problem_id, "unsolved", f"{problem.title}: fill in the answer, then run this cell again.",
                      "", answer)
    try:
        with settings.cpu_float64():
            cases = problem.cases_for(None)
        outcomes = evaluate(problem, answer, cases)
        status, message = judge(problem, cases, outcomes)
        if status == "failed":
            mistake = _recognise(problem, cases, outcomes)
            if mistake is not None:
                message = f"{mistake.message} ({message})"
    except Exception as err:  # a broken problem definition: say so, never raise at the student
        status, message = "failed", f"could not grade this answer ({error_line(err)})"
    return Result(problem_id, status, message, "", answer)


# --------------------------------------------------------------------------------------------------
# Catalogued mistakes
def _arrays(x) -> list | None:
    """The leaves of an output as float64 arrays, or None when one is not numeric."""
    try:
        return [np.asarray(v.detach().cpu().double() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
                for v in _leaves(x)]
    except (TypeError, ValueError, RuntimeError):
        return None


def _same_output(problem: Problem, theirs, got) -> bool:
    """``got`` agrees with a mistake's output ``theirs`` as closely as a pass would with the reference
    (NaN where the mistake has NaN: the comparators reject any NaN, a mistake may produce them)."""
    try:
        if problem.compare is not None:
            if problem.compare(theirs, got) is None:
                return True
        else:
            compare_values(theirs, got, problem.rtol, problem.atol)
            return True
    except Exception:  # Mismatch, or an odd output: compare leaf by leaf below
        pass
    a, b = _arrays(theirs), _arrays(got)
    if a is None or b is None or len(a) != len(b) or all(np.isfinite(x).all() for x in a):
        return False
    rtol, atol = max(problem.rtol, 1e-5), max(problem.atol, 1e-8)
    return all(x.shape == y.shape and np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
               for x, y in zip(a, b))


@settings.cpu_float64()
def _recognise(problem: Problem, cases, outcomes):
    """The first catalogued mistake that gives the answer's outcomes on ``cases``, else None."""
    if not outcomes:
        return None
    for mistake in problem.mistakes:
        try:
            if problem.kind == "value":
                kind, got = outcomes[0]
                if kind != "ok":
                    continue
                if (mistake.matches(got) if mistake.matches is not None
                        else _same_output(problem, mistake.answer, got)):
                    return mistake
                continue
            theirs = evaluate(problem, mistake.answer, cases)
        except Exception:  # a catalogued mistake that cannot run here is not recognised
            continue
        if len(theirs) != len(outcomes):
            continue
        same = True
        for (kind_a, out_a), (kind_b, out_b) in zip(theirs, outcomes):
            if kind_a != kind_b or kind_a not in ("ok", "raised"):
                same = False
            elif kind_a == "raised":
                same = out_a == out_b
            else:
                same = _same_output(problem, out_a, out_b)
            if not same:
                break
        if same:
            return mistake
    return None


# --------------------------------------------------------------------------------------------------
# Hints: tiers revealed by wrong attempts and by request
_HINT_LEVEL: dict[str, int] = {}


def _reveal(problem_id: str) -> int:
    """Reveal one tier more of ``problem_id``'s hint (up to the last); the number now revealed."""
    tiers = len(PROBLEMS[problem_id].hints)
    _HINT_LEVEL[problem_id] = min(_HINT_LEVEL.get(problem_id, 0) + 1, tiers)
    return _HINT_LEVEL[problem_id]


def _hint_text(problem: Problem, level: int) -> str:
    tiers = problem.hints
    return "\n".join(f"Hint {i + 1}/{len(tiers)}: {tiers[i]}" for i in range(level))


@dataclass(frozen=True)
class Hint:
    """The hint tiers of a problem revealed so far; shows itself as text or as a box in Jupyter."""

    problem_id: str
    text: str
    last: bool

    def __str__(self) -> str:
        more = (" (that was the last hint: reread the statement, grading.PROBLEMS[...].statement)"
                if self.last else f' (hint("{self.problem_id}") again for the next one)')
        return f"[{self.problem_id}]\n{self.text}\n{more.strip()}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        lines = "".join(f"<div>{html.escape(line)}</div>" for line in str(self).splitlines()[1:])
        return (f"<div style='background:#eef3fb;border-left:4px solid #2f5d9a;padding:6px 10px;"
                f"font-family:sans-serif;color:#222'><code>{html.escape(self.problem_id)}</code>{lines}</div>")


def hint(problem_id: str) -> Hint:
    """The next tier of ``problem_id``'s hint, with the tiers already revealed (by request or by wrong
    attempts): first the idea, then a closer pointer; never the code."""
    if not isinstance(problem_id, str):
        raise TypeError(f"problem_id must be a string such as '14.1.e_step', got {type(problem_id).__name__}")
    if problem_id not in PROBLEMS:
        raise ValueError(f"problem_id: no such problem {problem_id!r}; known problems: {', '.join(sorted(PROBLEMS))}")
    problem = PROBLEMS[problem_id]
    level = _reveal(problem_id)
    return Hint(problem_id, _hint_text(problem, level), level == len(problem.hints))


# --------------------------------------------------------------------------------------------------
# A student's one-line summary
@dataclass(frozen=True)
class Progress:
    """Which problems of a section pass in this notebook (the last attempt at each counts)."""

    section: str
    passed: tuple
    failed: tuple
    unsolved: tuple
    missing: tuple

    def __str__(self) -> str:
        total = len(self.passed) + len(self.failed) + len(self.unsolved) + len(self.missing)
        rest = [f"{label}: {', '.join(ids)}" for label, ids in
                (("not yet right", self.failed), ("not yet solved", self.unsolved),
                 ("not checked", self.missing)) if ids]
        return f"{self.section}: {len(self.passed)}/{total} problems pass" + (
            f" ({'; '.join(rest)})" if rest else "")

    __repr__ = __str__


def progress(section: str) -> Progress:
    """One line for the end of a notebook: ``progress("14.1")`` -> ``14.1: 1/2 problems pass (...)``.

    ``section`` is a section of the text (``"14.1"``) or a lesson's id prefix (``"15.3.1"`` selects
    ``15.3.1.alpha_bar``, ``15.3.1.q_sample``, ...).
    """
    if not isinstance(section, str):
        raise TypeError(f"section must be a string such as '14.1', got {type(section).__name__}")
    ids = [p.id for p in PROBLEMS.values() if p.section == section or p.id.startswith(section + ".")]
    if not ids:
        known = sorted({p.section for p in PROBLEMS.values()})
        raise ValueError(f"no problems in section {section!r}; sections with problems: {known}")
    last = {r.problem_id: r.status for r in HISTORY}
    by = {s: tuple(pid for pid in ids if last.get(pid, "missing") == s)
          for s in ("passed", "failed", "unsolved", "missing")}
    return Progress(section, by["passed"], by["failed"], by["unsolved"], by["missing"])
