"""Gradescope: an autograder zip that grades one submission per container with this grader.

    python -m companion_lib.grade gradescope --out autograder.zip --sections 14.1 14.2

writes a zip with, at its root (Gradescope's autograder specification):

* ``setup.sh`` — run once, as root, when Gradescope builds the image (network allowed there): makes a
  virtual environment in ``/opt/companion-venv`` and installs the companion from the wheel packed
  next to it (``companion_lib-*.whl``, with the ``grade`` extra; torch from PyPI's CPU wheels).
* ``run_autograder`` — run for every submission: ``python -m companion_lib.grade gradescope --run``,
  which grades ``<root>/submission/*.ipynb`` exactly as ``python -m companion_lib.grade`` grades a
  class (same evaluation, same limits) and writes ``<root>/results/results.json``: one test per
  problem (name, score, max_score, status, output = the feedback the student would get; a
  self-reported problem is worth 0 points and has no status) and the total score. ``<root>`` is ``/autograder``, or the folder named by the environment variable
  ``AUTOGRADER_ROOT`` (the tests grade a temporary tree that way).
* ``companion-autograder.json`` — the assignment: sections, problem ids, points, the run's seed, the limits,
  and optionally the one notebook name to grade.

Nothing from the student's container decides a grade beyond what the grader itself decides: the
results file is written by this process after the kernel and everything it started are gone.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from companion_lib.grading.instructor.processes import RUN_STATUSES, grade_notebook
from companion_lib.grading.instructor.submissions import assignment
from companion_lib.grading.registry import PROBLEMS

__all__ = ["build_autograder", "run_autograder", "results_json", "main"]

CONFIG = "companion-autograder.json"
VENV = "/opt/companion-venv"
_LIB_ROOT = Path(__file__).resolve().parents[3]  # the folder holding companion_lib/ (and, in a clone, pyproject.toml)

_SETUP = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (network is allowed here).
set -euo pipefail
cd /autograder/source
if ! python3 -m venv --help >/dev/null 2>&1; then apt-get install -y python3-venv; fi
python3 -m venv {VENV}
{VENV}/bin/python -m pip install --upgrade pip
# the companion from the wheel in this zip, with the grader's extra; torch's CPU-only wheels
{VENV}/bin/python -m pip install --extra-index-url https://download.pytorch.org/whl/cpu \\
    "$(ls /autograder/source/companion_lib-*.whl | head -n 1)[grade]"
{VENV}/bin/python -c "import companion_lib.grading, nbformat, jupyter_client, ipykernel"
"""

_RUN = f"""#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder (AUTOGRADER_ROOT stands in for it).
set -u
PY="${{AUTOGRADER_PYTHON:-{VENV}/bin/python}}"
[ -x "$PY" ] || PY=python3
export AUTOGRADER_ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$AUTOGRADER_ROOT"
exec "$PY" -m companion_lib.grade gradescope --run
"""


