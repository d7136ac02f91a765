"""The Gradescope autograder (issue 17): ``python -m companion_lib.grade gradescope --out autograder.zip``
writes a zip that Gradescope can take (setup.sh, run_autograder, the config, the companion's wheel),
and ``run_autograder`` run against a temporary tree standing in for ``/autograder`` (named by
``AUTOGRADER_ROOT``) writes results.json in Gradescope's documented format: one test per problem of
the assignment, full credit for an honest notebook, none for a wrong one, and a clear message when
the submission holds no notebook. Each graded notebook costs a kernel start (about 20 s here).
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from companion_lib.grading import PROBLEMS
from companion_lib.grading.instructor import cli, gradescope
from companion_lib.grading.instructor.submissions import assignment

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_fixtures"))
import submissions  # noqa: E402

SECTIONS = ["14.1"]
HEADER = "import torch\nfrom companion_lib.grading import check"
M_STEP = """def m_step(x, resp):
    n_k = resp.sum(0)
    means = (resp * x[:, None]).sum(0) / n_k
    variances = (resp * (x[:, None] - means) ** 2).sum(0) / n_k
    return n_k / x.shape[0], means, variances
check("14.1.m_step", m_step)"""
M_STEP_WRONG = M_STEP.replace("/ n_k\n    return", "/ (n_k - 1)\n    return")  # an unbiased-variance slip
HONEST = [HEADER, submissions.E_STEP, submissions.MLE, M_STEP]
WRONG = [HEADER, submissions.E_STEP_WRONG + '\ncheck("14.1.e_step", e_step)', M_STEP_WRONG]


def _fake_wheel(folder: Path) -> Path:
    """A stand-in wheel (the zip's layout is under test here; tests/test_packaging.py builds the real one)."""
    wheel = folder / "companion_lib-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("companion_lib/__init__.py", "")
    return wheel


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradescope")
    out = folder / "autograder.zip"
    code = cli.main(["gradescope", "--out", str(out), "--sections", *SECTIONS, "--seed", "5",
                     "--points", "14.1.m_step=2", "--cell-timeout", "60", "--wheel", str(_fake_wheel(folder))])
    assert code == 0
    return out


def _tree(autograder: Path, root: Path, cells=None) -> Path:
    """A fresh /autograder stand-in: source/ = the zip's contents, run_autograder copied, a submission."""
    with zipfile.ZipFile(autograder) as zf:
        zf.extractall(root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    (root / "submission").mkdir()
    if cells is not None:
        submissions.write_notebook(root / "submission" / "hw1.ipynb", cells)
    return root


def _run(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER")}
    env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    done = subprocess.run([str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=600,
                          cwd="/")
    assert (root / "results" / "results.json").is_file(), done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    _check_format(results)
    return results


def _run_here(root: Path) -> dict:
    """``run_autograder`` on ``root`` in this process: what ``run_autograder`` (the script) runs, without
    a second interpreter importing torch (the script itself is run by ``_run``, for the honest notebook)."""
    assert gradescope.run_autograder(root) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    _check_format(results)
    return results


def _check_format(results: dict) -> None:
    """Gradescope's results.json: tests with name, score, max_score (numbers), output; a total score."""
    assert isinstance(results["tests"], list) and results["tests"]
    for test in results["tests"]:
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
        assert 0 <= test["score"] <= test["max_score"] and test.get("status", "passed") in ("passed", "failed")
        assert test.get("visibility", "visible") in ("hidden", "after_due_date", "after_published", "visible")
    assert results["score"] == sum(t["score"] for t in results["tests"])
    json.dumps(results, allow_nan=False)  # strict JSON: no NaN or infinity


def test_the_zip_has_what_gradescope_needs_at_its_root(autograder):
    with zipfile.ZipFile(autograder) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        config = json.loads(zf.read(gradescope.CONFIG))
        setup, run = zf.read("setup.sh").decode(), zf.read("run_autograder").decode()
    assert names == {"setup.sh", "run_autograder", gradescope.CONFIG, "companion_lib-0.1.0-py3-none-any.whl"}
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert setup.startswith("#!/usr/bin/env bash") and "companion_lib-*.whl" in setup and "[grade]" in setup
    assert run.startswith("#!/usr/bin/env bash") and "gradescope --run" in run
    assert config["problems"] == assignment(SECTIONS) and config["seed"] == 5 and config["sections"] == SECTIONS
    assert config["points"] == {"14.1.e_step": 1.0, "14.1.gaussian_mle": 1.0, "14.1.m_step": 2.0}
    for script in ("setup.sh", "run_autograder"):
        assert subprocess.run(["bash", "-n", "-c", setup if script == "setup.sh" else run]).returncode == 0


def test_an_honest_notebook_gets_every_point_and_a_wrong_one_none_where_wrong(autograder, tmp_path):
    honest = _run(_tree(autograder, tmp_path / "honest", HONEST))
    wrong = _run_here(_tree(autograder, tmp_path / "wrong", WRONG))
    ids = assignment(SECTIONS)
    for results in (honest, wrong):
        assert [t["number"] for t in results["tests"]] == ids  # every problem is a test, in order
        assert all(t["name"].startswith(pid) and PROBLEMS[pid].title in t["name"]
                   for t, pid in zip(results["tests"], ids))
    assert [t["max_score"] for t in honest["tests"]] == [1.0, 1.0, 2.0]
    assert honest["score"] == 4.0, honest
    assert all(t["status"] == "passed" and t["output"] == "passed" for t in honest["tests"])
    by_id = {t["number"]: t for t in wrong["tests"]}
    assert wrong["score"] == 0.0, wrong
    assert by_id["14.1.e_step"]["output"].startswith("failed: ")  # the student sees why
    assert by_id["14.1.gaussian_mle"]["output"].startswith("missing")
    assert by_id["14.1.m_step"]["output"].startswith("failed: ")
    assert honest["extra_data"]["run"] == "completed" and "completed" in honest["output"]


def test_a_submission_without_a_notebook_gets_zero_and_says_why(autograder, tmp_path):
    root = _tree(autograder, tmp_path / "empty")
    (root / "submission" / "answers.py").write_text("print('hi')\n")
    results = _run_here(root)
    assert results["score"] == 0.0 and "exactly one .ipynb notebook" in results["output"]
    assert "answers.py" not in results["output"] and "none" in results["output"]


def test_several_notebooks_are_refused_by_name(autograder, tmp_path):
    root = _tree(autograder, tmp_path / "two", HONEST)
    submissions.write_notebook(root / "submission" / "copy.ipynb", HONEST)
    (root / "submission" / ".ipynb_checkpoints").mkdir()
    submissions.write_notebook(root / "submission" / ".ipynb_checkpoints" / "hw1-checkpoint.ipynb", HONEST)
    results = gradescope.results_json(None, json.loads((root / "source" / gradescope.CONFIG).read_text()),
                                      gradescope._submission(root, json.loads(
                                          (root / "source" / gradescope.CONFIG).read_text()))[1])
    _check_format(results)
    assert results["score"] == 0.0 and "copy.ipynb, hw1.ipynb" in results["output"]
    assert "checkpoint" not in results["output"]


def test_a_self_reported_problem_is_shown_but_worth_nothing(tmp_path):
    (pid,) = [p for p in assignment(["14.5"]) if PROBLEMS[p].self_reported]
    config = {"problems": assignment(["14.5"]), "points": gradescope._points(assignment(["14.5"]), None)}
    assert config["points"][pid] == 0.0 and sum(config["points"].values()) == len(config["problems"]) - 1
    grades = {p: {"status": "passed", "message": ""} for p in config["problems"]}
    grades[pid] = {"status": "self-reported", "message": "bound 97.1 (self-reported: no credit)"}
    results = gradescope.results_json({"name": "hw.ipynb", "run": "completed", "grades": grades}, config)
    _check_format(results)
    test = {t["number"]: t for t in results["tests"]}[pid]
    assert test["score"] == test["max_score"] == 0.0 and "status" not in test
    assert test["output"].startswith("self-reported: bound 97.1")
    assert results["score"] == len(config["problems"]) - 1
    with pytest.raises(ValueError, match="self-reported"):
        gradescope._points(config["problems"], [f"{pid}=1"])


def test_bad_arguments_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="--points expects"):
        gradescope.build_autograder(tmp_path / "a.zip", SECTIONS, points=["14.9.nope=1"], wheel=_fake_wheel(tmp_path))
    with pytest.raises(ValueError, match="must be >= 0"):
        gradescope.build_autograder(tmp_path / "a.zip", SECTIONS, points=["14.1.e_step=-1"], wheel=_fake_wheel(tmp_path))
    with pytest.raises(ValueError, match=r"\.zip"):
        gradescope.build_autograder(tmp_path / "a.tar", SECTIONS, wheel=_fake_wheel(tmp_path))
    with pytest.raises(ValueError, match="no problems in section"):
        gradescope.build_autograder(tmp_path / "a.zip", ["99.9"], wheel=_fake_wheel(tmp_path))
    with pytest.raises(TypeError, match="sections"):
        gradescope.build_autograder(tmp_path / "a.zip", "14.1", wheel=_fake_wheel(tmp_path))
    with pytest.raises(ValueError, match="wheel"):
        gradescope.build_autograder(tmp_path / "a.zip", SECTIONS, wheel=tmp_path / "missing.whl")
    with pytest.raises(SystemExit):
        cli.main(["gradescope"])  # neither --out nor --run
    assert not (tmp_path / "a.zip").exists()
