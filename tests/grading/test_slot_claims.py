"""Job slots are claimed machine-wide (``sandboxing.job_slots``): two grader processes running at once
on one machine (two terminals, a job array on one node, tests under xdist) grade under disjoint uids,
so a student's kernel in one cannot write into or signal another grader's kernel.

The "graders" here are forks of this process (no second torch import): each claims slots, reports
them over a pipe and holds them until the test closes its pipe or SIGKILLs it. Claims of the
fixed-index tests are taken in a private folder; the others use the real one, where other graders
(another pytest process) may hold slots too, so they check disjointness, not numbers.
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

from companion_lib.grading.instructor import evaluation, sandboxing
from companion_lib.grading.instructor.processes import NotebookRun, Reaper
from companion_lib.grading.instructor.submissions import read_submissions

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_fixtures"))
import submissions  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
                                reason="slots are claimed by root graders only (no uid switch without root)")


_HOLDS: set = set()  # the test's ends of the forked processes' hold pipes


def _fork(work) -> tuple[int, int, int]:
    """Run ``work()`` (JSON-able result) in a forked process that then waits until its hold pipe is
    closed: (pid, the end to read its answer from, the end that keeps it alive)."""
    out_r, out_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            for fd in _HOLDS | {out_r, hold_w}:  # other children's lifelines end with the test's
                os.close(fd)
            try:
                answer = {"result": work()}
            except BaseException as err:  # noqa: BLE001 (reported to the test)
                answer = {"error": f"{type(err).__name__}: {err}"}
            os.write(out_w, json.dumps(answer).encode())
            os.close(out_w)
            os.read(hold_r, 1)  # returns once the test closes its end (or never: SIGKILL)
        finally:
            os._exit(0)
    os.close(out_w)
    os.close(hold_r)
    _HOLDS.add(hold_w)
    return pid, out_r, hold_w


def _answer(out_r):
    """The forked process's result (or {"error": ...}), once it has one."""
    data = b""
    while chunk := os.read(out_r, 65536):
        data += chunk
    os.close(out_r)
    answer = json.loads(data)
    return answer.get("result", answer)


def _forked(work) -> tuple[int, object, int]:
    """``_fork`` and wait for its answer: (pid, result, the end that keeps it alive)."""
    pid, out_r, hold = _fork(work)
    return pid, _answer(out_r), hold


def _end(pid, hold, kill=False) -> None:
    if kill:
        os.kill(pid, signal.SIGKILL)
    os.close(hold)
    _HOLDS.discard(hold)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) if kill else os.WEXITSTATUS(status) == 0


def _claimer(count, folder):
    return lambda: [index for index, _ in sandboxing._claim(count, str(folder))]


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="companion-test-slots-")) / "slots"  # created by the claim
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_two_graders_at_once_claim_disjoint_slots(folder):
    a, got_a, hold_a = _forked(_claimer(2, folder))
    b, got_b, hold_b = _forked(_claimer(3, folder))
    try:
        assert got_a == [0, 1] and got_b == [2, 3, 4]
        assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == 0
        mine = sandboxing._claim(2, str(folder))  # a third process, while both hold theirs
        assert [i for i, _ in mine] == [5, 6]
        for _, fd in mine:
            os.close(fd)
    finally:
        _end(a, hold_a)
        _end(b, hold_b)


def test_a_graders_slots_are_free_again_once_it_exits_even_killed(folder):
    a, got_a, hold_a = _forked(_claimer(2, folder))
    b, got_b, hold_b = _forked(_claimer(1, folder))
    assert (got_a, got_b) == ([0, 1], [2])
    _end(a, hold_a, kill=True)  # SIGKILL: no cleanup ran, the kernel closed its descriptors
    c, got_c, hold_c = _forked(_claimer(3, folder))
    assert got_c == [0, 1, 3]  # b still holds 2
    _end(b, hold_b)
    _end(c, hold_c)
    d, got_d, hold_d = _forked(_claimer(2, folder))
    assert got_d == [0, 1]
    _end(d, hold_d)


def test_too_few_free_slots_is_a_clear_error(folder, monkeypatch):
    monkeypatch.setattr(sandboxing, "SLOTS", 3)
    a, got_a, hold_a = _forked(_claimer(2, folder))
    try:
        assert got_a == [0, 1]
        with pytest.raises(RuntimeError, match="only 1 of the 3 job slots are free.*smaller --jobs"):
            sandboxing._claim(2, str(folder))
        index, fd = sandboxing._claim(1, str(folder))[0]  # the one released by the failed claim
        assert index == 2
        os.close(fd)
    finally:
        _end(a, hold_a)


