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
kernel, killing what is left), ``reports`` (results on disk, CSV, feedback), ``cli`` (the command).

Each notebook's result is written at once, atomically, to ``<results>/<name>-<sha256[:12]>.json``
(the content hash and the grader's seed inside), so ``--resume`` continues an interrupted run and a
rerun with the same results folder draws the same inputs. The CSV (one row per notebook, one column
per problem of the assignment) and the per-student feedback files are assembled from those results.

The kernels run with your user id: what a kernel can still do (read your other files, kill
processes, edit the installed package) only the operating system can stop; see README (a container
recipe). It is a grader, not an anti-cheating device: a value computed by calling the library, or
code copied from its source, cannot be told apart from the student's own.
"""
