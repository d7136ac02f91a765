"""Judging one notebook's exports in the grader's own process, against references computed here."""
from __future__ import annotations

import sys

from companion_lib import settings
from companion_lib.grading.instructor.audit import reference_use
from companion_lib.grading.judge import STATUSES, judge
from companion_lib.grading.registry import PROBLEMS

_EXPECTED_VALUES: dict = {}


def judge_exports(problem_ids, cases: dict, exports: dict, cells: list[str]) -> dict:
    """pid -> {"status", "message"} from the exports of one notebook and the grader's own cases."""
    grades = {}
    for pid in problem_ids:
        problem = PROBLEMS[pid]
        record = exports.get(pid)
        if record is None:
            grades[pid] = {"status": "missing", "message": "never handed in with check()"}
            continue
        outcomes = record["outcomes"]
        if outcomes and outcomes[0][0] == "unsolved":
            grades[pid] = {"status": "unsolved", "message": f"{problem.title}: not yet solved "
                           + ("(the function raises NotImplementedError)" if not outcomes[0][1]
                              else "(None or ... handed in)")}
            continue
        if problem.kind == "function":
            try:
                reason = reference_use(cells, record["cell"], problem, record["answer"])
            except Exception as err:  # an odd cell must not stop grading: judge on outputs
                reason = None
                print(f"  ({pid}: could not read the defining cell: {type(err).__name__})", file=sys.stderr)
            if reason:
                grades[pid] = {"status": "no-credit", "message": reason}
                continue
        expected = None
        if problem.kind == "value":
            if pid not in _EXPECTED_VALUES:
                try:
                    with settings.cpu_float64():
                        _EXPECTED_VALUES[pid] = problem.reference()
                except Exception as err:  # a broken reference must not stop the class's grading
                    grades[pid] = {"status": "missing", "message": f"the grader's reference failed ({err})"}
                    continue
            expected = _EXPECTED_VALUES[pid]
        status, message = judge(problem, cases.get(pid, []), outcomes, expected_value=expected)
        grades[pid] = {"status": status if status in STATUSES else "failed", "message": message}
    return grades
