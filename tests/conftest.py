"""Shared fixtures of the unit tests.

``make test`` exports ``COMPANION_NO_FLOAT64=1`` so that every notebook (nbval, in kernels that
inherit the variable) runs under the no-float64 stand-in of ``companion_lib.settings``. The unit
tests compare with float64 oracles and must not inherit it: each test under ``tests/`` runs with
the variable unset, and a test that turns the stand-in on (``settings.no_float64()``) must turn it
off again. ``tests/test_no_float64.py`` runs the public functions under the stand-in on purpose.
"""
import pytest

from companion_lib import settings


@pytest.fixture(autouse=True)
def _no_float64_stays_off(monkeypatch):
    monkeypatch.delenv("COMPANION_NO_FLOAT64", raising=False)
    assert not settings.no_float64_active(), "the no-float64 stand-in was left on by an earlier test"
    yield
    assert not settings.no_float64_active(), "this test left the no-float64 stand-in on"
