"""Instructor command: grade a class's notebooks with the same autograder the students see.

    python -m companion_lib.grade submissions/*.ipynb --csv grades.csv --jobs 2
    python -m companion_lib.grade merge results-*/ --csv grades.csv      # assemble shards

Trust boundary: no student code runs in this process, and this process alone decides grades.
All submissions are read into memory first (a kernel that rewrites a classmate's file changes
nothing in this run). Each notebook then runs in a kernel of its own, started by a sacrificial worker
process (``companion_lib._grade_worker``) in a session of its own, in a fresh temporary folder that
holds only a copy of that notebook, with a scrubbed environment (quick mode, one torch thread). The
grader writes the notebook's test inputs there, drawn from a seed of its own (recorded), so a
function is judged on inputs the student never saw. Inside the kernel, every ``check`` call writes
the answer's outcomes on those inputs at once as plain data (``companion_lib._grade_transport``:
JSON + .npz, never pickle) under a per-run random name. When the worker ends, however it ends
(completed, timed out, crashed, killed by the kernel), everything that carries the run's token is
killed and this process reads the last export of each problem as data and judges it with
``grading.judge`` against references computed here. What the kernel prints, ``HISTORY``, a patched
``grade_answer``/``numpy``/library in the kernel: none of it reaches the decision.

A function answer that is the library's own object, or whose defining cell (read here as text with
``ast``, never run) uses the problem's reference, ``PROBLEMS``, ``.expected()`` or
``.or_reference()``, gets "no-credit". A value answer is judged on its value.

Per-problem statuses: passed, failed, unsolved, missing, no-credit (``grading.STATUSES``).
Per-notebook run statuses: see ``RUN_STATUSES``.

Each notebook's result is written at once, atomically, to ``<results>/<name>-<sha256[:12]>.json``
(the content hash and the grader's seed inside), so ``--resume`` continues an interrupted run and a
rerun with the same results folder draws the same inputs. The CSV (one row per notebook, one column
per problem of the assignment) and the per-student feedback files are assembled from those results.

The kernels run with your user id: what a kernel can still do (read your other files, kill
processes, edit the installed package) only the operating system can stop; see README (a container
recipe). It is a grader, not an anti-cheating device: a value computed by calling the library, or
code copied from its source, cannot be told apart from the student's own.
"""
from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import inspect
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from companion_lib import _grade_transport, grading, settings
from companion_lib.grading import PROBLEMS

#: How a notebook's run ended (the CSV's ``run`` column).
RUN_STATUSES = {
    "completed": "every cell ran (some may have raised: see error_cells)",
    "cell-timeout": "a cell ran past --cell-timeout and was interrupted; the rest ran",
    "killed-after-timeout": "a cell ignored the interrupt; its kernel was killed, later cells did not run",
    "notebook-timeout": "the notebook ran past --notebook-timeout; later cells did not run",
    "kernel-died": "the kernel exited by itself (crash, os._exit, out of memory)",
    "worker-died": "the worker running the kernel died (the kernel killed it, or it crashed)",
    "kernel-start-failed": "no kernel could be started",
    "unreadable": "the file is not a readable notebook",
}

INTERRUPT_GRACE = 5.0  # seconds a kernel gets to answer an interrupt before it is killed
STARTUP_ALLOWANCE = 120.0  # seconds for a kernel to start, on top of the notebook's limit
_LIB_ROOT = str(Path(__file__).resolve().parents[1])


# --------------------------------------------------------------------------------------------------
# Submissions and the assignment
@dataclass(frozen=True)
class Submission:
    path: str
    data: bytes
    sha256: str

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def key(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.path).stem)[:80] or "notebook"
        return f"{stem}-{self.sha256[:12]}"


def read_submissions(paths) -> list[Submission]:
    """Every file read into memory now, before any kernel runs."""
    subs = []
    for p in paths:
        p = Path(p)
        if p.suffix != ".ipynb" or not p.is_file():
            raise ValueError(f"expected an existing .ipynb file, got {str(p)!r}")
        data = p.read_bytes()
        subs.append(Submission(str(p), data, hashlib.sha256(data).hexdigest()))
    return subs


