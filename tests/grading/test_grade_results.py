"""Results that cannot be forged or lost, and limits the grader enforces itself (issue 17, attacks 6-13).

One small class (an attacker, three honest classmates, one wrong answer; nbgrader's
``<student>/hw.ipynb`` layout, a non-ASCII name and a leading ``_``) is graded once with ``--jobs 2``;
the attacker's kernel, for a dozen seconds, writes failing exports into every classmate's temporary
folder it can reach (6), forges result files with ``graded_at`` in 2099 in the results folder (7) and
damages ``_meta/run.json`` and ``_meta/started`` (10). Running as root (CI), the kernel runs under
another uid and none of these writes succeeds; in same-uid mode they do, and the grader must notice.
Either way the attacker gets no credit and no classmate's result changes. The other tests reuse the
run's results folder (merge of a forged ``/out`` (8), a forged classmate result + SIGTERM + ``--resume``
(9)) or need no kernel (limits, 13's deadline on one notebook).
"""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from companion_lib import grade
from companion_lib.grading import limits
from companion_lib.grading.instructor import deadlines, ledger
from companion_lib.grading.instructor.processes import INTERRUPT_GRACE, NotebookRun, Reaper
from companion_lib.grading.instructor.submissions import read_submissions

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_fixtures"))
import submissions as fixtures  # noqa: E402

SECTIONS = ["14.1"]
CREDIT = ["14.1.e_step", "14.1.gaussian_mle"]
CELL_TIMEOUT = 25  # the first cell imports torch on a shared machine
HEADER = "import os, time\nimport torch\nfrom companion_lib.grading import check"
HONEST = [HEADER, fixtures.E_STEP, fixtures.MLE]
ROOT = Path(__file__).resolve().parents[2]


CLASS_FILES = ("hw.ipynb", "Émilie.ipynb", "_x.ipynb")  # what a classmate's work folder holds


