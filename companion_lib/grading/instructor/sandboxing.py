"""The grader's side of the sandbox: a fresh process per (notebook, problem) that runs a sliced answer
on the grader's test inputs, where no student code can reach the references.

* The sandbox imports a *copy* of ``companion_lib`` (:func:`stub_copy`, built once per problem): the
  evaluated problem's reference and every name it lists as forbidden are stubs that raise
  ``ForbiddenReference``, and every problem module's own reference implementation is a stub too (the
  harnesses stay). Everything else a lesson lets students call still works.
* Isolation (:func:`mode`): as root, ``unshare --mount --pid --fork --mount-proc``, the copy
  bind-mounted over the real package folder (and an empty tmpfs over a git checkout's ``.git``),
  then ``setpriv`` to an unprivileged uid with no groups: the package source and the grader's
  ``/proc`` entries are unreadable, and the kernels' uid differs from the sandboxes' (a kernel cannot
  signal a sandbox; sandboxes cannot see each other: separate pid namespaces). Without root, the same
  in an unprivileged user namespace (``unshare -Urm``; the mounts are locked by a second user
  namespace) where the kernel allows it; else "same-uid" mode: only the copy shadows the package
  (README says what that cannot prevent).
* The request (source + inputs) goes in over stdin and the outcomes come back on stdout as plain data
  (``grading.sandbox.pack``: JSON + .npz, never pickle), read within ``limits``.
"""
from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import companion_lib
from companion_lib.grading import limits
from companion_lib.grading.registry import PROBLEMS
from companion_lib.grading.sandbox import FORBIDDEN, pack, unpack

__all__ = ["SANDBOX_UID", "KERNEL_UID", "mode", "stub_copy", "run_sandbox", "SandboxError"]

SANDBOX_UID = 65534   # nobody: the sandboxes
KERNEL_UID = 65533    # the notebook kernels (not the sandboxes' uid: a kernel must not signal them)
PACKAGE_DIR = Path(companion_lib.__file__).resolve().parent
_PROBLEM_PACKAGE = "companion_lib.grading.problems"
_COPIES: dict = {}


class SandboxError(RuntimeError):
    """The sandbox could not be built or started (the grader's fault, not the student's)."""


