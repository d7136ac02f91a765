"""Check the links of a built static site, offline.

    python book/links.py [SITE]        # default SITE: _build/book; exit 1 if any internal link is broken

Every ``*.html`` page under the site's root is parsed (except under ``_static/``: the theme's assets, where
the Sphinx themes leave Jinja macro files named ``*.html`` that are no pages); each ``href`` and ``src`` is

* internal (a relative path, or ``#fragment`` on the same page): the file must exist inside the site (a
  folder means its ``index.html``), and a fragment must be an ``id`` (or ``name``) on the target page;
* external (``http:``, ``https:``, ``//host``): listed, never fetched (there is no network here);
* ignored: ``mailto:``, ``javascript:``, ``data:``, ``tel:`` and a bare ``#``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_LINK_ATTRS = {"href", "src"}
_IGNORED_SCHEMES = {"mailto", "javascript", "data", "tel"}


class _PageParser(HTMLParser):
    """Collects the ids/names (anchors) and the href/src values of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (name == "name" and tag == "a"):
                self.anchors.add(value)
            elif name in _LINK_ATTRS:
                self.links.append(value.strip())


@dataclass
class LinkReport:
    """``pages``: pages parsed (paths relative to the site); ``broken``: (page, link, why) of every broken
    internal link; ``external``: every external link (sorted, unique)."""
    pages: list[str] = field(default_factory=list)
    broken: list[tuple[str, str, str]] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def check_site(site: Path) -> LinkReport:
    """Parse every HTML page under ``site`` and check its internal links and anchors (see the module
    docstring). Raises ValueError if ``site`` is not a folder with at least one ``.html`` page."""
    site = Path(site).resolve()
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts) if site.is_dir() else []
    if not pages:
        raise ValueError(f"{site} is not a built site (no .html page in it)")
    parsed = {p: _parse(p) for p in pages}
    report, external = LinkReport(pages=[str(p.relative_to(site)) for p in pages]), set()
    for page, parser in parsed.items():
        rel = str(page.relative_to(site))
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme in _IGNORED_SCHEMES or link == "#":
                continue
            if parts.scheme or link.startswith("//"):
                external.add(link)
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if site not in target.parents:
                report.broken.append((rel, link, "points outside the site"))
            elif not target.is_file():
                report.broken.append((rel, link, "no such file"))
            elif parts.fragment:
                anchors = parsed[target].anchors if target in parsed else set()
                if unquote(parts.fragment) not in anchors:
                    report.broken.append((rel, link, f"no id {parts.fragment!r} in {target.relative_to(site)}"))
    report.external = sorted(external)
    return report


def main(argv: list[str]) -> int:
    site = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "_build" / "book"
    report = check_site(site)
    for url in report.external:
        print(f"external (not fetched): {url}")
    for page, link, why in report.broken:
        print(f"BROKEN {page}: {link} ({why})")
    print(f"{len(report.pages)} pages, {len(report.external)} external links listed, {len(report.broken)} broken internal links")
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
