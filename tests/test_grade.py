"""The instructor's grader: runs a submission, re-grades the recorded answers, tolerates errors."""
import csv

import nbformat
import pytest

from companion_lib import grade

STUDENT = [
    "from companion_lib.grading import check, HISTORY\nfrom companion_lib import mixture\nimport torch",
    # a right answer
    "r1 = check('14.1.e_step', mixture.responsibilities)",
    # a wrong answer (the unbiased covariance), then the student tampers with the recorded status
    "def gaussian_mle(X):\n    X = torch.as_tensor(X)\n    return X.mean(0), torch.cov(X.T).reshape(X.shape[1], -1)\n"
    "r2 = check('14.1.gaussian_mle', gaussian_mle)\nHISTORY[-1].status = 'passed'",
    # a cell that raises must not stop grading
    "1 / 0",
]


def _write(tmp_path, name, sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_grade_notebook_regrades_answers_and_counts_errors(tmp_path):
    report = grade.grade_notebook(_write(tmp_path, "alice.ipynb", STUDENT), timeout=120)
    assert report["grades"] == {"14.1.e_step": "passed", "14.1.gaussian_mle": "failed"}
    assert report["error_cells"] == 1


def test_main_writes_a_csv_with_missing_and_unsolved(tmp_path, capsys):
    alice = _write(tmp_path, "alice.ipynb", STUDENT)
    bob = _write(tmp_path, "bob.ipynb", [STUDENT[0], "check('14.1.e_step', None)"])
    out = tmp_path / "grades.csv"
    assert grade.main([str(alice), str(bob), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["passed"] for r in rows] == ["1", "0"]
    assert rows[1]["14.1.e_step"] == "unsolved" and rows[1]["14.1.gaussian_mle"] == "missing"
    assert "1/2 passed" in capsys.readouterr().out


def test_bad_path_is_reported(tmp_path):
    with pytest.raises(ValueError, match=".ipynb"):
        grade.grade_notebook(tmp_path / "nope.txt")
