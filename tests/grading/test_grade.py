"""The instructor's grader (issue 9), on synthetic submissions: only the right answer earns credit,
every notebook gets a row, a hang, a crash, a flood or a kernel that kills its parent stops nothing.

One class of 17 tiny notebooks is graded once (``--jobs 2``) and the tests read its results; each
notebook costs a kernel start and a torch import, so this module takes about a minute. hang.ipynb is
handed to the grader first: it waits out two cell limits (idle), while the other slot grades the rest.
"""
import csv
import json
import os
import shutil
import tempfile
import sys
from pathlib import Path

import pytest

from companion_lib import grade
from companion_lib.grading.instructor import cli
from companion_lib.grading.instructor.processes import RUN_STATUSES, grade_notebook
from companion_lib.grading.instructor.submissions import Submission, assignment, code_cells, notebook_seed
from companion_lib.grading.judge import evaluate
from companion_lib.grading.sandbox import pack, unpack
from companion_lib.grading import PROBLEMS, STATUSES

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_fixtures"))
import fixture_problems  # noqa: E402,F401  (registers 0.9.scale, 0.9.threshold in this process too)
import submissions  # noqa: E402

SECTIONS = ["14.1", "0.9"]
COLUMNS = ["14.1.e_step", "14.1.gaussian_mle", "0.9.scale", "0.9.threshold"]  # the order of the expectations
CELL_TIMEOUT = 25  # generous: the first cell imports torch on a shared machine


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    subs.mkdir()
    # the kernel (another uid as root) writes its pid there: not under pytest's folders, which another
    # pytest session may make 0700 again at any time
    pid_dir = Path(tempfile.mkdtemp(prefix="companion-test-escape-"))
    os.chmod(pid_dir, 0o777)
    cases = submissions.class_of(str(subs / "right.ipynb"), str(pid_dir / "escaped.pid"))
    for name, (cells, _, _) in cases.items():
        submissions.write_notebook(subs / name, cells)
    (subs / "broken.ipynb").write_text("this is not a notebook")
    right_bytes = (subs / "right.ipynb").read_bytes()
    students = root / "students.csv"
    students.write_text("file,student\n" + "".join(f"{n},s{i:03d}\n" for i, n in enumerate(sorted(cases))))
    out = root / "grades.csv"
    # the longest first (two cell limits of waiting), so that both job slots stay busy to the end
    paths = sorted((str(p) for p in subs.glob("*.ipynb")), key=lambda p: (Path(p).name != "hang.ipynb", p))
    code = grade.main([*paths, "--csv", str(out), "--jobs", "2", "--cell-timeout", str(CELL_TIMEOUT),
                       "--sections", *SECTIONS, "--seed", "7", "--students", str(students)])
    rows = {r["notebook"]: r for r in csv.DictReader(out.open())}
    return {"root": root, "escaped": pid_dir / "escaped.pid", "subs": subs, "cases": cases, "rows": rows,
            "csv": out, "code": code,
            "right_bytes": right_bytes, "results": root / "grades-results",
            "feedback": root / "grades-feedback"}


def test_every_notebook_gets_a_row_with_every_problem_column(graded):
    assert graded["code"] == 0
    assert set(graded["rows"]) == set(graded["cases"]) | {"broken.ipynb"}
    header = next(csv.reader(graded["csv"].open()))
    every = assignment(SECTIONS)  # other helpers may add problems to 14.1: all are columns
    assert header[:2] == ["student", "notebook"] and header[2:2 + len(every)] == every
    assert set(COLUMNS) <= set(every)
    for row in graded["rows"].values():
        assert all(row[c] in STATUSES for c in every)
        assert all(row[c] == "missing" for c in every if c not in COLUMNS)  # never checked by anyone
        assert row["run"] in RUN_STATUSES
    assert graded["rows"]["broken.ipynb"]["run"] == "unreadable"
    assert graded["rows"]["right.ipynb"]["student"] != ""


@pytest.mark.parametrize("name", sorted(submissions.class_of("x")))
def test_each_submission_gets_exactly_the_grades_it_deserves(graded, name):
    _, expected, run = graded["cases"][name]
    row = graded["rows"][name]
    got = tuple("-" if row[c] == "missing" else row[c] for c in COLUMNS)
    assert got == expected, f"{name}: {got} (feedback: {(graded['feedback'] / (row['student'] + '.txt')).read_text()})"
    assert row["run"] == run, f"{name}: run {row['run']}"


