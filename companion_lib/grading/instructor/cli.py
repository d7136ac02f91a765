"""Instructor command: grade a class's notebooks with the same autograder the students see.

    python -m companion_lib.grade submissions/*.ipynb --csv grades.csv --jobs 2
    python -m companion_lib.grade merge results-*/ --csv grades.csv      # assemble shards
    python -m companion_lib.grade gradescope --out autograder.zip --sections 14.1   # Gradescope

See ``companion_lib.grading.instructor`` for the trust boundary.
"""
from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
import time
from pathlib import Path, PurePosixPath

from companion_lib.grading.instructor.ledger import (ResultsFolder, default_key_file, load_key, load_verified,
                                                     make_undumpable)
from companion_lib.grading.instructor.processes import NotebookRun, Reaper
from companion_lib.grading.instructor.reports import read_student_map, summary_line, write_reports
from companion_lib.grading.instructor.sandboxing import SandboxServer, hide, job_slots, uids
from companion_lib.grading.instructor.submissions import assignment, read_submissions


def grade_class(subs, problem_ids, folder: ResultsFolder, base_seed: int, jobs: int = 1, resume: bool = False,
                cell_timeout: float = 600, notebook_timeout: float = 1800) -> list[dict]:
    """Grade ``subs`` with ``jobs`` notebooks at a time; each result is signed and written as soon as
    it is decided (after everything its notebook started is gone). Returns the results this run
    decided or, with ``resume``, verified: the CSV is made from these, never from the folder's files."""
    decided, todo, suspects = {}, [], []
    for sub in subs:
        earlier = folder.verified(sub, base_seed, problem_ids) if resume else None
        if earlier is not None:
            print(f"{sub.rel}: already graded ({folder.path_of(sub).name}, verified), skipped")
            decided[sub.key] = earlier
            continue
        (suspects if resume and folder.was_started(sub) else todo).append(sub)
    todo += suspects  # in flight when an earlier run was killed: graded last
    running: list[NotebookRun] = []  # started and not yet written: a kernel running, or being evaluated
    # the job slots' global indices, claimed machine-wide before any kernel (as root: a grader running
    # beside this one has uids of its own); one sandbox server per slot (with the slot's uid), reused
    # by the slot's notebooks
    slots = job_slots(jobs)
    servers = {slot: SandboxServer(uids(slot)[1], cell_timeout) for slot in slots}
    reaper = Reaper()
    try:
        while todo or running:
            while todo and len(running) < jobs:
                slot = min(set(slots) - {r.slot for r in running})
                run = NotebookRun(todo.pop(0), problem_ids, base_seed, cell_timeout, notebook_timeout,
                                  slot=slot, server=servers[slot])
                folder.mark_started(run.sub)
                run.start()
                running.append(run)
            time.sleep(0.1)
            for run in list(running):  # a notebook being evaluated (a thread) keeps no one waiting
                if run.evaluation is None and run.poll():
                    run.stop(reaper, keep={r.proc.pid for r in running
                                           if r is not run and r.proc is not None and r.evaluation is None})
                if run.evaluation is not None or run.unreadable:
                    if run.evaluated():
                        running.remove(run)
                        result = run.result()
                        decided[run.sub.key] = folder.write(result)
                        folder.unmark(run.sub)
                        print(summary_line(result, problem_ids), flush=True)
    finally:
        for server in servers.values():  # interrupted (Ctrl-C): leave nothing running behind
            server.close()
        for run in running:
            run.kill()
            if hasattr(run, "tmp"):
                shutil.rmtree(run.tmp, ignore_errors=True)
        reaper.sweep()
        reaper.close()
    return sorted(decided.values(), key=lambda r: (r["path"], r["sha256"]))


def _shard(subs, spec):
    if not spec:
        return subs
    m = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard expects I/N with 0 <= I < N, got {spec!r}")
    i, n = int(m.group(1)), int(m.group(2))
    return [s for k, s in enumerate(sorted(subs, key=lambda s: (s.rel, s.sha256))) if k % n == i]


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
    parser.add_argument("--key-file", help="the key that signs results (mode 0600; created if absent; "
                        "default: ~/.config/companion-grade/key); shards and merge must share it")


def merge_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion_lib.grade merge",
                                     description="Assemble the CSV and feedback from results folders.")
    parser.add_argument("results", nargs="+", help="results folders (e.g. one per shard)")
    _common(parser)
    parser.add_argument("--expect", help="the class list: a file of submissions' paths relative to the "
                        "graded root, one a line; those without a result are reported (exit code 1)")
    args = parser.parse_args(argv)
    make_undumpable()
    problem_ids = assignment(args.sections)
    students = read_student_map(args.students) if args.students else None
    key = load_key(args.key_file)
    results = load_verified(args.results, key)
    _, feedback = _default_paths(args)
    write_reports(results, problem_ids, args.csv, feedback, students)
    if args.expect:
        expected = [line.strip() for line in Path(args.expect).read_text(encoding="utf-8").splitlines()
                    if line.strip()]
        have = {r["path"] for r in results}
        lost = [p for p in expected if PurePosixPath(p).as_posix() not in have]
        extra = sorted(have - {PurePosixPath(p).as_posix() for p in expected})
        for p in lost:
            print(f"{p}: no result (its shard never ran, or its result did not verify)", file=sys.stderr)
        for p in extra:
            print(f"{p}: graded but not in {args.expect}", file=sys.stderr)
        print(f"{len(expected) - len(lost)}/{len(expected)} expected submissions have a result")
        return 1 if lost else 0
    return 0


def _terminate(signum, frame):  # a batch system's SIGTERM: clean up like Ctrl-C, keep written results
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    if argv[:1] == ["gradescope"]:  # G4 (issue 17): the Gradescope autograder zip, see instructor/gradescope.py
        from companion_lib.grading.instructor import gradescope

        return gradescope.main(argv[1:])
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
    parser.add_argument("--root", help="the graded root: results, rows and feedback are keyed by each "
                        "notebook's path relative to it (default: the deepest folder holding them all)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.cell_timeout <= 0 or args.notebook_timeout <= 0:
        parser.error("--jobs, --cell-timeout and --notebook-timeout must be positive")
    problem_ids = assignment(args.sections)
    students = read_student_map(args.students) if args.students else None
    make_undumpable()  # a kernel of the same uid cannot read this process's memory (the key)
    key = load_key(args.key_file)
    readable = []
    unreadable = []
    for path in args.notebooks:
        p = Path(path)
        if p.suffix == ".ipynb" and p.is_file():
            readable.append(p)
        else:
            print(f"{path}: could not be read (expected an existing .ipynb file)", file=sys.stderr)
            unreadable.append(path)
    if not readable:
        parser.error("no readable .ipynb file given")
    subs = read_submissions(readable, args.root)  # the root from every file given: shards agree on it
    subs = _shard(subs, args.shard)
    results_dir, feedback = _default_paths(args)
    folder = ResultsFolder(results_dir, key)
    base_seed = folder.seed(args.seed)
    # no sandbox reads the results, the key or a classmate's notebook (their folders where that is safe)
    hide(results_dir, args.key_file or default_key_file(), *[s.path for s in subs],
         *{str(Path(s.path).resolve().parent) for s in subs})
    results = grade_class(subs, problem_ids, folder, base_seed, args.jobs, args.resume, args.cell_timeout,
                          args.notebook_timeout)
    write_reports(results, problem_ids, args.csv, feedback, students)
    return 1 if unreadable else 0


def run() -> int:
    """``main`` as a command: SIGTERM and SIGINT stop it cleanly (``python -m companion_lib.grade``)."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    return main()
