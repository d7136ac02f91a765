"""One submission's sacrificial worker, run as a script by path (``python .../grading/worker.py``).

The instructor's grader (``companion_lib.grading.instructor``) starts one worker per notebook, in a session of its
own, and writes the job to its stdin as JSON: the code cells to run, the kernel's working folder and
environment, a control folder, the time limits. The worker starts a kernel there, runs the cells one
by one (outputs are read and thrown away, so a flood costs nothing), interrupts a cell that runs past
its limit, kills the kernel if it ignores the interrupt, and records its progress in
``<control>/status.json`` after every cell. It grades nothing and reads nothing the kernel writes: if
the kernel kills it, the grader notices and kills what is left. As root the kernel runs under an
unprivileged uid, in pid and mount namespaces of its own, with a capped address space
(``launch_kernel_as``). The answers are graded from the notebook's source, in
sandboxes, after all of this is gone: nothing the kernel writes is read. The kernel's stderr is a pipe
the worker empties and throws away, keeping only its last bytes; they are shown only when the kernel
could not be started (before any cell ran), so that the instructor sees why.
"""
from __future__ import annotations

import importlib.util
import json
import os
import queue
import resource
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import zmq
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

KERNEL_NAME = "companion-grader"
STDERR_TAIL = 4096  # bytes of the kernel's stderr kept (the rest is read and dropped)
# A kernel that failed to start because one of its ports was taken is started again: jupyter_client picks
# free ports and hands their numbers to the kernel, which binds them a moment later; another process
# starting a kernel (a classmate's, under ``--jobs``, or any other) can bind one in between.
START_ATTEMPTS = 3
PORT_TAKEN = "Address already in use"  # what the kernel's stderr then ends with


