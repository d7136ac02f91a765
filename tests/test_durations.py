"""The order of ``make test`` under xdist (tests/conftest.py): files longest first from
tests/durations.json, unknown files last, each file's items together and in their order. And the same
conftest's retry of an nbval kernel that died before its first reply."""
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

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


def _flaky_start(failures):
    """A stand-in for ``start_new_kernel`` that raises ``failures`` in turn, then returns "kernel"."""
    calls = []

    def start(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "kernel"
    return start, calls


def test_an_nbval_kernel_that_died_before_its_first_reply_is_started_again():
    died = RuntimeError("Kernel died before replying to kernel_info")
    start, calls = _flaky_start([died, died])
    assert conftest._start_again_if_it_died(start)(kernel_name="k", cwd="c") == "kernel"
    assert calls == [((), {"kernel_name": "k", "cwd": "c"})] * 3
    start, calls = _flaky_start([died] * conftest.KERNEL_STARTS)  # dies every time: the error stands
    with pytest.raises(RuntimeError, match="died before replying"):
        conftest._start_again_if_it_died(start)()
    assert len(calls) == conftest.KERNEL_STARTS
    start, calls = _flaky_start([RuntimeError("Kernel didn't respond in 60 seconds")])  # not retried
    with pytest.raises(RuntimeError, match="didn't respond"):
        conftest._start_again_if_it_died(start)()
    assert len(calls) == 1


def test_nbval_starts_its_kernels_through_the_retry():
    nbval_kernel = pytest.importorskip("nbval.kernel")
    assert nbval_kernel.start_new_kernel.wrapped.__module__ == "nbval.kernel"  # nbval's own, wrapped once
    assert not hasattr(nbval_kernel.start_new_kernel.wrapped, "wrapped")
