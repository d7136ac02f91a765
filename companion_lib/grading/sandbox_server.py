"""The sandboxes' fork server, run as a script by path (``python -I .../grading/sandbox_server.py``).

Started by the instructor's grader (``instructor.sandboxing.SandboxServer``) once per notebook: as root
inside pid and mount namespaces of its own (``unshare --mount --pid --fork --mount-proc``), without root
in an unprivileged user namespace, else as a plain process ("same-uid"). It imports nothing of
``companion_lib``, only the third-party modules the package imports (torch, numpy, ...), once, and runs
no student code itself: nothing of the grader or of another problem is in its memory. For each request
it forks a child, which

1. enters a mount namespace of its own, bind-mounts the problem's stubbed copy of the package over the
   real package folder (and each external problem module's copy over its file), read-only, and mounts
   fresh, empty tmpfs over the folders every uid can write (``/tmp``, ``/var/tmp``, ``/dev/shm``,
   ``/run/lock``: nothing a kernel or an earlier problem left there is visible; what the child needs
   inside them -- a checkout or a virtual environment under ``/tmp`` -- is put back, read-only, with the
   stubbed package in it) and over the grader's folder of copies, a checkout's history and worked
   solutions, and whatever else the grader names;
2. limits its address space, file sizes and (as root) processes; as root drops to the problem's uid
   with no groups, no capabilities and no new privileges; in a user namespace enters a second one,
   which locks the mounts;
3. imports ``companion_lib.grading.sandbox`` -- the stubbed copy -- and runs the request there.

The server reads the child's answer from a pipe (size-capped, within the request's time limit), then
kills every process left: as the namespace's init it signals all of them (``kill(-1)``); in same-uid
mode, as their subreaper, its descendants. Only then does it take the next request.

Protocol (stdin/stdout): frames of an 8-byte big-endian length and a body. The first frame is the
configuration (JSON); the server answers ``b"R"`` once its imports are done. Each request is two frames,
a JSON header (the copy to mount, the uid, the time limit) and the packed request, which the server
hands to the child unread. The answer is one frame: ``b"A"`` + the child's bytes, ``b"T"`` (timed out)
or ``b"D"`` + why the child ended without an answer.
"""
import ctypes
import errno
import importlib
import json
import os
import resource
import select
import signal
import sys
import time

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 24, 36, 38
WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # every uid can write there
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target: str, fstype, flags: int, data=None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def read_frame(fd: int, cap: int, deadline: float | None = None) -> bytes | None:
    """One frame from ``fd`` (None at end of file); a frame over ``cap`` bytes or past ``deadline``
    raises ``OSError``/``TimeoutError``."""
    head = _read_exactly(fd, 8, deadline)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > cap:
        raise OSError(errno.EMSGSIZE, f"a frame of {n} bytes, over the limit of {cap}")
    body = _read_exactly(fd, n, deadline)
    if body is None:
        raise OSError(errno.EPIPE, "truncated frame")
    return body


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("no answer in time")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise OSError(errno.EPIPE, "truncated frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, body: bytes) -> None:
    data = len(body).to_bytes(8, "big") + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --------------------------------------------------------------------------------------------------
# The child: isolate, drop, run
def _isolate(config: dict, header: dict) -> str:
    """Mounts and limits (see the module's docstring); returns the child's home folder."""
    mode = config["mode"]
    if mode == "same-uid":
        sys.path.insert(0, header["copy"])
        home = header["home"]
        os.makedirs(home, mode=0o700, exist_ok=True)
        return home
    private_mount_namespace()
    lib = os.path.join(header["copy"], "companion_lib")
    for source, target in [(lib, real) for real in config["package_dirs"]] + header.get("externals", []):
        _mount(source, target, None, MS_BIND)  # before the copies' folder is covered below
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    hidden = []
    for path in config["hide"]:                 # the grader's folders first: what is kept below carries them covered
        if os.path.isdir(path) and not any(_under(path, h) for h in hidden):
            _mount("none", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=000")
            hidden.append(path)
    for path in config["hide_files"]:
        if os.path.isfile(path):
            _mount("/dev/null", path, None, MS_BIND)
    writable = [w for w in WRITABLE if os.path.isdir(w)]
    keep = [t for _, t in header.get("externals", [])] + config["package_dirs"] + config["sys_path"]
    staged = _stage([k for k in keep if os.path.exists(k) and any(_under(k, w) for w in writable)])
    for path in writable:                       # nothing a kernel or an earlier problem left there is visible
        _mount("none", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
    _restore(staged)
    uid = int(header["uid"])
    if mode == "root":
        bring_into_reach(config["sys_path"] + config["package_dirs"], uid)
    home = "/tmp/home"
    os.mkdir(home, 0o700)
    if mode == "root":
        os.chown(home, uid, uid)
    return home


def private_mount_namespace() -> None:
    """As root: move this process into a mount namespace of its own, where no mount propagates back
    (the sandbox's child; the worker's kernel launcher). Raises ``OSError`` if that is refused."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


#: Where paths that must stay visible inside a writable folder wait while that folder is covered (a
#: checkout or a virtual environment under /tmp: the stubbed package, Python's own folders).
STAGE_ROOTS = ("/mnt", "/media", "/srv", "/opt")


def _stage(paths) -> list:
    """Bind each outermost path of ``paths`` (with what is mounted inside it: the stubbed package, the
    covered folders) to a private staging folder; returns [(stage, path)] for ``_restore``."""
    outer = [p for p in sorted(set(paths)) if not any(q != p and _under(p, q) for q in paths)]
    root = next((r for r in STAGE_ROOTS if os.path.isdir(r)), None)
    if not outer or root is None:
        return []
    _mount("none", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=700")
    staged = []
    for i, path in enumerate(outer):
        stage = os.path.join(root, f"keep-{i}")
        os.mkdir(stage, 0o700)
        _mount(path, stage, None, MS_BIND | MS_REC)
        staged.append((stage, path))
    return staged


def _restore(staged) -> None:
    """Put the staged paths back at their own places, read-only, and drop the staging folder."""
    if not staged:
        return
    for stage, path in staged:
        os.makedirs(path, 0o755, exist_ok=True)
        _mount(stage, path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        _check(_libc.umount2(stage.encode(), 2), f"umount {stage}")  # MNT_DETACH
    _check(_libc.umount2(os.path.dirname(staged[0][0]).encode(), 2), "umount the staging folder")


def _searchable(path: str, uid: int, bit: int = 0o001) -> bool:
    st = os.stat(path)
    return bool(st.st_mode & bit) or st.st_uid == uid


def bring_into_reach(paths, uid: int, stage_root: str = "/tmp") -> None:
    """Python's own folders (``sys.path``) under a folder ``uid`` cannot enter (a Python installed in
    root's 0700 home): cover that folder with an empty tmpfs and bind-mount just those folders back, at
    the same paths, read-only. The child then imports what it needs; nothing else there is visible.

    Run as root in a private mount namespace (the sandbox's child; the worker's kernel launcher), before
    dropping to ``uid``. ``stage_root``: an existing folder, outside every folder to be covered, where
    the kept folders wait (``.reach-*`` entries, removed again) while their ancestor is covered."""
    blocked: dict = {}
    for path in sorted(p for p in paths if os.path.isdir(p)):
        parts = path.rstrip("/").split("/")
        for k in range(1, len(parts)):
            ancestor = "/".join(parts[:k]) or "/"
            if not _searchable(ancestor, uid):
                kept = blocked.setdefault(ancestor, [])
                if not any(path.startswith(q.rstrip("/") + "/") for q in kept):
                    kept.append(path)
                break
    for n, (ancestor, kept) in enumerate(sorted(blocked.items())):
        staged = []
        for i, path in enumerate(kept):
            stage = os.path.join(stage_root, f".reach-{n}-{i}")
            os.mkdir(stage, 0o755)
            _mount(path, stage, None, MS_BIND | MS_REC)     # with what is mounted inside (the stubbed package)
            staged.append((stage, path))
        _mount("none", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=755")
        for stage, path in staged:
            os.makedirs(path, 0o755, exist_ok=True)
            _mount(stage, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
            _check(_libc.umount2(stage.encode(), 2), f"umount {stage}")  # MNT_DETACH
            os.rmdir(stage)


def _drop(config: dict, header: dict) -> None:
    mode = config["mode"]
    if mode == "root":
        uid = int(header["uid"])
        resource.setrlimit(resource.RLIMIT_NPROC, (config["nproc"], config["nproc"]))
        for cap in range(64):  # the capability bounding set: nothing to regain, ever
            if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                break
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to another uid: every capability is gone
    elif mode == "userns":  # a second user namespace: the mounts above are locked together
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
        for cap in range(64):
            if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                break
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _limit_memory(config: dict) -> None:
    pages = int(open("/proc/self/statm").read().split()[0]) if os.path.exists("/proc/self/statm") else 0
    cap = pages * os.sysconf("SC_PAGE_SIZE") + int(config["memory"])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["fsize"], config["fsize"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child(config: dict, header: dict, request: bytes, out: int) -> None:
    """In the forked child; never returns."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the server's pipes to the grader are not the child's
            os.dup2(devnull, fd)
        home = _isolate(config, header)
        _limit_memory(config)
        _drop(config, header)
        os.chdir(home)
        os.environ.clear()
        os.environ.update(config["env"])
        os.environ.update({"HOME": home, "TMPDIR": home, "MPLCONFIGDIR": os.path.join(home, ".matplotlib")})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sandbox = importlib.import_module("companion_lib.grading.sandbox")  # the stubbed copy
        answer = sandbox.respond(request)
    except BaseException as err:  # noqa: BLE001 (the grader's side failed: say so, decide nothing)
        try:
            write_frame(out, b"D" + f"the sandbox could not be set up ({type(err).__name__}: {err})"[:500].encode())
        finally:
            os._exit(3)
    try:
        write_frame(out, b"A" + answer)
    finally:
        os._exit(0)


# --------------------------------------------------------------------------------------------------
# The server
def _kill_all(mode: str) -> None:
    """Kill every process this server started, and reap them."""
    if mode == "same-uid":  # its subreaper: orphans come back here, and are killed in turn
        kill_children(os.getpid())
        return
    try:
        os.kill(-1, signal.SIGKILL)  # as the namespace's init: every process in it but this one
    except ProcessLookupError:
        pass
    _reap_all()


def children_of(parent: int) -> list[int]:
    """Pids of the processes whose parent is ``parent`` (read from ``/proc``; empty without it)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def kill_children(parent: int, spare=frozenset(), rounds: int = 20, pause: float = 0.05) -> None:
    """Kill (and reap) the children of ``parent`` (this process, a subreaper) but those in ``spare``,
    again while killed orphans' own children are re-parented to it."""
    for _ in range(rounds):
        victims = [pid for pid in children_of(parent) if pid not in spare]
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(pause)
        for pid in victims:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _reap_all() -> None:
    """Wait for every child (all are dying: the namespace's init killed them)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _serve_one(config: dict, header: dict, request: bytes) -> bytes:
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        _child(config, header, request, w)
    os.close(w)
    deadline = time.monotonic() + float(header["timeout"])
    try:
        answer = read_frame(r, config["cap"], deadline)
        if answer is None or answer[:1] not in (b"A", b"D"):
            _, status = os.waitpid(child, 0)
            answer = b"D" + f"the sandbox ended ({_ended(status)}) without an answer".encode()
    except TimeoutError:
        answer = b"T"
    except OSError as err:
        answer = b"D" + f"the sandbox's answer was refused ({err})".encode()
    finally:
        os.close(r)
        _kill_all(config["mode"])
    return answer


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # from inside the namespace, only handled signals reach
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # its init: none. Not dumpable: /proc/1/{root,mem} stay shut
    config = json.loads(read_frame(0, 1 << 20))
    if config["mode"] == "same-uid":
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sys.path[:] = [p for p in config["sys_path"] if p]
    os.environ.update(config["env"])
    for name in config["preload"]:  # third-party only: never companion_lib
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (an optional dependency: the child imports it if it can)
            pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    write_frame(1, b"R")
    while True:
        header = read_frame(0, 1 << 20)
        request = read_frame(0, config["cap"])
        if header is None or request is None:
            return 0
        write_frame(1, _serve_one(config, json.loads(header), request))


if __name__ == "__main__":
    sys.exit(main())
