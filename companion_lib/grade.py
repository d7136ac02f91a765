"""Instructor command: grade a class's notebooks with the same autograder the students see.

    python -m companion_lib.grade submissions/*.ipynb --csv grades.csv

Each notebook is executed top to bottom in a fresh kernel (quick mode, one torch thread, errors
allowed so one broken cell does not stop the rest). Afterwards every answer the student passed to
``check`` is graded again, from the recorded answer, against the reference: a status the notebook
printed or edited does not count. A problem never sent to ``check`` is "missing".

This runs the students' code with your permissions: run it in a container or a throw-away VM.
It is a grader, not a sandbox or an anti-cheating device.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from companion_lib.grading import PROBLEMS

MARKER = "COMPANION-GRADES "

REPORT_CELL = f'''
import json as _json
from companion_lib import grading as _grading
_latest = {{}}
for _result in _grading.HISTORY:          # the last attempt at each problem counts
    _latest[_result.problem_id] = _result
print({MARKER!r} + _json.dumps({{_pid: _grading.grade_answer(_pid, _r.answer).status
                                  for _pid, _r in _latest.items()}}))
'''


def grade_notebook(path, timeout: int = 600, kernel_name: str = "python3") -> dict:
    """Execute one submission and grade it: returns ``{"file", "grades", "error_cells", "seconds"}``.

    ``grades`` maps each problem id the notebook sent to ``check`` to "passed", "failed" or
    "unsolved" (its last attempt, graded again here).
    """
    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"expected an existing .ipynb file, got {str(path)!r}")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    env = {"COMPANION_MODE": "quick", "COMPANION_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    errors = sum(any(o.get("output_type") == "error" for o in c.get("outputs", []))
                 for c in nb.cells[:-1] if c.cell_type == "code")
    grades = {}
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith(MARKER):
                grades = json.loads(line[len(MARKER):])
    grades = {pid: status for pid, status in grades.items() if pid in PROBLEMS}
    return {"file": str(path), "grades": grades, "error_cells": errors, "seconds": seconds}


def problem_columns(reports: list[dict]) -> list[str]:
    """Every registered problem of every section any submission touched, in section order."""
    sections = {PROBLEMS[pid].section for r in reports for pid in r["grades"]}
    ids = [pid for pid, p in PROBLEMS.items() if p.section in sections]
    return sorted(ids, key=lambda s: [int(t) if t.isdigit() else t for t in s.split(".")])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion_lib.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", help="students' .ipynb files")
    parser.add_argument("--csv", help="write one row per notebook to this CSV file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    reports = []
    for path in args.notebooks:
        try:
            reports.append(grade_notebook(path, timeout=args.timeout))
        except Exception as err:  # a broken file must not stop the class's grading
            print(f"{path}: could not be graded ({type(err).__name__}: {err})", file=sys.stderr)
            reports.append({"file": str(path), "grades": {}, "error_cells": -1, "seconds": 0.0})
    columns = problem_columns(reports)
    rows = []
    for r in reports:
        statuses = [r["grades"].get(pid, "missing") for pid in columns]
        passed = statuses.count("passed")
        rows.append([r["file"], *statuses, passed, len(columns), r["error_cells"], f"{r['seconds']:.1f}"])
        print(f"{r['file']}: {passed}/{len(columns)} passed"
              + "".join(f"\n  {pid:<28} {s}" for pid, s in zip(columns, statuses))
              + (f"\n  ({r['error_cells']} cell(s) raised errors)" if r["error_cells"] else ""))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["notebook", *columns, "passed", "problems", "error_cells", "seconds"])
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
