"""The online book (book/build.py, book/links.py; `make book`).

The site is built once per session into a temporary folder (about 15 s of Sphinx on this machine); the
tests then read its HTML. The link checker is tested on both sides: the built site has no broken internal
link or anchor, and a page with a broken file link or a missing anchor is caught. Every Sphinx warning
fails the build (-W), shown by a one-lesson build whose text points at a missing section.

The book's pins (requirements-book.txt) come with `make test`; in an environment without them (the
"colab" and "minimum" environments of `make test-colab`/`make test-minimum`, which test what students
run) this module is skipped with that reason.
"""
import copy
import importlib.util
import json
import re
import shutil
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("myst_nb", reason="the online book's pins (requirements-book.txt) are not installed")

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_book_{name}", ROOT / "book" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = _load("build")
links = _load("links")
repository = build._repository()
LESSONS = build.lessons()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("book") / "site"
    start = time.perf_counter()
    stems = build.build(out)
    print(f"\nbook built in {time.perf_counter() - start:.1f} s: {len(stems)} lessons")
    return out


class _Page(HTMLParser):
    """Text of <h1>, <a href>s with their text, <img src>s, <script src>s, code-cell containers."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.h1, self.anchors, self.imgs, self.scripts, self.cells = [], [], [], [], 0
        self._in_h1 = False
        self._a = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h1":
            self._in_h1 = True
            self.h1.append("")
        elif tag == "a":
            self._a = [a.get("href", ""), ""]
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "div" and "cell" in (a.get("class") or "").split() and "docutils" in (a.get("class") or ""):
            self.cells += 1

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False
        elif tag == "a" and self._a is not None:
            self.anchors.append(tuple(self._a))
            self._a = None

    def handle_data(self, data):
        if self._in_h1:
            self.h1[-1] += data
        if self._a is not None:
            self._a[1] += data


def _page(site, stem):
    return (site / "chapters" / f"{stem}.html").read_text(encoding="utf-8")


def _notebook(path):
    return json.loads(path.read_text())


# --- pages, contents, solutions ----------------------------------------------------------------------

def test_every_lesson_has_its_page_with_the_notebooks_title(site):
    assert len(LESSONS) >= 14
    for path in LESSONS:
        page = _Page(_page(site, path.stem))
        title = build.notebook_title(_notebook(path), path.name)
        # the theme repeats the title in its print header; MyST writes smart quotes, MathJax's \( \)
        shown = {re.sub(r"\\\((.*?)\\\)", r"$\1$", h.replace("#", "").replace("\u2019", "'")).strip()
                 for h in page.h1}
        plain = re.sub(r"\$([^$]*)\$", r"\1", title)  # the print header's copy is plain text
        assert title in shown and shown <= {title, plain}, path.name


def test_no_solutions_in_the_site(site):
    solution_stems = {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    assert solution_stems, "solutions/ has notebooks: the test must be able to fail"
    built = {p.stem for p in site.rglob("*") if p.is_file()}
    assert not built & solution_stems
    assert not [p for p in site.rglob("*") if "solution" in p.name.lower()]
    everything = "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
    assert "_solutions" not in everything


def test_contents_page_lists_the_lessons_in_reading_order(site):
    entries = [(href, text) for href, text in _Page((site / "index.html").read_text(encoding="utf-8")).anchors
               if href.startswith("chapters/") and "#" not in href]
    # the contents (main column) lists each lesson once; the sidebar repeats it: keep first occurrences
    seen, order = set(), []
    for href, text in entries:
        if href not in seen:
            seen.add(href)
            order.append((href, " ".join(text.split())))
    assert [h for h, _ in order] == [f"chapters/{p.stem}.html" for p in LESSONS]
    labels = [t.split()[0] for _, t in order]
    assert labels[0] == "§14.1" and labels[-1] == "§15.9"
    assert labels.index("§15.3.3") + 1 == labels.index("§15.3.3b") == labels.index("§15.3.4") - 1
    for (_, text), path in zip(order, LESSONS):   # the title comes from the notebook, its own number dropped
        title = build._toc_title(build.notebook_title(_notebook(path), path.name))
        assert text == f"{build.lesson_label(path.stem)} {title}" and "$" not in text


def test_reading_order_is_numeric_not_alphabetical():
    stems = ["15_10_later", "15_9_scoreboard", "15_3_3b_choices", "15_3_3_ddpm", "14_2_kl", "14_1_crabs"]
    ordered = sorted(stems, key=build.lesson_key)
    assert ordered == ["14_1_crabs", "14_2_kl", "15_3_3_ddpm", "15_3_3b_choices", "15_9_scoreboard", "15_10_later"]
    assert sorted(stems) != ordered  # plain string order would put 15_10 before 15_3
    assert [build.lesson_label(s) for s in ordered] == ["§14.1", "§14.2", "§15.3.3", "§15.3.3b", "§15.9", "§15.10"]
    with pytest.raises(ValueError, match="section number"):
        build.lesson_key("scoreboard")


# --- links -------------------------------------------------------------------------------------------

def test_no_broken_internal_link_or_anchor(site):
    report = links.check_site(site)
    assert report.broken == []
    assert {"index.html", "search.html", "genindex.html"} <= set(report.pages)
    assert len(report.pages) == len(LESSONS) + 3
    print("\nexternal links (listed, not fetched):\n  " + "\n  ".join(report.external))
    hosts = {re.match(r"https://([^/]+)/", url).group(1) for url in report.external}
    assert hosts == {"colab.research.google.com", "cdn.jsdelivr.net"}


def test_each_page_has_its_colab_link_and_the_static_widgets_note(site):
    for path in LESSONS:
        page = _Page(_page(site, path.stem))
        colab = [href for href, _ in page.anchors if "colab.research.google.com" in href]
        assert colab == [repository.colab_url(f"chapters/{path.name}")], path.name
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _page(site, path.stem)))
        assert "widgets (sliders) are static on this website" in text, path.name


def _views(nb):
    """(interactive, progress bars): the notebook's widget views with an Output widget, and the others."""
    state = nb["metadata"].get("widgets", {}).get(build.WIDGET_STATE, {}).get("state", {})
    views = [o["data"][build.WIDGET_VIEW] for c in nb["cells"] for o in c.get("outputs", [])
             if build.WIDGET_VIEW in o.get("data", {})]
    with_output = [any(m["model_name"] == "OutputModel" for m in build._widget_tree(state, v["model_id"])) for v in views]
    return sum(with_output), len(views) - sum(with_output)


