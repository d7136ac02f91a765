"""The autograder students meet in every notebook: ``check(problem_id, answer)``.

* ``PROBLEMS`` maps a problem id (``"14.1.e_step"``) to its :class:`Problem`: section, title,
  statement, reference, tolerances, hint, and at least three known-wrong answers (the tests check
  that the right answer passes and each wrong one fails).
* ``check`` never raises on a malformed answer (wrong type or shape, NaN, a function that raises):
  the result fails and says what was expected. An unsolved exercise (``None``, ``...`` or a function
  raising ``NotImplementedError``) reports "not yet solved".
* ``result.or_reference()`` gives the student's answer when it passed, else the reference, so a
  lesson goes on either way. ``progress("14.1")`` is a one-line summary of a section's problems.

Problems are defined in ``companion_lib/problems/p*.py`` (one file per section) and registered here
on import. Answers are compared numerically against the project's own reference implementation.

Registering a problem (the contract every kind of answer fits)
--------------------------------------------------------------
``Problem(id, section, title, statement, kind, reference, hint, wrong_answers, ...)``:

kind="value"     the student hands in a value (number, array, tensor; tuples/lists/dicts of them).
                 ``reference()`` returns the expected value. By default it is compared elementwise
                 (``rtol``/``atol``); ``compare=`` replaces that, e.g. a training result judged
                 against a threshold: ``reference=lambda: 3.4, compare=at_most(0.05)`` passes any
                 finite scalar <= 3.45 (see :func:`at_most`, :func:`at_least`);
                 :func:`float32_aware` holds a float32 answer to float32's precision.
kind="function"  the student hands in a callable: a function, or a class (an ``nn.Module``
                 subclass, say). It is run on every input tuple of ``cases``; so is ``reference``,
                 and the outputs are compared.
  ``cases``      ``cases(rng=None) -> list[tuple]``, each tuple the positional inputs of one test.
                 ``rng`` is ``None`` for the notebook's instant check (fixed, seeded inputs) and a
                 ``numpy.random.Generator`` chosen by the instructor's grader at grading time (inputs
                 the student never saw). Derive torch generators with :func:`case_seed`:
                 ``g = torch.Generator().manual_seed(case_seed(rng, 141))``. Inputs are plain data:
                 tensors, arrays, numbers, strings, None, and tuples/lists/dicts of them (network
                 weights travel as a state dict of tensors). A ``cases()`` without an argument still
                 works; the grader then reuses the fixed inputs (and says so in ``python -m
                 companion_lib.grading``).
  ``harness``    optional ``harness(answer, *inputs) -> outputs`` for answers that are not a plain
                 function of the inputs: it instantiates a student's class, loads fixed weights from
                 the inputs, calls forward and inverse, and returns plain tensors/arrays (a tuple or
                 dict of them). The same harness runs the reference. Default: ``answer(*inputs)``.
  ``compare``    optional ``compare(expected, got) -> None | str`` (None: pass, a string: why not),
                 for both kinds; default: elementwise ``rtol``/``atol`` with a helpful message.
``reference_names``  dotted names of library objects (``"companion_lib.vae.reparameterize"``) that
                 an honest answer must not call; the instructor's grader gives no credit to a
                 function whose defining cell uses one (the reference's own name, ``PROBLEMS``,
                 ``.expected()`` and ``.or_reference()`` are always on that list).

Trust boundary (what ``python -m companion_lib.grade`` relies on)
-----------------------------------------------------------------
In a notebook ``check`` grades in the student's own process, which the student controls: it is
feedback, not a grade. When the instructor's grader runs a submission it sets
``COMPANION_GRADE_INPUTS``/``COMPANION_GRADE_EXPORT``; ``check`` then also evaluates the answer on the
grader's inputs (for a value: the value itself) and writes the outputs as plain data (JSON + .npz, no
pickle) at once (``companion_lib._grade_transport``). The grade is decided later, in the grader's own
process, by :func:`judge` against references computed there; nothing the kernel prints or edits
(``HISTORY``, ``Result.status``, a patched ``numpy`` or library) reaches that decision.
"""
from __future__ import annotations