def test_only_the_right_notebook_earns_full_credit(graded):
    full = [n for n, r in graded["rows"].items() if all(r[c] == "passed" for c in COLUMNS)]
    assert full == ["right.ipynb"]


def test_a_classmate_overwriting_a_file_changes_nothing_in_this_run(graded):
    if os.geteuid() == 0:  # the kernel runs under another uid: it cannot even write there
        assert (graded["subs"] / "right.ipynb").read_bytes() == graded["right_bytes"]
        assert graded["rows"]["classmate.ipynb"]["error_cells"] == "1"
    else:  # the kernel of classmate.ipynb did overwrite right.ipynb on disk ...
        assert (graded["subs"] / "right.ipynb").read_bytes() != graded["right_bytes"]
        assert graded["rows"]["classmate.ipynb"]["error_cells"] == "0"
    # ... but every submission was read before any kernel ran, and its own folder held only itself
    assert all(graded["rows"]["right.ipynb"][c] == "passed" for c in COLUMNS)


def test_a_process_a_kernel_detaches_does_not_outlive_its_grading(graded):
    assert int(graded["escaped"].read_text()) > 0  # the cell ran and started it
    # its last cell: no /proc entry of the grader (as root) and the memory cap; else an error cell
    assert graded["rows"]["escape.ipynb"]["error_cells"] == "0"
    shutil.rmtree(graded["escaped"].parent, ignore_errors=True)
    needle = submissions.sleeper_arg(str(graded["escaped"])).encode()
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "cmdline").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                alive += [] if state in ("Z", "X") else [(entry.name, state)]
        except OSError:
            continue
    assert not alive, f"still running: {alive}"


def test_results_are_per_notebook_signed_files_with_hash_and_seed(graded):
    from companion_lib.grading.instructor.ledger import load_key, verifies

    files = sorted(graded["results"].glob("subs/*.json"))
    assert len(files) == len(graded["rows"])
    r = json.loads(next(graded["results"].glob("subs/right-*.json")).read_text())
    assert r["sha256"] == graded["rows"]["right.ipynb"]["sha256"] and r["base_seed"] == 7
    assert r["seed"] == notebook_seed(7, r["sha256"]) and r["path"] == "right.ipynb"
    assert verifies(r, load_key()) and not verifies({**r, "run": "completed!"}, load_key())
    assert json.loads((graded["results"] / "_meta" / "run.json").read_text())["seed"] == 7
    assert not list((graded["results"] / "_meta" / "started").iterdir())
    assert (graded["results"].stat().st_mode & 0o777) == 0o700


def test_feedback_files_say_what_failed_and_why(graded):
    by_student = {r["notebook"]: r["student"] for r in graded["rows"].values()}
    text = (graded["feedback"] / f"{by_student['forge_wrapper.ipynb']}.txt").read_text()
    assert "no-credit" in text and "companion_lib.mixture.responsibilities is withheld" in text
    text = (graded["feedback"] / f"{by_student['hang.ipynb']}.txt").read_text()
    # cell 3 (a sleep) was interrupted and the run went on; cell 5 ignored the interrupt
    assert "killed-after-timeout" in text and "cell 5 ignored the interrupt" in text
    text = (graded["feedback"] / f"{by_student['forge_allclose.ipynb']}.txt").read_text()
    assert "values differ from the reference" in text and "a passing result is at most 3.05" in text