def _build_wheel(dest: Path) -> Path:
    """Build the companion's wheel from this clone (offline: setuptools' backend, no pip download)."""
    if not (_LIB_ROOT / "pyproject.toml").is_file():
        raise ValueError(f"no pyproject.toml next to companion_lib/ ({_LIB_ROOT}): build the autograder "
                         "from a clone of the project, or pass --wheel with a built companion_lib wheel")
    with tempfile.TemporaryDirectory(prefix="companion-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (_LIB_ROOT / name).is_file():
                shutil.copy2(_LIB_ROOT / name, src / name)
        shutil.copytree(_LIB_ROOT / "companion_lib", src / "companion_lib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        code = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
        done = subprocess.run([sys.executable, "-c", code, str(dest)], cwd=src, capture_output=True,
                              text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"building the companion_lib wheel failed:\n{done.stderr[-2000:]}")
    return dest / done.stdout.strip().splitlines()[-1]


def _points(problem_ids, spec) -> dict:
    """Points per problem: 1 each (0 for a self-reported one: never credit), or ``pid=N`` overrides
    (``--points 14.1.e_step=2``)."""
    points = {pid: 0.0 if PROBLEMS[pid].self_reported else 1.0 for pid in problem_ids}
    for item in spec or ():
        pid, sep, value = str(item).partition("=")
        if not sep or pid not in points:
            raise ValueError(f"--points expects PROBLEM=N for a problem of the assignment, got {item!r}")
        try:
            points[pid] = float(value)
        except ValueError:
            raise ValueError(f"--points {item!r}: {value!r} is not a number") from None
        if not points[pid] >= 0:
            raise ValueError(f"--points {item!r}: points must be >= 0")
        if points[pid] and PROBLEMS[pid].self_reported:
            raise ValueError(f"--points {item!r}: {pid} is self-reported (the grader cannot verify it): "
                             "it earns no points")
    return points


def build_autograder(out, sections=None, points=None, notebook=None, cell_timeout: float = 300,
                     notebook_timeout: float = 900, seed=None, wheel=None) -> Path:
    """Write Gradescope's autograder zip to ``out`` (see the module docstring); returns its path.
    ``sections``: the assignment (None: every registered problem)."""
    if sections is not None and (isinstance(sections, str) or not all(isinstance(s, str) for s in sections)):
        raise TypeError(f"sections must be a list of section names such as ['14.1'], got {sections!r}")
    sections = sorted(set(sections)) if sections else None
    problem_ids = assignment(sections)
    if not cell_timeout > 0 or not notebook_timeout > 0:
        raise ValueError("cell_timeout and notebook_timeout must be positive")
    if notebook is not None and (not str(notebook).endswith(".ipynb") or "/" in str(notebook)):
        raise ValueError(f"notebook must be a file name ending in .ipynb, got {notebook!r}")
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"out must be a .zip file, got {str(out)!r}")
    config = {"version": 1, "sections": sections, "problems": problem_ids, "points": _points(problem_ids, points),
              "seed": secrets.randbelow(2**31) if seed is None else int(seed), "notebook": notebook,
              "cell_timeout": float(cell_timeout), "notebook_timeout": float(notebook_timeout)}
    with tempfile.TemporaryDirectory(prefix="companion-autograder-") as tmp:
        wheel = Path(wheel) if wheel else _build_wheel(Path(tmp))
        if wheel.suffix != ".whl" or not wheel.name.startswith("companion_lib-") or not wheel.is_file():
            raise ValueError(f"wheel must be an existing companion_lib-*.whl file, got {str(wheel)!r}")
        tmp_out = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(tmp_out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, text in (("setup.sh", _SETUP), ("run_autograder", _RUN)):
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o100755 << 16  # executable, as Gradescope needs
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, text)
            zf.writestr(CONFIG, json.dumps(config, indent=1))
            zf.write(wheel, wheel.name)
        os.replace(tmp_out, out)
    return out


def _submission(root: Path, config: dict) -> tuple[Path | None, str]:
    """The one notebook to grade under ``root/submission`` (or None and why not)."""
    found = sorted(p for p in (root / "submission").rglob("*.ipynb")
                   if not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(root).parts))
    wanted = config.get("notebook")
    if wanted:
        found = [p for p in found if p.name == wanted]
    if len(found) == 1:
        return found[0], ""
    names = ", ".join(str(p.relative_to(root / "submission")) for p in found) or "none"
    what = f"a notebook named {wanted}" if wanted else "exactly one .ipynb notebook"
    return None, f"Please submit {what}; this submission has: {names}."