def test_widgets_are_their_static_figures_without_widget_javascript(site):
    total = [0, 0]
    for path in LESSONS:
        html = _page(site, path.stem)
        interactive, bars = _views(_notebook(path))
        total[0] += interactive
        total[1] += bars
        assert html.count('class="companion-static-widget"') == interactive, path.name
        assert html.count("%|█") >= bars, path.name  # tqdm's bar as the text line it prints in a terminal
        assert "widget-view+json" not in html and "require.min.js" not in html and "embed-amd" not in html
    assert min(total) >= 5  # both kinds are there: the test can fail
    assert "Interactive widget, shown here at the controls iteration = 0" in _page(site, "14_1_pearson_crabs")
    assert "digit denoiser: 100%|████████████████████| 3500/3500" in _page(site, "15_3_3_reverse_diffusion_ddpm")
    assert "class = 3, w = 3.0" in _page(site, "15_3_5_classifier_free_guidance")  # a Dropdown's label


def test_figures_are_on_the_pages(site):
    for path in LESSONS:
        nb = _notebook(path)
        state = nb["metadata"].get("widgets", {}).get(build.WIDGET_STATE, {}).get("state", {})
        in_widgets = sum("image/png" in o.get("data", {}) for m in state.values()
                         for o in m.get("state", {}).get("outputs", []))
        pngs = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
        imgs = [src for src in _Page(_page(site, path.stem)).imgs if src.startswith("../_images/")]
        assert len(imgs) >= pngs + (1 if in_widgets else 0), path.name
        for src in imgs:
            assert (site / "chapters" / src).resolve().stat().st_size > 1000, src


