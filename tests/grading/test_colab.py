"""README's Colab walkthrough (issue 17), run as written there: the one Python cell under "On Colab",
minus its ``!`` shell line, with a stand-in ``google.colab`` module (``drive.mount``, ``files.upload``,
``files.download``) and ``/content`` moved into a temporary folder. Both sources are run: a Drive
folder, and an LMS zip in nbgrader's ``submitted/<student>/<assignment>/`` layout with the junk a Mac
zip carries. Each run grades real notebooks (a kernel start each, about 20 s here).
"""
import csv
import re
import sys
import types
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_fixtures"))
import submissions  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"
HONEST = ["import torch\nfrom companion_lib.grading import check", submissions.E_STEP]
WRONG = ["import torch\nfrom companion_lib.grading import check", submissions.E_STEP_WRONG + '\ncheck("14.1.e_step", e_step)']


def _colab_cell() -> str:
    text = README.read_text()
    start = text.index("**On Colab.**")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match, "README's Colab section has no python cell"
    return match.group(1)


def _fake_colab(content: Path, upload: dict, downloaded: list) -> dict:
    colab = types.ModuleType("google.colab")
    drive, files = types.ModuleType("google.colab.drive"), types.ModuleType("google.colab.files")

    def mount(path):
        assert path == f"{content}/drive"  # the Drive folder itself is prepared by the test

    def download(path):
        assert Path(path).is_file(), path
        downloaded.append(Path(path))

    drive.mount, files.upload, files.download = mount, lambda: dict(upload), download
    colab.drive, colab.files = drive, files
    google = types.ModuleType("google")
    google.colab = colab
    return {"google": google, "google.colab": colab, "google.colab.drive": drive, "google.colab.files": files}


def _run_cell(tmp_path: Path, source: str, upload: dict, monkeypatch) -> tuple[list, list]:
    content = tmp_path / "content"
    cell = _colab_cell()
    assert 'SOURCE = "drive"' in cell and "/content" in cell
    shell = [line for line in cell.splitlines() if line.startswith("!")]
    assert len(shell) == 1 and "[grade]" in shell[0]  # the install line, Colab-only
    code = "\n".join(line for line in cell.splitlines() if not line.startswith("!"))
    code = code.replace("/content", str(content)).replace('SOURCE = "drive"', f'SOURCE = "{source}"')
    downloaded = []
    for name, module in _fake_colab(content, upload, downloaded).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (On Colab)", "exec"), {"__name__": "__colab__"})
    rows = list(csv.DictReader((content / "grades.csv").open()))
    return rows, downloaded


@pytest.mark.parametrize("source", ["drive", "zip"])
def test_the_colab_cell_grades_the_class_and_downloads_the_csv(tmp_path, monkeypatch, source):
    content = tmp_path / "content"
    if source == "drive":
        folder = content / "drive" / "MyDrive" / "hw1-submissions"
        folder.mkdir(parents=True)
        submissions.write_notebook(folder / "ada.ipynb", HONEST)
        submissions.write_notebook(folder / "bob.ipynb", WRONG)
        upload = {}
    else:  # nbgrader layout: both students' files are named hw1.ipynb; plus a Mac zip's junk
        build = tmp_path / "lms"
        for student, cells in (("ada", HONEST), ("bob", WRONG)):
            (build / "submitted" / student / "hw1").mkdir(parents=True)
            submissions.write_notebook(build / "submitted" / student / "hw1" / "hw1.ipynb", cells)
        archive = tmp_path / "submissions.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted(build.rglob("*.ipynb")):
                zf.write(path, path.relative_to(build).as_posix())
            zf.writestr("__MACOSX/submitted/ada/hw1/._hw1.ipynb", b"\x00\x05\x16\x07 resource fork")
            zf.writestr("submitted/ada/hw1/.ipynb_checkpoints/hw1-checkpoint.ipynb", b"{}")
        upload = {"submissions.zip": archive.read_bytes()}
        content.mkdir()
    rows, downloaded = _run_cell(tmp_path, source, upload, monkeypatch)
    assert [p.name for p in downloaded] == ["grades.csv", "feedback.zip"]
    assert len(rows) == 2, rows  # one row per student, nothing for the checkpoint or the Mac junk
    assert sorted(r["14.1.e_step"] for r in rows) == ["failed", "passed"]
    names = " ".join(r["notebook"] for r in rows)
    assert ("ada" in names and "bob" in names) if source == "drive" else names.count("hw1.ipynb") == 2
    with zipfile.ZipFile(content / "feedback.zip") as zf:
        assert len([n for n in zf.namelist() if n.endswith(".txt")]) == 2
