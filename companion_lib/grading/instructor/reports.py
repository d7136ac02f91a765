"""The CSV and the per-student feedback, from results the run decided (or ``ledger`` verified)."""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path, PurePosixPath

from companion_lib.grading.instructor.processes import RUN_STATUSES
from companion_lib.grading.judge import STATUSES


def read_student_map(path) -> dict:
    """A CSV with columns ``file`` and ``student`` -> {file: student id}; ``file`` is a submission's
    path relative to the graded root (``alice/hw.ipynb``) or, where that is unambiguous, its name."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "student"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV with columns 'file' and 'student'")
    return {Path(r["file"]).as_posix(): r["student"] for r in rows}


def student_of(students, r: dict) -> str:
    """The student of result ``r``: by its relative path, else by its file name if only one row of
    the map has that name."""
    if not students:
        return ""
    if r["path"] in students:
        return students[r["path"]]
    name = Path(r["path"]).name
    named = [s for f, s in students.items() if Path(f).name == name]
    return named[0] if len(named) == 1 else ""


def write_csv(path, results, problem_ids, students=None) -> None:
    head = (["student"] if students else []) + ["notebook", *problem_ids, "passed", "problems", "run",
                                               "error_cells", "seconds", "seed", "sha256"]
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        for r in results:
            statuses = [r["grades"].get(pid, {}).get("status", "missing") for pid in problem_ids]
            row = ([student_of(students, r)] if students else []) + [
                r["path"], *statuses, statuses.count("passed"), len(problem_ids), r["run"],
                r["error_cells"], f"{r['seconds']:.1f}", r["seed"], r["sha256"]]
            writer.writerow(row)
    os.replace(tmp, path)


def feedback_text(r: dict, problem_ids, student: str = "") -> str:
    grades = [(pid, r["grades"].get(pid, {"status": "missing", "message": "not graded"})) for pid in problem_ids]
    passed = sum(g["status"] == "passed" for _, g in grades)
    marks = {"passed": "✔", "failed": "✘", "no-credit": "✘", "unsolved": "…", "missing": "–"}
    lines = [f"{r['path']}" + (f" ({student})" if student else "") + f": {passed}/{len(grades)} problems pass",
             f"graded {r['graded_at']} (inputs seed {r['seed']})", ""]
    for pid, g in grades:
        lines.append(f"{marks.get(g['status'], '?')} {pid:<28} {g['status']}")
        if g["status"] != "passed" and g.get("message"):
            lines.append(f"    {g['message']}")
    lines += ["", f"run: {r['run']} — {RUN_STATUSES.get(r['run'], '')}"]
    if r.get("detail"):
        lines.append(f"     {r['detail']}")
    if r.get("error_cells"):
        lines.append(f"     {r['error_cells']} cell(s) raised an error")
    return "\n".join(lines) + "\n"


def write_reports(results, problem_ids, csv_path=None, feedback_dir=None, students=None) -> None:
    if csv_path:
        write_csv(csv_path, results, problem_ids, students)
        print(f"wrote {csv_path} ({len(results)} notebooks)")
    if feedback_dir:
        folder = Path(feedback_dir)
        folder.mkdir(parents=True, exist_ok=True)
        written = set()
        for r in results:
            student = student_of(students, r)
            target = feedback_path(folder, r, student, written)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(feedback_text(r, problem_ids, student), encoding="utf-8")
        print(f"wrote {len(results)} feedback files to {folder}/")


def feedback_path(folder: Path, r: dict, student: str, taken: set) -> Path:
    """``<student>.txt`` (with --students), else the submission's relative path with ``.txt``;
    a name already taken (one student, two submissions) gets the content hash added."""
    if student:
        rel = re.sub(r"[\\/\0]+|^\.+", "_", student)
    else:
        rel = "/".join(part if part not in ("", ".", "..") else "_"
                       for part in PurePosixPath(r["path"]).with_suffix("").parts)
    target = folder / f"{rel}.txt"
    if target in taken:
        target = folder / f"{rel}-{r['sha256'][:12]}.txt"
    taken.add(target)
    return target


def summary_line(r: dict, problem_ids) -> str:
    statuses = [r["grades"].get(pid, {}).get("status", "missing") for pid in problem_ids]
    other = {s: statuses.count(s) for s in STATUSES if s != "passed" and statuses.count(s)}
    return (f"{r['path']}: {statuses.count('passed')}/{len(problem_ids)} passed"
            + (" (" + ", ".join(f"{n} {s}" for s, n in other.items()) + ")" if other else "")
            + f" | run: {r['run']}, {r['error_cells']} error cell(s), {r['seconds']:.1f} s")
