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
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["Problem", "Mistake", "PROBLEMS", "register", "case_seed", "problems_for_section", "id_key"]


def case_seed(rng, default: int) -> int:
    """The seed for a problem's test inputs: ``default`` for the notebook's instant check
    (``rng is None``), else a fresh one drawn from the grader's ``numpy.random.Generator``."""
    if rng is None:
        return int(default)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be None or a numpy.random.Generator, got {type(rng).__name__}")
    return int(rng.integers(0, 2**31 - 1))


@dataclass(frozen=True)
class Mistake:
    """A realistic wrong answer and what ``check`` says when it recognises one.

    ``answer``: the catalogued wrong answer (a function or class for a function problem: ``check``
    runs it on the same inputs as the student's answer and recognises the mistake when the outputs
    agree; a value for a value problem). ``matches``: optional ``matches(value) -> bool`` for a value
    problem (a whole family of wrong values, e.g. every negative bits/dim), used instead of comparing
    with ``answer``. ``message``: the specific thing to say (what was probably done, as a question),
    never the code of the right answer.
    """

    answer: Any
    message: str
    matches: Callable | None = None

    def __post_init__(self):
        if not isinstance(self.message, str) or not self.message.strip():
            raise TypeError("Mistake.message must be a non-empty string")
        if self.matches is not None and not callable(self.matches):
            raise TypeError("Mistake.matches must be callable")


def _is_bool(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return True
    if isinstance(x, torch.Tensor):
        return x.dtype == torch.bool
    return isinstance(x, np.ndarray) and x.dtype == bool


def _leaves(x):
    if isinstance(x, dict):
        return [a for v in x.values() for a in _leaves(v)]
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _leaves(v)]
    return [x]


@dataclass(frozen=True)
class Problem:
    """One autograded exercise (see the docstring of ``companion_lib.grading`` for each field).

    kind="value":    ``reference()`` returns the expected value (number, array, tuple or dict of them).
    kind="function": the student passes a callable (function or class); it is run on every
                     ``cases(rng)`` entry (a tuple of positional inputs), through ``harness`` if given,
                     and compared with the reference run the same way.
    ``hint``: one string, or a tuple of tiers (first the idea, then a closer pointer, never the code);
    ``check`` shows one tier more after each wrong attempt, ``hint(problem_id)`` on request.
    ``mistakes``: realistic wrong answers, each a :class:`Mistake` with the message ``check`` gives
    when it recognises it; ``wrong_answers``: further answers that must fail. Together at least three
    (the test-suite runs every one).
    ``value_range``: for a value problem, ``(low, high)`` (``None`` for no bound): a value outside it
    is impossible (a negative bits/dim) and is rejected saying so; bools and NaN/inf always are.
    ``self_reported``: a value only the student can produce (a training outcome on data that ship
    with the package): ``check`` gives instant feedback, the instructor's grader never credit.
    """

    id: str
    section: str
    title: str
    statement: str
    kind: str
    reference: Callable
    hint: str | tuple
    wrong_answers: tuple = ()
    cases: Callable[..., list] | None = None
    rtol: float = 1e-5
    atol: float = 1e-8
    harness: Callable | None = None
    compare: Callable | None = None
    reference_names: tuple = ()
    mistakes: tuple = ()
    value_range: tuple | None = None
    self_reported: bool = False

    def __post_init__(self):
        if self.kind not in ("value", "function"):
            raise ValueError(f"Problem {self.id}: kind must be 'value' or 'function', got {self.kind!r}")
        if self.kind == "function" and self.cases is None:
            raise ValueError(f"Problem {self.id}: a function problem needs cases()")
        hints = (self.hint,) if isinstance(self.hint, str) else self.hint
        if not isinstance(hints, tuple) or not hints or not all(isinstance(h, str) and h for h in hints):
            raise TypeError(f"Problem {self.id}: hint must be a string or a tuple of non-empty strings")
        if not all(isinstance(m, Mistake) for m in self.mistakes):
            raise TypeError(f"Problem {self.id}: mistakes must be Mistake objects")
        if self.value_range is not None and (self.kind != "value" or len(self.value_range) != 2):
            raise ValueError(f"Problem {self.id}: value_range is (low, high), for a value problem")
        # the catalogued mistakes are wrong answers too: every test that runs wrong_answers runs them
        object.__setattr__(self, "wrong_answers",
                           tuple(m.answer for m in self.mistakes) + tuple(self.wrong_answers))
        if len(self.wrong_answers) < 3:
            raise ValueError(f"Problem {self.id}: give at least three wrong answers")
        for name in ("harness", "compare", "cases"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"Problem {self.id}: {name} must be callable")
        if isinstance(self.reference_names, str) or not all(
                isinstance(n, str) and "." in n for n in self.reference_names):
            raise TypeError(f"Problem {self.id}: reference_names must be a tuple of dotted names")

    @property
    def hints(self) -> tuple:
        """The hint's tiers, first the idea, then closer pointers."""
        return (self.hint,) if isinstance(self.hint, str) else tuple(self.hint)

    def impossible(self, value) -> str | None:
        """Why a value answer cannot be right whatever the reference (a bool, NaN/inf, a value outside
        ``value_range``), or None."""
        leaves = _leaves(value)
        if any(_is_bool(x) for x in leaves):
            return "got True/False, a truth value: hand in the number itself"
        numbers = []
        for x in leaves:
            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().double().numpy()
            try:
                arr = np.asarray(x, dtype=np.float64)
            except (TypeError, ValueError):
                return None  # not numbers: the comparison says what was expected
            if not np.isfinite(arr).all():
                return "got NaN or an infinite value: the computation behind it failed (diverged?)"
            numbers.append(arr)
        if self.value_range is not None:
            low = -np.inf if self.value_range[0] is None else float(self.value_range[0])
            high = np.inf if self.value_range[1] is None else float(self.value_range[1])
            for arr in numbers:
                outside = arr[(arr < low) | (arr > high)]
                if outside.size:
                    return (f"got {float(outside.flat[0]):.4g}, an impossible value: this quantity lies "
                            f"in [{low:g}, {high:g}]")
        return None

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
