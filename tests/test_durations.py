"""The order of ``make test`` under xdist (tests/conftest.py): files longest first from
tests/durations.json, unknown files last, each file's items together and in their order."""
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
# by path: under pytest, the module named "conftest" may be another folder's conftest.py
_spec = importlib.util.spec_from_file_location("_tests_conftest_order", ROOT / "tests" / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def _items(*nodeids):
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_files_go_longest_first_unknown_last_and_each_file_stays_in_order():
    items = _items("tests/a.py::t1", "tests/new.py::x", "chapters/b.ipynb::Cell 0", "tests/a.py::t2",
                   "chapters/b.ipynb::Cell 1", "tests/c.py::t", "tests/other_new.py::y")
    table = {"tests/a.py": 3.0, "chapters/b.ipynb": 50.0, "tests/c.py": 10.0}
    got = [i.nodeid for i in conftest._longest_first(items, table)]
    assert got == ["chapters/b.ipynb::Cell 0", "chapters/b.ipynb::Cell 1", "tests/c.py::t", "tests/a.py::t1",
                   "tests/a.py::t2", "tests/new.py::x", "tests/other_new.py::y"]


def test_the_committed_table_names_existing_files_with_positive_seconds():
    table = json.loads(conftest.DURATIONS.read_text())["seconds"]
    assert table and conftest._durations() == {k: float(v) for k, v in table.items()}
    missing = [f for f in table if not (ROOT / f).is_file()]
    assert not missing, f"tests/durations.json names files that are gone (rewrite it): {missing}"
    assert all(isinstance(v, (int, float)) and v > 0 for v in table.values())