def results_json(result: dict | None, config: dict, note: str = "") -> dict:
    """Gradescope's results.json for one graded notebook (``result`` as the grader writes it; None: no
    notebook was graded, every test gets 0 and ``note`` says why)."""
    tests = []
    grades = (result or {}).get("grades", {})
    for pid in config["problems"]:
        grade = grades.get(pid, {"status": "missing", "message": note or "not graded"})
        status, message = grade.get("status", "missing"), grade.get("message", "")
        max_score = float(config["points"][pid])
        title = PROBLEMS[pid].title if pid in PROBLEMS else ""
        test = {"name": f"{pid}: {title}" if title else pid, "number": pid,
                "score": max_score if status == "passed" else 0.0, "max_score": max_score,
                "status": "passed" if status == "passed" else "failed",
                "output": status + (f": {message}" if message and status != "passed" else ""),
                "visibility": "visible"}
        if status == "self-reported":  # shown to the student, worth nothing either way
            del test["status"]
        tests.append(test)
    lines = [note] if note else []
    if result is not None:
        lines.append(f"{result.get('name', '')}: run {result.get('run')} — {RUN_STATUSES.get(result.get('run'), '')}")
        if result.get("detail"):
            lines.append(str(result["detail"]))
        if result.get("error_cells"):
            lines.append(f"{result['error_cells']} cell(s) raised an error")
    extra = {k: result[k] for k in ("run", "sha256", "seed", "error_cells") if result and k in result}
    return {"score": sum(t["score"] for t in tests), "execution_time": round(float((result or {}).get("seconds", 0.0))),
            "output": "\n".join(lines), "visibility": "visible", "stdout_visibility": "hidden",
            "tests": tests, "extra_data": extra}


def _grade(path: Path, config: dict) -> dict:
    """One notebook through the class grader (the same evaluation as ``python -m companion_lib.grade``)."""
    return grade_notebook(path, config["cell_timeout"], config["notebook_timeout"], config["sections"],
                          int(config["seed"]))


def run_autograder(root=None) -> int:
    """Grade ``<root>/submission`` and write ``<root>/results/results.json`` (root: ``AUTOGRADER_ROOT``
    or ``/autograder``). Returns 0, or 1 when the grader itself failed (results.json says so too)."""
    root = Path(root or os.environ.get("AUTOGRADER_ROOT") or "/autograder")
    config = json.loads((root / "source" / CONFIG).read_text())
    if assignment(config["sections"]) != config["problems"]:
        raise ValueError(f"{CONFIG} was written for problems {config['problems']}; this companion_lib "
                         f"grades {assignment(config['sections'])} for sections {config['sections']}")
    (root / "results").mkdir(parents=True, exist_ok=True)
    code, path, note = 0, *_submission(root, config)
    result = None
    if path is not None:
        try:
            result = _grade(path, config)
        except Exception as err:  # the grader failed: no credit, and the instructor sees why
            code, note = 1, f"The autograder failed ({type(err).__name__}: {err}); ask your instructor."
            print(note, file=sys.stderr)
    report = results_json(result, config, note)
    tmp = root / "results" / ".results.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, root / "results" / "results.json")
    print(f"score {report['score']:g}/{sum(t['max_score'] for t in report['tests']):g}")
    return code


def main(argv) -> int:
    """``python -m companion_lib.grade gradescope --out autograder.zip`` (or ``--run`` inside Gradescope)."""
    parser = argparse.ArgumentParser(prog="python -m companion_lib.grade gradescope",
                                     description="Write a Gradescope autograder zip (or, with --run, "
                                                 "grade the submission inside Gradescope's container).")
    parser.add_argument("--out", help="the autograder zip to write (e.g. autograder.zip)")
    parser.add_argument("--sections", nargs="+", help="the assignment's sections (default: every problem)")
    parser.add_argument("--points", nargs="+", metavar="PROBLEM=N", help="points of a problem (default 1 each)")
    parser.add_argument("--notebook", help="grade only the submitted notebook with this file name")
    parser.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (default 300)")
    parser.add_argument("--notebook-timeout", type=float, default=900,
                        help="seconds per notebook (default 900; set Gradescope's timeout above it + 3 min)")
    parser.add_argument("--seed", type=int, help="seed of the grader's test inputs (default: drawn now)")
    parser.add_argument("--wheel", help="a built companion_lib wheel to pack (default: built from this clone)")
    parser.add_argument("--run", action="store_true", help="inside Gradescope: grade $AUTOGRADER_ROOT/submission")
    args = parser.parse_args(argv)
    if args.run:
        return run_autograder()
    if not args.out:
        parser.error("--out is required (or --run inside Gradescope)")
    try:
        out = build_autograder(args.out, args.sections, args.points, args.notebook,
                               args.cell_timeout, args.notebook_timeout, args.seed, args.wheel)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {out}: upload it as the assignment's autograder (Gradescope: Configure Autograder)")
    return 0
