"""``python -m companion_lib.grading``: list every registered problem (id, section, title)."""
from companion_lib.grading.registry import PROBLEMS, id_key


def main() -> None:
    """Print one line per registered problem, in section order."""
    for pid in sorted(PROBLEMS, key=id_key):
        p = PROBLEMS[pid]
        fixed = "" if p.kind == "value" or p.fresh_inputs else "  (grader reuses the fixed inputs)"
        print(f"{pid:<32} §{p.section:<6} {p.title}{fixed}")


if __name__ == "__main__":
    main()
