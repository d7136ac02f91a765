"""The versions the companion claims (issue 20), checked offline: no environment is built here.

* constraints/colab.txt (Colab as it ships) and constraints/minimum.txt (pyproject's lower bounds), the
  two environments `make test-colab` and `make test-minimum` build, satisfy pyproject.toml's
  dependencies and grade extra, and the test extra where they pin it: installing the companion against
  either changes none of their pins. Where a pinned package is installed here at its pinned version
  (all of them in .venv-colab), its own requirements are checked against the pins too (the transitive
  part we can know offline).
* every lower bound of the dependencies and the grade extra is pinned, exactly, in one of the two;
* requirements.txt and requirements-test.txt (what `make test` and CI run) satisfy pyproject.toml;
* the checker itself rejects the realistic wrong cases (ipywidgets>=8 against Colab's 7.7.1, an
  untested lower bound, a missing pin);
* Python 3.13 (Colab's): nothing imports a module that 3.12/3.13 removed (PEP 594, distutils, imp,
  lib2to3). That every pin has a cp313 or pure-Python wheel was checked with `pip download` (README,
  "Versions"); it needs the network, so it is not a test.

Regenerating constraints/colab.txt from a newer Colab list (its header says what is kept): resolve
``pip install --dry-run --report r.json -c <Colab's list without URL, nvidia-*, cuda-* lines, torch==X>
'.[test,grade]'`` with Colab's Python and keep the resolved packages that Colab's list names.
"""
import ast
import importlib.metadata
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_unchanged", ROOT / "constraints" / "unchanged.py")
_unchanged = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_unchanged)
read_pins = _unchanged.read_pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject(path=ROOT / "pyproject.toml") -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)["project"]


def _requirements(project: dict, extras=("grade", "test")) -> list[Requirement]:
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def _unsatisfied(requirements, pins: dict, required=()) -> list[str]:
    """What installing ``requirements`` against ``pins`` would change: each requirement whose package is
    pinned at a version its specifier excludes; names in ``required`` must be pinned at all."""
    problems = []
    for req in requirements:
        name = _norm(req.name)
        if name not in pins:
            if name in required:
                problems.append(f"{req.name} is not pinned")
            continue
        if not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req} excludes the pinned {req.name}=={pins[name]}")
    return problems


def _untested_lower_bounds(requirements, *pin_sets) -> list[str]:
    """Requirements whose ``>=`` bound no pin set holds exactly (the bound is then a claim, not a test)."""
    problems = []
    for req in requirements:
        lows = [s.version for s in req.specifier if s.operator == ">="]
        if not lows:
            problems.append(f"{req} has no lower bound")
            continue
        pinned = [p.get(_norm(req.name)) for p in pin_sets]
        if not any(v is not None and Version(v) == Version(lows[0]) for v in pinned):
            problems.append(f"{req}: no environment pins {req.name}=={lows[0]} (pinned: {pinned})")
    return problems


def _installed_requirements(pins: dict) -> dict[str, list[Requirement]]:
    """{name: its requirements} for every pinned package installed here at its pinned version."""
    out = {}
    for name, version in pins.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != Version(version):
            continue
        reqs = []
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                reqs.append(req)
        out[name] = reqs
    return out


PROJECT = _pyproject()
COLAB = read_pins(ROOT / "constraints" / "colab.txt")
MINIMUM = read_pins(ROOT / "constraints" / "minimum.txt")
CORE = [Requirement(r) for r in PROJECT["dependencies"]] + \
       [Requirement(r) for r in PROJECT["optional-dependencies"]["grade"]]


@pytest.mark.parametrize("pins", [COLAB, MINIMUM], ids=["colab", "minimum"])
def test_constraints_satisfy_pyproject(pins):
    """Every pinned version satisfies pyproject (dependencies, grade and test extras): pip would keep it."""
    assert _unsatisfied(_requirements(PROJECT), pins) == []


def test_colab_pins_every_dependency_and_the_grade_extra():
    """Colab ships all of them, so `pip install` there must find each one already satisfied."""
    assert _unsatisfied(CORE, COLAB, required={_norm(r.name) for r in CORE}) == []


def test_minimum_pins_every_core_dependency_at_its_lower_bound():
    deps = [Requirement(r) for r in PROJECT["dependencies"]]
    assert _untested_lower_bounds(deps, MINIMUM) == []


def test_every_lower_bound_is_pinned_in_an_environment():
    assert _untested_lower_bounds(CORE, MINIMUM, COLAB) == []


@pytest.mark.parametrize("pins", [COLAB, MINIMUM], ids=["colab", "minimum"])
def test_installed_pins_agree_with_each_others_requirements(pins):
    """Transitively, as far as this environment knows: each pinned package installed here at its pin
    accepts the other pins (in .venv-colab every pin is installed, so this is Colab's whole closure)."""
    found = _installed_requirements(pins)
    problems = {name: p for name, reqs in found.items() if (p := _unsatisfied(reqs, pins))}
    assert problems == {}


def test_colab_constraints_are_pypi_only_with_colab_versions():
    text = (ROOT / "constraints" / "colab.txt").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.]*", ln) for ln in lines), \
        [ln for ln in lines if "==" not in ln or "@" in ln or "+" in ln]
    assert not [n for n in COLAB if n.startswith(("nvidia-", "cuda-"))]
    # the versions the issue read off Colab's list (August 2026)
    assert {n: COLAB[n] for n in ("torch", "numpy", "scipy", "scikit-learn", "matplotlib", "ipywidgets",
                                  "ipykernel", "ipython", "jupyter-client", "tqdm")} == {
        "torch": "2.11.0", "numpy": "2.1.3", "scipy": "1.16.3", "scikit-learn": "1.6.1",
        "matplotlib": "3.10.0", "ipywidgets": "7.7.1", "ipykernel": "6.17.1", "ipython": "7.34.0",
        "jupyter-client": "7.4.9", "tqdm": "4.67.3"}


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-test.txt"])
def test_pinned_requirements_satisfy_pyproject(name):
    pins = read_pins(ROOT / name)
    assert pins, name
    assert _unsatisfied(_requirements(PROJECT), pins) == []


