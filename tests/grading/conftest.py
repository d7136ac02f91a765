"""The grader's tests sign results with a key of their own: ``XDG_CONFIG_HOME`` points to a temporary
folder for the whole session, so ``~/.config/companion-grade/key`` is never created or read."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _grader_key_home(tmp_path_factory):
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if before is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = before
