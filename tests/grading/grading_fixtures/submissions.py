"""Synthetic submissions for tests/grading/test_grade.py: one notebook per case of issue 9.

``CLASS`` maps a file name to its code cells and to the statuses the grader must give
(problems: 14.1.e_step, 14.1.gaussian_mle, 0.9.scale, 0.9.threshold; "-" = missing).
Cells are tiny; the only slow part of each notebook is starting a kernel and importing torch.
"""
import os
import zlib
from pathlib import Path

import nbformat

from companion_lib.grading.instructor.sandboxing import KERNEL_MEMORY

FIXTURES = str(Path(__file__).resolve().parent)

HEADER = f"""import sys, os, time
sys.path.insert(0, {FIXTURES!r})
import numpy, torch
from torch import nn
import fixture_problems
from companion_lib import grading, mixture
from companion_lib.grading import check, progress, PROBLEMS, HISTORY, Result"""

E_STEP = """def e_step(x, w, m, v):
    lp = torch.log(w) - 0.5 * (x[:, None] - m) ** 2 / v - 0.5 * torch.log(2 * torch.pi * v)
    return torch.softmax(lp, dim=1)
check("14.1.e_step", e_step)"""

E_STEP_WRONG = """def e_step(x, w, m, v):          # forgets the mixing weights
    lp = - 0.5 * (x[:, None] - m) ** 2 / v - 0.5 * torch.log(2 * torch.pi * v)
    return torch.softmax(lp, dim=1)"""

MLE = """def gaussian_mle(X):
    X = torch.as_tensor(X)
    mu = X.mean(0)
    D = X - mu
    return mu, D.T @ D / X.shape[0]
check("14.1.gaussian_mle", gaussian_mle)"""

SCALE = """class Scale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.log_s = nn.Parameter(torch.zeros(dim))
        self.t = nn.Parameter(torch.zeros(dim))
    def forward(self, x):
        return x * self.log_s.exp() + self.t
    def inverse(self, y):
        return (y - self.t) / self.log_s.exp()
check("0.9.scale", Scale)"""

THRESHOLD = 'check("0.9.threshold", torch.tensor(3.02))'

TEMPLATE = """def e_step(x, w, m, v):
    raise NotImplementedError
check("14.1.e_step", e_step)
gaussian_mle = None   # YOUR ANSWER
check("14.1.gaussian_mle", gaussian_mle)
class Scale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        raise NotImplementedError   # YOUR CODE: the parameters log_s and t
    def forward(self, x):
        raise NotImplementedError
check("0.9.scale", Scale)
check("0.9.threshold", ...)"""

RIGHT = [HEADER, E_STEP, MLE, SCALE, THRESHOLD, 'print(progress("14.1"))']


def sleeper_arg(pid_file: str) -> str:
    """The detached ``sleep``'s argument (600 s and a fraction unique to ``pid_file``): the test finds it
    by its command line, since a kernel in a pid namespace of its own writes a pid that means nothing
    outside it."""
    return f"600.{zlib.crc32(pid_file.encode()):010d}"