import html
import importlib
import inspect
import os
import pkgutil
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from companion_lib import settings

__all__ = ["Problem", "Result", "Progress", "PROBLEMS", "HISTORY", "STATUSES", "register", "check",
           "grade_answer", "judge", "progress", "problems_for_section", "case_seed", "at_most", "at_least", "float32_aware"]

#: Every per-problem status a grade can have (the instructor's CSV uses exactly these).
STATUSES = ("passed", "failed", "unsolved", "missing", "no-credit")


def case_seed(rng, default: int) -> int:
    """The seed for a problem's test inputs: ``default`` for the notebook's instant check
    (``rng is None``), else a fresh one drawn from the grader's ``numpy.random.Generator``."""
    if rng is None:
        return int(default)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be None or a numpy.random.Generator, got {type(rng).__name__}")
    return int(rng.integers(0, 2**31 - 1))


def at_most(margin: float = 0.0) -> Callable:
    """``compare=`` for a result that must not exceed the reference value plus ``margin``
    (a held-out bits/dim, a loss): the answer is one finite number."""
    return _threshold(+1, float(margin))


def at_least(margin: float = 0.0) -> Callable:
    """``compare=`` for a result that must reach the reference value minus ``margin`` (a bound, an
    accuracy): the answer is one finite number."""
    return _threshold(-1, float(margin))


