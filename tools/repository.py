"""Where the companion lives: every address derives from the one line in pyproject.toml.

``[project.urls] Repository = "https://github.com/<owner>/<repo>"`` is the only place the repository's
address is written. A fork changes that line and runs ``python tools/colab.py`` (README's "Open in
Colab" links and every lesson's first cell are regenerated from it; tests/test_colab_cell.py fails while
they are stale). Readers: tools/colab.py (links, first cell), the book's build (its Colab links).

Every function reads ``PYPROJECT`` / ``INIT`` (this checkout's) unless given another file.

The version is read from ``companion_lib/__init__.py`` (``__version__``, the package's one source; the
wheel's version comes from there too), without importing the package (no torch needed).

    >>> repository_url()                      # e.g. 'https://github.com/OWNER/companion'
    >>> colab_url("chapters/14_1_pearson_crabs.ipynb")
    'https://colab.research.google.com/github/OWNER/companion/blob/main/chapters/14_1_pearson_crabs.ipynb'
    >>> install_source()                      # what the first cell pip-installs on Colab
    'companion_lib @ git+https://github.com/OWNER/companion@v0.2.0'
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
INIT = ROOT / "companion_lib" / "__init__.py"
#: The branch README's Colab links open (the notebooks students see).
BRANCH = "main"
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9-]+)/([A-Za-z0-9._-]+?)(?:\.git)?/?$")


def repository_url(pyproject: Path | None = None) -> str:
    """``[project.urls] Repository`` of ``pyproject``, checked to be ``https://github.com/<owner>/<repo>``
    (Colab opens notebooks from GitHub only); returned without a trailing ``/`` or ``.git``."""
    pyproject = Path(pyproject or PYPROJECT)
    data = tomllib.loads(pyproject.read_text())
    url = data.get("project", {}).get("urls", {}).get("Repository")
    if not isinstance(url, str):
        raise ValueError(f"{pyproject}: [project.urls] has no Repository = \"https://github.com/<owner>/<repo>\"")
    match = _GITHUB.match(url.strip())
    if not match:
        raise ValueError(f"{pyproject}: Repository = {url!r} is not https://github.com/<owner>/<repo>")
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def github_path(pyproject: Path | None = None) -> str:
    """``<owner>/<repo>`` of the repository."""
    return repository_url(pyproject).removeprefix("https://github.com/")


def version(init: Path | None = None) -> str:
    """``companion_lib.__version__``, read from ``init`` without importing the package."""
    init = Path(init or INIT)
    for node in ast.parse(init.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "__version__"):
            return ast.literal_eval(node.value)
    raise ValueError(f"{init} assigns no __version__")


def release_tag(init: Path | None = None) -> str:
    """The git tag of this version, ``v<version>``: what a release pushes and the first cell installs."""
    return f"v{version(init)}"


def colab_url(notebook: str, pyproject: Path | None = None, branch: str = BRANCH) -> str:
    """The "Open in Colab" address of ``notebook``, a path in the repository
    (``chapters/14_1_pearson_crabs.ipynb``)."""
    if not notebook.endswith(".ipynb") or notebook.startswith("/"):
        raise ValueError(f"notebook must be a repository path to an .ipynb, got {notebook!r}")
    return f"https://colab.research.google.com/github/{github_path(pyproject)}/blob/{branch}/{notebook}"


def install_source(pyproject: Path | None = None, init: Path | None = None) -> str:
    """The pip requirement the first cell installs on Colab: this version's tag of the repository."""
    return f"companion_lib @ git+{repository_url(pyproject)}@{release_tag(init)}"
