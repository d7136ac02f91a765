"""The wheel ships the whole library: every module under companion_lib/ (a new subpackage such as
companion_lib/grading/problems/ must not silently stay behind) and every data file of
companion_lib/datasets/. The wheel is built offline from a copy of the project (the working tree gets
no build/ or egg-info folder)."""
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "companion_lib"


def test_the_wheel_holds_every_module_and_data_file(companion_wheel):
    wheel = companion_wheel  # tests/conftest.py: built once per session from a copy of the project
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in LIB.rglob("*.py") if "__pycache__" not in p.parts}
    data = {p.relative_to(ROOT).as_posix() for p in (LIB / "datasets").iterdir() if p.is_file()}
    assert "companion_lib/grading/problems/p14_1.py" in modules  # the walk sees the subpackages
    assert {"companion_lib/datasets/digit_judge.pt", "companion_lib/datasets/PROVENANCE.md"} <= data
    assert not modules - shipped, f"modules missing from the wheel: {sorted(modules - shipped)}"
    assert not data - shipped, f"data files missing from the wheel: {sorted(data - shipped)}"
