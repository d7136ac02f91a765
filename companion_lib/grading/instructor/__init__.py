"""Instructor command: grade a class's notebooks with the same autograder the students see.

    python -m companion_lib.grade submissions/*.ipynb --csv grades.csv --jobs 2
    python -m companion_lib.grade merge results-*/ --csv grades.csv      # assemble shards

Trust boundary: no student code runs in this process, and this process alone decides grades.
All submissions are read into memory first (a kernel that rewrites a classmate's file changes
nothing in this run). Each notebook then runs in a kernel of its own, started by a sacrificial worker
process (``companion_lib/grading/worker.py``) in a session of its own, in a fresh temporary folder that
holds only a copy of that notebook, with a scrubbed environment (quick mode, one torch thread). The
grader writes the notebook's test inputs there, drawn from a seed of its own (recorded), so a
function is judged on inputs the student never saw. Inside the kernel, every ``check`` call writes
the answer's outcomes on those inputs at once as plain data (``companion_lib.grading.transport``:
JSON + .npz, never pickle) under a per-run random name. When the worker ends, however it ends
(completed, timed out, crashed, killed by the kernel), everything that carries the run's token is
killed and this process reads the last export of each problem as data and judges it with
``companion_lib.grading.judge`` against references computed here. What the kernel prints, ``HISTORY``, a patched
``grade_answer``/``numpy``/library in the kernel: none of it reaches the decision.

A function answer that is the library's own object, or whose defining cell (read here as text with
``ast``, never run) uses the problem's reference, ``PROBLEMS``, ``.expected()`` or
``.or_reference()``, gets "no-credit". A value answer is judged on its value.

Per-problem statuses: passed, failed, unsolved, missing, no-credit (``grading.STATUSES``).
Per-notebook run statuses: see ``processes.RUN_STATUSES``.

Modules: ``submissions`` (reading the files, the assignment, seeds), ``audit`` (the defining-cell
audit), ``verdict`` (judging one notebook's exports), ``processes`` (running one notebook: worker,
kernel, killing what is left), ``ledger`` (the signed results folder), ``reports`` (CSV, feedback), ``deadlines`` (the grader's
clock), ``cli`` (the command).

Results (``ledger``, ``reports``, ``deadlines``, ``grading/limits.py``; G2 of issue 17): each notebook's
result is signed (HMAC-SHA256 under the key of ``--key-file``, held in this non-dumpable process) and
written, once everything its notebook started is gone, to ``<results>/subs/<key>.json``, the key being
its path relative to the graded root plus its content hash; the grader's own files live in
``<results>/_meta/``. The CSV (one row per submitted file, one column per problem of the assignment) and
the feedback files are made from what the run decided in memory; ``--resume`` and ``merge`` read back
only results that verify. The cell and notebook limits are kept by this process's own clock too
(``deadlines``), and what is read from a student's process is size-checked before it is inflated.

The kernels run with your user id: what a kernel can still do (read your other files, kill
processes, edit the installed package) only the operating system can stop; see README (a container
recipe). It is a grader, not an anti-cheating device: a value computed by calling the library, or
code copied from its source, cannot be told apart from the student's own.
"""