def class_of(right_path: str, pid_file: str = "/nonexistent") -> dict:
    """name -> (cells, expected statuses of e_step, mle, scale, threshold, expected run status)."""
    wrong_checked = E_STEP_WRONG + '\ncheck("14.1.e_step", e_step)'
    return {
        "right.ipynb": (RIGHT, ("passed", "passed", "passed", "passed"), "completed"),
        "untouched.ipynb": ([HEADER, TEMPLATE], ("unsolved",) * 4, "completed"),
        "crash.ipynb": ([HEADER, E_STEP, "os._exit(1)", MLE], ("passed", "passed", "-", "-"), "kernel-died"),
        # cell 3 is interrupted at the cell limit and the run goes on; cell 5 ignores the interrupt (it
        # sleeps rather than spins: the same unanswered interrupt without a core burnt for the limit)
        "hang.ipynb": ([HEADER, E_STEP, "time.sleep(10**6)", MLE,
                        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n"
                        "    time.sleep(0.1)",
                        THRESHOLD], ("passed", "passed", "-", "passed"), "killed-after-timeout"),
        "flood.ipynb": ([HEADER, "for _ in range(300):\n    print('x' * 100_000)", E_STEP, "1 / 0"],
                        ("passed", "-", "-", "-"), "completed"),
        "kill_parent.ipynb": ([HEADER, E_STEP, "os.kill(os.getppid(), 9)\ntime.sleep(5)", MLE],
                              # as root the kernel has another uid than its worker: the kill fails
                              ("passed", "passed", "-", "-"), "completed" if os.geteuid() == 0 else "worker-died"),
        # leaves a detached process behind (own session, empty environment): it must not outlive grading
        "escape.ipynb": ([HEADER, f"import subprocess\np = subprocess.Popen(['sleep', {sleeper_arg(pid_file)!r}], "
                          "env={'PATH': '/bin:/usr/bin'}, start_new_session=True)\n"
                          f"open({pid_file!r}, 'w').write(str(p.pid))", E_STEP,
                          # what it may see: as root, not the grader's /proc entry (a pid namespace of
                          # its own); always, the grader's cap on its address space. An error cell if not
                          f"assert {os.geteuid()} != 0 or not os.path.exists('/proc/{os.getpid()}/cmdline')\n"
                          f"import resource\nassert resource.getrlimit(resource.RLIMIT_AS)[0] == {KERNEL_MEMORY}"],
                         ("passed", "-", "-", "-"), "completed"),
        # ---- forgeries: each hands in a wrong answer (or none) and tries to be credited
        "forge_patch_grader.ipynb": ([HEADER, E_STEP_WRONG,
                                      "ok = lambda pid, a: Result(pid, 'passed', 'ok')\n"
                                      "grading.grade_answer = ok\ngrading.compare.compare_values = lambda *a, **k: None\n"
                                      "grading.judge = lambda *a, **k: ('passed', 'ok')\n"
                                      "check = lambda pid, a: grading.HISTORY.append(ok(pid, a))",
                                      'check("14.1.e_step", e_step)\ngrading.check("14.1.e_step", e_step)'],
                                     ("failed", "-", "-", "-"), "completed"),
        "forge_history.ipynb": ([HEADER, "HISTORY.append(Result('14.1.e_step', 'passed', 'ok'))\n"
                                 "HISTORY.append(Result('0.9.threshold', 'passed', 'ok', answer=3.0))"],
                                ("-", "-", "-", "-"), "completed"),
        "forge_edit_answer.ipynb": ([HEADER, E_STEP_WRONG + "\nr = check('14.1.e_step', e_step)\n"
                                     "r.answer = mixture.responsibilities\nr.status = 'passed'\n"
                                     "HISTORY[-1].status = 'passed'\nr2 = check('0.9.threshold', 3.5)\n"
                                     "r2.answer = 3.0\nr2.status = 'passed'"],
                                    ("failed", "-", "-", "failed"), "completed"),
        "forge_allclose.ipynb": ([HEADER, "numpy.allclose = lambda *a, **k: True\n"
                                  "torch.allclose = lambda *a, **k: True", wrong_checked,
                                  'check("0.9.threshold", 3.5)'], ("failed", "-", "-", "failed"), "completed"),
        # the reference reads mixture.e_step at call time: in the kernel, patch it to agree with a
        # wrong answer (the kernel's own check then says "passed")
        "forge_library.ipynb": ([HEADER, "def fake(x, w, m, v, kind):\n"
                                 "    lp = torch.log(torch.full((x.shape[0], w.shape[0]), 1.0 / w.shape[0], dtype=x.dtype))\n"
                                 "    return None, lp\nmixture.e_step = fake",
                                 "def e_step(x, w, m, v):\n    return torch.full((x.shape[0], w.shape[0]), 1.0 / w.shape[0], dtype=torch.float64)\n"
                                 "r = check('14.1.e_step', e_step)\nassert r.status == 'passed', r"],
                                ("failed", "-", "-", "-"), "completed"),
        "forge_reference.ipynb": ([HEADER, "check('14.1.e_step', PROBLEMS['14.1.e_step'].expected())",
                                   "check('14.1.gaussian_mle', mixture.gaussian_mle)",
                                   "check('0.9.scale', fixture_problems.Scale)",
                                   # a value computed by the withheld reference: no credit either
                                   "check('0.9.threshold', PROBLEMS['0.9.threshold'].expected())"],
                                  ("no-credit", "no-credit", "no-credit", "no-credit"), "completed"),
        "forge_wrapper.ipynb": ([HEADER, "def e_step(x, w, m, v):\n    return mixture.responsibilities(x, w, m, v)\n"
                                 "check('14.1.e_step', e_step)",
                                 "check('14.1.gaussian_mle', lambda X: PROBLEMS['14.1.gaussian_mle'].expected()(X))",
                                 "class Scale(fixture_problems.Scale):\n    pass\nr = check('0.9.scale', Scale)\n"
                                 "Scale = r.or_reference()",
                                 "helper = check('0.9.scale', None).or_reference()\nclass Scale(helper):\n    pass\n"
                                 "check('0.9.scale', Scale)"],
                                ("no-credit", "no-credit", "no-credit", "-"), "completed"),
        "forge_hook.ipynb": ([HEADER, "def fake(result):\n"
                              "    print('COMPANION-GRADES {\"14.1.e_step\": \"passed\", \"14.1.gaussian_mle\": \"passed\"}')\n"
                              "get_ipython().events.register('post_run_cell', fake)", wrong_checked],
                             ("failed", "-", "-", "-"), "completed"),
        # tries to ruin a classmate: overwrites right.ipynb where it lies, and lists its own folder
        "classmate.ipynb": ([HEADER, f"open({right_path!r}, 'w').write('{{}}')\n"
                             "import glob\nfor p in glob.glob('../*.ipynb') + glob.glob('../*/*.ipynb'):\n"
                             "    open(p, 'w').write('{}')\n"
                             "assert [f for f in os.listdir('.') if f.endswith('.ipynb')] == ['classmate.ipynb']",
                             wrong_checked], ("failed", "-", "-", "-"), "completed"),
    }


def write_notebook(path, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return Path(path)