def test_a_lock_folder_that_is_not_roots_own_0700_folder_is_refused(folder):
    folder.mkdir(mode=0o700)
    elsewhere = folder.parent / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = folder.parent / "link"
    link.symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="not a plain folder.*symlink"):
        sandboxing._claim(1, str(link))
    assert not list(elsewhere.iterdir())  # nothing was created through the link
    plain = folder.parent / "file"
    plain.write_text("")
    with pytest.raises(PermissionError, match="not a plain folder"):
        sandboxing._claim(1, str(plain))
    os.chown(folder, 65533, 65533)  # e.g. made in /tmp by a kernel before any grader
    with pytest.raises(PermissionError, match="owned by uid 0, found uid 65533"):
        sandboxing._claim(1, str(folder))
    os.chown(folder, 0, 0)
    os.chmod(folder, 0o755)
    with pytest.raises(PermissionError, match="mode 0755"):
        sandboxing._claim(1, str(folder))
    os.chmod(folder, 0o700)
    assert not list(folder.iterdir())  # the refusals created no lock file
    got = sandboxing._claim(1, str(folder))  # the other side: root's 0700 folder is used
    assert [i for i, _ in got] == [0] and (folder / "0.lock").stat().st_mode & 0o777 == 0o600
    os.close(got[0][1])


def test_job_slots_of_two_processes_are_disjoint_and_their_uids_too():
    mine = sandboxing.job_slots(2)
    assert sandboxing.job_slots(1) == mine[:1] and len(set(mine)) == 2  # claims are kept and reused
    a, got_a, hold_a = _forked(lambda: sandboxing.job_slots(2))  # the fork drops this process's claims
    b, got_b, hold_b = _forked(lambda: sandboxing.job_slots(1))
    try:
        assert len(set(mine + got_a + got_b)) == 5, (mine, got_a, got_b)
        kernel_uids = [sandboxing.uids(i)[0] for i in mine + got_a + got_b]
        assert len(set(kernel_uids)) == 5
    finally:
        _end(a, hold_a)
        _end(b, hold_b)
    for bad in (0, sandboxing.SLOTS + 1, True, 1.0):
        with pytest.raises(ValueError, match="jobs"):
            sandboxing.job_slots(bad)


def test_an_evaluation_on_its_own_sandboxes_under_its_processs_slot(monkeypatch):
    """``evaluate_cells``/``evaluate_submission`` without a server or uid (an instructor's script, the
    Gradescope autograder): two processes at once get the sandbox uids of their own slots (both used
    slot 0's uid, 65534, before)."""
    used = []

    class _Recorder:  # stands in for the sandbox server: records its uid (no cells: nothing runs)
        def __init__(self, uid, timeout):
            used.append(uid)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(evaluation, "SandboxServer", _Recorder)

    def evaluate():
        grades = evaluation.evaluate_cells([], ["14.1.gaussian_mle"], seed=1)
        return [grades["14.1.gaussian_mle"]["status"], used[-1], sandboxing.job_slots(1)[0]]

    a, got_a, hold_a = _forked(evaluate)
    b, got_b, hold_b = _forked(evaluate)
    try:
        assert got_a[0] == got_b[0] == "missing", (got_a, got_b)
        assert got_a[1] != got_b[1], (got_a, got_b)
        assert [got_a[1], got_b[1]] == [sandboxing.uids(got_a[2])[1], sandboxing.uids(got_b[2])[1]]
    finally:
        _end(a, hold_a)
        _end(b, hold_b)


def test_without_root_no_slot_is_claimed(monkeypatch):
    monkeypatch.setattr(sandboxing, "_SLOT_FOLDERS", ("/nonexistent/a", "/nonexistent/b"))  # never touched
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert sandboxing.job_slots(3) == [0, 1, 2]


def test_two_graders_started_at_once_run_their_kernels_under_different_uids(tmp_path):
    """End to end: two processes each run a notebook (NotebookRun, slot=None: the process's own claim)
    whose kernel records its uid (kernels have pid namespaces of their own: a random file name), then waits until the other kernel has recorded its own, so both run
    at the same time."""
    seen = Path(tempfile.mkdtemp(prefix="companion-test-uids-"))  # not under pytest's 0700 folders
    os.chmod(seen, 0o777)
    cell = (f"import os, time\nopen(os.path.join({str(seen)!r}, os.urandom(8).hex()), 'w').write(str(os.getuid()))\n"
            f"end = time.time() + 60\nwhile len(os.listdir({str(seen)!r})) < 2 and time.time() < end:\n"
            "    time.sleep(0.05)")
    nb = submissions.write_notebook(tmp_path / "uid.ipynb", [cell])
    sub = read_submissions([nb])[0]

    def grade():
        run = NotebookRun(sub, [], 0, cell_timeout=90, notebook_timeout=90)
        reaper = Reaper()
        run.start()
        try:
            while not run.poll():
                time.sleep(0.05)
            status = run._status()
        finally:
            run.kill(reaper)
            shutil.rmtree(run.tmp, ignore_errors=True)
        return {"slot": run.slot, "kernel_uid": run.kernel_uid, "run": status.get("run"),
                "error_cells": status.get("error_cells")}

    try:
        started = [_fork(grade), _fork(grade)]  # both before either answers
        results = [_answer(out) for _, out, _ in started]
        for pid, _, hold in started:
            _end(pid, hold)
        recorded = sorted(int(f.read_text()) for f in seen.iterdir())
    finally:
        shutil.rmtree(seen, ignore_errors=True)
    assert all(r.get("run") == "completed" and r["error_cells"] == 0 for r in results), results
    assert recorded == sorted(r["kernel_uid"] for r in results), (recorded, results)
    assert len(set(recorded)) == 2 and results[0]["slot"] != results[1]["slot"], results
