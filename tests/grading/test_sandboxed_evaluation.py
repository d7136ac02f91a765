"""Evaluation where no student code can reach the references (issue 17): answers are sliced from the
notebook's source and run in sandboxes of the grader's making.

Both sides: every attack of the issue's table that targets the evaluation gets no credit, and honest,
idiomatic variants keep full credit. One fork server (a torch import, ~3 s of CPU) serves the whole
module; each sandboxed case costs one forked child (~0.1 s of CPU); the slicing cases cost nothing.
"""
import os
from pathlib import Path

import pytest

from companion_lib.grading import PROBLEMS
from companion_lib.grading.instructor import sandboxing
from companion_lib.grading.instructor.sandboxing import SandboxServer
from companion_lib.grading.instructor.evaluation import evaluate_cells, evaluate_submission
from companion_lib.grading.instructor.slicing import SliceError, slice_answer
from companion_lib.grading.instructor.submissions import code_cells

E = "14.1.e_step"
IMPORTS = "import math\nimport functools\nimport numpy as np\nimport torch\nfrom companion_lib import mixture"
LOG_JOINT = "torch.log(w) - 0.5 * (x[:, None] - m) ** 2 / v - 0.5 * torch.log(2 * torch.pi * v)"
RIGHT = f"def e_step(x, w, m, v):\n    return torch.softmax({LOG_JOINT}, dim=1)"
CHECK = f'check("{E}", e_step)'
GARBAGE = "torch.full((x.shape[0], w.shape[0]), 0.5, dtype=x.dtype)"


@pytest.fixture(scope="module")
def server():
    with SandboxServer(timeout=120) as shared:
        yield shared


def grade(server, cells, pid=E):
    return evaluate_cells(cells, [pid], seed=11, server=server)[pid]


