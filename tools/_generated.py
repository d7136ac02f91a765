"""The command line shared by the tools that regenerate committed files (tools/colab.py,
tools/student_surface.py): without options they rewrite what is stale; with ``--check`` they write
nothing and exit 1 with the reason when something is stale (what the tests and CI run)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable


def main(argv, doc: str, stale_reason: Callable[[], str | None], write: Callable[[], None]) -> int:
    """Parse ``argv`` (``--check``); ``stale_reason()`` says why the files are stale, or None;
    ``write()`` regenerates them (called without ``--check``, even when nothing is stale)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 (saying why) if anything is stale")
    args = parser.parse_args(argv)
    if args.check:
        reason = stale_reason()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        return 0
    write()
    return 0
