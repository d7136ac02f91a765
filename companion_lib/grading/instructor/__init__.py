"""Instructor command: grade a class's notebooks with the same autograder the students see.

    python -m companion_lib.grade submissions/*.ipynb --csv grades.csv --jobs 2
    python -m companion_lib.grade merge results-*/ --csv grades.csv      # assemble shards

Trust boundary: the student's kernel does not grade itself. All submissions are read into memory
first. Each notebook runs top to bottom in a kernel of its own (for the run status and the error
cells only), started by a sacrificial worker (``companion_lib/grading/worker.py``) in a fresh folder
with a scrubbed environment, under an unprivileged uid when the grader is root; nothing it writes is
read. As root, the kernel runs in pid and mount namespaces of its own (its ``/proc`` shows neither the
grader nor a classmate), under its job slot's uid, with a capped address space. When everything it
started is killed, each problem's answer is sliced from the notebook's source (``slicing``) and
evaluated in a sandbox of the grader's making (``sandboxing``: a fork server per job slot, a fresh
child per problem with a stubbed copy of the package, own namespaces, the slot's sandbox uid), on
fresh inputs sent over a pipe; the outputs come back as data and are judged here against references
computed here (``verdict``). This runs in a thread, so the grader's clock keeps watching the other
notebooks meanwhile. ``evaluation`` is that as one function. Any failure of the analysis gives
"no-credit" with the reason.

Per-problem statuses: passed, failed, unsolved, missing, no-credit (``grading.STATUSES``).
Per-notebook run statuses: see ``processes.RUN_STATUSES``.

Modules: ``submissions`` (reading the files, the assignment, seeds), ``slicing`` (the answer's source),
``sandboxing`` (running it), ``evaluation`` (both, judged), ``verdict`` (judging one answer's outcomes), ``processes`` (running one notebook: worker,
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

See README (the trust boundary) for what same-uid mode cannot prevent.
"""
