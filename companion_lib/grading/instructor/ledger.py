"""The results folder: results that cannot be forged or lost (owned by helper G2 of issue 17).

Layout of a results folder (mode 0700, like everything in it)::

    <results>/_meta/run.json          the run's seed (signed)
    <results>/_meta/started/<key>     a notebook in flight (an earlier run died while grading it)
    <results>/subs/<key>.json         one notebook's result (signed)

The grader's own metadata lives in ``_meta/``, apart from the per-notebook namespace ``subs/``, so no
file name a student chooses (``_run.ipynb``, ``Émilie.ipynb``) can collide with it or be skipped.
A notebook's key is its path relative to the graded root plus its content hash
(``Submission.key``): two ``hw.ipynb`` in different folders are two results.

Every result carries the submission's content hash and an HMAC-SHA256 over the whole result under a
key held in the grader's memory (``load_key``: read from, or created in, a key file readable by its
owner alone). A result that does not verify is rejected wherever results are read back
(``--resume``, ``merge``) and the grader says so; nothing chooses between files by a time they
declare themselves. A damaged ``run.json`` or ``started/`` is a warning, never a crash.
"""
from __future__ import annotations

import ctypes
import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
from pathlib import Path

KEY_ENV = "XDG_CONFIG_HOME"
_KEY_HEX = 64  # 32 random bytes, hex


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# The key
def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/companion-grade/key`` (``~/.config/...``): shared by the runs of one user."""
    base = os.environ.get(KEY_ENV) or str(Path.home() / ".config")
    return Path(base) / "companion-grade" / "key"


def load_key(path=None) -> bytes:
    """The grader's key from ``path`` (default ``default_key_file()``), created (mode 0600) when absent.
    A key file that group or others may read is refused: whoever reads it can sign results."""
    path = Path(path) if path is not None else default_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(_KEY_HEX // 2) + "\n")
        try:
            os.link(tmp, path)  # atomic: shards starting at once agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"--key-file {path}: not a regular file")
    if st.st_mode & 0o077:
        raise ValueError(f"--key-file {path} is readable or writable by group/others (mode "
                         f"{stat.S_IMODE(st.st_mode):o}); `chmod 600 {path}` and keep it to yourself")
    text = path.read_text().strip()
    if len(text) != _KEY_HEX or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"--key-file {path}: expected {_KEY_HEX} hex digits (a key this grader wrote)")
    return bytes.fromhex(text)


def make_undumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)`` (Linux): a process of the same uid can no longer read this
    process's memory (``/proc/<pid>/mem``), its ``cwd`` or ``environ``. False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False


def _mac(obj: dict, key: bytes) -> str:
    body = {k: v for k, v in obj.items() if k != "hmac"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign(obj: dict, key: bytes) -> dict:
    """``obj`` with its ``hmac`` (HMAC-SHA256 of its canonical JSON under ``key``)."""
    return {**obj, "hmac": _mac(obj, key)}


def verifies(obj, key: bytes) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("hmac"), str)
            and hmac.compare_digest(obj["hmac"], _mac(obj, key)))


def _write(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _private_dir(path: Path) -> Path:
    """``path`` as a folder only this process's user may enter (0700; a file or link there is moved
    aside with a warning, never followed)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        aside = path.with_name(f"{path.name}.damaged-{secrets.token_hex(4)}")
        _warn(f"{path} was replaced by a {'link' if path.is_symlink() else 'file'}; moved to {aside.name}")
        os.replace(path, aside)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _read_json(path: Path):
    """A JSON file's content, or None (with a warning) when it is damaged."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 2**24:
            raise ValueError("not a regular file of sensible size")
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as err:
        _warn(f"{path} is damaged ({type(err).__name__}); ignored")
        return None


# --------------------------------------------------------------------------------------------------
class ResultsFolder:
    """One results folder, read and written under ``key``."""

    def __init__(self, root, key: bytes):
        self.root, self.key = Path(root), key
        _private_dir(self.root)
        self.meta = _private_dir(self.root / "_meta")
        self.subs = _private_dir(self.root / "subs")
        self.started_dir = _private_dir(self.meta / "started")

    # the run's seed
    def seed(self, seed=None) -> int:
        """The seed recorded here (an explicit different ``seed`` is an error), else ``seed`` or a
        fresh one, recorded. A damaged or unsigned record is a warning and is replaced."""
        meta = _read_json(self.meta / "run.json")
        if meta is not None and not (verifies(meta, self.key) and isinstance(meta.get("seed"), int)):
            _warn(f"{self.meta / 'run.json'} does not verify (edited, or another key); ignored")
            meta = None
        if meta is not None:
            if seed is not None and int(seed) != meta["seed"]:
                raise ValueError(f"{self.root} was graded with --seed {meta['seed']}; use it (or another folder)")
            return meta["seed"]
        seed = secrets.randbelow(2**31) if seed is None else int(seed)
        _write(self.meta / "run.json", sign({"seed": seed}, self.key))
        return seed

    # notebooks in flight
    def mark_started(self, sub) -> None:
        try:
            _private_dir(self.started_dir)
            (self.started_dir / sub.key).touch()
        except OSError as err:
            _warn(f"could not mark {sub.rel} as started ({err})")

    def unmark(self, sub) -> None:
        try:
            (self.started_dir / sub.key).unlink(missing_ok=True)
        except OSError:
            pass

    def was_started(self, sub) -> bool:
        try:
            return (self.started_dir / sub.key).is_file()
        except OSError:
            return False

    # results
    def path_of(self, sub) -> Path:
        return self.subs / f"{sub.key}.json"

    def write(self, result: dict) -> dict:
        signed = sign(result, self.key)
        _write(self.subs / f"{result['key']}.json", signed)
        return signed

    def verified(self, sub, base_seed: int, problem_ids) -> dict | None:
        """This notebook's earlier result when it verifies and is for this file, seed and assignment;
        None otherwise (a file that does not verify is reported)."""
        path = self.path_of(sub)
        r = _read_json(path)
        if r is None:
            return None
        if not verifies(r, self.key):
            _warn(f"{path} does not verify (forged, edited, or graded with another key): "
                  f"{sub.rel} is graded again")
            return None
        if (r.get("path"), r.get("sha256")) != (sub.rel, sub.sha256):
            _warn(f"{path} is another notebook's result: {sub.rel} is graded again")
            return None
        if r.get("base_seed") != base_seed or r.get("problems") != list(problem_ids):
            return None
        return r


def load_verified(folders, key: bytes) -> list[dict]:
    """Every result in ``folders`` that verifies under ``key`` (the others are reported and left
    out), one per (path, content hash): a second, different result for the same key is reported and
    the first folder's kept (folders in the order given)."""
    kept: dict = {}
    for folder in folders:
        subs = Path(folder) / "subs"
        if not subs.is_dir():
            _warn(f"{folder}: no subs/ folder (not a results folder of this grader); skipped")
            continue
        for path in sorted(subs.glob("*.json")):
            r = _read_json(path)
            if r is None:
                continue
            if not verifies(r, key):
                _warn(f"{path} does not verify (forged, edited, or graded with another key); rejected")
                continue
            ident = (r["path"], r["sha256"])
            if ident in kept and kept[ident]["grades"] != r["grades"]:
                _warn(f"{r['path']} was graded twice with different results; kept the one in "
                      f"{kept[ident]['_folder']}, not {folder}")
                continue
            kept.setdefault(ident, {**r, "_folder": str(folder)})
    versions: dict = {}
    for p, _ in kept:
        versions[p] = versions.get(p, 0) + 1
    for p, n in versions.items():
        if n > 1:
            _warn(f"{p}: {n} different versions (content hashes) have results; each gets a row")
    return sorted(({k: v for k, v in r.items() if k != "_folder"} for r in kept.values()),
                  key=lambda r: (r["path"], r["sha256"]))
