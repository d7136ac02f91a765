"""What a student sees: ``check(problem_id, answer)`` -> a :class:`Result`, and ``progress(section)``.

``check`` never raises on a malformed answer; the result says what was expected. ``check`` is
feedback only: the instructor's grader reads answers from the notebook's source and evaluates them in
sandboxes of its own (``companion_lib.grading.instructor.evaluation``); nothing ``check`` does in a
kernel reaches a grade.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from companion_lib import settings
from companion_lib.grading.judge import error_line, evaluate, is_unsolved, judge
from companion_lib.grading.registry import PROBLEMS

__all__ = ["Result", "Progress", "HISTORY", "check", "grade_answer", "progress"]

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


#: Every result ``check`` returned in this process, in order (``progress`` reads it; the
#: instructor's grader does not: it reads the notebook's source).
HISTORY: list[Result] = []


def check(problem_id: str, answer) -> Result:
    """Grade ``answer`` for ``problem_id``. Never raises; returns a :class:`Result` (truthy on pass)."""
    result = grade_answer(problem_id, answer)
    HISTORY.append(result)  # G1 (issue 17): no export to the grader any more; feedback only
    return result


def grade_answer(problem_id: str, answer) -> Result:
    """``check`` without recording the result in ``HISTORY`` (on the fixed test inputs)."""
    problem = PROBLEMS.get(problem_id)
    if problem is None:
        known = ", ".join(sorted(PROBLEMS)) or "none"
        return Result(problem_id, "unknown", f"no such problem; known problems: {known}")
    if is_unsolved(answer):
        return Result(problem_id, "unsolved", f"{problem.title}: fill in the answer, then run this cell again.",
                      problem.hint, answer)
    try:
        with settings.cpu_float64():
            cases = problem.cases_for(None)
        status, message = judge(problem, cases, evaluate(problem, answer, cases))
    except Exception as err:  # a broken problem definition: say so, never raise at the student
        status, message = "failed", f"could not grade this answer ({error_line(err)})"
    return Result(problem_id, status, message, "" if status == "passed" else problem.hint, answer)


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
