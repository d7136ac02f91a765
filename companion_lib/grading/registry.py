"""The problem registry: the :class:`Problem` type, ``PROBLEMS`` (id -> Problem) and ``register``.

The registry starts empty; ``companion_lib.grading`` fills it once, on import, with the problems that
``companion_lib.grading.problems`` lists (importing a problem module registers nothing). Test-only
problems are added with :func:`register`. The contract of each ``Problem`` field is in the docstring
of ``companion_lib.grading``.
"""
from __future__ import annotations

import inspect
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["Problem", "PROBLEMS", "register", "case_seed", "problems_for_section", "id_key"]


def case_seed(rng, default: int) -> int:
    """The seed for a problem's test inputs: ``default`` for the notebook's instant check
    (``rng is None``), else a fresh one drawn from the grader's ``numpy.random.Generator``."""
    if rng is None:
        return int(default)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be None or a numpy.random.Generator, got {type(rng).__name__}")
    return int(rng.integers(0, 2**31 - 1))


@dataclass(frozen=True)
class Problem:
    """One autograded exercise (see the docstring of ``companion_lib.grading`` for each field).

    kind="value":    ``reference()`` returns the expected value (number, array, tuple or dict of them).
    kind="function": the student passes a callable (function or class); it is run on every
                     ``cases(rng)`` entry (a tuple of positional inputs), through ``harness`` if given,
                     and compared with the reference run the same way.
    ``wrong_answers``: at least three answers that must fail (used by the test-suite).
    """

    id: str
    section: str
    title: str
    statement: str
    kind: str
    reference: Callable
    hint: str
    wrong_answers: tuple
    cases: Callable[..., list] | None = None
    rtol: float = 1e-5
    atol: float = 1e-8
    harness: Callable | None = None
    compare: Callable | None = None
    reference_names: tuple = ()

    def __post_init__(self):
        if self.kind not in ("value", "function"):
            raise ValueError(f"Problem {self.id}: kind must be 'value' or 'function', got {self.kind!r}")
        if self.kind == "function" and self.cases is None:
            raise ValueError(f"Problem {self.id}: a function problem needs cases()")
        if len(self.wrong_answers) < 3:
            raise ValueError(f"Problem {self.id}: give at least three wrong answers")
        for name in ("harness", "compare", "cases"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"Problem {self.id}: {name} must be callable")
        if isinstance(self.reference_names, str) or not all(
                isinstance(n, str) and "." in n for n in self.reference_names):
            raise TypeError(f"Problem {self.id}: reference_names must be a tuple of dotted names")

    def expected(self):
        """The reference answer: a value, or for function problems the reference function (or class)."""
        return self.reference if self.kind == "function" else self.reference()

    @property
    def fresh_inputs(self) -> bool:
        """True when ``cases`` takes the grader's ``rng`` (so grading uses inputs never shown)."""
        if self.cases is None:
            return False
        try:
            return len(inspect.signature(self.cases).parameters) >= 1
        except (TypeError, ValueError):
            return False

    def cases_for(self, rng=None) -> list:
        """The test inputs: the fixed ones (``rng=None``) or the grader's, drawn from ``rng``."""
        if self.cases is None:
            return []
        if rng is None or not self.fresh_inputs:
            return list(self.cases())
        with torch.random.fork_rng(devices=[]):  # a case that draws from torch's global RNG stays
            torch.manual_seed(int(rng.integers(0, 2**31 - 1)))  # reproducible from the grader's seed
            return list(self.cases(rng))

    def grading_rng(self, seed: int) -> np.random.Generator:
        """The generator the instructor's grader hands to ``cases`` for a notebook's ``seed``."""
        return np.random.default_rng([int(seed), zlib.crc32(self.id.encode())])

    def run(self, answer, args):
        """One test: ``harness(answer, *args)`` if the problem has a harness, else ``answer(*args)``."""
        return self.harness(answer, *args) if self.harness is not None else answer(*args)

    def forbidden_names(self) -> tuple:
        """Dotted names whose use in a function answer's defining cell forfeits credit."""
        names = list(self.reference_names)
        module = getattr(self.reference, "__module__", "") or ""
        qualname = getattr(self.reference, "__qualname__", "") or ""
        if (module.startswith("companion_lib.") and not module.startswith("companion_lib.grading.problems")
                and qualname and "<" not in qualname and not qualname.startswith("_")):
            names.append(f"{module}.{qualname}")
        return tuple(dict.fromkeys(names))


PROBLEMS: dict[str, Problem] = {}


def register(problem: Problem) -> Problem:
    """Add ``problem`` to ``PROBLEMS`` (registering the same object again is a no-op)."""
    if not isinstance(problem, Problem):
        raise TypeError(f"register expects a Problem, got {type(problem).__name__}")
    if problem.id in PROBLEMS and PROBLEMS[problem.id] is not problem:
        raise ValueError(f"problem id {problem.id!r} is registered twice")
    PROBLEMS[problem.id] = problem
    return problem


def id_key(pid: str) -> tuple:
    """Sort problem ids by section number, then name: 14.2.x < 14.10.y, 15.2.1 < 15.2.coupling."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in pid.split("."))


def problems_for_section(section: str) -> list[Problem]:
    return [p for p in PROBLEMS.values() if p.section == section]