def test_math_is_marked_up_for_mathjax(site):
    html = _page(site, "14_2_maximum_likelihood_is_kl")
    assert html.count('class="math notranslate nohighlight"') > 20
    page = _Page(html)
    assert any(src.endswith("tex-mml-chtml.js") for src in page.scripts)
    for path in LESSONS:  # outside math, code and outputs, no TeX is left (it would show raw)
        text = re.sub(r"<(script|style|pre)\b.*?</\1>", "", _page(site, path.stem), flags=re.S)
        text = re.sub(r'<(span|div) class="math notranslate nohighlight">.*?</\1>', "", text, flags=re.S)
        text = re.sub(r"<[^>]+>", "", text)
        assert "$$" not in text and not re.search(r"\\(frac|mathrm|sum|log|mid|underbrace)\b", text), path.name


def test_mathjax_url_can_be_overridden(monkeypatch):
    import runpy
    monkeypatch.delenv("COMPANION_BOOK_MATHJAX", raising=False)
    assert runpy.run_path(str(ROOT / "book" / "conf.py"))["mathjax_path"].startswith("https://cdn.jsdelivr.net/")
    monkeypatch.setenv("COMPANION_BOOK_MATHJAX", "http://localhost:8000/mathjax/es5/tex-mml-chtml.js")
    assert runpy.run_path(str(ROOT / "book" / "conf.py"))["mathjax_path"] == "http://localhost:8000/mathjax/es5/tex-mml-chtml.js"


def test_each_code_cell_is_shown_except_the_colab_cell(site):
    for path in LESSONS:
        cells = _notebook(path)["cells"]
        shown = [c for c in cells if c["cell_type"] == "code" and build.COLAB_TAG not in c["metadata"].get("tags", [])]
        assert _Page(_page(site, path.stem)).cells == len(shown), path.name


# --- staging a notebook, both sides ------------------------------------------------------------------

def _tiny(text="See [below](#a-section) and $$x^2$$.", colab=False):
    cells = [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": f"# 14.1 Tiny\n\n{text}\n\n## A section\n"},
             {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 1, "source": "1 + 1",
              "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                           "data": {"text/plain": "2"}}]}]
    if colab:
        cells.insert(0, {"cell_type": "code", "id": "k", "metadata": {"tags": ["colab"]}, "execution_count": None,
                         "source": "import google.colab", "outputs": []})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                         "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def test_stage_notebook_drops_the_colab_cell_and_adds_the_note():
    nb = _tiny(colab=True)
    before = copy.deepcopy(nb)
    staged = build.stage_notebook(nb, "https://colab.example/x.ipynb")
    assert nb == before  # the committed notebook is not touched
    assert [c["id"] for c in staged["cells"]] == ["t", "c"]
    first = staged["cells"][0]["source"]
    assert first.startswith("# 14.1 Tiny\n") and "(https://colab.example/x.ipynb)" in first
    assert "static on this website" in first and first.endswith("## A section\n")


def test_stage_notebook_replaces_a_widget_by_its_figure():
    nb = _tiny()
    view = {build.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "VBox()"}
    nb["cells"][1]["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": view}]
    png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    nb["metadata"]["widgets"] = {build.WIDGET_STATE: {"state": {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_o"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "σ", "value": 0.5}},
        "o": {"model_name": "OutputModel", "state": {"outputs": [png]}}}}}
    staged = build.stage_notebook(nb, "https://colab.example/x.ipynb")
    note, figure = staged["cells"][1]["outputs"]
    assert "the controls σ = 0.5" in note["data"]["text/html"][0]
    assert figure == png and "widgets" not in staged["metadata"]


def test_stage_notebook_rejects_a_notebook_without_a_title():
    with pytest.raises(ValueError, match="# title"):
        build.stage_notebook(_tiny() | {"cells": _tiny()["cells"][1:]}, "https://colab.example/x.ipynb")
    with pytest.raises(TypeError, match="notebook"):
        build.stage_notebook([], "https://colab.example/x.ipynb")


def test_a_sphinx_warning_fails_the_build(tmp_path):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    (chapters / "14_1_tiny.ipynb").write_text(json.dumps(_tiny("See [nowhere](#no-such-section).")))
    with pytest.raises(RuntimeError, match="no-such-section"):
        build.build(tmp_path / "out", chapters)


# --- the link checker, both sides --------------------------------------------------------------------

def test_link_checker_catches_a_broken_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/b.html#here">ok</a> <a href="#top">ok</a> <h1 id="top">t</h1> <a href="sub/">ok dir</a>'
        '<a href="missing.html">bad</a> <a href="sub/b.html#gone">bad anchor</a> <a href="#nope">bad self</a>'
        '<img src="sub/pic.png"> <a href="https://example.org/x">ext</a> <a href="mailto:a@b">m</a>'
        '<a href="../outside.html">bad</a>')
    (tmp_path / "sub" / "b.html").write_text('<p id="here">b</p><a href="../index.html#top">ok</a>')
    (tmp_path / "sub" / "index.html").write_text("<p>dir</p>")
    (tmp_path / "sub" / "pic.png").write_bytes(b"png")
    report = links.check_site(tmp_path)
    assert sorted((page, link) for page, link, _ in report.broken) == [
        ("index.html", "#nope"), ("index.html", "../outside.html"), ("index.html", "missing.html"),
        ("index.html", "sub/b.html#gone")]
    assert report.external == ["https://example.org/x"]
    with pytest.raises(ValueError, match="not a built site"):
        links.check_site(tmp_path / "sub" / "pic.png")


