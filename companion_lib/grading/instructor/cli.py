"""Instructor command: grade a class's notebooks with the same autograder the students see.

    python -m companion_lib.grade submissions/*.ipynb --csv grades.csv --jobs 2
    python -m companion_lib.grade merge results-*/ --csv grades.csv      # assemble shards

See ``companion_lib.grading.instructor`` for the trust boundary.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from companion_lib.grading.instructor.processes import NotebookRun, Reaper
from companion_lib.grading.instructor.reports import (load_results, read_student_map, run_seed, summary_line,
                                                      write_json, write_reports)
from companion_lib.grading.instructor.submissions import Submission, assignment, read_submissions


def grade_class(subs, problem_ids, results: Path, base_seed: int, jobs: int = 1, resume: bool = False,
                cell_timeout: float = 600, notebook_timeout: float = 1800) -> None:
    """Grade ``subs`` with ``jobs`` notebooks at a time; each result is written as soon as it is done."""
    started_dir = results / "_started"
    started_dir.mkdir(parents=True, exist_ok=True)
    todo, suspects = [], []
    for sub in subs:
        done = results / f"{sub.key}.json"
        if resume and done.exists():
            try:
                if json.loads(done.read_text()).get("base_seed") == base_seed:
                    print(f"{sub.name}: already graded ({done.name}), skipped")
                    continue
            except ValueError:
                pass
        (suspects if (started_dir / sub.key).exists() else todo).append(sub)
    todo += suspects  # in flight when an earlier run was killed: graded last
    running: list[NotebookRun] = []
    reaper = Reaper()
    try:
        while todo or running:
            while todo and len(running) < jobs:
                run = NotebookRun(todo.pop(0), problem_ids, base_seed, cell_timeout, notebook_timeout)
                (started_dir / run.sub.key).touch()
                run.start()
                running.append(run)
            time.sleep(0.1)
            for run in [r for r in running if r.poll()]:
                running.remove(run)
                result = run.finish(reaper, keep={r.proc.pid for r in running if r.proc is not None})
                write_json(results / f"{run.sub.key}.json", result)
                (started_dir / run.sub.key).unlink(missing_ok=True)
                print(summary_line(result, problem_ids), flush=True)
    finally:
        for run in running:  # interrupted (Ctrl-C): leave nothing running behind
            run.kill()
            if hasattr(run, "tmp"):
                shutil.rmtree(run.tmp, ignore_errors=True)
            (started_dir / run.sub.key).unlink(missing_ok=True)
        reaper.sweep()
        reaper.close()


def _shard(subs, spec):
    if not spec:
        return subs
    m = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard expects I/N with 0 <= I < N, got {spec!r}")
    i, n = int(m.group(1)), int(m.group(2))
    return [s for k, s in enumerate(sorted(subs, key=lambda s: s.name)) if k % n == i]


def _default_paths(args):
    stem = Path(args.csv).with_suffix("") if args.csv else Path("grades")
    chosen = getattr(args, "results", None)
    results = Path(chosen) if isinstance(chosen, str) else Path(f"{stem}-results")
    feedback = Path(args.feedback) if args.feedback else (Path(f"{stem}-feedback") if args.csv else None)
    return results, feedback


def _common(parser):
    parser.add_argument("--csv", help="write one row per notebook to this CSV file")
    parser.add_argument("--feedback", help="folder for one feedback file per student "
                        "(default with --csv: <csv name>-feedback/)")
    parser.add_argument("--students", help="CSV with columns file,student: adds a student column")
    parser.add_argument("--sections", nargs="+", help="the assignment: grade the problems of these "
                        "sections only (default: every registered problem)")


def merge_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion_lib.grade merge",
                                     description="Assemble the CSV and feedback from results folders.")
    parser.add_argument("results", nargs="+", help="results folders (e.g. one per shard)")
    _common(parser)
    args = parser.parse_args(argv)
    problem_ids = assignment(args.sections)
    students = read_student_map(args.students) if args.students else None
    results = load_results(args.results)
    _, feedback = _default_paths(args)
    write_reports(results, problem_ids, args.csv, feedback, students)
    return 0


def _terminate(signum, frame):  # a batch system's SIGTERM: clean up like Ctrl-C, keep written results
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m companion_lib.grade",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", help="students' .ipynb files")
    _common(parser)
    parser.add_argument("--results", help="folder of per-notebook results (default: <csv name>-results/)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    parser.add_argument("--cell-timeout", "--timeout", dest="cell_timeout", type=float, default=600,
                        help="seconds per cell before it is interrupted (default 600; --timeout is the old name)")
    parser.add_argument("--notebook-timeout", type=float, default=1800,
                        help="wall-clock seconds per notebook, kernel start excluded (default 1800)")
    parser.add_argument("--seed", type=int, help="seed of the grader's test inputs (default: drawn once "
                        "and recorded in the results folder)")
    parser.add_argument("--resume", action="store_true", help="skip notebooks already graded in --results")
    parser.add_argument("--shard", help="I/N: grade only every N-th notebook from the I-th (job arrays)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.cell_timeout <= 0 or args.notebook_timeout <= 0:
        parser.error("--jobs, --cell-timeout and --notebook-timeout must be positive")
    problem_ids = assignment(args.sections)
    students = read_student_map(args.students) if args.students else None
    subs, unreadable = [], []
    for path in args.notebooks:
        try:
            subs += read_submissions([path])
        except (ValueError, OSError) as err:
            print(f"{path}: could not be read ({err})", file=sys.stderr)
            unreadable.append(path)
    subs = _shard(subs, args.shard)
    results_dir, feedback = _default_paths(args)
    results_dir.mkdir(parents=True, exist_ok=True)
    base_seed = run_seed(results_dir, args.seed)
    grade_class(subs, problem_ids, results_dir, base_seed, args.jobs, args.resume, args.cell_timeout,
                args.notebook_timeout)
    keys = {f"{s.key}.json" for s in subs}
    results = [r for r in load_results([results_dir])
               if f"{Submission(r['file'], b'', r['sha256']).key}.json" in keys]
    write_reports(results, problem_ids, args.csv, feedback, students)
    return 1 if unreadable else 0


def run() -> int:
    """``main`` as a command: SIGTERM and SIGINT stop it cleanly (``python -m companion_lib.grade``)."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    return main()
