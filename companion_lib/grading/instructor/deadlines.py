"""The grader's own clock over one notebook's worker (issue 17, G2).

The worker interrupts a cell past ``--cell-timeout`` and stops the notebook at ``--notebook-timeout``;
but a worker that is stopped (SIGSTOP), hung or starved enforces nothing. ``Deadline`` follows the
worker's progress as the worker reports it (cells run, which may only grow and never past the
notebook's cell count) and says when the worker is overdue by the grader's clock: no progress for a
cell's limit plus the interrupt grace plus ``SLACK``, or the notebook's limit passed likewise. A forged
status file can at most move a cell's deadline to where an honest run would have put it: the
notebook's deadline, counted from the kernel's start as the grader saw it, bounds everything.
"""
from __future__ import annotations

import time

SLACK = 5.0  # seconds past the worker's own deadline before the grader kills everything


class Deadline:
    def __init__(self, started: float, cells: int, cell_timeout: float, notebook_timeout: float,
                 startup: float, grace: float):
        self.cells, self.cell_timeout, self.notebook_timeout = int(cells), float(cell_timeout), float(notebook_timeout)
        self.grace = float(grace)
        self.startup_deadline = started + float(startup) + SLACK
        self.kernel_seen: float | None = None
        self.cells_run = 0
        self.progress_at = 0.0

    def update(self, status: dict, now: float | None = None) -> None:
        """Take note of the worker's reported ``status`` (``state``, ``cells_run``)."""
        now = time.time() if now is None else now
        if self.kernel_seen is None and status.get("state") in ("kernel started", "running", "done"):
            self.kernel_seen = min(now, self.startup_deadline)
            self.progress_at = self.kernel_seen
        try:
            done = int(status.get("cells_run", 0) or 0)
        except (TypeError, ValueError):
            return
        if self.kernel_seen is not None and self.cells_run < done <= self.cells:
            self.cells_run, self.progress_at = done, now

    def when(self) -> float:
        """The time past which the worker is overdue."""
        if self.kernel_seen is None:
            return self.startup_deadline
        end = self.kernel_seen + self.notebook_timeout + self.grace + SLACK
        return min(end, self.progress_at + self.cell_timeout + self.grace + SLACK)

    def overdue(self, now: float | None = None) -> str:
        """Why the worker is overdue (empty when it is not)."""
        now = time.time() if now is None else now
        if now <= self.when():
            return ""
        if self.kernel_seen is None:
            return "no kernel was ready by the start-up limit"
        return (f"the worker stopped enforcing the limits (cell {self.cells_run + 1} ran "
                f"{now - self.progress_at:.0f} s); the grader's clock killed the notebook")
