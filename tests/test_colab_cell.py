"""The first cell of every lesson (tagged ``colab``; tools/colab.py writes it from pyproject.toml's
Repository and the package's version) and what derives from the same address.

The cell is taken from a committed chapter notebook and run in fresh Python processes:

* without ``google.colab`` (any machine but Colab): it starts no process (no pip) and prints nothing;
* with a stand-in ``google.colab`` imported first (as Colab's kernel does) and
  ``COMPANION_COLAB_SOURCE`` naming a wheel built here, in a throwaway virtual environment that sees
  this project's installed packages except the companion: it installs the wheel with ``--no-deps``,
  every other package keeps its version (``pip freeze`` before and after), the import works and the
  report says all dependencies are present;
* the same in an environment that has only pip: the report names every dependency as missing.
"""
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab as colab_tool  # noqa: E402  (tools/colab.py)
import repository  # noqa: E402  (tools/repository.py)

from companion_lib import __version__, colab, settings  # noqa: E402

SITE = Path(sysconfig.get_paths()["purelib"])  # this project's environment (.venv)


@pytest.fixture(scope="module")
def cell() -> str:
    nb = jupytext.read(ROOT / "chapters" / "14_1_pearson_crabs.ipynb")
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "colab" in first.metadata.get("tags", [])
    return first.source