def _vandal(results: Path, seconds: float = 8) -> str:
    """The attacker's cell: for ``seconds``, write into every classmate's temp folder, forge every
    result in ``results`` (graded_at 2099; classmates failed, itself passed), damage ``_meta``.
    Classmates' folders only (those holding one of ``CLASS_FILES``): this test is about one class; a
    grader of another test running at the same time (xdist) claims other job slots, so other uids
    (tests/grading/test_slot_claims.py tests that separation)."""
    return f"""import glob, json, shutil
results, end, me = {str(results)!r}, time.time() + {seconds}, os.getcwd()
fake = json.dumps({{"problem": "14.1.e_step", "cell": 1, "answer": {{}}, "outcomes": [["error", "x"]]}})
def classmates(d):  # /tmp/companion-grade-XXXX/...: that run's work/ holds a classmate's notebook
    run = '/'.join(d.split('/')[:3])
    return any(os.path.exists(os.path.join(run, 'work', n)) for n in {CLASS_FILES!r})
while time.time() < end:
    for d in glob.glob('/tmp/companion-grade-*/**/', recursive=True) + glob.glob('/tmp/companion-grade-*/work/'):
        if not me.startswith(d.rstrip('/')) and classmates(d):
            try:
                open(os.path.join(d, 'torch.py'), 'w').write('raise SystemExit("mallory was here")')
            except OSError:
                pass
            for n in range(3):
                try:
                    open(os.path.join(d, f'{{n:06d}}.json'), 'w').write(fake)
                except OSError:
                    pass
    for f in glob.glob(results + '/subs/*.json') + glob.glob(results + '/*.json'):
        try:
            r = json.load(open(f))
            mine = 'mallory' in r['path']
            for g in r['grades'].values():
                g['status'] = 'passed' if mine else 'failed'
            r['graded_at'] = '2099-01-01T00:00:00Z'
            json.dump(r, open(f, 'w'))
            r['path'], r['sha256'] = 'mallory/hw.ipynb', 'f' * 64
            json.dump(r, open(results + '/subs/zz-forged.json', 'w'))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        open(results + '/_meta/run.json', 'w').write('garbage')
        shutil.rmtree(results + '/_meta/started')
        open(results + '/_meta/started', 'w').write('x')
    except OSError:
        pass
    time.sleep(0.2)
"""


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {r["notebook"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = root / "submitted"
    results = root / "grades-results"
    key_file = root / "instructor" / "key"
    honest_bob = [HEADER, fixtures.E_STEP.replace("def e_step", "# bob's\ndef e_step"), fixtures.MLE]
    cases = {  # path -> (cells, statuses of CREDIT)
        "mallory/hw.ipynb": ([HEADER, _vandal(results), fixtures.E_STEP_WRONG + '\ncheck("14.1.e_step", e_step)'],
                             ("failed", "missing")),
        "alice/hw.ipynb": (HONEST, ("passed", "passed")),
        "bob/hw.ipynb": (honest_bob, ("passed", "passed")),
        "Émilie.ipynb": (HONEST + ["émilie = 1"], ("passed", "passed")),
        "_x.ipynb": ([HEADER, fixtures.E_STEP_WRONG + '\ncheck("14.1.e_step", e_step)', fixtures.MLE],
                     ("failed", "passed")),
    }
    for rel, (cells, _) in cases.items():
        (subs / rel).parent.mkdir(parents=True, exist_ok=True)
        fixtures.write_notebook(subs / rel, cells)
    out = root / "grades.csv"
    start = time.time()
    code = grade.main([*(str(subs / rel) for rel in cases), "--csv", str(out), "--jobs", "2",
                       "--cell-timeout", str(CELL_TIMEOUT), "--sections", *SECTIONS, "--seed", "7",
                       "--key-file", str(key_file)])
    return {"root": root, "subs": subs, "cases": cases, "code": code, "rows": _rows(out), "results": results,
            "key_file": key_file, "feedback": root / "grades-feedback", "seconds": time.time() - start}


def _credit(row):
    return tuple(row[c] for c in CREDIT)


def test_every_submitted_file_gets_one_row_keyed_by_its_relative_path(graded):
    assert graded["code"] == 0
    assert set(graded["rows"]) == set(graded["cases"])  # two hw.ipynb, Émilie, _x: a row each
    for rel, (_, want) in graded["cases"].items():
        assert _credit(graded["rows"][rel]) == want, (rel, graded["rows"][rel])
    for rel in graded["cases"]:  # and a feedback file each, named by the relative path
        text = (graded["feedback"] / rel).with_suffix(".txt").read_text(encoding="utf-8")
        assert text.startswith(rel)
    assert len(list(graded["results"].glob("subs/*-*-*.json"))) >= len(graded["cases"])


def test_the_attacker_gets_no_credit_and_harms_no_classmate(graded):
    rows = graded["rows"]
    assert "passed" not in _credit(rows["mallory/hw.ipynb"])
    assert all(_credit(rows[r]) == ("passed", "passed") for r in ("alice/hw.ipynb", "bob/hw.ipynb", "Émilie.ipynb"))


def test_the_key_file_is_the_instructors_alone(graded, tmp_path):
    assert graded["key_file"].stat().st_mode & 0o777 == 0o600
    loose = tmp_path / "key"
    loose.write_text("ab" * 32)
    loose.chmod(0o644)
    with pytest.raises(ValueError, match="group/others"):
        ledger.load_key(loose)
    loose.chmod(0o600)
    assert ledger.load_key(loose) == bytes.fromhex("ab" * 32)
    for folder in (graded["results"], graded["results"] / "_meta", graded["results"] / "subs"):
        if folder.is_dir():
            assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.geteuid()


def _copy_results(graded, where: Path) -> Path:
    """The run's results as they would be had nothing touched them: signed again from the CSV's
    sources is not possible, so the verified ones are copied and the others dropped."""
    key = ledger.load_key(graded["key_file"])
    (where / "subs").mkdir(parents=True)
    for p in graded["results"].glob("subs/*.json"):
        r = json.loads(p.read_text())
        if ledger.verifies(r, key):
            shutil.copy(p, where / "subs" / p.name)
    return where


def test_merge_rejects_a_forged_out_folder_and_reports_missing_shards(graded, tmp_path, capsys):
    """Attack 8: the kernel of one container writes into its own ``/out`` a classmate's result
    (failed) and its own (passed), signed with a key it made up, and one with no signature."""
    honest = _copy_results(graded, tmp_path / "out-honest")
    forged = tmp_path / "out-mallory" / "subs"
    forged.mkdir(parents=True)
    real = {json.loads(p.read_text())["path"]: json.loads(p.read_text()) for p in honest.glob("subs/*.json")}
    mine = {**real.get("alice/hw.ipynb", {"path": "alice/hw.ipynb", "sha256": "0" * 64, "grades": {}})}
    mine["grades"] = {pid: {"status": "failed", "message": "x"} for pid in CREDIT}
    mine["graded_at"] = "2099-01-01T00:00:00Z"
    (forged / "alice.json").write_text(json.dumps(ledger.sign(mine, b"k" * 32)))
    theirs = {**mine, "path": "mallory/hw.ipynb", "grades": {pid: {"status": "passed"} for pid in CREDIT}}
    (forged / "mallory.json").write_text(json.dumps({k: v for k, v in theirs.items() if k != "hmac"}))
    expect = tmp_path / "class.txt"
    expect.write_text("\n".join([*graded["cases"], "carol/hw.ipynb"]) + "\n", encoding="utf-8")
    out = tmp_path / "merged.csv"
    code = grade.main(["merge", str(honest), str(forged.parent), "--csv", str(out), "--sections", *SECTIONS,
                       "--key-file", str(graded["key_file"]), "--expect", str(expect)])
    err = capsys.readouterr().err
    assert code == 1 and "carol/hw.ipynb: no result" in err
    assert err.count("does not verify") >= 2 and "alice.json" in err and "mallory.json" in err
    rows = _rows(out)
    assert _credit(rows["alice/hw.ipynb"]) == ("passed", "passed")
    assert "mallory/hw.ipynb" not in rows or "passed" not in _credit(rows["mallory/hw.ipynb"])


def test_forged_classmate_result_sigterm_and_damaged_meta_then_resume(graded, tmp_path, capsys):
    """Attack 9 and 10: a result file for a classmate's key (failed, 2099), the grader killed by
    SIGTERM in the middle of the attacker's notebook, ``_meta/run.json`` garbage and ``_meta/started``
    a file: ``--resume`` warns, rejects the forgery, regrades the classmate and writes the CSV."""
    results = _copy_results(graded, tmp_path / "results")
    key = ledger.load_key(graded["key_file"])
    alice = next(p for p in results.glob("subs/hw-*.json") if json.loads(p.read_text())["path"] == "alice/hw.ipynb")
    r = json.loads(alice.read_text())
    r["grades"] = {pid: {"status": "failed", "message": "forged"} for pid in r["grades"]}
    r["graded_at"] = "2099-01-01T00:00:00Z"
    alice.write_text(json.dumps(r))
    # in flight when SIGTERM comes 2 s after its start (its kernel is still starting then)
    mallory = [HEADER, "time.sleep(4)", fixtures.E_STEP_WRONG + '\ncheck("14.1.e_step", e_step)']
    subs = tmp_path / "submitted"
    for rel in graded["cases"]:
        (subs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graded["subs"] / rel, subs / rel)
    fixtures.write_notebook(subs / "mallory/hw.ipynb", mallory)
    argv = [sys.executable, "-m", "companion_lib.grade", *(str(subs / rel) for rel in graded["cases"]),
            "--results", str(results), "--resume", "--sections", *SECTIONS, "--seed", "7",
            "--cell-timeout", str(CELL_TIMEOUT), "--key-file", str(graded["key_file"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path))
    deadline = time.time() + 120
    while time.time() < deadline and not list((results / "_meta" / "started").glob("hw-*")):
        time.sleep(0.2)
    time.sleep(2)
    first.send_signal(signal.SIGTERM)  # what a same-uid kernel can do; as root it cannot
    log = first.communicate(timeout=60)[0].decode()
    assert first.returncode != 0, log
    assert "does not verify" in log and "alice/hw.ipynb is graded again" in log
    (results / "_meta" / "run.json").write_text("garbage")
    shutil.rmtree(results / "_meta" / "started", ignore_errors=True)
    (results / "_meta" / "started").write_text("x")
    out = tmp_path / "after.csv"
    assert grade.main([*argv[3:], "--csv", str(out)]) == 0  # in this process: no second torch import
    err = capsys.readouterr().err
    assert "run.json" in err and "started was replaced by a file" in err
    rows = _rows(out)
    assert set(rows) == set(graded["cases"])
    assert _credit(rows["alice/hw.ipynb"]) == ("passed", "passed")
    assert "passed" not in _credit(rows["mallory/hw.ipynb"])
    final = json.loads(alice.read_text())
    assert ledger.verifies(final, key) and final["graded_at"] != "2099-01-01T00:00:00Z"


# --------------------------------------------------------------------------------------------------
# Limits (attack 12: a small .npz that inflates huge, hard links) and the grader's clock (attack 13)
def _npy_member(zf, shape, payload_bytes, compress):
    info = zipfile.ZipInfo("a0.npy")
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zf.open(info, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
        for _ in range(payload_bytes // 2**20):
            f.write(bytes(2**20))


def test_exports_are_refused_before_anything_inflates(tmp_path):
    """What the grader reads from a student's process (a sandbox's output, an export) goes through
    ``limits``: a small ``.npz`` that inflates to 200 MB, a header that claims 8 GB, a hard link."""
    bomb, liar, honest = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(bomb, "w") as zf:
        _npy_member(zf, (200 * 2**17,), 200 * 2**20, compress=True)
    with zipfile.ZipFile(liar, "w") as zf:
        _npy_member(zf, (2**30,), 0, compress=False)
    np.savez(honest, a0=np.arange(3.0), a1=np.eye(2, dtype=np.float32))
    assert len(bomb.getvalue()) < 2**20
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(limits.LimitError, match="compressed"):
            limits.load_npz(bomb.getvalue())
        with pytest.raises(limits.LimitError, match="claims"):
            limits.load_npz(liar.getvalue())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1 and peak < 4 * 2**20
    back = limits.load_npz(honest.getvalue())  # and an honest one is read back exactly
    assert np.array_equal(back["a0"], np.arange(3.0)) and back["a1"].dtype == np.float32
    (tmp_path / "x.npz").write_bytes(honest.getvalue())
    assert limits.read_bytes(tmp_path / "x.npz") == honest.getvalue()
    os.link(tmp_path / "x.npz", tmp_path / "y.npz")
    with pytest.raises(limits.LimitError, match="hard links"):
        limits.read_bytes(tmp_path / "x.npz")
    (tmp_path / "z.npz").symlink_to(tmp_path / "y.npz")
    with pytest.raises(limits.LimitError, match="not a regular file"):
        limits.read_bytes(tmp_path / "z.npz")
    (tmp_path / "w.npz").write_bytes(honest.getvalue())
    with pytest.raises(limits.LimitError, match="over the limit"):
        limits.read_bytes(tmp_path / "w.npz", cap=10)
    budget = limits.Budget(100)
    budget.take(60, "a")
    with pytest.raises(limits.LimitError, match="read limit"):
        budget.take(60, "b")


def test_a_stopped_worker_is_killed_by_the_graders_clock(tmp_path, monkeypatch):
    """Attack 13: the kernel SIGSTOPs its worker (same uid), or the worker is stopped some other way:
    the grader's own clock kills everything at cell limit + grace + slack, not minutes later (and not
    before the cell's limit). The clock's slack is 1 s here instead of 5: the same code path, 4 s less
    waiting."""
    monkeypatch.setattr(deadlines, "SLACK", 1.0)
    nb = fixtures.write_notebook(tmp_path / "stop.ipynb", [
        HEADER, fixtures.E_STEP, "import signal\ntry:\n    os.kill(os.getppid(), signal.SIGSTOP)\n"
        "except OSError:\n    pass\ntime.sleep(10**6)", fixtures.MLE])
    cell_timeout = 10  # a slower first cell (the torch import) is interrupted: cells_run grows all the same
    run = NotebookRun(read_submissions([nb])[0], ["14.1.e_step", "14.1.gaussian_mle"], 7, cell_timeout, 600)
    reaper = Reaper()
    run.start()
    stopped_at = None
    try:
        while not run.poll():
            status = run._status()
            if stopped_at is None and int(status.get("cells_run", 0) or 0) >= 2:
                stopped_at = time.time()
                os.kill(run.proc.pid, signal.SIGSTOP)  # as root the kernel cannot: stop it from here
            time.sleep(0.1)
        ended = time.time()
    finally:
        result = run.finish(reaper)
        reaper.close()
    assert stopped_at is not None, result
    assert result["run"] == "killed-at-deadline", result
    waited = ended - stopped_at
    assert cell_timeout < waited < cell_timeout + INTERRUPT_GRACE + deadlines.SLACK + 10, waited  # (+ load)
    assert result["grades"]["14.1.e_step"]["status"] == "passed"  # what the notebook answered still counts
