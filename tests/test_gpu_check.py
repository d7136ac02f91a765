"""tools/gpu_check.sh, the GPU run of issue 21, tested on the CPU: its dry run end to end (every step runs
and the results follow the schema README's GPU table is generated from), the arguments it refuses, the
wheel-set check behind ``make gpu-wheels``, a notebook stopped at its budget, and the GPU table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # noqa: E402
import readme_table  # noqa: E402

SCRIPT = ROOT / "tools" / "gpu_check.sh"


def _script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, COMPANION_THREADS="1")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    done = _script("--dry-run", "--out", str(out))
    return done, out


def test_dry_run_runs_every_step_and_writes_the_schema(dry_run):
    done, out = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "gpu_check.json").read_text())
    assert gpu_check.check_results(results) == []
    assert results["dry_run"] is True and results["device"]["cuda"] is False
    assert results["device"]["import_errors"] == {} and results["device"]["torch"]
    assert {step: row["status"] for step, row in results["steps"].items()} == dict.fromkeys(gpu_check.STEPS, "ok")
    # The CUDA tests were found and none ran without CUDA.
    tests = results["cuda_tests"]
    assert tests["selected"] >= 4 and tests["skipped"] == tests["selected"] and tests["failed"] == 0
    # One lesson ran in quick mode to the end; every other lesson is listed as skipped.
    books = results["notebooks"]
    assert set(books) == set(gpu_check.NOTEBOOKS)
    ran = {name: row for name, row in books.items() if row["status"] != "skipped"}
    assert list(ran) == list(gpu_check.DRY_NOTEBOOKS)
    assert all(row["status"] == "passed" and row["mode"] == "quick" and row["seconds"] > 0 for row in ran.values())
    # The peers ran and wrote their JSON beside the results.
    assert results["peers_json"] == "peers_cpu.json"
    assert json.loads((out / results["peers_json"]).read_text())
    print(f"dry run: {results['total_seconds']} s; steps " +
          ", ".join(f"{s} {r['seconds']} s" for s, r in results["steps"].items()))


def test_the_gpu_table_reads_a_gpu_run_and_refuses_a_dry_run(dry_run):
    _, out = dry_run
    dry = json.loads((out / "gpu_check.json").read_text())
    with pytest.raises(SystemExit, match="dry run"):
        readme_table.render_gpu(dry, ["15_3_1_forward_diffusion"])
    gpu = json.loads(json.dumps(dry))
    gpu["dry_run"] = False
    gpu["device"].update(name="NVIDIA H100 80GB HBM3", cuda=True)
    gpu["notebooks"]["14_4_elbo"] = {"status": "timeout", "seconds": 91.0, "budget_s": 90.0, "mode": "full",
                                     "error": "stopped"}
    gpu["notebooks"]["15_3_1_forward_diffusion"].update(seconds=41.6, mode="full")
    table = readme_table.render_gpu(gpu, ["14_4_elbo", "15_3_1_forward_diffusion", "new_lesson"])
    assert "| `chapters/15_3_1_forward_diffusion` | 42 s |" in table
    assert "| `chapters/14_4_elbo` | > 90 s (stopped at its budget) |" in table
    assert "| `chapters/new_lesson` | not measured |" in table and "NVIDIA H100 80GB HBM3" in table
    assert table.count("not measured") == 1 + sum(r["status"] == "skipped" for r in gpu["notebooks"].values())
    absent = readme_table.render_gpu(None, ["14_4_elbo", "15_2_coupling_flows"])
    assert absent.count("| not measured |") == 2
    gpu["notebooks"]["14_4_elbo"]["status"] = "finished"      # not a status of the schema
    with pytest.raises(SystemExit, match="schema"):
        readme_table.render_gpu(gpu, [])


def test_check_results_rejects_what_departs_from_the_schema(dry_run):
    _, out = dry_run
    good = json.loads((out / "gpu_check.json").read_text())
    assert gpu_check.check_results(good) == []
    for change in (lambda r: r.pop("notebooks"),
                   lambda r: r["steps"].pop("peers"),
                   lambda r: r["steps"]["install"].update(status="fine"),
                   lambda r: r["notebooks"]["14_4_elbo"].update(seconds=3.0),   # skipped, yet timed
                   lambda r: r["cuda_tests"].update(passed="4"),
                   lambda r: r["device"].pop("torch"),
                   lambda r: r.update(schema=2)):
        bad = json.loads(json.dumps(good))
        change(bad)
        assert gpu_check.check_results(bad), change


@pytest.mark.parametrize("args, message", [
    (["--frobnicate"], "unknown argument '--frobnicate'"),
    (["results"], "unknown argument 'results'"),
    (["--out"], "--out needs a value"),
    (["--out", "--dry-run"], "--out needs a value"),
    (["--dry-run", "--notebooks", "14_9_nothing"], "unknown lesson(s) ['14_9_nothing']"),
    (["--dry-run", "--out", "README.md"], "exists and is not a folder"),
])
def test_bad_arguments_are_refused(args, message):
    done = _script(*args, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (ROOT / "README.md" / "gpu_check.json").exists()


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\n{meta}")
    return path


def test_check_wheels_finds_a_missing_dependency_a_stray_wheel_and_an_oversized_set(tmp_path, monkeypatch):
    pins = {"nbclient": "0.11.0", "jupyter-core": "5.9.1"}
    _wheel(tmp_path, "nbclient", "0.11.0", ["jupyter-core>=5.4.0", "traitlets>=5.13; python_version >= '4'",
                                             "sphinx; extra == 'docs'", "numpy"])   # numpy: on the machine
    _wheel(tmp_path, "jupyter_core", "5.9.1", ["platformdirs>=2.5"])
    problems = gpu_check.check_wheels(tmp_path, pins)
    assert problems == ["jupyter_core-5.9.1-py3-none-any.whl needs platformdirs>=2.5: neither carried nor on "
                        "the GPU machine"]
    _wheel(tmp_path, "platformdirs", "4.14.9", [])
    assert gpu_check.check_wheels(tmp_path, dict(pins, platformdirs="4.14.9")) == []
    assert "zuko==1.6.0: found no wheel" in gpu_check.check_wheels(tmp_path, pins | {"platformdirs": "4.14.9",
                                                                                     "zuko": "1.6.0"})
    assert any("platformdirs ['4.14.9']: not pinned" in p for p in gpu_check.check_wheels(tmp_path, pins))
    _wheel(tmp_path, "zuko", "1.6.0", ["torch>=2.12"])                                # 2.11.0 there
    assert any("torch 2.11.0 does not satisfy" in p
               for p in gpu_check.check_wheels(tmp_path, pins | {"platformdirs": "4.14.9", "zuko": "1.6.0"}))
    monkeypatch.setattr(gpu_check, "MAX_WHEELS_BYTES", 100)
    assert any("MiB of wheels: over" in p for p in gpu_check.check_wheels(tmp_path, pins))


def test_read_pins_takes_exact_pins_only(tmp_path):
    pins = gpu_check.read_pins()
    assert {"nbclient", "ipykernel", "diffusers", "zuko"} <= set(pins)
    assert not set(pins) & {"torch", "numpy", "scipy", "scikit-learn"}      # already on the GPU machine
    # The GPU runs what CI runs: a package pinned in both places has one version.
    course = {}
    for name in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / name).read_text().splitlines():
            if "==" in line and not line.lstrip().startswith("#"):
                package, version = line.split("#")[0].strip().split("==")
                course[gpu_check._normalize(package)] = version
    shared = set(pins) & set(course)
    assert {"nbclient", "ipykernel", "diffusers", "zuko"} <= shared
    assert {n: pins[n] for n in shared} == {n: course[n] for n in shared}
    for text in ("nbclient>=0.11\n", "nbclient==0.11.0\nNBClient==0.11.0\n", "# nothing\n"):
        (tmp_path / "r.txt").write_text(text)
        with pytest.raises(ValueError):
            gpu_check.read_pins(tmp_path / "r.txt")


def test_a_notebook_past_its_budget_is_stopped_and_a_failing_one_reported(tmp_path):
    slow, broken = tmp_path / "slow.ipynb", tmp_path / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(120)")]), slow)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), broken)
    result = gpu_check.run_notebook_child(sys.executable, slow, 3.0, dict(os.environ), tmp_path / "log", tmp_path)
    assert result["status"] == "timeout" and 3.0 <= result["seconds"] < 60, result
    result = gpu_check._execute_notebook(broken, budget=60.0)
    assert result["status"] == "failed" and "ZeroDivisionError" in result["error"]


class _Item:
    def __init__(self, *marks):
        self.marks = [m.mark for m in marks]

    def iter_markers(self, name):
        return (m for m in self.marks if m.name == name)


@pytest.mark.parametrize("cuda_absent", [True, False])
def test_the_cuda_tests_are_those_skipped_without_cuda(cuda_absent):
    """On either machine: a test skipped when CUDA is absent is selected; one skipped when CUDA is present
    (the CPU-only message's test), one skipped for another reason, and an unmarked one are not."""
    cuda_test = _Item(pytest.mark.skipif(cuda_absent, reason="needs a CUDA GPU"))
    cpu_only = _Item(pytest.mark.skipif(not cuda_absent, reason="checks the message of a machine without CUDA"))
    other = _Item(pytest.mark.skipif(cuda_absent, reason="slow"))
    assert gpu_check._is_cuda_test(cuda_test, cuda_absent)
    assert not any(gpu_check._is_cuda_test(i, cuda_absent) for i in (cpu_only, other, _Item()))