class _Worker:
    def __init__(self, job: dict):
        self.job = job
        self.ctl = Path(job["ctl"])
        self.status = {"state": "starting", "kernel_pid": None, "cells": len(job["cells"]), "cells_run": 0,
                       "error_cells": 0, "timed_out_cells": 0, "run": None, "detail": ""}
        self.km = None
        self.kc = None
        self.iopub = None  # a plain (blocking) zmq socket over the client's iopub socket
        self.stderr_fd = None  # the read end of the kernel's stderr pipe
        self.stderr_tail = b""

    def save(self, **changes) -> None:
        self.status.update(changes)
        tmp = self.ctl / "status.json.tmp"
        tmp.write_text(json.dumps(self.status))
        os.replace(tmp, self.ctl / "status.json")

    # ----------------------------------------------------------------------------------------------
    def start_kernel(self, attempt: int = 1) -> None:
        """Start the kernel and wait until it answers. ``attempt`` numbers the connection file (and the
        kernel's copy of it), so that a retry never meets the files of a kernel that failed."""
        spec_dir = self.ctl / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        if self.job.get("memory") and shutil.which("prlimit"):  # same pid: prlimit sets it and execs
            argv = ["prlimit", f"--as={int(self.job['memory'])}"] + argv
        if self.job.get("uid") is not None:  # as root: the kernel runs under an unprivileged uid
            argv = [sys.executable, os.path.abspath(__file__), "--kernel-as", str(int(self.job["uid"])),
                    "{connection_file}", self.job["work"], str(int(self.job.get("memory") or 0))]
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": argv,
            "display_name": "companion grader", "language": "python"}))
        ksm = KernelSpecManager(kernel_dirs=[str(self.ctl / "kernels")], ensure_native_kernel=False)
        self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm,
                                connection_file=str(self.ctl / f"connection-{attempt}.json"))
        devnull = os.open(os.devnull, os.O_RDWR)
        self.stderr_fd, write_end = os.pipe()
        os.set_blocking(self.stderr_fd, False)
        try:
            self.km.start_kernel(env=self.job["env"], cwd=self.job["work"], stdin=devnull, stdout=devnull,
                                 stderr=write_end)
        finally:
            os.close(write_end)  # the kernel holds its own copy: end of file once it (and its children) exit
            os.close(devnull)
        self.save(state="kernel started", kernel_pid=getattr(self.km.provisioner, "pid", None))
        self.kc = self.km.client()
        self.kc.start_channels()
        # jupyter_client 7 gives the client zmq.asyncio sockets, whose NOBLOCK receive returns a Future
        # (zmq.Again lands there, unraised: drain would spin); a shadow is synchronous on both 7 and 8
        self.iopub = zmq.Socket.shadow(self.kc.iopub_channel.socket.underlying)
        self.kc.wait_for_ready(timeout=max(1.0, self.job["startup_deadline"] - time.time()))
        self.job["deadline"] = time.time() + float(self.job["notebook_timeout"])

    def drain(self) -> None:
        """Read and drop whatever the kernel published (outputs, status) and wrote to its stderr:
        bounded work per call."""
        self.read_stderr()
        for _ in range(10_000):
            try:
                self.iopub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return

    def read_stderr(self, chunks: int = 16) -> bool:
        """Empty the kernel's stderr pipe (at most ``chunks`` reads of 64 KiB), keeping its last
        ``STDERR_TAIL`` bytes; True at end of file (every writer gone)."""
        if self.stderr_fd is None:
            return True
        for _ in range(chunks):
            try:
                data = os.read(self.stderr_fd, 1 << 16)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not data:
                return True
            self.stderr_tail = (self.stderr_tail + data)[-STDERR_TAIL:]
        return False

    def stderr_summary(self, wait: float = 2.0, lines: int = 6, chars: int = 1000) -> str:
        """The last ``lines`` lines (at most ``chars`` characters, on one line) the kernel wrote to its
        stderr, after waiting up to ``wait`` seconds for it to finish writing (a kernel that failed to
        start is exiting); "" if it wrote nothing."""
        end = time.time() + wait
        while not self.read_stderr() and time.time() < end:
            time.sleep(0.05)
        text = self.stderr_tail.decode("utf-8", "replace")
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept)[-chars:]

    def wait_reply(self, msg_id: str, deadline: float) -> str:
        """"ok", "error", "timeout" or "kernel-died", for the execute request ``msg_id``."""
        while True:
            self.drain()
            remaining = deadline - time.time()
            if remaining <= 0:
                return "timeout"
            try:
                reply = self.kc.get_shell_msg(timeout=min(0.2, remaining))
            except queue.Empty:
                if not self.km.is_alive():
                    return "kernel-died"
                continue
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            return "ok" if reply.get("content", {}).get("status") == "ok" else "error"

    def run_cells(self) -> None:
        cell_timeout = float(self.job["cell_timeout"])
        grace = float(self.job["interrupt_grace"])
        for i, code in enumerate(self.job["cells"]):
            if time.time() >= self.job["deadline"]:
                self.save(run="notebook-timeout", detail=f"stopped before cell {i + 1}")
                return
            deadline = min(time.time() + cell_timeout, self.job["deadline"])
            msg_id = self.kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
            outcome = self.wait_reply(msg_id, deadline)
            if outcome == "timeout":
                notebook_over = time.time() >= self.job["deadline"]
                self.km.interrupt_kernel()
                after = self.wait_reply(msg_id, time.time() + grace)
                self.save(timed_out_cells=self.status["timed_out_cells"] + 1)
                if after in ("timeout", "kernel-died"):
                    self.km.shutdown_kernel(now=True)
                    self.save(run="killed-after-timeout",
                              detail=f"cell {i + 1} ignored the interrupt; the kernel was killed")
                    return
                if notebook_over:
                    self.save(run="notebook-timeout", detail=f"cell {i + 1} interrupted at the notebook limit")
                    return
                outcome = "error"
            if outcome == "kernel-died":
                self.save(run="kernel-died", detail=f"the kernel exited during cell {i + 1}")
                return
            self.save(state="running", cells_run=i + 1,
                      error_cells=self.status["error_cells"] + (outcome == "error"))
        self.save(run="cell-timeout" if self.status["timed_out_cells"] else "completed")

    def discard_kernel(self) -> None:
        """Forget a kernel that failed to start (stop it if it lingers), ready for another attempt."""
        self.close()
        self.km = self.kc = self.iopub = None
        self.stderr_tail = b""

    def close(self) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            if self.km is not None and self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        except Exception:
            pass
        if self.stderr_fd is not None:
            os.close(self.stderr_fd)
            self.stderr_fd = None


