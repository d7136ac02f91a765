"""How the grader's worker (``companion_lib/grading/worker.py``) starts a kernel (issue 20 follow-up).

* A kernel that cannot start: the run's detail carries the last lines of the kernel's own stderr, so an
  instructor sees why (it used to say only "Kernel died before replying to kernel_info").
* A kernel that loses a port: jupyter_client picks free ports and the kernel binds them a moment later;
  another process starting a kernel can take one in between (CI, stop 24: a graded notebook was marked
  "kernel-start-failed" by ``ZMQError: Address already in use``). The worker starts it again, twice at
  most, and only for that cause.
* A cell that ignores the interrupt: the worker kills the kernel after the grace (jupyter_client 7 and 8).
* As root, the kernel runs under another uid. A Python installed in root's 0700 home (pyenv: Colab's
  Python 3.13 in ``make test-colab``) was out of that uid's reach: its ``libpython`` and standard library
  could not be loaded, and no kernel started. The launcher brings Python's folders into reach; the
  kernel's Python must then be the grader's own (the same version and installation).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "companion_lib" / "grading" / "worker.py"
KERNEL_UID = 65533  # the grader's kernel uid of job slot 0 (instructor.sandboxing.uids)


def _job(tmp_path: Path, startup: float = 60.0) -> dict:
    work, ctl = tmp_path / "work", tmp_path / "ctl"
    work.mkdir()
    ctl.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
    return {"cells": ["x = 1"], "work": str(work), "ctl": str(ctl), "env": env, "uid": None, "memory": 0,
            "cell_timeout": 30, "interrupt_grace": 2, "notebook_timeout": 60,
            "startup_deadline": time.time() + startup}


def _run_worker(job: dict, stderr: list | None = None) -> dict:
    done = subprocess.run([sys.executable, str(WORKER)], input=json.dumps(job).encode(), cwd=job["ctl"],
                          env={**os.environ, "HOME": job["ctl"]}, timeout=180, check=False,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if stderr is not None:
        stderr.append(done.stderr.decode(errors="replace"))
    return json.loads((Path(job["ctl"]) / "status.json").read_text())


def test_a_kernel_that_cannot_start_reports_its_own_stderr(tmp_path):
    """... and is not started again: only a lost port is worth a second attempt."""
    job = _job(tmp_path, startup=30.0)
    # `python -m ipykernel_launcher` finds this one first (the working folder is sys.path[0])
    (Path(job["work"]) / "ipykernel_launcher.py").write_text(
        "import os, sys\nopen(os.path.join(os.getcwd(), 'starts'), 'a').write('x')\n"
        "print('noise ' * 50, file=sys.stderr)\n"
        "print('the launcher failed: no libpython here', file=sys.stderr)\nsys.exit(3)\n")
    status = _run_worker(job)
    assert status["run"] == "kernel-start-failed", status
    assert "the kernel's stderr ended: " in status["detail"], status
    assert status["detail"].rstrip().endswith("the launcher failed: no libpython here"), status
    assert len(status["detail"]) < 1500 and "\n" not in status["detail"]
    assert (Path(job["work"]) / "starts").read_text() == "x" and "attempts" not in status["detail"]


# a launcher that loses its ports on its first ``lose`` starts (counted in a file), then is the real one
_LOSES_PORTS = """
import os, runpy, sys
count = os.path.join(os.getcwd(), "starts")
n = len(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write("x" * n)
if n <= {lose}:
    print("zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:41323')", file=sys.stderr)
    sys.exit(1)
here = os.path.realpath(os.getcwd())
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != here]
runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("lose, run, starts", [(1, "completed", 2), (2, "completed", 3),
                                               (5, "kernel-start-failed", 3)])
def test_a_kernel_that_lost_a_port_is_started_again(tmp_path, lose, run, starts):
    job = _job(tmp_path)
    (Path(job["work"]) / "ipykernel_launcher.py").write_text(_LOSES_PORTS.format(lose=lose))
    status = _run_worker(job)
    assert status["run"] == run, status
    assert len((Path(job["work"]) / "starts").read_text()) == starts
    if run == "completed":
        assert status["cells_run"] == 1 and status["detail"] == "", status
    else:
        assert "Address already in use" in status["detail"] and "(after 3 attempts)" in status["detail"], status


def test_a_kernel_that_starts_says_nothing_of_its_stderr(tmp_path):
    status = _run_worker(_job(tmp_path))
    assert status["run"] == "completed" and status["cells_run"] == 1, status
    assert status["detail"] == "", status


def test_a_cell_that_ignores_the_interrupt_is_killed_after_the_grace(tmp_path):
    """The worker reads the kernel's outputs without blocking: with jupyter_client 7 (Colab's) its
    sockets are zmq.asyncio ones, on which that read never raised and the worker's loop spun, so that
    even ``x = 1`` timed out and the kill came late (the grader's own clock killed the notebook)."""
    job = _job(tmp_path)
    began = Path(job["work"]) / "began"
    job.update(cells=["x = 1", f"import signal, time\nopen({str(began)!r}, 'w').write(repr(time.time()))\n"
                               "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"],
               cell_timeout=4, interrupt_grace=2)
    stderr: list = []
    status = _run_worker(job, stderr)
    ended = time.time()
    assert status["run"] == "killed-after-timeout" and status["cells_run"] == 1, status
    assert status["detail"] == "cell 2 ignored the interrupt; the kernel was killed", status
    # the limit, the grace, then the kill at once (it came 5 s late while the worker spun)
    assert ended - float(began.read_text()) < 4 + 2 + 3, ended - float(began.read_text())
    assert "Traceback" not in stderr[0], stderr[0][-2000:]


def _worker_module():
    spec = importlib.util.spec_from_file_location("_test_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_python_folders_are_the_graders_own():
    folders = _worker_module()._python_folders()
    assert os.path.realpath(sys.base_prefix) in folders
    assert os.path.dirname(os.path.realpath(sys.executable)) in folders
    assert all(os.path.isdir(f) and os.path.isabs(f) for f in folders)


_PROBE = "import json, sys; print(json.dumps([sys.version, sys.base_prefix, sys.prefix]))"
_AS_KERNEL = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("w", sys.argv[1])
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
if sys.argv[3] == "reach":
    w._reach_python(int(sys.argv[2]), os.getcwd())
os.execvp("setpriv", ["setpriv", f"--reuid={sys.argv[2]}", f"--regid={sys.argv[2]}", "--clear-groups",
                      "--no-new-privs", sys.executable, "-c", sys.argv[4]])
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="the kernel runs under another uid only when the grader is root (Linux, setpriv)")
def test_as_root_the_kernels_python_is_the_graders_own(tmp_path):
    os.chmod(tmp_path, 0o700)  # the staging folder's parent: root's, like the worker's control folder
    mine = [sys.version, sys.base_prefix, sys.prefix]

    def probe(reach: str):
        return subprocess.run([sys.executable, "-c", _AS_KERNEL, str(WORKER), str(KERNEL_UID), reach, _PROBE],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    done = probe("reach")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == mine, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone
    blocked = any(not os.stat(a).st_mode & 0o001
                  for a in Path(os.path.realpath(sys.executable)).parents if a != Path("/"))
    if blocked:  # without the launcher's mounts, this uid gets no Python, or another one (the check can fail)
        bare = probe("bare")
        assert bare.returncode != 0 or json.loads(bare.stdout) != mine, bare.stdout
