"""The grader's side of the sandboxes: where a sliced answer runs on the grader's test inputs and no
student code can reach the references.

* Stubbed copies (:func:`stub_copy`, one per problem's set of withheld names, in a private 0700
  folder): the evaluated problem's reference and every name it lists as forbidden are stubs that
  raise ``ForbiddenReference``, and every problem module's own reference implementation is a stub too
  (the harnesses stay). Everything else a lesson lets students call still works.
* A fork server per notebook or per job slot (:class:`SandboxServer`, ``grading/sandbox_server.py``):
  started once (as root in its own pid and mount namespaces, ``unshare --mount --pid --fork
  --mount-proc``; without root in an unprivileged user namespace; else "same-uid"), it imports torch
  and the package's other third-party modules, never ``companion_lib``, and runs no student code. Each
  problem runs in a fresh forked child that mounts its copy over the real package folder, covers
  ``/tmp``, ``/var/tmp``, ``/dev/shm``, the copies, a git checkout's history and the paths of
  :func:`hide` (results, key, submissions), caps its address space (``SANDBOX_MEMORY``), and as root
  drops to the job slot's uid (:func:`uids`) with no groups or capabilities; after each child the
  server kills every process left. A child costs ~0.1 s of CPU instead of a torch import (~2.5 s).
* Isolation (:func:`mode`): as root, the package source, the grader's ``/proc`` entries, classmates'
  files and what kernels leave in shared folders are out of reach, and kernels and sandboxes of the
  job slots have uids of their own (claimed machine-wide, :func:`job_slots`: two graders running at
  once never share one). In a user namespace the child keeps the grader's uid behind
  the mounts. In "same-uid" mode only the copy shadows the package (README says what that cannot
  prevent).
* The request (source + inputs) goes in over a pipe and the outcomes come back as plain data
  (``grading.sandbox.pack``: JSON + .npz, never pickle), read within ``limits``.
"""
from __future__ import annotations

import ast
import atexit
import functools
import importlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from companion_lib.grading import limits
from companion_lib.grading.registry import PROBLEMS
from companion_lib.grading.sandbox import FORBIDDEN, pack, unpack
from companion_lib.grading.sandbox_server import read_frame, write_frame
from companion_lib.grading.instructor.slicing import AST_LOCK

__all__ = ["SANDBOX_UID", "KERNEL_UID", "SLOTS", "SANDBOX_MEMORY", "KERNEL_MEMORY", "mode", "uids", "job_slots",
           "hide", "stub_copy",
           "SandboxServer", "SPAWN_LOCK", "live_pids", "SandboxError"]

SANDBOX_UID = 65534   # nobody: the sandboxes (job slot k: 65534 - 2k)
KERNEL_UID = 65533    # the notebook kernels (job slot k: 65533 - 2k; never a sandbox's uid)
SLOTS = 1000          # job slots on one machine (global indices, claimed by job_slots): uids 63535 .. 65534
SANDBOX_MEMORY = 4 * 2**30   # address space a sandbox child may add to what the server has mapped
KERNEL_MEMORY = 16 * 2**30   # address space of a kernel (RLIMIT_AS; torch and the package map ~1 GiB)
STARTUP = 180.0       # seconds for a fork server's imports (torch, ...) on a loaded machine
GRACE = 30.0          # seconds past a problem's limit before the grader gives up on its server
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # the package the grader imports
_SERVER = str(Path(__file__).resolve().parents[1] / "sandbox_server.py")
_PROBLEM_PACKAGE = "companion_lib.grading.problems"
_COPIES: dict = {}
_COPIES_LOCK = threading.Lock()
#: Held while a server is started and while the grader sweeps its children (they must spare servers).
SPAWN_LOCK = threading.Lock()
_LIVE: set = set()
_HIDDEN: set = set()
_SLOT_FOLDERS = ("/run/companion-grade-slots", "/tmp/.companion-grade-slots")
_CLAIMS: dict = {"pid": 0, "held": []}  # this process's claimed job slots: [(global index, locked fd)]
_CLAIMS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _copies_root() -> Path:
    """The grader's private folder (0700) of stubbed copies, one subfolder per problem's stubs; every
    sandbox child sees only its own (bind-mounted), the folder itself is covered."""
    root = Path(tempfile.mkdtemp(prefix="companion-sandbox-libs-"))
    atexit.register(shutil.rmtree, root, True)
    return root


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
    with _COPIES_LOCK, AST_LOCK:  # evaluations of several notebooks run in threads
        targets = frozenset(_targets(problem))
        if targets not in _COPIES:
            _COPIES[targets] = _build_copy(targets)
        return _COPIES[targets]