def test_pinned_environment_pins_every_dependency():
    pins = read_pins(ROOT / "requirements.txt")
    deps = [Requirement(r) for r in PROJECT["dependencies"]]
    assert _unsatisfied(deps, pins, required={_norm(r.name) for r in deps}) == []


def test_requires_python_is_what_is_tested():
    """3.11: the pinned environment's floor (and the Makefile's check); Colab runs 3.13."""
    assert PROJECT["requires-python"] == ">=3.11"


# ------------------------------------------------------------------ the checker fails when it should
def test_checker_rejects_a_bound_that_colab_does_not_meet(tmp_path):
    """The state the issue found: pyproject asking ipywidgets>=8 would replace Colab's 7.7.1."""
    fake = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    fake.write_text(re.sub(r'"ipywidgets>=[^"]*"', '"ipywidgets>=8"', text))
    project = _pyproject(fake)
    assert _unsatisfied(_requirements(project), COLAB) == ["ipywidgets>=8 excludes the pinned ipywidgets==7.7.1"]
    assert _unsatisfied(_requirements(PROJECT), COLAB) == []


def test_checker_rejects_an_untested_lower_bound_and_a_missing_pin():
    loose = [Requirement("torch>=2.0"), Requirement("numpy>=1.24")]
    assert _untested_lower_bounds(loose, MINIMUM) == [
        "torch>=2.0: no environment pins torch==2.0 (pinned: ['2.1.0'])"]
    assert _untested_lower_bounds([Requirement("numpy")], MINIMUM) == ["numpy has no lower bound"]
    assert _unsatisfied([Requirement("seaborn>=0.13")], COLAB, required={"seaborn"}) == ["seaborn is not pinned"]
    assert _unsatisfied([Requirement("scikit-learn>=1.7")], MINIMUM) == [
        "scikit-learn>=1.7 excludes the pinned scikit-learn==1.6.0"]


def test_installed_requirements_reads_this_environment():
    """The transitive check sees real metadata: pytest is installed here, at its own version."""
    version = importlib.metadata.version("pytest")
    found = _installed_requirements({"pytest": version})
    assert "pluggy" in {_norm(r.name) for r in found["pytest"]}
    assert _unsatisfied(found["pytest"], {"pluggy": "0.1"}) != []
    assert _installed_requirements({"pytest": "0.0.1"}) == {}


# ------------------------------------------------------------------ Python 3.13
# PEP 594's dead batteries (gone in 3.13), and what 3.12/3.13 removed besides.
REMOVED = {"aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis",
           "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
           "asynchat", "asyncore", "smtpd", "distutils", "imp", "lib2to3", "tkinter.tix"}


def _removed_imports(source: str) -> list[str]:
    """Modules of REMOVED that ``source`` imports (import, from-import, importlib.import_module("...")
    or __import__("...") with a literal name)."""
    found = []

    def check(name):
        if name and any(name == m or name.startswith(m + ".") for m in REMOVED):
            found.append(name)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            check(node.module)
            for alias in node.names:
                check(f"{node.module}.{alias.name}")
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) == "__import__")):
            check(node.args[0].value)
    return found


def _project_sources():
    for folder in ("companion_lib", "tools", "tests", "chapters", "solutions", "constraints"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_nothing_imports_a_module_python_313_removed():
    sources = list(_project_sources())
    assert len(sources) > 100
    bad = {str(p.relative_to(ROOT)): hits for p in sources if (hits := _removed_imports(p.read_text()))}
    assert bad == {}


def test_removed_import_scan_catches_each_form():
    assert _removed_imports("import cgi") == ["cgi"]
    assert _removed_imports("from distutils.version import LooseVersion") == [
        "distutils.version", "distutils.version.LooseVersion"]
    assert _removed_imports("from tkinter import tix") == ["tkinter.tix"]
    assert _removed_imports("import importlib\nimportlib.import_module('imp')") == ["imp"]
    assert _removed_imports("__import__('telnetlib')") == ["telnetlib"]
    assert _removed_imports("import cgitb_like, impala, tkinter, shutil\nfrom . import imp") == []


# ------------------------------------------------------------------ draws that must not depend on the torch version
def test_recipe_init_seed_is_the_same_on_every_supported_torch():
    """recipes.train_vae seeds its weights from one float64 uniform of the generator: these values were
    measured on torch 2.1.0, 2.11.0 and 2.13.0 alike (`make test-minimum` and `make test-colab` run this
    test there). torch.randint, used before, gave 924231286 on 2.1 and 1179589038 on 2.11/2.13 for seed 0."""
    import torch

    from companion_lib import recipes

    assert [recipes._init_seed(torch.Generator().manual_seed(s)) for s in (0, 1, 2024)] == [
        2083172958, 131110909, 544875271]
    g = torch.Generator().manual_seed(0)
    recipes._init_seed(g)
    assert torch.randperm(5, generator=g).tolist() == torch.randperm(
        5, generator=_after_one_uniform(torch.Generator().manual_seed(0))).tolist()


def _after_one_uniform(g):
    import torch

    torch.rand((), generator=g, dtype=torch.float64)
    return g