def _venv(where: Path, keep) -> Path:
    """A virtual environment without pip of its own that sees the entries of this project's
    site-packages for which ``keep(name)`` is true (symlinked into one folder, named by a .pth file:
    .pth files in that folder are not run, so the editable install of the companion is not active)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    farm = where / "farm"
    farm.mkdir()
    for entry in SITE.iterdir():
        if keep(entry.name):
            (farm / entry.name).symlink_to(entry)
    python = where / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project_packages.pth").write_text(f"{farm}\n")
    return python


def _not_the_companion(name: str) -> bool:
    return not (name.startswith(("companion_lib", "__editable__", "__pycache__")) or name.endswith(".pth"))


def _run(python: Path, code: str, tmp: Path, colab_here: bool, extra_env=None):
    fake = tmp / "fake_colab"
    (fake / "google" / "colab").mkdir(parents=True, exist_ok=True)  # namespace package "google"
    (fake / "google" / "colab" / "__init__.py").write_text("")
    spy = tmp / "spy"
    spy.mkdir(exist_ok=True)
    (spy / "sitecustomize.py").write_text(
        "import os, subprocess\n"
        "_init = subprocess.Popen.__init__\n"
        "def _logged(self, args, *a, **k):\n"
        "    with open(os.environ['SPY_LOG'], 'a') as f:\n"
        "        f.write(repr(args) + '\\n')\n"
        "    _init(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = _logged\n"
        "_system = os.system\n"
        "os.system = lambda c: (open(os.environ['SPY_LOG'], 'a').write(repr(c) + '\\n'), _system(c))[1]\n")
    log = tmp / "calls.log"
    log.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "COMPANION_COLAB"))}
    env.update(PYTHONPATH=os.pathsep.join([str(spy), str(fake)]), SPY_LOG=str(log), PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", **(extra_env or {}))
    prelude = "import google.colab\n" if colab_here else ""
    done = subprocess.run([python, "-c", prelude + code], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=180)
    return done, [line for line in log.read_text().splitlines() if line]


def _freeze(python: Path, tmp: Path) -> list[str]:
    done = subprocess.run([python, "-m", "pip", "freeze", "--all"], cwd=tmp, capture_output=True, text=True,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.splitlines())


def test_outside_colab_the_cell_runs_nothing_and_prints_nothing(cell, tmp_path):
    done, calls = _run(Path(sys.executable), cell, tmp_path, colab_here=False,
                       extra_env={"COMPANION_COLAB_SOURCE": "/nonexistent.whl"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and calls == [], (done.stdout, calls)
    # the spy sees a process when one is started (the check above can fail)
    done, calls = _run(Path(sys.executable), "import subprocess; subprocess.run(['true'])", tmp_path, False)
    assert calls == ["['true']"], calls


def test_on_colab_the_cell_installs_the_wheel_alone_and_reports(cell, tmp_path, companion_wheel):
    python = _venv(tmp_path / "venv", _not_the_companion)
    gone = subprocess.run([python, "-c", "import companion_lib"], cwd=tmp_path, capture_output=True)
    assert gone.returncode != 0, "the throwaway environment must not see the checkout's companion_lib"
    before = _freeze(python, tmp_path)
    code = cell + "\nimport companion_lib; print('imported from', companion_lib.__file__)"
    done, calls = _run(python, code, tmp_path, colab_here=True,
                       extra_env={"COMPANION_COLAB_SOURCE": str(companion_wheel)})
    assert done.returncode == 0, done.stdout + done.stderr
    pips = [c for c in calls if "'pip'" in c]  # (pip's own children, lsb_release etc., are logged too)
    assert len(pips) == 1 and "'-m', 'pip', 'install'" in pips[0] and "'--no-deps'" in pips[0], calls
    lines = done.stdout.splitlines()
    assert re.match(rf"companion_lib {re.escape(__version__)} installed; all \d+ dependencies present", lines[0]), lines
    assert str(tmp_path / "venv") in lines[1], lines  # the import is the installed wheel, not the checkout
    after = _freeze(python, tmp_path)
    added = sorted(set(after) - set(before))
    assert sorted(set(before) - set(after)) == [], "the install changed packages that were there"
    assert len(added) == 1 and added[0].startswith("companion_lib"), added
    # run again: the version is there, so no second pip
    done, calls = _run(python, cell, tmp_path, colab_here=True,
                       extra_env={"COMPANION_COLAB_SOURCE": str(companion_wheel)})
    assert done.returncode == 0 and calls == [], (done.stderr, calls)


def test_on_colab_a_missing_dependency_is_named(cell, tmp_path, companion_wheel):
    python = _venv(tmp_path / "venv", lambda name: name == "pip" or name.startswith("pip-"))
    done, _ = _run(python, cell, tmp_path, colab_here=True,
                   extra_env={"COMPANION_COLAB_SOURCE": str(companion_wheel)})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "missing or too old" in out and "torch (not installed; needs >=" in out, out
    assert "ipywidgets (not installed" in out and '%pip install "torch>=' in out, out


def test_unmet_requirements_names_what_is_missing_or_too_old():
    assert colab.unmet_requirements() == []  # this environment has every dependency
    unmet = colab.unmet_requirements(["torch>=999", "surely-not-installed-pkg>=1", "numpy>=1.0"])
    assert unmet[0].startswith("torch ") and unmet[0].endswith("(needs >=999)")
    assert unmet[1] == "surely-not-installed-pkg (not installed; needs >=1)" and len(unmet) == 2
    with pytest.raises(TypeError):
        colab.unmet_requirements("torch>=2")
    with pytest.raises(ValueError):
        colab.unmet_requirements(["!!"])
    with pytest.raises(ValueError, match="not installed"):
        colab.report("surely-not-installed-pkg")


def test_the_pip_command_is_the_same_whatever_wrote_the_metadata(monkeypatch, capsys):
    """setuptools 75 (Colab's) writes ``Requires-Dist: torch >=2.1``, newer ones ``torch>=2.1``, metadata
    1.2 ``torch (>=2.1)``: the report's command is ``"name>=x"`` for each, without the marker."""
    written = ["surely-not-installed-pkg >=1", "other-not-installed-pkg (>=2,<3) ; python_version < '9'",
               "third-not-installed-pkg>=0.5"]
    monkeypatch.setattr(colab, "_requirements", lambda distribution: written)
    assert colab.report() == [
        "surely-not-installed-pkg (not installed; needs >=1)",
        "other-not-installed-pkg (not installed; needs >=2,<3)",
        "third-not-installed-pkg (not installed; needs >=0.5)"]
    out = capsys.readouterr().out
    assert ('%pip install "surely-not-installed-pkg>=1" "other-not-installed-pkg>=2,<3" '
            '"third-not-installed-pkg>=0.5"') in out, out


def test_generated_content_is_up_to_date():
    """README's links, every lesson's first cell and the times file match pyproject and the version."""
    assert colab_tool.stale() == [], "run python tools/colab.py, then jupytext --sync chapters/*.py"
    assert repository.version() == __version__
    assert f"@v{__version__}" in colab_tool.cell_source()
    readme = (ROOT / "README.md").read_text()
    assert repository.colab_url("chapters/14_1_pearson_crabs.ipynb") in readme


def test_a_fork_changes_one_line(tmp_path, monkeypatch):
    fork = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    fork.write_text(text.replace(repository.repository_url(), "https://github.com/someone/fork"))
    monkeypatch.setattr(repository, "PYPROJECT", fork)
    assert "git+https://github.com/someone/fork@v" in colab_tool.cell_source()
    assert ("https://colab.research.google.com/github/someone/fork/blob/main/chapters/14_1_pearson_crabs.ipynb"
            in colab_tool.links_table())
    stale = {p.name for p in colab_tool.stale()}
    assert "README.md" in stale and "14_1_pearson_crabs.py" in stale and "full_mode_times.json" not in stale


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "github.com/a/b", "https://github.com/a", ""])
def test_the_repository_must_be_a_github_address(tmp_path, url):
    bad = tmp_path / "pyproject.toml"
    bad.write_text(f'[project]\nname = "x"\n[project.urls]\nRepository = "{url}"\n')
    with pytest.raises(ValueError, match="github.com"):
        repository.repository_url(bad)
    good = tmp_path / "good.toml"
    good.write_text('[project.urls]\nRepository = "https://github.com/a/b.git"\n')
    assert repository.repository_url(good) == "https://github.com/a/b"


