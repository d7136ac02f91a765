"""Fail when installing the companion changed a package that was already installed.

Usage: python constraints/unchanged.py BEFORE AFTER, two `pip freeze --all` outputs taken before and after
`pip install -c constraints/X.txt -e '.[test,grade]'` (make test-colab / test-minimum). Every
``name==version`` line of BEFORE must be in AFTER unchanged; packages AFTER adds (test tools) are listed.
"""
import re
import sys


def read_pins(path) -> dict:
    """{normalised name: version} of the `name==version` lines of a freeze or constraints file."""
    pins = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def main(before_path, after_path):
    before, after = read_pins(before_path), read_pins(after_path)
    changed = [f"{n}: {v} -> {after.get(n, 'removed')}" for n, v in sorted(before.items()) if after.get(n) != v]
    added = sorted(f"{n}=={v}" for n, v in after.items() if n not in before)
    print(f"{len(before)} packages before, {len(added)} added: {' '.join(added) or 'none'}")
    if changed:
        print("changed by installing the companion:\n  " + "\n  ".join(changed))
        return 1
    print("none changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
