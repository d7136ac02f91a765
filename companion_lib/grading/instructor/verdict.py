"""Judging one problem's outcomes (from the sandbox) in the grader's own process, against references
computed here."""
from __future__ import annotations

from companion_lib import settings
from companion_lib.grading.judge import STATUSES, instructor_status, judge

_EXPECTED_VALUES: dict = {}


def judge_outcomes(problem, cases, outcomes) -> dict:
    """{"status", "message"} for one answer's ``outcomes`` on the grader's own ``cases``."""
    expected = None
    if problem.kind == "value":
        if problem.id not in _EXPECTED_VALUES:
            try:
                with settings.cpu_float64():
                    _EXPECTED_VALUES[problem.id] = problem.reference()
            except Exception as err:  # a broken reference must not stop the class's grading
                return {"status": "missing", "message": f"the grader's reference failed ({err})"}
        expected = _EXPECTED_VALUES[problem.id]
    status, message = judge(problem, cases, outcomes, expected_value=expected)
    status, message = instructor_status(problem, status, message)  # G3 hook: self-reported, no credit
    return {"status": status if status in STATUSES else "failed", "message": message}