@functools.lru_cache(maxsize=1)
def mode() -> str:
    """"root" (namespaces + another uid), "userns" (an unprivileged user namespace) or "same-uid"."""
    if not sys.platform.startswith("linux") or not shutil.which("unshare"):
        return "same-uid"
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return "root"
    try:
        ok = subprocess.run(["unshare", "-Urm", "--pid", "--fork", "--mount-proc", "true"],
                            capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return "userns" if ok else "same-uid"


# --------------------------------------------------------------------------------------------------
# The stubbed copy of the package
def _stub_body(dotted: str) -> list:
    message = f"{dotted} is withheld by the grader: your answer must compute this itself"
    return ast.parse(f"raise type({FORBIDDEN!r}, (RuntimeError,), {{'__module__': 'companion_lib'}})({message!r})").body


def _stub_def(tree, qualname: str, dotted: str) -> bool:
    """Replace the body of the def/class ``qualname`` in ``tree`` by a raise; True if found."""
    scope, parts = tree, qualname.split(".")
    for k, part in enumerate(parts):
        node = next((n for n in scope.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return False
        scope = node
    if isinstance(scope, ast.ClassDef):  # a class: no methods left; instantiating it raises
        scope.body = ast.parse("def __init__(self, *args, **kwargs):\n    pass").body
        scope.body[0].body = _stub_body(dotted)
    else:
        scope.body = _stub_body(dotted)
    return True


def _stub_assignment(tree, name: str, dotted: str) -> bool:
    """Replace a module-level ``name = ...`` (an alias) by a stub function; True if found."""
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            stub = ast.parse(f"def {name}(*args, **kwargs):\n    pass").body[0]
            stub.body = _stub_body(dotted)
            tree.body[i] = stub
            return True
    return False


def _module_file(root: Path, module: str) -> Path:
    rel = Path(*module.split("."))
    path = root / rel.with_suffix(".py")
    return path if path.exists() else root / rel / "__init__.py"


def _targets(problem) -> set:
    """(module, qualname, dotted name) of every definition to stub for ``problem``."""
    objects = [(problem.reference, f"the reference of {problem.id}")]
    for dotted in problem.forbidden_names():
        module_name, _, attr = dotted.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module_name), attr)  # names from the registry, not a notebook
        except (ImportError, AttributeError, ValueError):
            obj = None
        objects.append((obj, dotted))
        objects.append(((module_name, attr, dotted), dotted))  # the name itself, should it be an alias
    found, labels = set(), {}
    for obj, dotted in objects:
        if isinstance(obj, tuple):
            found.add(("alias",) + obj)
            continue
        target = inspect.unwrap(obj) if callable(obj) else None
        module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
        if module and qualname and "<" not in qualname:  # one stub per definition, named by its dotted name
            if (module, qualname) not in labels or dotted.startswith("companion_lib."):
                labels[(module, qualname)] = dotted
    return found | {("def", module, qualname, dotted) for (module, qualname), dotted in labels.items()}


def _problem_modules() -> list[str]:
    """Modules that define registered problems (the package's, and e.g. a course's own)."""
    mods = set()
    for p in PROBLEMS.values():
        fn = p.cases if p.cases is not None else p.reference
        mod = getattr(fn, "__module__", None)
        if mod and (mod.startswith(_PROBLEM_PACKAGE) or not mod.startswith("companion_lib")):
            mods.add(mod)
    return sorted(mods)


def _stub_problem_module(tree) -> None:
    """Every ``reference=`` of a ``Problem(...)`` in a problem module: a stub (a named function's
    body, or the expression itself); the harnesses, cases and wrong answers stay."""
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Problem":
            pid = next((k.value.value for k in node.keywords if k.arg == "id" and isinstance(k.value, ast.Constant)), "?")
            for k in node.keywords:
                if k.arg == "reference":
                    if isinstance(k.value, ast.Name):
                        named.add((k.value.id, pid))
                    else:
                        lam = ast.parse("lambda *args, **kwargs: None", mode="eval").body
                        lam.body = ast.parse(f"(_ for _ in ()).throw(type({FORBIDDEN!r}, (RuntimeError,), "
                                             f"{{'__module__': 'companion_lib'}})"
                                             f"('the reference of {pid} is withheld'))", mode="eval").body
                        k.value = lam
    for name, pid in named:
        _stub_def(tree, name, f"the reference of {pid}")


def stub_copy(problem) -> Path:
    """A folder holding the stubbed copy of ``companion_lib`` (and of external problem modules) for
    ``problem``: readable by every uid, writable by none but the grader. Built once per process."""
    targets = frozenset(_targets(problem))
    if targets in _COPIES:
        return _COPIES[targets]
    root = Path(tempfile.mkdtemp(prefix="companion-sandbox-lib-"))
    shutil.copytree(PACKAGE_DIR, root / "companion_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    edits: dict = {}

    def tree_of(module: str):
        if module not in edits:
            path = _module_file(root, module) if module.startswith("companion_lib") else root / f"{module}.py"
            if not module.startswith("companion_lib"):
                shutil.copy(sys.modules[module].__file__, path)
            edits[module] = (path, ast.parse(path.read_text()))
        return edits[module][1]

    for module in _problem_modules():
        _stub_problem_module(tree_of(module))
    for target in targets:
        if target[0] == "def" and (target[1].startswith("companion_lib") or target[1] in edits):
            _stub_def(tree_of(target[1]), target[2], target[3])
        elif target[0] == "alias" and target[1].startswith("companion_lib"):
            tree = tree_of(target[1])
            if not any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == target[2] for n in tree.body):
                _stub_assignment(tree, target[2], target[3])
    for path, tree in edits.values():
        path.write_text(ast.unparse(ast.fix_missing_locations(tree)))
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    _COPIES[targets] = root
    return root


def external_modules() -> list[str]:
    """Problem modules outside the package: the sandbox imports their stubbed copies to register them."""
    return [m for m in _problem_modules() if not m.startswith("companion_lib")]


# --------------------------------------------------------------------------------------------------
# Starting a sandbox
def _environment(home: Path, copy: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    env.update({"HOME": str(home), "TMPDIR": str(home), "PYTHONPATH": str(copy), "PYTHONHASHSEED": "0",
                "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1", "COMPANION_MODE": "quick", "COMPANION_THREADS": "1",
                "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(home / ".matplotlib")})
    return env


def _hidden() -> list[Path]:
    """Folders of the real package (and a git checkout's history) the sandbox must not read."""
    paths = [PACKAGE_DIR]
    git = PACKAGE_DIR.parent / ".git"
    if git.exists():
        paths.append(git)
    return paths


def _command(kind: str, copy: Path, uid: int) -> list[str]:
    python = [sys.executable, "-s", "-m", "companion_lib.grading.sandbox"]
    if kind == "same-uid":
        return python
    mounts = []
    for path in _hidden():
        if path.is_dir() and path.name != ".git":
            mounts.append(f"mount --bind {shlex.quote(str(copy / 'companion_lib'))} {shlex.quote(str(path))}")
        else:
            mounts.append(f"mount -t tmpfs -o size=1k,mode=000 none {shlex.quote(str(path))}")
    if kind == "root":
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all"]
        outer = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"]
    else:  # a second user namespace locks the mounts (its root cannot unmount them)
        drop = ["unshare", "--user", "--mount"]
        outer = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
                 "--mount-proc", "--propagation", "private"]
    script = " && ".join(mounts + ["exec " + " ".join(shlex.quote(a) for a in drop + python)])
    return outer + ["/bin/sh", "-c", script]


def run_sandbox(pid: str, source: str, cases, timeout: float = 120.0, uid: int = SANDBOX_UID) -> list:
    """Run ``source`` (a slice ending ``__answer__ = ...``) for problem ``pid`` on ``cases`` in a fresh
    sandbox; the outcomes ``[(kind, payload), ...]`` (see ``judge.evaluate`` and ``grading.sandbox``).
    A sandbox that dies, runs past ``timeout`` or answers garbage gives ``[("raised", why)]``."""
    problem = PROBLEMS[pid]
    kind = mode()
    copy = stub_copy(problem)
    home = Path(tempfile.mkdtemp(prefix="companion-sandbox-"))
    try:
        if kind == "root":
            os.chown(home, uid, uid)
        os.chmod(home, 0o700)
        request = pack({"pid": pid, "source": source, "cases": [list(c) for c in cases],
                        "modules": external_modules()})
        proc = subprocess.Popen(_command(kind, copy, uid), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, cwd=str(home), env=_environment(home, copy),
                                start_new_session=True)
        try:
            out, _ = proc.communicate(request, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return [("raised", f"TimeoutError: the answer ran past the grader's limit of {timeout:g} s")]
        finally:
            _kill(proc)
        try:
            outcomes = unpack(out)["outcomes"]
            return [(str(k), p) for k, p in outcomes]
        except Exception as err:  # noqa: BLE001 (died, killed, or wrote garbage)
            return [("raised", f"the sandbox ended with code {proc.returncode} without an answer "
                               f"({type(err).__name__})")]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # --kill-child: the namespace's init, and with it all inside
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def is_forbidden(outcomes) -> str | None:
    """The stub's message if the answer called a withheld reference, else None."""
    for kind, payload in outcomes:
        head, _, message = payload.partition(": ") if isinstance(payload, str) else ("", "", "")
        if head.split(".")[-1] == FORBIDDEN:
            return message.strip()
    return None

