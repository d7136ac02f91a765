"""Time the instructor's grader on a synthetic class, serial and with --jobs N.

    .venv/bin/python tools/measure_grading.py --students 40 --jobs 2 --kind lesson

--kind lesson: every submission is chapters/14_1_pearson_crabs.ipynb (outputs cleared); three in four
               also carry the worked solutions' cells at the end (their answers count), one in four is
               left untouched; a first markdown cell names the student, so every file differs.
--kind tiny:   a header cell and two answered exercises: what the grader itself costs per notebook
               (kernel start, imports, export, judging).
Prints wall-clock seconds per run, per submission, and the cost of a class of 200 at that rate, with
the load average before and after each run (the machine may be shared: a number measured under load
is an upper bound). ``--json FILE`` appends one record per run (for README's table).

Before/after a change, grade the same synthetic class with another tree's grader: the notebooks are
built by this file, the grader is whichever ``companion_lib`` PYTHONPATH names, e.g.

    git worktree add /tmp/base <old commit>
    PYTHONPATH=/tmp/base .venv/bin/python tools/measure_grading.py --kind tiny --students 10 --label before
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "from companion_lib.grading import check\nimport torch",
    "def e_step(x, w, m, v):\n    lp = torch.log(w) - 0.5 * (x[:, None] - m) ** 2 / v - 0.5 * torch.log(2 * torch.pi * v)\n"
    "    return torch.softmax(lp, dim=1)\ncheck('14.1.e_step', e_step)",
    "def gaussian_mle(X):\n    X = torch.as_tensor(X)\n    D = X - X.mean(0)\n    return X.mean(0), D.T @ D / len(X)\n"
    "check('14.1.gaussian_mle', gaussian_mle)",
]


def make_class(folder: Path, n: int, kind: str) -> list[str]:
    chapter = nbformat.read(ROOT / "chapters/14_1_pearson_crabs.ipynb", as_version=4)
    solving = [c for c in nbformat.read(ROOT / "solutions/14_1_pearson_crabs_solutions.ipynb",
                                        as_version=4).cells if c.cell_type == "code"]
    paths = []
    for i in range(n):
        if kind == "tiny":
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(s) for s in TINY]
        else:
            nb = copy.deepcopy(chapter)
            for c in nb.cells:
                if c.cell_type == "code":
                    c.outputs, c.execution_count = [], None
            if i % 4:
                nb.cells += copy.deepcopy(solving)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"Submission of student {i:03d}"))
        path = folder / f"s{i:03d}.ipynb"
        nbformat.write(nb, path)
        paths.append(str(path))
    return paths


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def grader_tree() -> str:
    """The folder holding the ``companion_lib`` the grader command will import (PYTHONPATH first)."""
    code = "import companion_lib, pathlib; print(pathlib.Path(companion_lib.__file__).parents[1])"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kind", choices=("lesson", "tiny"), default="lesson")
    parser.add_argument("--label", default="", help="a name for this measurement (e.g. before, after)")
    parser.add_argument("--json", help="append one JSON record per run to this file")
    args = parser.parse_args()
    if args.students < 1 or any(j < 1 for j in args.jobs):
        parser.error("--students and --jobs must be positive")
    tree = grader_tree()
    print(f"grader: companion_lib from {tree}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="measure-grading-") as tmp:
        folder = Path(tmp)
        paths = make_class(folder, args.students, args.kind)
        for jobs in args.jobs:
            before = load()
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "companion_lib.grade", *paths, "--sections", "14.1",
                            "--jobs", str(jobs), "--seed", "1", "--results", str(folder / f"r{jobs}"),
                            "--csv", str(folder / f"g{jobs}.csv")], check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            per, after = wall / args.students, load()
            print(f"{args.label + ': ' if args.label else ''}{args.kind}, {args.students} submissions, "
                  f"--jobs {jobs}: {wall:.0f} s wall, {per:.1f} s per submission, a class of 200: "
                  f"{200 * per / 60:.0f} min (load average before {before}, after {after})", flush=True)
            if args.json:
                record = {"label": args.label, "tree": tree, "kind": args.kind, "students": args.students,
                          "jobs": jobs, "wall_s": round(wall, 1), "per_submission_s": round(per, 2),
                          "load_before": before, "load_after": after, "cpus": os.cpu_count()}
                with open(args.json, "a") as f:
                    f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