# A reference is computed in float64; a correct answer computed in float32 differs from it by float32
# round-off, which a float64 tolerance would call wrong: float32_aware holds such an answer to
# float32's precision and, when even that fails, says that the dtype may be part of the cause.
def _has_float32(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    if isinstance(x, np.ndarray):
        return x.dtype in (np.float32, np.float16)
    if isinstance(x, (tuple, list)):
        return any(_has_float32(v) for v in x)
    if isinstance(x, dict):
        return any(_has_float32(v) for v in x.values())
    return False


def float32_aware(rtol: float, atol: float, rtol32: float = 2e-5, atol32: float = 1e-6):
    """``compare=``: (rtol, atol) for float64 answers, (rtol32, atol32) for answers holding float32."""

    def compare(expected, got):
        low = _has_float32(got)
        try:
            _compare(expected, got, rtol32 if low else rtol, atol32 if low else atol)
        except _Mismatch as err:
            if low:
                return (f"{err} Your answer is float32, which carries about 7 significant digits; the "
                        "inputs are float64: compute in their dtype (avoid .float() and float32 constants).")
            return str(err)
        return None

    compare.__qualname__ = f"float32_aware(rtol={rtol:g}, atol={atol:g})"
    return compare


def _threshold(sign: int, margin: float) -> Callable:
    def compare(expected, got):
        value = _to_array(got, "")
        if value.ndim != 0:
            return f"expected one number, got shape {value.shape} (use .item() or float(...))"
        value = float(value.reshape(()))
        limit = float(_to_array(expected, "").reshape(())) + sign * margin
        if not np.isfinite(value):
            return "the answer is NaN or infinite"
        if sign * (value - limit) > 0:
            word = "at most" if sign > 0 else "at least"
            return f"got {value:.4g}; a passing result is {word} {limit:.4g}"
        return None

    compare.__qualname__ = f"{'at_most' if sign > 0 else 'at_least'}({margin:g})"
    return compare


@dataclass(frozen=True)
class Problem:
    """One autograded exercise (see the module docstring for the contract of each field).

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
        if (module.startswith("companion_lib.") and not module.startswith("companion_lib.problems")
                and qualname and "<" not in qualname and not qualname.startswith("_")):
            names.append(f"{module}.{qualname}")
        return tuple(dict.fromkeys(names))


PROBLEMS: dict[str, Problem] = {}


def register(problem: Problem) -> Problem:
    if not isinstance(problem, Problem):
        raise TypeError(f"register expects a Problem, got {type(problem).__name__}")
    if problem.id in PROBLEMS and PROBLEMS[problem.id] is not problem:
        raise ValueError(f"problem id {problem.id!r} is registered twice")
    PROBLEMS[problem.id] = problem
    return problem


def _id_key(pid: str) -> tuple:
    """Sort problem ids by section number, then name: 14.2.x < 14.10.y, 15.2.1 < 15.2.coupling."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in pid.split("."))


def problems_for_section(section: str) -> list[Problem]:
    return [p for p in PROBLEMS.values() if p.section == section]


# --------------------------------------------------------------------------------------------------
# Results
STATUS_STYLE = {
    "passed": ("#e6f4ea", "#1e7e34", "✔ Correct"),
    "failed": ("#fdecea", "#b02a37", "✘ Not yet right"),
    "unsolved": ("#fff8e1", "#8a6d00", "… Not yet solved"),
    "unknown": ("#fdecea", "#b02a37", "✘ Unknown problem"),
}


@dataclass
class Result:
    """Truthy exactly when the answer passed. Shows itself as a coloured box in Jupyter."""

    problem_id: str
    status: str
    message: str
    hint: str = ""
    answer: Any = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.status == "passed"

    @property
    def passed(self) -> bool:
        return bool(self)

    def or_reference(self, announce: bool = True):
        """The student's answer if it passed, else the reference (saying so), so the lesson goes on."""
        if self:
            return self.answer
        problem = PROBLEMS.get(self.problem_id)
        if problem is None:
            raise KeyError(f"unknown problem {self.problem_id!r}")
        if announce:
            print(f"[{self.problem_id}] using the reference implementation for the rest of the lesson.")
        return problem.expected()

    def __str__(self) -> str:
        label = STATUS_STYLE[self.status][2]
        text = f"{label} [{self.problem_id}] {self.message}"
        if self.hint and self.status != "passed":
            text += f"\n  Hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        bg, fg, label = STATUS_STYLE[self.status]
        hint = ""
        if self.hint and self.status != "passed":
            hint = f"<div style='margin-top:4px'><i>Hint:</i> {html.escape(self.hint)}</div>"
        return (
            f"<div style='background:{bg};border-left:4px solid {fg};padding:6px 10px;"
            f"font-family:sans-serif;color:#222'><b style='color:{fg}'>{label}</b> "
            f"<code>{html.escape(self.problem_id)}</code>: {html.escape(self.message)}{hint}</div>"
        )


# --------------------------------------------------------------------------------------------------
# Comparison
class _Mismatch(Exception):
    pass


def _to_array(x, where: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise _Mismatch(f"{where}expected numbers, got {type(x).__name__}") from err
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise _Mismatch(f"{where}expected numbers, got {type(x).__name__}"
                        + (f" of dtype {arr.dtype}" if hasattr(arr, "dtype") else ""))
    if np.iscomplexobj(arr):
        raise _Mismatch(f"{where}expected real numbers, got complex values")
    return arr.astype(np.float64)


def _compare(expected, got, rtol: float, atol: float, where: str = "") -> None:
    """Raise _Mismatch with a helpful message unless ``got`` matches ``expected``."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            raise _Mismatch(f"{where}expected a dict with keys {sorted(expected)}, got {type(got).__name__}")
        missing = sorted(set(expected) - set(got))
        if missing:
            raise _Mismatch(f"{where}missing key(s) {missing}")
        for key in expected:
            _compare(expected[key], got[key], rtol, atol, f"{where}[{key!r}] ")
        return
    if isinstance(expected, (tuple, list)) and not _is_numeric_leaf(expected):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else "not a tuple"
            raise _Mismatch(f"{where}expected a tuple of {len(expected)} items, got {n}")
        for i, (e, g) in enumerate(zip(expected, got)):
            _compare(e, g, rtol, atol, f"{where}item {i}: ")
        return
    e = _to_array(expected, where)
    g = _to_array(got, where)
    if g.shape != e.shape:
        raise _Mismatch(f"{where}expected shape {e.shape}, got {g.shape}")
    if not np.isfinite(g).all():
        raise _Mismatch(f"{where}the answer holds NaN or infinite values")
    if not np.allclose(g, e, rtol=rtol, atol=atol):
        err = np.abs(g - e)
        worst = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
        at = f" at index {tuple(int(i) for i in worst)}" if err.ndim else ""
        raise _Mismatch(f"{where}values differ from the reference{at} (largest error {err.max():.3g}, "
                        f"tolerance rtol={rtol:g}, atol={atol:g})")


def _is_numeric_leaf(x) -> bool:
    """A (nested) list/tuple of plain numbers counts as one array, not as a tuple of answers."""
    try:
        arr = np.asarray(x)
    except Exception:
        return False
    return arr.dtype != object and np.issubdtype(arr.dtype, np.number)


def _compare_with(problem: Problem, expected, got, where: str) -> None:
    if problem.compare is None:
        _compare(expected, got, problem.rtol, problem.atol, where)
        return
    message = problem.compare(expected, got)
    if message:
        raise _Mismatch(f"{where}{message}")


def _clone(x):
    """A private copy of test inputs (tensors, arrays, and tuples/lists/dicts of them)."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        return tuple(_clone(a) for a in x)
    if isinstance(x, list):
        return [_clone(a) for a in x]
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


def _unsolved(answer) -> bool:
    return answer is None or answer is Ellipsis


def _error_line(err: BaseException) -> str:
    return traceback.format_exception_only(type(err), err)[-1].strip()


# --------------------------------------------------------------------------------------------------
# Evaluating an answer (in the student's process) and judging the outcomes (anywhere)
#
# An outcome is a pair (kind, payload): ("ok", output), ("raised", "ValueError: ..."),
# ("unsolved", "") or ("invalid", "why the answer cannot be used"). A value problem has one outcome;
# a function problem one per test case, stopping at the first that is not "ok".
@settings.cpu_float64()
def _evaluate(problem: Problem, answer, cases) -> list:
    if problem.kind == "value":
        if callable(answer) and not isinstance(answer, (torch.Tensor, np.ndarray)):
            return [("invalid", "expected a value (a number or an array), got a function; call it first")]
        return [("ok", answer)]
    if not callable(answer):
        return [("invalid", f"expected a function, got {type(answer).__name__}")]
    outcomes = []
    for args in cases:
        try:
            got = problem.run(answer, _clone(tuple(args)))
        except NotImplementedError:
            outcomes.append(("unsolved", ""))
            break
        except Exception as err:  # the student's code failed: report it, do not raise
            outcomes.append(("raised", _error_line(err)))
            break
        outcomes.append(("ok", got))
    return outcomes


@settings.cpu_float64()
def judge(problem: Problem, cases, outcomes, expected_value=None) -> tuple[str, str]:
    """Decide ``(status, message)`` from an answer's outcomes on ``cases`` (see ``_evaluate``).

    The references are computed here, in the calling process; for a value problem
    ``expected_value`` may carry ``problem.reference()`` computed beforehand.
    """
    try:
        if not outcomes:
            raise _Mismatch("the answer was not evaluated")
        if problem.kind == "value":
            kind, got = outcomes[0]
            if kind != "ok":
                raise _Mismatch(str(got))
            expected = problem.reference() if expected_value is None else expected_value
            _compare_with(problem, expected, got, "")
        else:
            for i, (args, (kind, got)) in enumerate(zip(cases, outcomes)):
                if kind == "unsolved":
                    return "unsolved", f"{problem.title}: the function still raises NotImplementedError."
                if kind == "invalid":
                    raise _Mismatch(str(got))
                if kind == "raised":
                    raise _Mismatch(f"on test case {i + 1} your function raised {got}")
                if kind != "ok":
                    raise _Mismatch(f"test case {i + 1}: unreadable outcome")
                _compare_with(problem, problem.run(problem.reference, _clone(tuple(args))), got,
                              f"test case {i + 1}: ")
            if len(outcomes) < len(cases):
                raise _Mismatch(f"the answer was evaluated on {len(outcomes)} of {len(cases)} test cases")
    except _Mismatch as err:
        return "failed", str(err)
    except Exception as err:  # anything else odd about the answer: fail, never raise
        return "failed", f"could not grade this answer ({_error_line(err)})"
    return "passed", f"{problem.title}: matches the reference."


#: Every result ``check`` returned in this process, in order (``progress`` reads it; the
#: instructor's grader does not: it reads the answers exported by ``check``).
HISTORY: list[Result] = []


def check(problem_id: str, answer) -> Result:
    """Grade ``answer`` for ``problem_id``. Never raises; returns a :class:`Result` (truthy on pass)."""
    result = grade_answer(problem_id, answer)
    HISTORY.append(result)
    if os.environ.get("COMPANION_GRADE_EXPORT") and problem_id in PROBLEMS:
        try:  # under the instructor's grader: hand the answer in as plain data, now
            from companion_lib import _grade_transport

            _grade_transport.export_answer(PROBLEMS[problem_id], answer)
        except Exception:  # never in the student's way; the grader reports a missing answer
            pass
    return result


def grade_answer(problem_id: str, answer) -> Result:
    """``check`` without recording the result in ``HISTORY`` (on the fixed test inputs)."""
    problem = PROBLEMS.get(problem_id)
    if problem is None:
        known = ", ".join(sorted(PROBLEMS)) or "none"
        return Result(problem_id, "unknown", f"no such problem; known problems: {known}")
    if _unsolved(answer):
        return Result(problem_id, "unsolved", f"{problem.title}: fill in the answer, then run this cell again.",
                      problem.hint, answer)
    try:
        with settings.cpu_float64():
            cases = problem.cases_for(None)
        status, message = judge(problem, cases, _evaluate(problem, answer, cases))
    except Exception as err:  # a broken problem definition: say so, never raise at the student
        status, message = "failed", f"could not grade this answer ({_error_line(err)})"
    return Result(problem_id, status, message, "" if status == "passed" else problem.hint, answer)


# --------------------------------------------------------------------------------------------------
# A student's one-line summary
@dataclass(frozen=True)
class Progress:
    """Which problems of a section pass in this notebook (the last attempt at each counts)."""

    section: str
    passed: tuple
    failed: tuple
    unsolved: tuple
    missing: tuple

    def __str__(self) -> str:
        total = len(self.passed) + len(self.failed) + len(self.unsolved) + len(self.missing)
        rest = [f"{label}: {', '.join(ids)}" for label, ids in
                (("not yet right", self.failed), ("not yet solved", self.unsolved),
                 ("not checked", self.missing)) if ids]
        return f"{self.section}: {len(self.passed)}/{total} problems pass" + (
            f" ({'; '.join(rest)})" if rest else "")

    __repr__ = __str__


def progress(section: str) -> Progress:
    """One line for the end of a notebook: ``progress("14.1")`` -> ``14.1: 1/2 problems pass (...)``.

    ``section`` is a section of the text (``"14.1"``) or a lesson's id prefix (``"15.3.1"`` selects
    ``15.3.1.alpha_bar``, ``15.3.1.q_sample``, ...).
    """
    if not isinstance(section, str):
        raise TypeError(f"section must be a string such as '14.1', got {type(section).__name__}")
    ids = [p.id for p in PROBLEMS.values() if p.section == section or p.id.startswith(section + ".")]
    if not ids:
        known = sorted({p.section for p in PROBLEMS.values()})
        raise ValueError(f"no problems in section {section!r}; sections with problems: {known}")
    last = {r.problem_id: r.status for r in HISTORY}
    by = {s: tuple(pid for pid in ids if last.get(pid, "missing") == s)
          for s in ("passed", "failed", "unsolved", "missing")}
    return Progress(section, by["passed"], by["failed"], by["unsolved"], by["missing"])


def _load_problem_modules() -> None:
    from companion_lib import problems

    for info in pkgutil.iter_modules(problems.__path__):
        if info.name.startswith("p"):
            importlib.import_module(f"companion_lib.problems.{info.name}")


_load_problem_modules()


def main() -> None:  # python -m companion_lib.grading
    """List every registered problem: id, section, title."""
    from companion_lib.grading import PROBLEMS as registry  # the imported module's registry, not __main__'s

    for pid in sorted(registry, key=_id_key):
        p = registry[pid]
        fixed = "" if p.kind == "value" or p.fresh_inputs else "  (grader reuses the fixed inputs)"
        print(f"{pid:<32} §{p.section:<6} {p.title}{fixed}")


if __name__ == "__main__":
    main()
