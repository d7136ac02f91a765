"""Every notebook in chapters/ and solutions/ is a Jupytext pair whose two files agree."""
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
PY_FILES = sorted((ROOT / "chapters").glob("*.py")) + sorted((ROOT / "solutions").glob("*.py"))
NB_FILES = sorted((ROOT / "chapters").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
NAME = re.compile(r"^1[45]_\d+_[a-z0-9_]+$")


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells if c.source.strip()]


#: The lessons, one per section; each has a worked-solutions notebook except those without exercises.
LESSONS = ("14_1_pearson_crabs", "14_2_maximum_likelihood_is_kl", "14_3_energy_based_models", "14_4_elbo",
           "14_5_variational_autoencoder", "15_1_landscape", "15_2_coupling_flows", "15_3_1_forward_diffusion",
           "15_3_2_distinguishing_gaussians", "15_3_3_reverse_diffusion_ddpm", "15_3_3b_training_and_sampling_choices",
           "15_3_4_score_matching",
           "15_3_5_classifier_free_guidance", "15_9_scoreboard")
WITHOUT_SOLUTIONS = ("15_9_scoreboard", "15_3_3b_training_and_sampling_choices")


def test_the_notebooks_are_the_expected_set():
    """Every lesson is in chapters/ and each with exercises has its solutions pair; nothing else is."""
    chapters = {p.stem for p in (ROOT / "chapters").glob("*.py")}
    solutions = {p.stem for p in (ROOT / "solutions").glob("*.py")}
    assert chapters == set(LESSONS), (sorted(set(LESSONS) - chapters), sorted(chapters - set(LESSONS)))
    want = {f"{name}_solutions" for name in LESSONS if name not in WITHOUT_SOLUTIONS}
    assert solutions == want, (sorted(want - solutions), sorted(solutions - want))


@pytest.mark.parametrize("path", PY_FILES + NB_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_file_has_its_pair(path):
    other = path.with_suffix(".ipynb" if path.suffix == ".py" else ".py")
    assert other.exists(), f"{path.name} has no paired {other.name}; run `jupytext --sync {path}`"


@pytest.mark.parametrize("path", PY_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pair_agrees(path):
    ipynb = path.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.fail(f"missing {ipynb.name}")
    from_py = jupytext.read(path)
    from_nb = jupytext.read(ipynb)
    assert _cells(from_py) == _cells(from_nb), (
        f"{path.name} and {ipynb.name} differ; run `jupytext --sync {path}` and re-execute")


@pytest.mark.parametrize("path", PY_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_name_and_header(path):
    stem = path.stem.removesuffix("_solutions")
    assert NAME.match(stem), f"{path.name}: name notebooks like 14_1_pearson_crabs"
    text = path.read_text()
    assert "settings.setup(" in text, f"{path.name}: the header cell must call settings.setup(seed=...)"


CHAPTER_NBS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _first_code_cell(path):
    return next(c for c in jupytext.read(path).cells if c.cell_type == "code")


def test_every_lesson_starts_with_the_same_colab_cell():
    """The first cell of every chapter notebook is the one tagged ``colab`` (tools/colab.py writes it;
    tests/test_colab_cell.py runs it), the same text in all of them; solutions have none."""
    firsts = {p.name: _first_code_cell(p) for p in CHAPTER_NBS}
    untagged = [n for n, c in firsts.items() if "colab" not in c.metadata.get("tags", [])]
    assert not untagged, f"first code cell not tagged colab in {untagged}; run python tools/colab.py"
    sources = {c.source for c in firsts.values()}
    assert len(sources) == 1, "the colab cell differs between lessons; run python tools/colab.py"
    tagged = [p.name for p in sorted((ROOT / "solutions").glob("*.ipynb"))
              if any("colab" in c.metadata.get("tags", []) for c in jupytext.read(p).cells)]
    assert not tagged, f"solutions notebooks carry a colab cell: {tagged}"


@pytest.mark.parametrize("path", sorted((ROOT / "chapters").glob("*.py")), ids=lambda p: p.name)
def test_each_lesson_names_itself_to_setup(path):
    """``settings.setup(..., notebook="<its own name>")``: setup prints that lesson's full-mode time."""
    calls = re.findall(r"settings\.setup\(([^)]*)\)", path.read_text())
    assert len(calls) == 1 and f'notebook="{path.stem}"' in calls[0], (
        f"{path.name}: the header cell must call settings.setup(seed=..., notebook=\"{path.stem}\")")


@pytest.mark.parametrize("path", CHAPTER_NBS, ids=lambda p: p.name)
def test_committed_outputs_are_present(path):
    """Students open the .ipynb: it is committed executed (quick mode), with no error outputs."""
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.get("execution_count") for c in code), (
        f"{path.name} has unexecuted cells; run `make notebooks`")
    for c in code:
        for out in c.get("outputs", []):
            assert out.get("output_type") != "error", f"{path.name}: a committed cell output is an error"


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@pytest.mark.parametrize("path", PY_FILES, ids=lambda p: p.name)
def test_no_control_characters(path):
    """A ``"\\beta"`` written in a non-raw string becomes a backspace and 'eta': it garbled five equations
    of 15_3_3b once. No lesson source holds a control character (tabs included: a non-raw "\\theta" holds one)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        found = _CONTROL.search(line)
        assert found is None, f"{path.name}:{number}: control character {found.group()!r} in {line[:60]!r}"
