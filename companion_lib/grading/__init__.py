"""The autograder students meet in every notebook: ``check(problem_id, answer)``.

* ``PROBLEMS`` maps a problem id (``"14.1.e_step"``) to its :class:`Problem`: section, title,
  statement, reference, tolerances, a hint in tiers (the idea, then a closer pointer, never the code),
  and at least three catalogued mistakes (:class:`Mistake`: a realistic wrong answer and what ``check``
  says when it recognises it; the tests check that the right answer and another correct form pass and
  that each mistake fails with its own message).
* Hints: a wrong attempt shows one tier more than the last, ``hint(problem_id)`` the next on request;
  an unsolved exercise shows none.
* ``check`` never raises on a malformed answer (wrong type or shape, NaN, a function that raises):
  the result fails and says what was expected. An unsolved exercise (``None``, ``...`` or a function
  raising ``NotImplementedError``) reports "not yet solved".
* ``result.or_reference()`` gives the student's answer when it passed, else the reference, so a
  lesson goes on either way. ``progress("14.1")`` is a one-line summary of a section's problems.

Problems are defined in ``companion_lib/grading/problems/p*.py`` (one file per section, each listing
its problems in ``PROBLEMS``); importing this package registers every module that
``companion_lib.grading.problems`` lists. Answers are compared numerically against the project's own
reference implementation.

Modules: ``registry`` (``Problem``, ``PROBLEMS``, ``register``), ``compare`` (comparators),
``judge`` (evaluating an answer, judging outcomes), ``feedback`` (``check``, ``Result``,
``progress``), ``transport`` (the plain-data encoding of inputs and outcomes), ``sandbox`` and
``sandbox_server`` (where the instructor's grader runs answers), ``worker`` and ``instructor`` (the
instructor's command ``python -m companion_lib.grade``), ``problems``.

Registering a problem (the contract every kind of answer fits)
--------------------------------------------------------------
``Problem(id, section, title, statement, kind, reference, hint, wrong_answers, ...)``:

kind="value"     the student hands in a value (number, array, tensor; tuples/lists/dicts of them);
                 a bool, NaN/inf or a value outside ``value_range=(low, high)`` is rejected as
                 impossible; ``self_reported=True`` (a training outcome the grader cannot verify) is
                 instant feedback only: the instructor's status is "self-reported", never credit.
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
                 an honest answer must not call: in the instructor's grader they are stubs that
                 raise (as is the problem's reference, however reached: ``PROBLEMS``,
                 ``.expected()``), and an answer that calls one gets no credit.

Trust boundary (what ``python -m companion_lib.grade`` relies on)
-----------------------------------------------------------------
In a notebook ``check`` grades in the student's own process, which the student controls: it is
feedback, not a grade. The instructor's grader does not use it: it runs the notebook in a kernel for
the run status only, then reads each answer's source from the notebook as text (the last
``check("<id>", answer)`` with a literal id and the statements that answer needs), runs that source in
a sandbox of its own making (a fresh child of a fork server, another uid, a copy of the package in
which the problem's reference and its ``reference_names`` are stubs, the package's real files, the
grader's ``/proc`` and the folders kernels can write out of sight) on inputs the student never saw,
and judges the outputs with :func:`judge` against references computed in the grader's process.
Nothing the kernel prints, edits or writes (``HISTORY``, ``Result.status``, files, a patched
``numpy`` or library) reaches that decision; any failure of the analysis gives no credit and says why
(see ``companion_lib.grading.instructor`` and README's trust boundary).
"""
from companion_lib.grading.compare import at_least, at_most, float32_aware
from companion_lib.grading.feedback import HISTORY, Hint, Progress, Result, check, grade_answer, hint, progress
from companion_lib.grading.judge import STATUSES, judge
from companion_lib.grading.problems import SECTION_MODULES
from companion_lib.grading.registry import PROBLEMS, Mistake, Problem, case_seed, problems_for_section, register

__all__ = ["Problem", "Mistake", "Result", "Progress", "Hint", "PROBLEMS", "HISTORY", "STATUSES", "register",
           "check", "grade_answer", "hint", "judge", "progress", "problems_for_section", "case_seed", "at_most", "at_least",
           "float32_aware"]

for _module in SECTION_MODULES:  # the one place the registry is filled
    for _problem in _module.SECTION_PROBLEMS:
        register(_problem)
del _module, _problem