def test_resume_regrades_only_what_is_missing_and_gives_the_same_grades(graded, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(graded["results"], results)
    right = tmp_path / "right.ipynb"
    right.write_bytes(graded["right_bytes"])
    untouched = tmp_path / "untouched.ipynb"
    shutil.copy(graded["subs"] / "untouched.ipynb", untouched)
    old = json.loads(next(results.glob("subs/right-*.json")).read_text())
    next(results.glob("subs/right-*.json")).unlink()
    out = tmp_path / "g.csv"
    assert grade.main([str(right), str(untouched), "--results", str(results), "--resume", "--csv", str(out),
                       "--sections", *SECTIONS, "--cell-timeout", str(CELL_TIMEOUT)]) == 0
    assert "untouched.ipynb: already graded" in capsys.readouterr().out
    new = json.loads(next(results.glob("subs/right-*.json")).read_text())
    assert new["seed"] == old["seed"] and new["grades"] == old["grades"]
    assert [r["notebook"] for r in csv.DictReader(out.open())] == ["right.ipynb", "untouched.ipynb"]
    with pytest.raises(ValueError, match="seed 7"):
        grade.main([str(right), "--results", str(results), "--seed", "8"])


def test_shards_merge_into_one_csv(graded, tmp_path):
    shard_a, shard_b = tmp_path / "a", tmp_path / "b"
    (shard_a / "subs").mkdir(parents=True), (shard_b / "subs").mkdir(parents=True)
    for i, p in enumerate(sorted(graded["results"].glob("subs/*.json"))):
        shutil.copy(p, (shard_a, shard_b)[i % 2] / "subs")
    out = tmp_path / "merged.csv"
    assert grade.main(["merge", str(shard_a), str(shard_b), "--csv", str(out), "--sections", *SECTIONS]) == 0
    merged = {r["notebook"]: r for r in csv.DictReader(out.open())}
    assert set(merged) == set(graded["rows"])
    for name, row in merged.items():
        assert [row[c] for c in COLUMNS] == [graded["rows"][name][c] for c in COLUMNS]
    assert (tmp_path / "merged-feedback" / "right.txt").exists()


def test_shard_selection_is_a_partition():
    subs = [Submission(f"n{i}.ipynb", b"", f"{i:064x}") for i in range(7)]
    parts = [cli._shard(subs, f"{i}/3") for i in range(3)]
    assert sorted(s.name for p in parts for s in p) == sorted(s.name for s in subs)
    with pytest.raises(ValueError, match="I/N"):
        cli._shard(subs, "3/3")


def test_notebook_timeout_stops_the_notebook_and_keeps_a_row(tmp_path):
    nb = submissions.write_notebook(tmp_path / "slow.ipynb", ["x = 1", "import time\ntime.sleep(10**6)", "y = 2"])
    r = grade_notebook(nb, timeout=600, notebook_timeout=3, sections=["14.1"])
    assert r["run"] == "notebook-timeout" and r["cells_run"] == 1
    assert {g["status"] for g in r["grades"].values()} == {"missing"}


def test_bad_path_is_reported(tmp_path):
    with pytest.raises(ValueError, match=".ipynb"):
        grade_notebook(tmp_path / "nope.txt")


def test_unknown_section_is_a_clear_error():
    with pytest.raises(ValueError, match="sections with problems"):
        assignment(["99.9"])


# --------------------------------------------------------------------------------------------------
# The transport between the grader and its sandboxes (no kernel, no sandbox needed)
def test_transport_round_trip_keeps_types_and_never_unpickles():
    import io
    import numpy as np
    import torch

    value = ({"w": torch.arange(3.0, dtype=torch.float64), 2: [np.int64(4), 1.5, None, "s", True]},
             torch.zeros(2, 2, dtype=torch.bfloat16), object())
    (back,) = unpack(pack({"p": [value]}))["p"]
    assert back[0]["w"].dtype == torch.float64 and torch.equal(back[0]["w"], value[0]["w"])
    assert back[0][2] == [4, 1.5, None, "s", True] and back[1].dtype == torch.bfloat16
    assert type(back[2]).__name__ == "object" and not isinstance(back[2], (int, float, str))
    # a message whose .npz holds a pickled object array is refused, not loaded
    good = pack({"p": [torch.zeros(1)]})
    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([object()], dtype=object))
    head = good[:good.index(b"PK")]
    with pytest.raises(Exception, match="object"):
        unpack(head + buffer.getvalue())


@pytest.mark.parametrize("pid", sorted(PROBLEMS))
def test_every_problem_survives_the_transport(pid):
    """What a sandbox would answer for the reference passes, for each wrong answer fails, when judged
    against the grader's own inputs (fresh ones where the problem takes an rng), both ways through
    the transport."""
    from companion_lib import grading

    problem = PROBLEMS[pid]
    cases = problem.cases_for(problem.grading_rng(12345))
    sandbox_cases = [tuple(c) for c in unpack(pack({"cases": [list(c) for c in cases]}))["cases"]]
    for answer, want in [(problem.expected(), "passed")] + [(w, "failed") for w in problem.wrong_answers]:
        outcomes = evaluate(problem, answer, sandbox_cases if problem.kind == "function" else [])
        back = [(k, p) for k, p in unpack(pack({"outcomes": [[k, p] for k, p in outcomes]}))["outcomes"]]
        status, message = grading.judge(problem, cases, back)
        assert status == want, f"{pid}: {want} expected, got {status}: {message}"
