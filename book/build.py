"""Build the online book: the committed, executed lessons of chapters/ as a static website.

    python book/build.py [OUT]          # default OUT: _build/book (what `make book` runs)

Nothing is executed: each page shows the outputs committed in ``chapters/*.ipynb``. solutions/ is never
read. The build stages a copy of every lesson notebook in a scratch folder and changes only that copy:

* the Colab cell (the lesson's first code cell, tagged ``colab``, which installs the companion when the
  notebook runs on Colab) is dropped: it means nothing on a website;
* under the page title, a note with the lesson's "Open in Colab" link (``tools/repository.py``, built
  from the one ``[project.urls] Repository`` line of pyproject.toml) and the sentence that widgets are
  static here;
* nbval's markers (``# NBVAL_CHECK_OUTPUT`` lines) are taken out of the code cells;
* in an equation that spans lines, a ``+``/``-`` starting a line is moved to the end of the line before
  (MyST would read it as a list; see ``_math_safe_for_myst``);
* every widget output (a slider with its figure) is replaced by what its Output widgets showed when the
  notebook was executed (the figure at the controls' starting values), under a line naming the controls
  and their starting values; a progress bar by its final line of text. No widget JavaScript is loaded
  (it would come from a CDN and drive nothing).

The contents page (``book/index.md`` plus the generated contents) lists the lessons in reading order,
§14.1 ... §15.9, sorted by the numbers in their file names, each with the title read from the notebook's
first heading. Sphinx runs with ``-W``: any warning (a missing reference included) fails the build.

Equations are rendered by MathJax from its CDN; set ``COMPANION_BOOK_MATHJAX`` to another URL of
``tex-mml-chtml.js`` (a local copy, for reading offline) before building.
"""
from __future__ import annotations

import copy
import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = ROOT / "chapters"
DEFAULT_OUT = ROOT / "_build" / "book"
#: The tag of the Colab cell (tools/colab.py writes it); such cells are left out of the book.
COLAB_TAG = "colab"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: Where the generated contents go in book/index.md.
CONTENTS_MARK = "<!-- contents -->"
CHAPTER_CAPTIONS = {"14": "Chapter 14: Unsupervised learning and distribution learning",
                    "15": "Chapter 15: Deep generative models"}
_LESSON = re.compile(r"^(\d+)_(\d+)(?:_(\d+))?([a-z]?)_[a-z0-9_]+$")
_TITLE_NUMBER = re.compile(r"^§?\s*\d+(?:\.\d+)*[a-z]?\s+")
_MARKDOWN_MATH = re.compile(r"(?P<code>```.*?```|`[^`]*`)|\$\$.+?\$\$|(?<![\\$])\$(?!\$).+?(?<![\\$])\$(?!\$)", re.S)
#: nbval's cell markers (``# NBVAL_CHECK_OUTPUT``...): for the test suite, not for readers.
_NBVAL_MARKER = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*\n?", re.M)
_LIST_MARKER_IN_MATH = re.compile(r"\n([ \t]*(?:>[ \t]*)*)([-+*])(?=[ \t])")


