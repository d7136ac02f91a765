"""Running one notebook: a sacrificial worker process (``companion_lib/grading/worker.py``) starts its
kernel in a fresh folder with a scrubbed environment (as root: under an unprivileged uid, in a private
0700 folder it owns); whatever happens, everything the run started is killed, then the answers are
evaluated from the notebook's source in sandboxes (``evaluation``). Nothing the kernel writes is read
for grading: the run gives the run status and the error cells only."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from companion_lib.grading.instructor.deadlines import Deadline
from companion_lib.grading.instructor.evaluation import evaluate_cells
from companion_lib.grading.instructor.sandboxing import (KERNEL_MEMORY, SPAWN_LOCK, SandboxServer, job_slots,
                                                          live_pids, uids)
from companion_lib.grading.instructor.submissions import (Submission, assignment, code_cells, notebook_seed,
                                                          read_submissions)
from companion_lib.grading.registry import PROBLEMS
from companion_lib.grading.sandbox_server import children_of, kill_children

#: How a notebook's run ended (the CSV's ``run`` column).
RUN_STATUSES = {
    "completed": "every cell ran (some may have raised: see error_cells)",
    "cell-timeout": "a cell ran past --cell-timeout and was interrupted; the rest ran",
    "killed-after-timeout": "a cell ignored the interrupt; its kernel was killed, later cells did not run",
    "notebook-timeout": "the notebook ran past --notebook-timeout; later cells did not run",
    "kernel-died": "the kernel exited by itself (crash, os._exit, out of memory)",
    "worker-died": "the worker running the kernel died (the kernel killed it, or it crashed)",
    "killed-at-deadline": "the worker stopped enforcing the limits (stopped, hung); the grader's clock killed it",
    "kernel-start-failed": "no kernel could be started",
    "unreadable": "the file is not a readable notebook",
}

INTERRUPT_GRACE = 5.0  # seconds a kernel gets to answer an interrupt before it is killed
STARTUP_ALLOWANCE = 120.0  # seconds for a kernel to start, on top of the notebook's limit
_LIB_ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding companion_lib/
# The worker runs as a script by path, not with -m: it needs nothing of companion_lib (no torch import)
_WORKER = str(Path(__file__).resolve().parents[1] / "worker.py")


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


class Reaper:
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
        return children_of(os.getpid())

    def sweep(self, keep=()) -> None:
        """Kill (and reap) every child that is neither older than this grading run nor in ``keep``."""
        kill_children(os.getpid(), set(self.baseline) | set(keep))

    def close(self) -> None:
        if self.enabled:
            self._prctl(0)


class NotebookRun:
    """One submission from start to result: start(), poll() until True, then finish().

    ``slot``: the global index of its job slot (``sandboxing.uids``: as root, its kernel's and its
    sandboxes' uids), one of ``sandboxing.job_slots``; None: this process's first one. Runs at once
    in one process need slots of their own (``cli.grade_class`` hands them out)."""

    def __init__(self, sub: Submission, problem_ids, base_seed: int, cell_timeout: float,
                 notebook_timeout: float, slot: int | None = None, server: SandboxServer | None = None):
        self.sub, self.problem_ids, self.base_seed = sub, list(problem_ids), int(base_seed)
        # as root, the job slot's own uids: notebooks graded at once (by this grader or by another
        # on this machine) cannot reach each other
        self.slot, self.server = (job_slots(1)[0] if slot is None else slot), server
        self.kernel_uid, self.sandbox_uid = uids(self.slot)
        self.grades, self.evaluation = None, None
        self.seed = notebook_seed(base_seed, sub.sha256)
        self.cell_timeout, self.notebook_timeout = float(cell_timeout), float(notebook_timeout)
        self.token = secrets.token_hex(16)
        self.proc = None
        self.started = 0.0
        self.cells: list[str] = []
        self.unreadable = ""
        self.clock, self.overdue = None, ""

    def start(self) -> None:
        self.started = time.time()
        try:
            self.cells = code_cells(self.sub.data)
        except Exception as err:
            self.unreadable = f"{type(err).__name__}: {err}"[:300]
            return
        self.tmp = Path(tempfile.mkdtemp(prefix="companion-grade-"))
        work, ctl = self.tmp / "work", self.tmp / "ctl"
        work.mkdir(mode=0o700)
        ctl.mkdir(mode=0o700)
        (work / self.sub.name).write_bytes(self.sub.data)
        kernel_uid = self.kernel_uid if os.geteuid() == 0 else None
        if kernel_uid is not None:  # the kernel's own private folder; ctl (the worker's) stays the grader's
            os.chmod(self.tmp, 0o711)
            for path in (work, work / self.sub.name):
                os.chown(path, kernel_uid, kernel_uid)
        env = _environment(work, {})  # no COMPANION_GRADE_* and no test inputs: the kernel grades nothing
        worker_env = {k: env[k] for k in ("PATH", "PYTHONPATH", "JUPYTER_PLATFORM_DIRS") if k in env}
        worker_env["COMPANION_GRADE_TOKEN"] = self.token
        worker_env.update({"HOME": str(ctl), "JUPYTER_RUNTIME_DIR": str(ctl / "runtime"),
                           "JUPYTER_DATA_DIR": str(ctl / "data"), "JUPYTER_CONFIG_DIR": str(ctl / "config")})
        job = {"cells": self.cells, "work": str(work), "ctl": str(ctl), "env": env, "uid": kernel_uid,
               "memory": KERNEL_MEMORY,
               "cell_timeout": self.cell_timeout, "interrupt_grace": INTERRUPT_GRACE,
               "notebook_timeout": self.notebook_timeout, "startup_deadline": self.started + STARTUP_ALLOWANCE}
        self.log = open(ctl / "worker.log", "wb")
        self.proc = subprocess.Popen([sys.executable, _WORKER],
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
        if self.clock is None:  # the grader's own clock (deadlines.py): a stopped worker enforces nothing
            self.clock = Deadline(self.started, len(self.cells), self.cell_timeout, self.notebook_timeout,
                                  STARTUP_ALLOWANCE, INTERRUPT_GRACE)
        self.clock.update(self._status())
        self.overdue = self.clock.overdue()
        if self.overdue:
            self.kill()
            return True
        return False

    def kill(self, reaper: Reaper | None = None, keep=()) -> None:
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
            with SPAWN_LOCK:  # sandbox servers (of notebooks being evaluated) are spared
                reaper.sweep(set(keep) | live_pids())

    def _status(self) -> dict:
        try:
            status = json.loads((self.tmp / "ctl" / "status.json").read_text())
            return status if isinstance(status, dict) else {}
        except (OSError, ValueError, AttributeError):
            return {}

    def stop(self, reaper: Reaper | None = None, keep=()) -> None:
        """Kill what is left of the run, then evaluate the answers in sandboxes in a thread of this
        process (``evaluated`` says when it is done): the grader's loop goes on polling the others.
        ``keep``: the workers of other notebooks still running (the reaper spares them)."""
        if self.unreadable or self.evaluation is not None:
            return
        self.kill(reaper, keep)
        self.evaluation = threading.Thread(target=self._evaluate, daemon=True,
                                           name=f"evaluate {self.sub.rel}")
        self.evaluation.start()

    def _evaluate(self) -> None:
        try:
            self.grades = evaluate_cells(self.cells, self.problem_ids, self.seed, timeout=self.cell_timeout,
                                         uid=self.sandbox_uid, server=self.server)
        except Exception as err:  # noqa: BLE001 (the grader's fault: no credit, say why)
            why = {"status": "no-credit", "message": f"the grader could not evaluate this notebook ({err})"}
            self.grades = {pid: dict(why) for pid in self.problem_ids}

    def evaluated(self) -> bool:
        """True once the answers are judged (``stop`` must have been called)."""
        return bool(self.unreadable) or (self.evaluation is not None and not self.evaluation.is_alive())

    def finish(self, reaper: Reaper | None = None, keep=()) -> dict:
        """Kill what is left, evaluate the answers in sandboxes, judge them here; the notebook's result
        (``stop``, waiting for ``evaluated``, then ``result``)."""
        self.stop(reaper, keep)
        if self.evaluation is not None:
            self.evaluation.join()
        return self.result()

    def result(self) -> dict:
        """The notebook's result, once ``evaluated``."""
        result = {"file": self.sub.path, "name": self.sub.name, "path": self.sub.rel, "key": self.sub.key,
                  "sha256": self.sub.sha256,
                  "base_seed": self.base_seed, "seed": self.seed, "problems": self.problem_ids,
                  "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "fresh_inputs": sorted(pid for pid in self.problem_ids if PROBLEMS[pid].fresh_inputs)}
        if self.unreadable:
            why = {"status": "missing", "message": "the file is not a readable notebook"}
            result.update(run="unreadable", detail=self.unreadable, error_cells=0, cells_run=0, notes=[],
                          seconds=0.0, grades={pid: dict(why) for pid in self.problem_ids})
            return result
        status = self._status()
        run = status.get("run")
        if self.overdue:
            run, detail = "killed-at-deadline", self.overdue
        elif run not in RUN_STATUSES:
            run = "worker-died"
            detail = f"the worker ended with code {self.proc.returncode} after {status.get('cells_run', 0)} cell(s)"
        else:
            detail = str(status.get("detail", ""))
        result.update(run=run, detail=detail, error_cells=int(status.get("error_cells", 0) or 0),
                      cells_run=int(status.get("cells_run", 0) or 0), cells=len(self.cells), notes=[],
                      seconds=round(time.time() - self.started, 2), grades=self.grades)
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
    reaper = Reaper()
    run.start()
    try:
        while not run.poll():
            time.sleep(0.1)
    finally:
        result = run.finish(reaper)
        reaper.close()
    return result