def test_link_checker_catches_a_broken_anchor_in_a_real_page(site, tmp_path):
    copy_ = tmp_path / "site"
    shutil.copytree(site, copy_)
    page = copy_ / "chapters" / "14_1_pearson_crabs.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", '<a href="14_2_maximum_likelihood_is_kl.html#no-such-heading">x</a></body>'), encoding="utf-8")
    broken = links.check_site(copy_).broken
    assert [(p, link) for p, link, _ in broken] == [
        ("chapters/14_1_pearson_crabs.html", "14_2_maximum_likelihood_is_kl.html#no-such-heading")]


def test_math_lines_starting_with_an_operator_are_not_read_as_lists():
    text = ("Gaussian $a = b\n+ D\\log s$, and `$x` is code\n* a real item $y$\n"
            "> quoted $c\n> - d$\n$$u\n  + \\sum_t v$$\n- another item")
    fixed = build._math_safe_for_myst(text)
    assert "$a = b +\n D\\log s$" in fixed and "$c -\n>  d$" in fixed and "$$u +\n   \\sum_t v$$" in fixed
    assert "\n* a real item $y$\n" in fixed and fixed.endswith("\n- another item")  # real lists stay lists
    assert build._math_safe_for_myst("no math\n+ a list") == "no math\n+ a list"


def test_pages_workflow_builds_with_make_book_and_publishes_its_output():
    import yaml  # a dependency of jupytext and MyST
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build_steps = flow["jobs"]["build"]["steps"]
    runs = [s["run"] for s in build_steps if "run" in s]
    assert runs == ["make book TORCH=cpu"]
    upload = next(s for s in build_steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/book" == str(build.DEFAULT_OUT.relative_to(ROOT))
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in flow["jobs"]["deploy"]["steps"])
    assert flow["permissions"]["pages"] == "write"


def test_stage_notebook_takes_nbval_markers_out_of_code():
    nb = _tiny()
    nb["cells"][1]["source"] = "# NBVAL_CHECK_OUTPUT\nx = 1  # NBVAL_CHECK_OUTPUT stays in a comment\nprint(x)"
    staged = build.stage_notebook(nb, "https://colab.example/x.ipynb")
    assert staged["cells"][1]["source"] == "x = 1  # NBVAL_CHECK_OUTPUT stays in a comment\nprint(x)"


def test_stage_notebook_writes_a_progress_bar_as_its_text_line():
    nb = _tiny()
    view = {build.WIDGET_VIEW: {"model_id": "bar", "version_major": 2, "version_minor": 0}, "text/plain": "HBox()"}
    nb["cells"][1]["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": view}]
    nb["metadata"]["widgets"] = {build.WIDGET_STATE: {"state": {
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_p", "IPY_MODEL_b"]}},
        "a": {"model_name": "HTMLModel", "state": {"value": "fit:\u2007\u200750%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 5.0, "max": 10.0}},
        "b": {"model_name": "HTMLModel", "state": {"value": "\u20075/10\u2007[00:01&lt;00:01]"}}}}}
    (out,) = build.stage_notebook(nb, "https://colab.example/x.ipynb")["cells"][1]["outputs"]
    assert out == {"output_type": "stream", "name": "stdout", "text": f"fit:  50%|{'█' * 10}{' ' * 10}| 5/10 [00:01<00:01]\n"}
