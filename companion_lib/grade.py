"""``python -m companion_lib.grade``: the instructor's command, a thin entry point.

The grader lives in ``companion_lib.grading.instructor`` (its docstring states the trust boundary);
``python -m companion_lib.grade --help`` lists the options.
"""
import sys

from companion_lib.grading.instructor.cli import main, run

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(run())
