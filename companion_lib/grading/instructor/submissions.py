"""Submissions and the assignment: every notebook read into memory before any kernel runs, the
problems graded, and each notebook's seed for the grader's test inputs."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from companion_lib.grading.registry import PROBLEMS, id_key


@dataclass(frozen=True)
class Submission:
    path: str
    data: bytes
    sha256: str

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def key(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.path).stem)[:80] or "notebook"
        return f"{stem}-{self.sha256[:12]}"


def read_submissions(paths) -> list[Submission]:
    """Every file read into memory now, before any kernel runs."""
    subs = []
    for p in paths:
        p = Path(p)
        if p.suffix != ".ipynb" or not p.is_file():
            raise ValueError(f"expected an existing .ipynb file, got {str(p)!r}")
        data = p.read_bytes()
        subs.append(Submission(str(p), data, hashlib.sha256(data).hexdigest()))
    return subs


def assignment(sections=None) -> list[str]:
    """The problem ids graded (every registered one, or those of ``sections``), in section order."""
    ids = [pid for pid, p in PROBLEMS.items() if not sections or p.section in sections]
    if sections:
        unknown = sorted(set(sections) - {PROBLEMS[pid].section for pid in ids})
        if unknown:
            known = sorted({p.section for p in PROBLEMS.values()})
            raise ValueError(f"no problems in section(s) {unknown}; sections with problems: {known}")
    return sorted(ids, key=id_key)


def notebook_seed(base_seed: int, sha256: str) -> int:
    """The seed of one notebook's test inputs: fixed by the run's seed and the file's content."""
    return int.from_bytes(hashlib.sha256(f"{int(base_seed)}:{sha256}".encode()).digest()[:4], "big")


def code_cells(data: bytes) -> list[str]:
    """The non-empty code cells of a notebook, in order (as the worker runs them)."""
    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and c.source.strip()]