def _repository():
    """tools/repository.py, loaded by path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("_companion_repository", ROOT / "tools" / "repository.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lesson_key(stem: str) -> tuple:
    """Reading-order key of a lesson's file stem: ``15_3_3b_training...`` -> ``(15, 3, 3, 'b')``.
    Raises ValueError for a stem that does not start with a section number."""
    match = _LESSON.match(stem)
    if not match:
        raise ValueError(f"lesson file name {stem!r} does not start with its section number (14_1_..., 15_3_3b_...)")
    chapter, section, sub, letter = match.groups()
    return int(chapter), int(section), int(sub or 0), letter


def lesson_label(stem: str) -> str:
    """``§15.3.3b`` for ``15_3_3b_...``: the section number the file name carries."""
    chapter, section, sub, letter = lesson_key(stem)
    numbers = [chapter, section] + ([sub] if sub else [])
    return "§" + ".".join(map(str, numbers)) + letter


def lessons(chapters: Path = CHAPTERS) -> list[Path]:
    """The lesson notebooks ``chapters/*.ipynb`` in reading order."""
    return sorted(chapters.glob("*.ipynb"), key=lambda p: lesson_key(p.stem))


def notebook_title(nb: dict, name: str = "notebook") -> str:
    """The text of the notebook's first markdown ``# `` heading (the page title)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            break
    raise ValueError(f"{name}: the first markdown cell has no '# ' title")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _widget_tree(state: dict, model_id: str) -> list[dict]:
    """The models under ``model_id`` (itself first), depth first; ids missing from the state are skipped."""
    out, stack, seen = [], [model_id], set()
    while stack:
        mid = stack.pop(0)
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        model = state[mid]
        out.append(model)
        kids = model.get("state", {}).get("children", [])
        stack[:0] = [k.removeprefix("IPY_MODEL_") for k in kids if isinstance(k, str)]
    return out


def _control_value(state: dict):
    """A control's value as shown: ``value``, or for selections (``value`` unset) the label at ``index``."""
    labels, index = state.get("_options_labels"), state.get("index")
    if state.get("value") is None and isinstance(labels, list) and isinstance(index, int) and 0 <= index < len(labels):
        return labels[index]
    return state.get("value")


def _progress_line(models: list[dict]) -> str | None:
    """tqdm's notebook bar (HTML label, progress bar, HTML counts) as the line tqdm prints in a terminal;
    None if the widget has no progress bar."""
    bar = next((m["state"] for m in models if m.get("model_name") in ("FloatProgressModel", "IntProgressModel")), None)
    if bar is None:
        return None
    texts = [html.unescape(str(m["state"].get("value", ""))) for m in models if m.get("model_name") == "HTMLModel"]
    done = max(0, min(20, round(20 * float(bar.get("value") or 0) / float(bar.get("max") or 1))))
    left, right = (texts[0], texts[-1]) if len(texts) >= 2 else ("".join(texts), "")
    return f"{left}|{'█' * done}{' ' * (20 - done)}|{right}".replace("\u2007", " ")


def _static_widget(view: dict, state: dict) -> list[dict]:
    """Outputs that stand for one widget view, from the widget state saved with the notebook: a progress
    bar becomes its final text line; any other widget a note naming its controls at their starting
    values, then the outputs its Output widgets held when the notebook was executed (its figure)."""
    models = _widget_tree(state, view.get("model_id", ""))
    progress = _progress_line(models)
    if progress is not None and not any(m.get("model_name") == "OutputModel" for m in models):
        return [{"output_type": "stream", "name": "stdout", "text": progress + "\n"}]
    controls, shown = [], []
    for model in models:
        s = model.get("state", {})
        if model.get("model_name") == "OutputModel":
            shown.extend(copy.deepcopy(s.get("outputs", [])))
        elif s.get("description") and _control_value(s) is not None:
            controls.append(f"{html.escape(str(s['description']))} = {html.escape(str(_control_value(s)))}")
    what = ("the controls " + ", ".join(controls)) if controls else "its controls"
    note = (f'<p class="companion-static-widget"><em>Interactive widget, shown here at {what}. '
            "On this website it is static: run the notebook (Colab link at the top) to move it.</em></p>")
    return [{"output_type": "display_data", "metadata": {}, "data": {"text/html": [note]}}] + shown


def _math_safe_for_myst(text: str) -> str:
    """Markdown whose math MyST reads as Jupyter does. Jupyter takes ``$...$`` and ``$$...$$`` out before
    it reads the Markdown; MyST reads the Markdown first, so a line inside an equation that starts with
    ``+ ``, ``- `` or ``* `` began a list and the equation showed as raw TeX. Such an operator is moved to
    the end of the line before (the same TeX). Code spans and fenced code are left alone."""
    def fix(match):
        if match.group("code"):
            return match.group(0)
        return _LIST_MARKER_IN_MATH.sub(r" \2\n\1", match.group(0))
    return _MARKDOWN_MATH.sub(fix, text)


def _note(colab: str) -> str:
    return ("```{note}\n"
            f"[Open this lesson in Colab]({colab}) to run it. The outputs on this page are the ones committed "
            "with the notebook; widgets (sliders) are static on this website: run the notebook to move them.\n"
            "```\n")


def stage_notebook(nb: dict, colab: str, name: str = "notebook") -> dict:
    """The book's copy of a lesson notebook (``nb`` is not changed): Colab-tagged cells dropped, the
    Colab note inserted under the ``# `` title of the first markdown cell, math made safe for MyST, nbval
    markers taken out of code,
    widget outputs replaced by their static content (see the module docstring), the saved widget state
    removed.
    Raises ValueError if the first cell is not a markdown cell starting with a ``# `` title."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise TypeError(f"{name}: expected a notebook as a dict with a 'cells' list")
    nb = copy.deepcopy(nb)
    widgets = nb.get("metadata", {}).pop("widgets", {})
    state = widgets.get(WIDGET_STATE, {}).get("state", {})
    cells = [c for c in nb["cells"] if COLAB_TAG not in c.get("metadata", {}).get("tags", [])]
    if not cells or cells[0].get("cell_type") != "markdown" or not _source(cells[0]).startswith("# "):
        raise ValueError(f"{name}: the first cell (after the Colab cell) must be markdown starting with '# title'")
    title, _, rest = _source(cells[0]).partition("\n")
    cells[0]["source"] = f"{title}\n\n{_note(colab)}\n{rest}"
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            cell["source"] = _math_safe_for_myst(_source(cell))
        elif cell.get("cell_type") == "code":
            cell["source"] = _NBVAL_MARKER.sub("", _source(cell))
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            outputs.extend(_static_widget(view, state) if view else [out])
        if "outputs" in cell:
            cell["outputs"] = outputs
    nb["cells"] = cells
    return nb


def _toc_title(title: str) -> str:
    """A notebook's title as the contents page lists it: its own section number dropped (the entry's label
    carries it) and ``$t$`` as plain ``t`` (the contents are plain text, without MathJax)."""
    return re.sub(r"\$([^$]*)\$", r"\1", _TITLE_NUMBER.sub("", title))


def contents(notebooks: list[Path]) -> str:
    """The MyST toctrees of the contents page: one per chapter, lessons in reading order, each entry
    ``§14.1 <title without its own number>`` (see ``_toc_title``)."""
    blocks, by_chapter = [], {}
    for path in notebooks:
        by_chapter.setdefault(str(lesson_key(path.stem)[0]), []).append(path)
    for chapter, paths in by_chapter.items():
        lines = ["```{toctree}", f":caption: {CHAPTER_CAPTIONS.get(chapter, f'Chapter {chapter}')}", ":maxdepth: 1", ""]
        for path in paths:
            title = _toc_title(notebook_title(json.loads(path.read_text()), path.name))
            lines.append(f"{lesson_label(path.stem)} {title} <chapters/{path.stem}>")
        blocks.append("\n".join(lines + ["```", ""]))
    return "\n".join(blocks)


def stage(src: Path, chapters: Path = CHAPTERS) -> list[str]:
    """Write the book's sources into the empty folder ``src``; returns the lesson stems in order."""
    repo = _repository()
    notebooks = lessons(chapters)
    (src / "chapters").mkdir(parents=True)
    for path in notebooks:
        nb = json.loads(path.read_text())
        staged = stage_notebook(nb, repo.colab_url(f"chapters/{path.name}"), path.name)
        (src / "chapters" / path.name).write_text(json.dumps(staged))
    index = (BOOK / "index.md").read_text()
    if CONTENTS_MARK not in index:
        raise ValueError(f"book/index.md lacks the line {CONTENTS_MARK}")
    (src / "index.md").write_text(index.replace(CONTENTS_MARK, contents(notebooks)))
    return [p.stem for p in notebooks]


def build(out: Path = DEFAULT_OUT, chapters: Path = CHAPTERS, quiet: bool = True) -> list[str]:
    """Build the HTML site of the lessons in ``chapters`` into ``out`` (replaced); returns the lesson
    stems in reading order. Raises RuntimeError with Sphinx's warnings if it printed any (every warning,
    a missing reference or anchor included, is an error here)."""
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="companion-book-") as tmp:
        src = Path(tmp) / "src"
        stems = stage(src, Path(chapters))
        if out.exists():
            shutil.rmtree(out)
        warnings = Path(tmp) / "warnings.txt"
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(BOOK), "-d", str(Path(tmp) / "doctrees"),
               "-W", "--keep-going", "-w", str(warnings), "-j", "1"] + (["-q"] if quiet else []) + [str(src), str(out)]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        text = warnings.read_text() if warnings.exists() else ""
        if run.returncode or text.strip():
            raise RuntimeError(f"sphinx-build failed (exit {run.returncode}):\n{text}{run.stderr[-4000:]}")
    (out / ".nojekyll").touch()  # GitHub Pages: serve _static/ and _images/ as they are
    return stems


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    built = build(target, quiet=False)
    print(f"built {len(built)} lessons into {target}")
