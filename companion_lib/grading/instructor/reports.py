"""Results on disk (one JSON file per notebook, written atomically), the CSV and per-student feedback."""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import sys
from pathlib import Path

from companion_lib.grading.instructor.processes import RUN_STATUSES
from companion_lib.grading.judge import STATUSES


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_seed(results: Path, seed) -> int:
    meta = results / "_run.json"
    if meta.exists():
        recorded = int(json.loads(meta.read_text())["seed"])
        if seed is not None and int(seed) != recorded:
            raise ValueError(f"{results} was graded with --seed {recorded}; use it (or another folder)")
        return recorded
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    write_json(meta, {"seed": seed})
    return seed


def load_results(folders) -> list[dict]:
    """Every notebook result in ``folders``; the latest per file name when a file was regraded."""
    latest = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            if path.name.startswith("_"):
                continue
            try:
                r = json.loads(path.read_text())
                key = r["name"]
            except (OSError, ValueError, KeyError, TypeError):
                print(f"{path}: not a result file, skipped", file=sys.stderr)
                continue
            if key not in latest or r["graded_at"] >= latest[key]["graded_at"]:
                latest[key] = r
    return sorted(latest.values(), key=lambda r: r["name"])


def read_student_map(path) -> dict:
    """A CSV with columns ``file`` and ``student`` -> {file name: student id}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "student"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV with columns 'file' and 'student'")
    return {Path(r["file"]).name: r["student"] for r in rows}


def write_csv(path, results, problem_ids, students=None) -> None:
    head = (["student"] if students else []) + ["notebook", *problem_ids, "passed", "problems", "run",
                                               "error_cells", "seconds", "seed", "sha256"]
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        for r in results:
            statuses = [r["grades"].get(pid, {}).get("status", "missing") for pid in problem_ids]
            row = ([students.get(r["name"], "")] if students else []) + [
                r["name"], *statuses, statuses.count("passed"), len(problem_ids), r["run"],
                r["error_cells"], f"{r['seconds']:.1f}", r["seed"], r["sha256"]]
            writer.writerow(row)
    os.replace(tmp, path)


def feedback_text(r: dict, problem_ids, student: str = "") -> str:
    grades = [(pid, r["grades"].get(pid, {"status": "missing", "message": "not graded"})) for pid in problem_ids]
    passed = sum(g["status"] == "passed" for _, g in grades)
    marks = {"passed": "✔", "failed": "✘", "no-credit": "✘", "unsolved": "…", "missing": "–"}
    lines = [f"{r['name']}" + (f" ({student})" if student else "") + f": {passed}/{len(grades)} problems pass",
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
        for r in results:
            student = (students or {}).get(r["name"], "")
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", student or Path(r["name"]).stem) + ".txt"
            (folder / name).write_text(feedback_text(r, problem_ids, student))
        print(f"wrote {len(results)} feedback files to {folder}/")


def summary_line(r: dict, problem_ids) -> str:
    statuses = [r["grades"].get(pid, {}).get("status", "missing") for pid in problem_ids]
    other = {s: statuses.count(s) for s in STATUSES if s != "passed" and statuses.count(s)}
    return (f"{r['name']}: {statuses.count('passed')}/{len(problem_ids)} passed"
            + (" (" + ", ".join(f"{n} {s}" for s, n in other.items()) + ")" if other else "")
            + f" | run: {r['run']}, {r['error_cells']} error cell(s), {r['seconds']:.1f} s")