def test_first_cell_replaces_or_inserts():
    header = "# ---\n# jupyter:\n#   x: 1\n# ---\n\n"
    body = "# %% [markdown]\n# # Title\n"
    once = colab_tool.with_first_cell(header + body)
    assert once.startswith(header + colab_tool.CELL_MARKER) and once.endswith(body)
    old = once.replace(__version__, "0.0.1")
    assert colab_tool.with_first_cell(old) == once
    with pytest.raises(ValueError, match="header"):
        colab_tool.with_first_cell(body)


def test_full_mode_times_from_the_gpu_run(tmp_path):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    for name in ("14_1_a", "14_2_b", "14_3_c"):
        (chapters / f"{name}.py").write_text("")
    gpu = tmp_path / "gpu_check.json"
    assert colab_tool.full_mode_times(gpu, chapters)["notebooks"] == {"14_1_a": None, "14_2_b": None, "14_3_c": None}
    run = {"dry_run": False, "device": {"name": "NVIDIA H100", "cuda": True}, "notebooks": {
        "14_1_a": {"seconds": 61.27, "status": "passed", "mode": "full"},
        "14_2_b": {"seconds": 30, "status": "failed", "mode": "full"},   # a failed run is no time
        "14_3_c": {"seconds": 12, "status": "passed", "mode": "quick"},  # nor is a quick-mode one
        "99_x": {"seconds": 1, "status": "passed", "mode": "full"}}}     # not a lesson
    gpu.write_text(json.dumps(run))
    got = colab_tool.full_mode_times(gpu, chapters)["notebooks"]
    assert got == {"14_1_a": {"seconds": 61.3, "device": "NVIDIA H100"}, "14_2_b": None, "14_3_c": None}
    gpu.write_text(json.dumps(dict(run, dry_run=True)))                # the CPU rehearsal measures nothing
    assert set(colab_tool.full_mode_times(gpu, chapters)["notebooks"].values()) == {None}


def test_setup_prints_the_full_mode_time_or_not_measured(monkeypatch, capsys):
    monkeypatch.setenv("COMPANION_MODE", "full")
    monkeypatch.setenv("COMPANION_THREADS", "1")
    monkeypatch.setenv("COMPANION_DEVICE", "cpu")
    settings.setup(seed=0, notebook="14_1_pearson_crabs")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "14_1_pearson_crabs: not measured" in out[1]
    assert "os.environ['COMPANION_MODE'] = 'quick'" in out[1]
    monkeypatch.setattr(settings, "_full_mode_times", lambda: {"14_1_pearson_crabs": {"seconds": 83.4,
                                                                                       "device": "NVIDIA H100"}})
    settings.setup(seed=0, notebook="14_1_pearson_crabs")
    assert "14_1_pearson_crabs took 83 s in full mode on NVIDIA H100" in capsys.readouterr().out
    monkeypatch.setenv("COMPANION_MODE", "quick")
    settings.setup(seed=0, notebook="14_1_pearson_crabs")
    assert len(capsys.readouterr().out.splitlines()) == 1  # quick mode: the one line, as before
    with pytest.raises(ValueError, match="not a lesson"):
        settings.setup(seed=0, notebook="14_1_pearson_crab")
    with pytest.raises(TypeError):
        settings.setup(seed=0, notebook=14)