def _python_folders() -> list[str]:
    """The folders the kernel's Python needs: its installation (``sys.base_prefix``), the real folder
    of its executable, that of ``libpython`` (a shared build loads it at exec) and ``sys.path``."""
    folders = [sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
               sysconfig.get_config_var("LIBDIR") or ""]
    return [os.path.realpath(p) for p in folders + sys.path if p and os.path.isdir(p)]


def _reach_python(uid: int, private: str) -> None:
    """As root, in a private mount namespace of this process: make Python's own folders reachable by
    ``uid`` where they lie under a folder it cannot enter (a Python installed in root's 0700 home, e.g.
    by pyenv: without this, the kernel's Python cannot load its ``libpython`` or standard library and
    dies before its first reply). Only those folders come back, read-only (``sandbox_server``'s
    ``bring_into_reach``); the rest of that folder is covered by an empty tmpfs. The kernel's own pid
    and mount namespaces (``unshare --mount``) start from a copy of these mounts. Failures are written
    to stderr (the worker shows them if the kernel then fails to start) and the kernel is started anyway.
    ``private``: a folder of root's (the worker's control folder) for the staging folder, not the
    kernel's TMPDIR, which its uid owns."""
    spec = importlib.util.spec_from_file_location(
        "_companion_sandbox_server", os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_server.py"))
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    stage_root = None
    try:
        server.private_mount_namespace()
        stage_root = tempfile.mkdtemp(prefix="reach-", dir=private)
        server.bring_into_reach(_python_folders(), uid, stage_root)
    except OSError as err:
        print(f"companion grader: Python's folders could not be brought into the kernel's reach ({err})",
              file=sys.stderr, flush=True)
    finally:
        if stage_root is not None:
            shutil.rmtree(stage_root, ignore_errors=True)


def launch_kernel_as(uid: int, connection_file: str, work: str, memory: int = 0) -> None:
    """Run by the kernelspec as root: hand the kernel a copy of its connection file in its own folder,
    cap its address space at ``memory`` bytes (0: no cap), bring Python's own folders into its reach
    (``_reach_python``), and start it in pid and mount namespaces of its own (``unshare``, where
    present: its ``/proc`` shows only its own processes, not the grader's, and everything it starts
    dies with it) under ``uid`` with no supplementary groups."""
    copy = os.path.join(work, ".kernel-" + os.path.basename(connection_file))
    with open(connection_file, "rb") as f:
        data = f.read()
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(copy, uid, uid)
    _reach_python(uid, os.path.dirname(os.path.abspath(connection_file)))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m", "ipykernel_launcher", "-f", copy]
    if shutil.which("unshare"):
        argv = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
                "--propagation", "private"] + argv
    os.execvp(argv[0], argv)


def main() -> int:
    if sys.argv[1:2] == ["--kernel-as"]:
        launch_kernel_as(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]) if sys.argv[5:] else 0)
    job = json.loads(sys.stdin.read())
    worker = _Worker(job)
    worker.save()
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                worker.start_kernel(attempt)
                break
            except Exception as err:
                stderr = worker.stderr_summary()
                if attempt < START_ATTEMPTS and PORT_TAKEN in stderr and time.time() < job["startup_deadline"]:
                    worker.discard_kernel()  # a lost race for a port, not the submission's doing: again
                    continue
                detail = f"{type(err).__name__}: {err}"[:300]
                if stderr:
                    detail += f"; the kernel's stderr ended: {stderr}"
                if attempt > 1:
                    detail += f" (after {attempt} attempts)"
                worker.save(run="kernel-start-failed", detail=detail)
                return 1
        worker.run_cells()
    except Exception as err:  # a bug here must still leave a status behind
        worker.save(run=worker.status["run"] or "worker-died", detail=f"{type(err).__name__}: {err}"[:500])
        return 1
    finally:
        worker.close()
        worker.save(state="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
