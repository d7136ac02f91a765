"""Shared fixtures of the unit tests.

``make test`` exports ``COMPANION_NO_FLOAT64=1`` so that every notebook (nbval, in kernels that
inherit the variable) runs under the no-float64 stand-in of ``companion_lib.settings``. The unit
tests compare with float64 oracles and must not inherit it: each test under ``tests/`` runs with
the variable unset, and a test that turns the stand-in on (``settings.no_float64()``) must turn it
off again. ``tests/test_no_float64.py`` runs the public functions under the stand-in on purpose.

Threads: every test runs with one torch thread (restored after it): the tests' tensors are small,
one thread is faster, and the machine's cores are shared (``-n 2`` workers, other processes).
Tests that run scikit-learn's k-means (OpenMP) or NumPy's BLAS at scale also ask for
``one_blas_thread`` (``pytestmark = pytest.mark.usefixtures("one_blas_thread")``); it is not
autouse because ``threadpool_limits`` costs ~2 ms a test.

Order (``make test``: ``-n 2 --dist loadfile --no-loadscope-reorder``): xdist's LoadFile scheduler
hands out whole files in collection order, so under xdist the files (test modules and notebooks) are
collected longest first, from the measured seconds in ``tests/durations.json``; files not in the
table come last, in their usual order. Then two workers stay busy to the end instead of one running
a long notebook alone. A plain, single-process run keeps the usual order. The table is rewritten from
a run by ``COMPANION_WRITE_DURATIONS=tests/durations.json make test`` (only files that ran are updated).

Kernels (nbval): a notebook's kernel that dies before its first reply is started again, twice at most
(``_start_again_if_it_died``). jupyter_client picks free ports and the kernel binds them a moment later;
with two workers and the grading tests starting kernels, another process can take one in between
(the grader's own worker retries the same way). No cell has run at that point: nothing is hidden.
"""
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from companion_lib import settings


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_blas_thread():
    """One OpenMP/BLAS thread (scikit-learn's k-means, NumPy) for the test: oversubscribed threads
    on a shared 2-core machine made the mixture tests several times slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _no_float64_stays_off(monkeypatch):
    monkeypatch.delenv("COMPANION_NO_FLOAT64", raising=False)
    assert not settings.no_float64_active(), "the no-float64 stand-in was left on by an earlier test"
    yield
    assert not settings.no_float64_active(), "this test left the no-float64 stand-in on"


@pytest.fixture(scope="session")
def companion_wheel(tmp_path_factory) -> Path:
    """The companion's wheel, built once per session, offline, from a copy of this checkout (the
    working tree gets no build/ or egg-info folder): the builder the Gradescope autograder packs.
    Used by test_packaging and test_colab_cell."""
    from companion_lib.grading.instructor.gradescope import _build_wheel

    return _build_wheel(tmp_path_factory.mktemp("wheel"))


# --------------------------------------------------------------------------------------------------
# nbval's kernels: started again when one dies before its first reply (see the module docstring)
KERNEL_STARTS = 3


def _start_again_if_it_died(start):
    """``start`` (nbval's ``start_new_kernel``), tried up to ``KERNEL_STARTS`` times while the
    kernel dies before replying to ``kernel_info``; any other failure (a timeout) is raised at once."""
    def start_new_kernel(*args, **kwargs):
        for attempt in range(1, KERNEL_STARTS + 1):
            try:
                return start(*args, **kwargs)
            except RuntimeError as err:
                if "died before replying" not in str(err) or attempt == KERNEL_STARTS:
                    raise
    start_new_kernel.wrapped = start
    return start_new_kernel


def pytest_configure(config):
    try:
        from nbval import kernel as nbval_kernel
    except ImportError:
        return
    if not hasattr(nbval_kernel.start_new_kernel, "wrapped"):
        nbval_kernel.start_new_kernel = _start_again_if_it_died(nbval_kernel.start_new_kernel)


# --------------------------------------------------------------------------------------------------
# Longest files first under xdist (see the module docstring)
DURATIONS = Path(__file__).with_name("durations.json")
_WRITE_DURATIONS = os.environ.get("COMPANION_WRITE_DURATIONS")
_seconds_per_file: dict = defaultdict(float)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _durations() -> dict:
    """file (relative to the repository, as in node ids) -> measured seconds of all its tests."""
    try:
        table = json.loads(DURATIONS.read_text())["seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {str(k): float(v) for k, v in table.items() if isinstance(v, (int, float))}


def _longest_first(items, table: dict) -> list:
    """``items`` grouped by file, the files in decreasing measured seconds, unknown files last; items
    of one file (and unknown files among themselves) keep their order (a stable sort)."""
    return sorted(items, key=lambda item: (_file_of(item.nodeid) not in table,
                                           -table.get(_file_of(item.nodeid), 0.0)))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller dispatches in this order
        items[:] = _longest_first(items, _durations())


def pytest_runtest_logreport(report):
    if _WRITE_DURATIONS:
        _seconds_per_file[_file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session):
    if _WRITE_DURATIONS and not hasattr(session.config, "workerinput") and _seconds_per_file:
        table = {**_durations(), **{f: round(s, 1) for f, s in _seconds_per_file.items()}}
        about = ("seconds per file (setup + call + teardown of its tests or notebook cells), written by "
                 "tests/conftest.py when COMPANION_WRITE_DURATIONS names this file; read to order the "
                 "files longest first under xdist")
        Path(_WRITE_DURATIONS).write_text(json.dumps(
            {"about": about, "seconds": dict(sorted(table.items(), key=lambda kv: -kv[1]))}, indent=1) + "\n")
