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
"""
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