def assignment(sections=None) -> list[str]:
    """The problem ids graded (every registered one, or those of ``sections``), in section order."""
    ids = [pid for pid, p in PROBLEMS.items() if not sections or p.section in sections]
    if sections:
        unknown = sorted(set(sections) - {PROBLEMS[pid].section for pid in ids})
        if unknown:
            known = sorted({p.section for p in PROBLEMS.values()})
            raise ValueError(f"no problems in section(s) {unknown}; sections with problems: {known}")
    return sorted(ids, key=grading._id_key)


def notebook_seed(base_seed: int, sha256: str) -> int:
    """The seed of one notebook's test inputs: fixed by the run's seed and the file's content."""
    return int.from_bytes(hashlib.sha256(f"{int(base_seed)}:{sha256}".encode()).digest()[:4], "big")


def code_cells(data: bytes) -> list[str]:
    """The non-empty code cells of a notebook, in order (as the worker runs them)."""
    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and c.source.strip()]


# --------------------------------------------------------------------------------------------------
# Reading a defining cell as text: does the answer use the reference?
_FORBIDDEN_ATTRS = ("expected", "or_reference")


def _parse(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:  # IPython syntax (%magics, !shell): transformed as text, never run
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:
        return None


def _check_call(tree, pid: str):
    """The last ``check(pid, answer)`` call in ``tree`` and its top-level statement."""
    found = None
    for stmt in getattr(tree, "body", []):
        for node in ast.walk(stmt):
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value == pid
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"):
                found = (node, stmt)
    return found


def _aliases(trees) -> dict:
    """Name -> dotted path, for every import in the notebook (``import a.b as m``, ``from a import b``)."""
    names = {}
    for tree in trees:
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                for a in node.names:
                    names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node, aliases):
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _resolve(dotted: str):
    """The object a dotted name denotes in this process, from modules already imported (nothing is
    imported here, so a name in a submission can never load code into the grader)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        obj = sys.modules.get(".".join(parts[:i]))
        if obj is not None:
            for attr in parts[i:]:
                try:
                    obj = inspect.getattr_static(obj, attr)
                except AttributeError:
                    return None
            return obj
    return None


def _uses_reference(nodes, aliases, forbidden_names, forbidden_objects) -> set:
    hits = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and node.id == "PROBLEMS":
                hits.add("PROBLEMS")
            if isinstance(node, ast.Attribute):
                if node.attr in _FORBIDDEN_ATTRS:
                    hits.add(f".{node.attr}()")
                if node.attr == "PROBLEMS":
                    hits.add("PROBLEMS")
            dotted = None
            if isinstance(node, (ast.Name, ast.Attribute)):
                dotted = _dotted(node, aliases)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in forbidden_names or any(_resolve(full) is o for o in forbidden_objects):
                        hits.add(full)
            if dotted and (dotted in forbidden_names or any(_resolve(dotted) is o for o in forbidden_objects)):
                hits.add(dotted)
    return hits


def _binds(stmt, name: str) -> bool:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name == name
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    targets = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    return any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t))


def reference_use(cells: list[str], cell_no: int, problem, answer_meta: dict) -> str | None:
    """Why a function answer gets no credit (it is, or its defining cell uses, the reference), or None."""
    if answer_meta.get("library"):
        where = ".".join(x for x in (answer_meta.get("module"), answer_meta.get("name")) if x)
        return f"the answer is the library's own object ({where}), not your code"
    trees = [_parse(c) for c in cells]
    idx = cell_no - 1 if 0 < cell_no <= len(cells) and _check_call(trees[cell_no - 1], problem.id) else None
    if idx is None:
        hits_at = [i for i, t in enumerate(trees) if t is not None and _check_call(t, problem.id)]
        if not hits_at:
            return None  # check called indirectly: judged on its outputs alone
        idx = hits_at[-1]
    call, check_stmt = _check_call(trees[idx], problem.id)
    arg = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "answer"), None)
    if arg is None:
        return None
    scan = [arg]
    if isinstance(arg, ast.Name):
        for j in range(idx, -1, -1):
            body = list(getattr(trees[j], "body", []))
            if j == idx:
                body = body[:body.index(check_stmt)]
            defining = next((s for s in reversed(body) if _binds(s, arg.id)), None)
            if defining is not None:
                used = {n.id for n in ast.walk(defining) if isinstance(n, ast.Name)}
                scan += [s for s in body[:body.index(defining)] if any(_binds(s, u) for u in used)]
                scan.append(defining)
                break
    forbidden_names = set(problem.forbidden_names())
    forbidden_objects = [problem.reference] + [o for o in map(_resolve, forbidden_names) if o is not None]
    hits = _uses_reference(scan, _aliases(trees), forbidden_names, forbidden_objects)
    if hits:
        return (f"the answer's defining cell uses {', '.join(sorted(hits))}: an answer must be your own "
                "code, not a call to the reference")
    return None


# --------------------------------------------------------------------------------------------------
# Judging one notebook's exports (in this process)
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
        status, message = grading.judge(problem, cases.get(pid, []), outcomes, expected_value=expected)
        grades[pid] = {"status": status if status in grading.STATUSES else "failed", "message": message}
    return grades


# --------------------------------------------------------------------------------------------------
# Running one notebook
def _environment(work: Path, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "CUDA_VISIBLE_DEVICES")
           or (k.startswith("COMPANION_") and not k.startswith("COMPANION_GRADE"))}
    env.update({
        "HOME": str(work), "TMPDIR": str(work), "IPYTHONDIR": str(work / ".ipython"),
        "MPLCONFIGDIR": str(work / ".matplotlib"), "MPLBACKEND": "Agg", "PYTHONPATH": _LIB_ROOT,
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "COMPANION_MODE": "quick",
        "COMPANION_THREADS": "1", "JUPYTER_PLATFORM_DIRS": "1",
    })
    env.update(extra)
    return env


def _kill_tagged(token: str, pids=()) -> None:
    """Kill every process carrying the run's token (the worker, the kernel, their children)."""
    victims = set()
    proc = Path("/proc")
    if proc.is_dir():
        needle = f"COMPANION_GRADE_TOKEN={token}".encode()
        for entry in proc.iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if needle in (entry / "environ").read_bytes().split(b"\0"):
                        victims.add(int(entry.name))
                except OSError:
                    continue
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pgid in pids:  # process groups of the worker and the kernel (sessions of their own)
        if pgid and pgid != os.getpgid(0):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass


class _Reaper:
    """On Linux, make this process the "child subreaper" of everything it starts, so a process a
    kernel detaches (double fork, setsid, a scrubbed environment) is re-parented here, not to init,
    and ``sweep`` can kill it before a grade is written. Children that existed before are left alone."""

    def __init__(self):
        self.baseline = set(self.children())
        self.enabled = self._prctl(1)

    @staticmethod
    def _prctl(flag: int) -> bool:
        if not sys.platform.startswith("linux"):
            return False
        try:
            import ctypes

            return ctypes.CDLL(None, use_errno=True).prctl(36, flag, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            return False

    @staticmethod
    def children() -> list[int]:
        me, found = os.getpid(), []
        proc = Path("/proc")
        for entry in proc.iterdir() if proc.is_dir() else ():
            if entry.name.isdigit():
                try:
                    stat_line = (entry / "stat").read_text()
                    if int(stat_line.rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue
        return found

    def sweep(self, keep=()) -> None:
        """Kill (and reap) every child that is neither older than this grading run nor in ``keep``."""
        for _ in range(20):  # a killed orphan's own children are re-parented here in turn
            victims = [pid for pid in self.children() if pid not in self.baseline and pid not in keep]
            if not victims:
                return
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
            for pid in victims:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def close(self) -> None:
        if self.enabled:
            self._prctl(0)


class NotebookRun:
    """One submission from start to result: start(), poll() until True, then finish()."""

    def __init__(self, sub: Submission, problem_ids, base_seed: int, cell_timeout: float,
                 notebook_timeout: float):
        self.sub, self.problem_ids, self.base_seed = sub, list(problem_ids), int(base_seed)
        self.seed = notebook_seed(base_seed, sub.sha256)
        self.cell_timeout, self.notebook_timeout = float(cell_timeout), float(notebook_timeout)
        self.token = secrets.token_hex(16)
        self.proc = None
        self.started = 0.0
        self.cells: list[str] = []
        self.cases: dict = {}
        self.case_errors: dict = {}
        self.unreadable = ""

    def start(self) -> None:
        self.started = time.time()
        try:
            self.cells = code_cells(self.sub.data)
        except Exception as err:
            self.unreadable = f"{type(err).__name__}: {err}"[:300]
            return
        with settings.cpu_float64():
            for pid in self.problem_ids:
                problem = PROBLEMS[pid]
                if problem.kind == "function":
                    try:
                        self.cases[pid] = problem.cases_for(problem.grading_rng(self.seed))
                    except Exception as err:  # a broken problem must not stop the class's grading
                        self.case_errors[pid] = f"the grader could not draw this problem's inputs ({err})"
                        print(f"{self.sub.name}: {pid}: {self.case_errors[pid]}", file=sys.stderr)
        self.tmp = Path(tempfile.mkdtemp(prefix="companion-grade-"))
        work, ctl = self.tmp / "work", self.tmp / "ctl"
        work.mkdir()
        ctl.mkdir()
        (work / self.sub.name).write_bytes(self.sub.data)
        self.exports = work / f".answers-{secrets.token_hex(8)}"
        self.exports.mkdir()
        inputs = work / f".inputs-{secrets.token_hex(8)}"
        _grade_transport.write_inputs(inputs, self.cases)
        env = _environment(work, {"COMPANION_GRADE_INPUTS": str(inputs),
                                  "COMPANION_GRADE_EXPORT": str(self.exports),
                                  "COMPANION_GRADE_TOKEN": self.token})
        worker_env = {k: env[k] for k in ("PATH", "PYTHONPATH", "COMPANION_GRADE_TOKEN",
                                          "JUPYTER_PLATFORM_DIRS") if k in env}
        worker_env.update({"HOME": str(ctl), "JUPYTER_RUNTIME_DIR": str(ctl / "runtime"),
                           "JUPYTER_DATA_DIR": str(ctl / "data"), "JUPYTER_CONFIG_DIR": str(ctl / "config")})
        job = {"cells": self.cells, "work": str(work), "ctl": str(ctl), "env": env,
               "cell_timeout": self.cell_timeout, "interrupt_grace": INTERRUPT_GRACE,
               "notebook_timeout": self.notebook_timeout, "startup_deadline": self.started + STARTUP_ALLOWANCE}
        self.log = open(ctl / "worker.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "companion_lib._grade_worker"],
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=self.log,
                                     cwd=str(ctl), env=worker_env, start_new_session=True)
        try:
            self.proc.stdin.write(json.dumps(job).encode())
            self.proc.stdin.close()
        except OSError:
            pass

    def poll(self) -> bool:
        """True once the notebook is done (or overdue, in which case everything is killed)."""
        if self.proc is None:
            return True
        if self.proc.poll() is not None:
            return True
        if time.time() > self.started + STARTUP_ALLOWANCE + self.notebook_timeout + INTERRUPT_GRACE + 30:
            self.kill()
            return True
        return False

    def kill(self, reaper: _Reaper | None = None, keep=()) -> None:
        """Kill the worker, the kernel and whatever they started (``reaper``: orphans too)."""
        if self.proc is None:
            return
        status = self._status()
        _kill_tagged(self.token, (self.proc.pid, status.get("kernel_pid")))
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if reaper is not None:
            reaper.sweep(keep)

    def _status(self) -> dict:
        try:
            status = json.loads((self.tmp / "ctl" / "status.json").read_text())
            return status if isinstance(status, dict) else {}
        except (OSError, ValueError, AttributeError):
            return {}

    def finish(self, reaper: _Reaper | None = None, keep=()) -> dict:
        """Kill what is left, read the exports as data, judge them here; the notebook's result.
        ``keep``: the workers of other notebooks still running (the reaper spares them)."""
        result = {"file": self.sub.path, "name": self.sub.name, "sha256": self.sub.sha256,
                  "base_seed": self.base_seed, "seed": self.seed, "problems": self.problem_ids,
                  "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "fresh_inputs": sorted(pid for pid in self.problem_ids if PROBLEMS[pid].fresh_inputs)}
        if self.unreadable:
            result.update(run="unreadable", detail=self.unreadable, error_cells=0, cells_run=0, notes=[],
                          seconds=0.0, grades=judge_exports(self.problem_ids, {}, {}, []))
            return result
        self.kill(reaper, keep)
        status = self._status()
        run = status.get("run")
        if run not in RUN_STATUSES:
            run = "worker-died"
            detail = f"the worker ended with code {self.proc.returncode} after {status.get('cells_run', 0)} cell(s)"
        else:
            detail = str(status.get("detail", ""))
        exports, notes = _grade_transport.read_exports(self.exports)
        result.update(run=run, detail=detail, error_cells=int(status.get("error_cells", 0) or 0),
                      cells_run=int(status.get("cells_run", 0) or 0), cells=len(self.cells), notes=notes,
                      seconds=round(time.time() - self.started, 2),
                      grades=judge_exports(self.problem_ids, self.cases, exports, self.cells))
        for pid, why in self.case_errors.items():
            result["grades"][pid] = {"status": "missing", "message": why}
        try:
            self.log.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return result


def grade_notebook(path, timeout: float = 600, notebook_timeout: float = 1800, sections=None,
                   seed: int = 0) -> dict:
    """Grade one notebook (serially); returns its result dict (see ``NotebookRun.finish``)."""
    sub = read_submissions([path])[0]
    run = NotebookRun(sub, assignment(sections), seed, timeout, notebook_timeout)
    reaper = _Reaper()
    run.start()
    try:
        while not run.poll():
            time.sleep(0.1)
    finally:
        result = run.finish(reaper)
        reaper.close()
    return result


# --------------------------------------------------------------------------------------------------
# Results on disk, CSV and feedback
def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _run_seed(results: Path, seed) -> int:
    meta = results / "_run.json"
    if meta.exists():
        recorded = int(json.loads(meta.read_text())["seed"])
        if seed is not None and int(seed) != recorded:
            raise ValueError(f"{results} was graded with --seed {recorded}; use it (or another folder)")
        return recorded
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    _write_json(meta, {"seed": seed})
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


def _summary_line(r: dict, problem_ids) -> str:
    statuses = [r["grades"].get(pid, {}).get("status", "missing") for pid in problem_ids]
    other = {s: statuses.count(s) for s in grading.STATUSES if s != "passed" and statuses.count(s)}
    return (f"{r['name']}: {statuses.count('passed')}/{len(problem_ids)} passed"
            + (" (" + ", ".join(f"{n} {s}" for s, n in other.items()) + ")" if other else "")
            + f" | run: {r['run']}, {r['error_cells']} error cell(s), {r['seconds']:.1f} s")


# --------------------------------------------------------------------------------------------------
# The command
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
    reaper = _Reaper()
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
                _write_json(results / f"{run.sub.key}.json", result)
                (started_dir / run.sub.key).unlink(missing_ok=True)
                print(_summary_line(result, problem_ids), flush=True)
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
    base_seed = _run_seed(results_dir, args.seed)
    grade_class(subs, problem_ids, results_dir, base_seed, args.jobs, args.resume, args.cell_timeout,
                args.notebook_timeout)
    keys = {f"{s.key}.json" for s in subs}
    results = [r for r in load_results([results_dir])
               if f"{Submission(r['file'], b'', r['sha256']).key}.json" in keys]
    write_reports(results, problem_ids, args.csv, feedback, students)
    return 1 if unreadable else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    sys.exit(main())
