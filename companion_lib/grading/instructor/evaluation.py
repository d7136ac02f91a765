"""Grading one notebook's answers without the student's kernel: the public evaluation API.

:func:`evaluate_submission` reads a notebook as text, slices out for each problem the source that
rebuilds the answer handed to ``check(pid, answer)`` (``slicing``), runs that slice in a fresh
sandbox process of the grader's making (``sandbox``: a stubbed copy of ``companion_lib``, another uid
or a user namespace, the grader's test inputs in over a pipe, the outputs back as data) and judges
the outputs here, in the grader's process, against references computed here (``judge``).

Nothing the student's kernel writes or prints is read. Used by ``processes`` (the class grader) and
by the Gradescope autograder.
"""
from __future__ import annotations

__all__ = ["evaluate_submission"]


def evaluate_submission(notebook_bytes: bytes, problem_ids, seed: int, *, timeout: float = 120.0,
                        uid: int | None = None) -> dict:
    """pid -> {"status": one of ``grading.STATUSES``, "message": str} for one notebook.

    ``notebook_bytes``: the .ipynb file's content; ``problem_ids``: the assignment (registered ids);
    ``seed``: the notebook's seed (``submissions.notebook_seed``) from which each function problem's
    test inputs are drawn (``Problem.grading_rng``); ``timeout``: seconds per sandbox (one problem);
    ``uid``: the unprivileged uid sandboxes run as when the grader is root (default 65534).
    Never raises on a bad notebook: an unreadable one gives "missing" for every problem, a failure of
    the analysis "no-credit" with the reason.
    """
    raise NotImplementedError("helper G1 is building this (issue 17)")