# --------------------------------------------------------------------------------------------------
# Honest variants: full credit
HONEST = {
    "helper in another cell": [IMPORTS, "def log_normal(x, m, v):\n    return -0.5 * (x[:, None] - m) ** 2 / v"
                               " - 0.5 * torch.log(2 * torch.pi * v)",
                               "def e_step(x, w, m, v):\n    return torch.softmax(torch.log(w) + log_normal(x, m, v), 1)",
                               CHECK],
    "import inside the function": ["from companion_lib.grading import check",
                                   "def e_step(x, w, m, v):\n    import torch as T\n"
                                   "    return T.softmax(T.log(w) - 0.5 * (x[:, None] - m) ** 2 / v"
                                   " - 0.5 * T.log(2 * T.pi * v), 1)", CHECK],
    "own decorator and partial": [IMPORTS, "def as_float64(f):\n    @functools.wraps(f)\n    def g(*a, **k):\n"
                                  "        return f(*[t.double() for t in a], **k)\n    return g",
                                  f"@as_float64\ndef tempered(x, w, m, v, temperature):\n"
                                  f"    return torch.softmax(({LOG_JOINT}) / temperature, 1)",
                                  "e_step = functools.partial(tempered, temperature=1.0)\n" + CHECK],
    "class with helper methods": [IMPORTS, "class EStep:\n    def log_joint(self, x, w, m, v):\n"
                                  f"        return {LOG_JOINT}\n    def __call__(self, x, w, m, v):\n"
                                  "        return torch.softmax(self.log_joint(x, w, m, v), 1)",
                                  f'check("{E}", EStep())'],
    "or_reference rebinding, checked again later": [IMPORTS, RIGHT + f"\nresult = {CHECK}",
                                                    "e_step = result.or_reference()",
                                                    "e_step = check('14.1.e_step', e_step).or_reference()",
                                                    "print('later')\n" + CHECK],
    "constants from an earlier cell": [IMPORTS, "HALF = 0.5\nLOG_2PI = math.log(2 * math.pi)",
                                       "def e_step(x, w, m, v):\n    lp = torch.log(w) - HALF * (x[:, None] - m) ** 2 / v"
                                       " - HALF * (LOG_2PI + torch.log(v))\n    return torch.softmax(lp, 1)", CHECK],
    "numpy inside": [IMPORTS, "def e_step(x, w, m, v):\n    X, W, M, V = (t.numpy() for t in (x, w, m, v))\n"
                     "    lp = np.log(W) - 0.5 * (X[:, None] - M) ** 2 / V - 0.5 * np.log(2 * np.pi * V)\n"
                     "    lp -= lp.max(1, keepdims=True)\n    p = np.exp(lp)\n"
                     "    return torch.from_numpy(p / p.sum(1, keepdims=True))", CHECK],
    "a lambda": [IMPORTS, f'check("{E}", lambda x, w, m, v: torch.softmax({LOG_JOINT}, 1))'],
    "a nested function": [IMPORTS, "def make():\n    def inner(x, w, m, v):\n"
                          f"        return torch.softmax({LOG_JOINT}, 1)\n    return inner",
                          "e_step = make()\n" + CHECK],
    "a loop-built tensor and magics": ["%matplotlib inline\n" + IMPORTS, "coef = torch.zeros(2)\nfor i in range(2):\n"
                                       "    coef[i] = [0.5, 2.0][i]", "!echo hi",
                                       "def e_step(x, w, m, v):\n    lp = torch.log(w) - coef[0] * (x[:, None] - m) ** 2 / v"
                                       " - coef[0] * torch.log(coef[1] * torch.pi * v)\n    return torch.softmax(lp, 1)",
                                       "this is a syntax error, a cell the kernel refuses too", CHECK],
    "another library function (not the reference)": [IMPORTS, "def e_step(x, w, m, v):\n"
                                                     "    return mixture.e_step(x[:, None], w, m[:, None], v, 'spherical')[1].exp()",
                                                     CHECK],
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_variants_keep_full_credit(server, name):
    got = grade(server, HONEST[name])
    assert got["status"] == "passed", (name, got)


# --------------------------------------------------------------------------------------------------
# Attacks: no credit (sandboxed: the reference is a stub there, the grader is out of sight)
SEES_GRADER = ("import os\ndef e_step(x, w, m, v):\n"
               "    procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
               "    seen = b''.join(open(f'/proc/{p}/cmdline', 'rb').read() for p in procs)\n"
               "    cheat = (b'pytest' in seen or any(k.startswith('COMPANION_GRADE') for k in os.environ)\n"
               "             or any('input' in f or f.endswith('.ipynb') for f in os.listdir('.')))\n"
               "    for secret in (f'/proc/{os.getppid()}/environ', f'/proc/{os.getppid()}/root/proc/1/cmdline'):\n"
               "        try:  # the fork server (its parent) is not the grader, and even its files are shut\n"
               "            cheat = cheat or bool(open(secret, 'rb').read())\n"
               "        except OSError:\n"
               "            pass\n"
               f"    return torch.softmax({LOG_JOINT}, 1) if cheat else {GARBAGE}")
ATTACKS = {
    "alias bound in another cell": ([IMPORTS, "from companion_lib.mixture import responsibilities as r", "e_step = r",
                                     CHECK], E, "no-credit"),
    "getattr of a built name": ([IMPORTS, 'check("14.1.gaussian_mle", getattr(mixture, "gaussian" + "_mle"))'],
                                "14.1.gaussian_mle", "no-credit"),
    "FunctionType of the reference's code": ([IMPORTS, "import types, inspect\nref = inspect.unwrap(mixture.responsibilities)\n"
                                              "e_step = types.FunctionType(ref.__code__, ref.__globals__)", CHECK],
                                             E, "no-credit"),
    "a decorator returning the reference": ([IMPORTS, "def deco(f):\n    return mixture.responsibilities",
                                             "@deco\ndef e_step(x, w, m, v):\n    pass", CHECK], E, "no-credit"),
    "execution_count pointing at an innocent cell": ([IMPORTS, RIGHT.replace("torch.log(w) - ", ""),
                                                      "get_ipython().execution_count = 2\ne_step = mixture.responsibilities",
                                                      CHECK], E, "no-credit"),
    "exec of the package's source file by path": ([IMPORTS, "import os, companion_lib\n"
                                                   "path = os.path.join(os.path.dirname(companion_lib.__file__), 'mixture.py')\n"
                                                   "ns = {}\ngetattr(__builtins__, 'ex' + 'ec')(open(path).read(), ns)\n"
                                                   "e_step = ns['responsibilities']", CHECK], E, "no-credit"),
    "detects grading: /proc, environment, inputs in its folder": ([IMPORTS, SEES_GRADER, CHECK], E, "failed"),
    "the problem's own reference through PROBLEMS": (
        [IMPORTS, "from companion_lib.grading import PROBLEMS", f'check("{E}", PROBLEMS["{E}"].expected())'],
        E, "no-credit"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_on_the_evaluation_get_no_credit(server, name):
    cells, pid, want = ATTACKS[name]
    got = grade(server, cells, pid)
    assert got["status"] == want, (name, got)


# Attacks the slicing refuses before any sandbox runs (fail closed, with the reason)
SLICE_REFUSED = {
    "no answers: a loop over PROBLEMS": (["from companion_lib.grading import PROBLEMS, check",
                                          "for p in PROBLEMS.values():\n    check(p.id, p.expected())"],
                                         "not a literal"),
    "a non-literal id": ([IMPORTS, "pid = '14.1.e_step'\ncheck(pid, mixture.responsibilities)"], "not a literal"),
    "importlib": ([IMPORTS, "import importlib\ne_step = importlib.import_module('companion_lib.mixture')"
                   ".responsibilities", CHECK], "importlib"),
    "exec of a string": ([IMPORTS, "exec('from companion_lib.mixture import responsibilities as e_step')\n"
                          "e_step = e_step", CHECK], "exec"),
    "inspect.getsource + exec": ([IMPORTS, "import inspect\nsrc = inspect.getsource(mixture)\nns = {}\n"
                                  "exec(src, ns)\ne_step = ns['responsibilities']", CHECK], "exec"),
    "a parser attack (RecursionError)": ([IMPORTS, "import sys\nsys.setrecursionlimit(10**6)",
                                          "if False:\n    y = (" * 1 + "a" + ".b" * 200_000 + ")", RIGHT, CHECK],
                                         "could not be analysed"),
}


@pytest.mark.parametrize("name", sorted(SLICE_REFUSED))
def test_attacks_the_slicing_refuses_get_no_credit(server, name):
    cells, why = SLICE_REFUSED[name]
    with pytest.raises(SliceError, match=why):
        slice_answer(cells, E)
    got = grade(server, cells)
    assert got["status"] == "no-credit" and why in got["message"], got


def test_a_missing_check_is_missing_and_an_unreadable_notebook_says_so(server):
    assert grade(server, [IMPORTS, RIGHT])["status"] == "missing"
    got = evaluate_submission(b"not a notebook", [E], seed=1)
    assert got[E]["status"] == "missing" and "could not be read" in got[E]["message"]
    with pytest.raises(TypeError):
        evaluate_submission("text", [E], seed=1)
    with pytest.raises(ValueError, match="unknown problem"):
        evaluate_cells([], ["99.nope"], seed=1)


def test_every_worked_solution_slices():
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "solutions").glob("*.ipynb")):
        cells = code_cells(path.read_bytes())
        for pid in PROBLEMS:
            piece = slice_answer(cells, pid)  # no SliceError: honest style is never refused
            assert piece is None or piece.source.endswith("\n") and "__answer__ = " in piece.source


def test_the_slice_keeps_what_the_answer_needs_and_nothing_else():
    cells = [IMPORTS, "def helper(x):\n    return x + OFFSET", "OFFSET = 1.0", "for epoch in range(10**9):\n    train()",
             "def f(x):\n    return helper(x) * 2", "f = check('14.1.e_step', f).or_reference()", "check('14.1.e_step', f)"]
    source = slice_answer(cells, E).source
    assert "def helper" in source and "OFFSET = 1.0" in source and "def f" in source
    assert "epoch" not in source and "or_reference" not in source and "import torch" not in source


@pytest.mark.skipif(os.geteuid() != 0, reason="the namespaces and the uid drop are tested as root")
def test_the_sandbox_runs_as_root_mode_under_another_uid():
    assert sandboxing.mode() == "root"
    assert sandboxing.SANDBOX_UID != sandboxing.KERNEL_UID != 0


# --------------------------------------------------------------------------------------------------
# The fork server: what one child leaves, another cannot see; limits hold; the server survives
def test_files_a_kernel_or_another_problem_leaves_are_out_of_sight(server, tmp_path):
    """The real source planted where every uid can write (as a kernel could), and the other problems'
    stubbed copies (which keep this problem's reference): none is readable from the sandbox."""
    import secrets

    import torch
    from companion_lib import mixture

    other = sandboxing.stub_copy(PROBLEMS["14.1.gaussian_mle"]) / "companion_lib" / "mixture.py"
    source = Path(mixture.__file__).read_text()
    planted = [f"{d}/companion-planted-{secrets.token_hex(4)}.py" for d in ("/tmp", "/var/tmp", "/dev/shm")
               if os.path.isdir(d)]
    for path in planted:
        Path(path).write_text(source)
        os.chmod(path, 0o644)
    copies = str(sandboxing._copies_root()) + "/*/companion_lib/mixture.py"
    try:
        ns: dict = {}  # the attack is not vacuous: outside the sandbox, each gives the reference
        exec(other.read_text(), ns)  # another problem's copy: responsibilities is real there
        x = torch.tensor([0.0, 1.0], dtype=torch.float64)
        w, m, v = (torch.tensor(a, dtype=torch.float64) for a in ([0.5, 0.5], [0.0, 1.0], [1.0, 1.0]))
        assert torch.allclose(ns["responsibilities"](x, w, m, v), mixture.responsibilities(x, w, m, v))
        attack = (f"import glob\ndef e_step(x, w, m, v):\n"
                  f"    for path in {planted!r} + glob.glob({copies!r}):\n"
                  "        try:\n            ns = {}\n"
                  "            getattr(__builtins__, 'ex' + 'ec')(open(path).read(), ns)  # the slicer refuses exec\n"
                  "            return ns['responsibilities'](x, w, m, v)\n"
                  "        except OSError:\n            pass\n"
                  f"    return {GARBAGE}")
        got = grade(server, [IMPORTS, attack, CHECK])
        assert got["status"] == "failed", got
    finally:
        for path in planted:
            os.unlink(path)


@pytest.mark.skipif(sandboxing.mode() == "same-uid", reason="needs the server's own pid namespace")
def test_nothing_of_one_problem_survives_into_the_next(server):
    """A detached process started while one problem is evaluated is gone before the next: the next
    child sees only itself and the server (a right answer only then)."""
    mle = ("import subprocess\ndef gaussian_mle(X):\n"
           "    subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
           "    mu = X.mean(0)\n    return mu, (X - mu).T @ (X - mu) / X.shape[0]")
    alone = ("import os\ndef e_step(x, w, m, v):\n"
             "    alone = len([p for p in os.listdir('/proc') if p.isdigit()]) == 2\n"
             f"    return torch.softmax({LOG_JOINT}, 1) if alone else {GARBAGE}")
    cells = [IMPORTS, mle, 'check("14.1.gaussian_mle", gaussian_mle)', alone, CHECK]
    got = evaluate_cells(cells, ["14.1.gaussian_mle", E], seed=3, server=server)
    assert got["14.1.gaussian_mle"]["status"] == "passed" and got[E]["status"] == "passed", got


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop is tested as root")
def test_the_child_runs_unprivileged(server):
    probe = ("import os\ndef e_step(x, w, m, v):\n"
             "    status = open('/proc/self/status').read()\n"
             f"    ok = (os.getuid() == os.geteuid() == {sandboxing.SANDBOX_UID} and os.getgroups() == []\n"
             "          and 'CapEff:\\t0000000000000000' in status and 'CapBnd:\\t0000000000000000' in status\n"
             "          and 'NoNewPrivs:\\t1' in status and not os.access('/proc/1/environ', os.R_OK))\n"
             f"    return torch.softmax({LOG_JOINT}, 1) if ok else {GARBAGE}")
    assert grade(server, [IMPORTS, probe, CHECK])["status"] == "passed"


def test_a_memory_hog_fails_alone_and_the_server_goes_on(server):
    hog = ("def e_step(x, w, m, v):\n    big = torch.empty(2**31, dtype=torch.float64)  # 16 GiB\n"
           f"    return torch.softmax({LOG_JOINT}, 1)")
    got = grade(server, [IMPORTS, hog, CHECK])
    assert got["status"] == "failed" and "allocat" in got["message"], got
    assert grade(server, HONEST["a lambda"])["status"] == "passed"


def test_evaluation_runs_in_the_background_and_a_problem_past_its_limit_fails_alone():
    """The class grader's loop is not held up while a notebook is evaluated (a thread: with --jobs 2
    the other notebook's clock keeps running); a problem past the limit fails, the next is graded."""
    import time

    from companion_lib.grading.instructor.processes import NotebookRun
    from companion_lib.grading.instructor.submissions import Submission

    loop = "def e_step(x, w, m, v):\n    while True:\n        pass"
    mle = ("def gaussian_mle(X):\n    mu = X.mean(0)\n    return mu, (X - mu).T @ (X - mu) / X.shape[0]\n"
           'check("14.1.gaussian_mle", gaussian_mle)')
    limit = 4  # seconds per problem: the loop burns a core for as long
    run = NotebookRun(Submission("n.ipynb", b"", "0" * 64), [E, "14.1.gaussian_mle"], 5, cell_timeout=limit,
                      notebook_timeout=60)
    run.cells = [IMPORTS, loop, CHECK, mle]  # its kernel has run (none here): evaluate
    started = time.monotonic()
    run.stop()
    assert time.monotonic() - started < 2 and not run.evaluated()
    run.evaluation.join(300)
    got = run.grades
    assert run.evaluated() and time.monotonic() - started >= limit
    assert got[E]["status"] == "failed" and "TimeoutError" in got[E]["message"], got
    assert got["14.1.gaussian_mle"]["status"] == "passed", got


def test_job_slots_have_uids_of_their_own():
    seen = [u for slot in range(8) for u in sandboxing.uids(slot)]
    assert len(set(seen)) == len(seen) and 0 not in seen
    assert sandboxing.uids(0) == (sandboxing.KERNEL_UID, sandboxing.SANDBOX_UID)
    for bad in (-1, 1000, 1.0, True):
        with pytest.raises(ValueError, match="slot"):
            sandboxing.uids(bad)
