"""Submissions and the assignment: every notebook read into memory before any kernel runs, the
problems graded, and each notebook's seed for the grader's test inputs."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from companion_lib.grading.registry import PROBLEMS, id_key


@dataclass(frozen=True)
class Submission:
    """One submitted file, read into memory. ``rel``: its path relative to the graded root (the
    submission's identity, with ``sha256``; default: the file name)."""
    path: str
    data: bytes
    sha256: str
    rel: str = ""

    def __post_init__(self):
        if not self.rel:
            object.__setattr__(self, "rel", Path(self.path).name)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def key(self) -> str:
        """A file name unique to (relative path, content): a readable stem, a hash of the relative
        path and the content hash; any characters, any leading ``_``, any folder layout."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.rel).stem)[:60].lstrip(".") or "notebook"
        where = hashlib.sha256(self.rel.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        return f"{stem}-{where}-{self.sha256[:12]}"


def graded_root(paths) -> Path:
    """The folder the submissions' relative paths start from: the deepest folder holding them all."""
    parents = [str(Path(p).resolve().parent) for p in paths]
    if not parents:
        raise ValueError("no submissions given")
    return Path(os.path.commonpath(parents))


def read_submissions(paths, root=None) -> list[Submission]:
    """Every file read into memory now, before any kernel runs; ``root`` (default ``graded_root``)
    names them (``Submission.rel``)."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            raise ValueError(f"expected an existing .ipynb file, got {str(p)!r}")
    root = Path(root).resolve() if root is not None else graded_root(paths)
    subs = []
    for p in paths:
        try:
            rel = p.resolve().relative_to(root).as_posix()
        except ValueError as err:
            raise ValueError(f"{str(p)!r} is not inside the graded root {str(root)!r}") from err
        data = p.read_bytes()
        subs.append(Submission(str(p), data, hashlib.sha256(data).hexdigest(), rel))
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