def _build_copy(targets) -> Path:
    root = Path(tempfile.mkdtemp(prefix="lib-", dir=_copies_root()))
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
    return root


def external_modules() -> list[str]:
    """Problem modules outside the package: the sandbox imports their stubbed copies to register them."""
    return [m for m in _problem_modules() if not m.startswith("companion_lib")]


# --------------------------------------------------------------------------------------------------
# Job slots and their uids, claimed machine-wide
def uids(slot: int) -> tuple[int, int]:
    """(kernel uid, sandbox uid) of the job slot with global index ``slot`` (0 .. ``SLOTS`` - 1) when
    the grader is root: slot k uses 65533 - 2k and 65534 - 2k. A grader process grades under the
    indices it holds (:func:`job_slots`: its local slot i is the i-th), so no two notebooks graded at
    once on one machine, by one grader or by two, share a uid: neither can signal or write into the
    other's processes and folders."""
    if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < SLOTS:
        raise ValueError(f"slot must be an int in [0, {SLOTS}), got {slot!r}")
    return KERNEL_UID - 2 * slot, SANDBOX_UID - 2 * slot


def job_slots(jobs: int) -> list[int]:
    """The global slot indices (for :func:`uids`) of this process's ``jobs`` job slots, in order.

    As root, each index is claimed machine-wide, before any kernel starts, with an exclusive
    non-blocking ``flock`` on ``<folder>/<index>.lock`` in a root-owned 0700 folder
    (``/run/companion-grade-slots`` where ``/run`` is writable, else ``/tmp/.companion-grade-slots``);
    the lowest free indices are taken. Claims are held until this process exits (its descriptors
    close, even on SIGKILL; children do not inherit them); a later call with more ``jobs`` claims
    more. Without root (no uid switch) nothing is claimed: ``[0, ..., jobs - 1]``.
    Raises ``ValueError`` for a bad ``jobs``, ``PermissionError`` if the folder is not a root-owned
    0700 folder (a symlink, another uid's, open to others) and ``RuntimeError`` if fewer than
    ``jobs`` indices are free."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= SLOTS:
        raise ValueError(f"jobs must be an int in [1, {SLOTS}], got {jobs!r}")
    if os.geteuid() != 0:
        return list(range(jobs))
    with _CLAIMS_LOCK:
        if _CLAIMS["pid"] != os.getpid():  # a forked child: its parent's claims are not its own
            for _, fd in _CLAIMS["held"]:
                os.close(fd)
            _CLAIMS.update(pid=os.getpid(), held=[])
        held = _CLAIMS["held"]
        if len(held) < jobs:
            held += _claim(jobs - len(held), _slot_folder())
        return [index for index, _ in held[:jobs]]


def _slot_folder() -> str:
    return _SLOT_FOLDERS[0] if os.path.isdir("/run") and os.access("/run", os.W_OK) else _SLOT_FOLDERS[1]


def _claim(count: int, folder: str) -> list[tuple[int, int]]:
    """``count`` (index, locked descriptor) pairs: the lowest indices whose lock file in ``folder``
    no open descriptor locks (this process's own claims included). See :func:`job_slots`."""
    import fcntl

    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    try:  # O_NOFOLLOW: a symlink in its place is refused, not followed
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise PermissionError(f"{folder} (the job slots' lock folder) is not a plain folder ({err.strerror}; "
                              "a symlink is not followed): refusing to claim job slots there; remove it") from err
    got: list[tuple[int, int]] = []
    try:
        info = os.fstat(dir_fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise PermissionError(f"{folder} (the job slots' lock folder) must be a 0700 folder owned by uid "
                                  f"{os.geteuid()}, found uid {info.st_uid} and mode {info.st_mode & 0o777:04o}: "
                                  "refusing to claim job slots there; remove it")
        for index in range(SLOTS):
            if len(got) == count:
                break
            fd = os.open(f"{index}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another grader's (or this one's)
                os.close(fd)
                continue
            got.append((index, fd))
        if len(got) < count:
            raise RuntimeError(f"only {len(got)} of the {SLOTS} job slots are free on this machine (other "
                               f"graders hold the rest), {count} needed: use a smaller --jobs")
    except BaseException:
        for _, fd in got:
            os.close(fd)
        raise
    finally:
        os.close(dir_fd)
    return got


# --------------------------------------------------------------------------------------------------
# The fork server (``grading/sandbox_server.py``): one per notebook, a child per problem
def hide(*paths) -> None:
    """Paths no sandbox may read (results, the key file, the submissions): a folder is covered by an
    empty tmpfs, a file by ``/dev/null``; a folder that holds what sandboxes need (the package, Python)
    is never covered (its files are, when named). Applies to servers started afterwards."""
    for path in paths:
        _HIDDEN.add(str(Path(path).resolve()))


def _needed() -> list[str]:
    roots = [sys.prefix, sys.base_prefix, sys.executable, os.path.realpath(sys.executable), str(PACKAGE_DIR)]
    return [os.path.realpath(p) for p in roots + [p for p in sys.path if p]]


def _hidden() -> tuple[list[str], list[str]]:
    """(folders to cover with an empty tmpfs, files to cover with /dev/null)."""
    needed = _needed()
    under = (lambda p, d: p == d or p.startswith(d.rstrip("/") + "/"))
    folders, files = [str(_copies_root())], []
    for extra in (".git", "solutions"):         # a checkout's history and its worked solutions
        if (PACKAGE_DIR.parent / extra).is_dir():
            folders.append(str(PACKAGE_DIR.parent / extra))
    for path in sorted(_HIDDEN):
        if os.path.isdir(path) and not any(under(n, path) for n in needed):
            folders.append(path)
        elif os.path.isfile(path):
            files.append(path)
    return folders, files


def _preload() -> list[str]:
    """Third-party modules the package's modules import at their top level (torch, numpy, sklearn,
    ...): the fork server imports them once. Read from the source of the package's modules loaded
    here (not the instructor's side); never a module of companion_lib."""
    names = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not name.startswith("companion_lib") or ".instructor" in name or not path or not path.endswith(".py"):
            continue
        try:
            with AST_LOCK:
                tree = ast.parse(Path(path).read_text())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names
                  and not n.startswith("companion_lib"))


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    env.update({"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "COMPANION_MODE": "quick",
                "COMPANION_THREADS": "1", "MPLBACKEND": "Agg"})
    return env


def _command(kind: str) -> list[str]:
    python = [sys.executable, "-I", _SERVER]
    if kind == "root":
        return ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "private"] + python
    if kind == "userns":
        return ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
                "--mount-proc", "--propagation", "private"] + python
    return python


