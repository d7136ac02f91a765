"""The student-visible surface of companion_lib, and its committed snapshot (tests/student_surface.json).

What a student's notebook depends on: every autograded problem (its id, section, kind, the signature a
function answer is called with, and whether the grader credits it or it is self-reported) and the public
names of every public module. ``tests/test_version.py`` compares the live surface with the snapshot,
which is tagged with the version it was taken at: a change without a new version fails, saying to
bump ``companion_lib.__version__``, add a CHANGELOG.md entry and regenerate the snapshot.

Usage: python tools/student_surface.py            # regenerate the snapshot (after bumping the version)
       python tools/student_surface.py --check    # exit 1 with the reason if the snapshot is stale
"""
from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _generated  # noqa: E402  (tools/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "student_surface.json"
CHANGELOG = ROOT / "CHANGELOG.md"
REGENERATE = "python tools/student_surface.py"


def _public_names(module) -> list[str]:
    """``__all__`` if the module declares it, else the public names it defines itself."""
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    return sorted(n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)
                  and getattr(v, "__module__", module.__name__) == module.__name__)


def _signature(fn) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(?)"


def surface() -> dict:
    """``{"version", "problems": {id: {...}}, "modules": {name: [public names]}}`` of the importable
    companion_lib (the checkout's, when run from it)."""
    sys.path.insert(0, str(ROOT))
    import companion_lib
    from companion_lib.grading import PROBLEMS

    modules = {}
    for info in pkgutil.walk_packages(companion_lib.__path__, "companion_lib."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.endswith("__main__"):
            continue
        if parts[1] == "grading" and len(parts) > 2:  # the grader's internals; problems are listed below
            continue
        if parts[1] == "peers":  # the bench's outside comparisons (zuko, diffusers, ...): no notebook's
            continue
        modules[info.name] = _public_names(importlib.import_module(info.name))
    problems = {}
    for pid, problem in sorted(PROBLEMS.items()):
        if not getattr(problem.reference, "__module__", "").startswith("companion_lib."):
            continue  # a problem a test registered in this process (tests/grading's 0.9.* fixtures)
        entry = {"section": problem.section, "kind": problem.kind,
                 "status": "self-reported" if problem.self_reported else "graded"}
        if problem.kind == "function":
            entry["signature"] = _signature(problem.reference)  # what the student's function is called with
        problems[pid] = entry
    return {"version": companion_lib.__version__, "problems": problems, "modules": modules}


def _changes(old: dict, new: dict) -> list[str]:
    """What differs between two surfaces, one line each (versions aside)."""
    lines = []
    for key in ("problems", "modules"):
        a, b = old.get(key, {}), new.get(key, {})
        lines += [f"{key[:-1]} {k}: added" for k in sorted(set(b) - set(a))]
        lines += [f"{key[:-1]} {k}: removed" for k in sorted(set(a) - set(b))]
        lines += [f"{key[:-1]} {k}: {a[k]} -> {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return lines


def verdict(snapshot: dict, live: dict, changelog: str) -> str | None:
    """None when ``snapshot`` is up to date with ``live``; else what to do, with the changes."""
    changes = _changes(snapshot, live)
    if f"## {live['version']}" not in changelog:
        return f"CHANGELOG.md has no '## {live['version']}' entry for version {live['version']}: add one"
    if not changes and snapshot.get("version") == live["version"]:
        return None
    listed = "\n  ".join(changes[:30]) or "(no change of the surface)"
    if snapshot.get("version") == live["version"]:
        return (f"the student-visible surface changed but the version is still {live['version']}: bump "
                f"companion_lib.__version__ and add a CHANGELOG.md entry of these changes (if "
                f"{live['version']} is not tagged yet, add them to its entry instead), then regenerate the "
                f"snapshot ({REGENERATE}):\n  {listed}")
    return (f"the snapshot was taken at version {snapshot.get('version')}, the package is {live['version']}: "
            f"regenerate it ({REGENERATE}):\n  {listed}")


def _write() -> None:
    live = surface()
    SNAPSHOT.write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT.relative_to(ROOT)} (version {live['version']}, {len(live['problems'])} problems, "
          f"{len(live['modules'])} modules)")


def main(argv=None) -> int:
    return _generated.main(argv, __doc__, lambda: verdict(json.loads(SNAPSHOT.read_text()), surface(),
                                                          CHANGELOG.read_text()), _write)


if __name__ == "__main__":
    sys.exit(main())
