"""The version moves with what students see (tools/student_surface.py, tests/student_surface.json).

The live surface (problem ids, their sections, kinds, answer signatures and graded/self-reported
status; the public names of every public module) is compared with the committed snapshot, tagged
with the version it was taken at. A change under the same version fails, saying to bump the version,
add a CHANGELOG entry and regenerate the snapshot; the version has one source.
"""
import copy
import json
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import student_surface  # noqa: E402  (tools/student_surface.py)

import companion_lib  # noqa: E402


@pytest.fixture(scope="module")
def live():
    return student_surface.surface()


@pytest.fixture(scope="module")
def snapshot():
    return json.loads(student_surface.SNAPSHOT.read_text())


def test_the_snapshot_matches_the_package(live, snapshot):
    problem = student_surface.verdict(snapshot, live, student_surface.CHANGELOG.read_text())
    assert problem is None, problem


def test_a_changed_surface_under_the_same_version_fails(live):
    changelog = student_surface.CHANGELOG.read_text()
    renamed = copy.deepcopy(live)
    renamed["problems"]["14.1.estep"] = renamed["problems"].pop("14.1.e_step")
    message = student_surface.verdict(renamed, live, changelog)
    assert message and "bump companion_lib.__version__" in message and "CHANGELOG.md" in message
    assert "python tools/student_surface.py" in message and "problem 14.1.e_step: added" in message
    regraded = copy.deepcopy(live)
    regraded["problems"]["14.5.trained_bound"]["status"] = "graded"
    assert "14.5.trained_bound" in student_surface.verdict(regraded, live, changelog)
    fewer = copy.deepcopy(live)
    fewer["modules"]["companion_lib.data"].remove("heldout_digits")
    assert "module companion_lib.data" in student_surface.verdict(fewer, live, changelog)


def test_a_new_version_needs_a_new_snapshot_and_a_changelog_entry(live):
    changelog = student_surface.CHANGELOG.read_text()
    older = dict(live, version="0.0.9")
    assert "regenerate it" in student_surface.verdict(older, live, changelog)
    assert "no '## " in student_surface.verdict(live, live, "# Changelog\n\n## 0.0.1\n")


def test_the_version_has_one_source():
    """pyproject takes the version from ``companion_lib.__version__`` (setuptools' dynamic attr)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "companion_lib.__version__"}
    assert companion_lib.__version__ == json.loads(student_surface.SNAPSHOT.read_text())["version"]


def test_problems_registered_by_tests_are_not_the_packages(live):
    """tests/grading registers fixture problems (0.9.*) in the same process; they are not part of what
    students see, so a worker that ran those tests first must not see a changed surface."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "grading" / "grading_fixtures"))
    import fixture_problems  # noqa: F401  (registers 0.9.scale, 0.9.threshold)
    from companion_lib.grading import PROBLEMS

    assert "0.9.scale" in PROBLEMS
    assert student_surface.surface()["problems"] == live["problems"]