class SandboxServer:
    """One fork server (``grading/sandbox_server.py``) for one notebook's problems, evaluated one at a
    time, each in a fresh child (see that module). ``run`` sends one problem; ``close`` ends it all.

    ``uid``: the child's uid as root; ``timeout``: seconds per problem. A server that dies or stops
    answering is killed and the next ``run`` starts another."""

    def __init__(self, uid: int = SANDBOX_UID, timeout: float = 120.0, memory: int | None = None):
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.kind, self.uid, self.timeout = mode(), int(uid), float(timeout)
        self.memory = SANDBOX_MEMORY if memory is None else int(memory)
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self) -> None:
        folders, files = _hidden()
        config = {"mode": self.kind, "package_dirs": [str(PACKAGE_DIR)], "hide": folders, "hide_files": files,
                  "sys_path": [p for p in sys.path if p and os.path.isdir(p)], "env": _environment(),
                  "preload": _preload(), "memory": self.memory, "fsize": 256 * 2**20, "nproc": 256,
                  "cap": limits.MAX_FILE_BYTES + 1024}
        env = {**_environment(), "HOME": str(_copies_root())}
        with SPAWN_LOCK:
            self.proc = subprocess.Popen(_command(self.kind), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, cwd="/", env=env, start_new_session=True)
            _LIVE.add(self.proc.pid)
        self.config = config
        write_frame(self.proc.stdin.fileno(), json.dumps(config).encode())
        if read_frame(self.proc.stdout.fileno(), 16, time.monotonic() + STARTUP) != b"R":
            raise OSError("the sandbox server did not start")

    def run(self, pid: str, source: str, cases) -> list:
        """Outcomes ``[(kind, payload), ...]`` of ``source`` (a slice ending ``__answer__ = ...``) for
        problem ``pid`` on ``cases`` (see ``judge.evaluate`` and ``grading.sandbox``). A child that dies,
        runs past the time limit or answers garbage gives ``[("raised", why)]``."""
        problem = PROBLEMS[pid]
        copy = stub_copy(problem)
        request = pack({"pid": pid, "source": source, "cases": [list(c) for c in cases],
                        "modules": external_modules()})
        header = {"copy": str(copy), "uid": self.uid, "timeout": self.timeout,
                  "externals": [[str(copy / f"{m}.py"), os.path.realpath(sys.modules[m].__file__)]
                                for m in external_modules()]}
        home = None
        if self.kind == "same-uid":
            home = Path(tempfile.mkdtemp(prefix="companion-sandbox-"))
            header["home"] = str(home)
        try:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            write_frame(self.proc.stdin.fileno(), json.dumps(header).encode())
            write_frame(self.proc.stdin.fileno(), request)
            answer = read_frame(self.proc.stdout.fileno(), self.config["cap"] + 16,
                                time.monotonic() + self.timeout + GRACE)
        except (OSError, TimeoutError) as err:  # the server itself failed: start another next time
            self.close()
            if isinstance(err, TimeoutError):
                return [("raised", f"TimeoutError: the answer ran past the grader's limit of {self.timeout:g} s")]
            return [("raised", f"the sandbox failed ({type(err).__name__}: {err})")]
        finally:
            if home is not None:
                shutil.rmtree(home, ignore_errors=True)
        if answer == b"T":
            return [("raised", f"TimeoutError: the answer ran past the grader's limit of {self.timeout:g} s")]
        if answer is None or answer[:1] != b"A":
            why = (answer or b"D the server ended")[1:].decode(errors="replace").strip()
            return [("raised", why or "the sandbox ended without an answer")]
        try:
            return [(str(k), p) for k, p in unpack(answer[1:])["outcomes"]]
        except Exception as err:  # noqa: BLE001 (garbage)
            return [("raised", f"the sandbox's answer was unreadable ({type(err).__name__})")]

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):  # end of input: the server leaves (its children are gone)
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # --kill-child: the namespace's init, and with it all inside
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.discard(proc.pid)


def live_pids() -> set:
    """Pids of the sandbox servers running now (a sweep of the grader's children must spare them:
    take ``SPAWN_LOCK`` while sweeping)."""
    return set(_LIVE)


def is_forbidden(outcomes) -> str | None:
    """The stub's message if the answer called a withheld reference, else None."""
    for kind, payload in outcomes:
        head, _, message = payload.partition(": ") if isinstance(payload, str) else ("", "", "")
        if head.split(".")[-1] == FORBIDDEN:
            return message.strip()
    return None
