"""The package's structure, checked: every import of every module against ``companion_lib._layers``.

Every ``.py`` under ``companion_lib/`` is parsed with ``ast``; every ``import``/``from … import``
(module level and inside functions, relative ones resolved) and every ``importlib.import_module`` of a
literal name (or an f-string's literal prefix) becomes an edge module → module. Three checks: every
module is in the table; every edge between two nodes of the table is one the table allows; no circle
among modules (function-local imports included: a circle that only a late import hides is still one).
"""
import ast
import pathlib

import pytest

from companion_lib import _layers

ROOT = pathlib.Path(__file__).resolve().parents[1] / "companion_lib"


def _module_names(root: pathlib.Path) -> dict:
    """{dotted module name: path} of every .py under ``root`` (a package ``p/__init__.py`` is ``p``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _existing(name: str, modules: dict) -> str:
    """The longest prefix of dotted ``name`` that is a module of the tree (the package itself at worst)."""
    parts = name.split(".")
    while len(parts) > 1 and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path, name: str, modules: dict) -> set:
    """Modules of the package that module ``name`` (file ``path``) imports, anywhere in its body."""
    top = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from p import m` imports module p.m when there is one, else names of p
            found.update(f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                         for a in node.names)
        elif (isinstance(node, ast.Call) and node.args
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                prefix = str(arg.values[0].value)        # f"pkg.sub.{x}": every module under pkg.sub
                found.update(m for m in modules if m.startswith(prefix))
    return {_existing(m, modules) for m in found if m == top or m.startswith(top + ".")} - {name}


def moved_aliases(root: pathlib.Path = ROOT) -> dict:
    """{module: set of modules its ``_MOVED`` literal points to} (names kept for a release, resolved
    lazily by ``companion_lib._moved``)."""
    modules = _module_names(root)
    found = {}
    for name, path in modules.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_MOVED" for t in node.targets)):
                targets = ast.literal_eval(node.value)
                found[name] = {_existing("companion_lib." + v.rsplit(".", 1)[0], modules) for v in targets.values()}
    return found


def import_graph(root: pathlib.Path = ROOT) -> dict:
    """{module: set of modules of the package it imports} for the package at ``root``."""
    modules = _module_names(root)
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def node_of(module: str, package: str = "companion_lib"):
    """The table's name for a module: itself, or the listed package it lies in; None if unlisted."""
    rel = module[len(package) + 1:] if module != package else package
    listed = {m for _, mods in _layers.LAYERS for m in mods}
    parts = rel.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in listed:
            return ".".join(parts[:i])
    return None


def forbidden_edges(graph: dict) -> list:
    """Edges between two listed nodes that the table does not allow, as 'a -> b (why)'."""
    layer = {m: i for i, (_, mods) in enumerate(_layers.LAYERS) for m in mods}
    bad = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            na, nb = node_of(a), node_of(b)
            if None in (na, nb) or na == nb or layer[na] > layer[nb]:
                continue
            if layer[na] == layer[nb] and (na, nb) in _layers.SAME_LAYER:
                continue
            why = "same layer, not in SAME_LAYER" if layer[na] == layer[nb] else "upward"
            bad.append(f"{a} -> {b} ({na} -> {nb}: {why})")
    return bad


def circles(graph: dict) -> list:
    """Every strongly connected set of two or more modules: one circle through it, and the rest of it."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = set()
            while True:
                w = stack.pop()
                on.discard(w)
                members.add(w)
                if w == v:
                    break
            if len(members) > 1:
                circle = _one_circle(graph, members)
                rest = sorted(members - set(circle.split(" -> ")))
                found.append(circle + (f"  (and in circles with them: {', '.join(rest)})" if rest else ""))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _one_circle(graph: dict, members: set) -> str:
    """A shortest circle through the first member of a strongly connected set: 'a -> b -> a'."""
    start = min(members)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & members):
            if w == start:
                return " -> ".join(path + [start])
            if w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError("a strongly connected set always holds a circle")


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_is_in_the_table(graph):
    unlisted = sorted(m for m in graph if node_of(m) is None)
    assert not unlisted, f"modules missing from companion_lib/_layers.py: {unlisted}"


def test_every_import_is_one_the_table_allows(graph):
    bad = forbidden_edges(graph)
    assert not bad, "imports the table (companion_lib/_layers.py) does not allow:\n" + "\n".join(bad)


def test_no_circle_among_modules(graph):
    found = circles(graph)
    assert not found, "import circles (function-local imports included):\n" + "\n".join(found)


def test_moved_names_are_declared_and_resolve():
    """Every ``_MOVED`` alias is a pair of ``DEPRECATED_ALIASES``, and every pair is used; each old name
    resolves to the very object at its new home, with a DeprecationWarning."""
    import importlib
    import warnings
    aliases = moved_aliases()
    used = {(node_of(a), node_of(b)) for a, targets in aliases.items() for b in targets}
    assert used == set(_layers.DEPRECATED_ALIASES), (used, _layers.DEPRECATED_ALIASES)
    for module in aliases:
        mod = importlib.import_module(module)
        for old, new in mod._MOVED.items():
            home, attr = new.rsplit(".", 1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                obj = getattr(mod, old)
            assert obj is getattr(importlib.import_module("companion_lib." + home), attr)
            assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
        with pytest.raises(AttributeError):
            getattr(mod, "no_such_name")


def test_the_table_names_the_tree(graph):
    """Each listed name is a module of the tree, once; each same-layer edge joins one layer's modules."""
    listed = [m for _, mods in _layers.LAYERS for m in mods]
    assert len(listed) == len(set(listed)), "a module is on two layers"
    absent = sorted(m for m in listed if (m if m == "companion_lib" else f"companion_lib.{m}") not in graph)
    assert not absent, f"companion_lib/_layers.py lists modules the tree does not have: {absent}"
    layer = {m: i for i, (_, mods) in enumerate(_layers.LAYERS) for m in mods}
    assert all(layer[a] == layer[b] for a, b in _layers.SAME_LAYER), "a SAME_LAYER edge joins two layers"


def test_the_checks_find_what_they_are_for(tmp_path):
    """On a made-up package: a circle closed by a function-local relative import, an upward import, a
    dynamic import and an unlisted module are all found."""
    pkg = tmp_path / "companion_lib"
    (pkg / "grading").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text("def f():\n    from companion_lib import data  # upward\n")
    (pkg / "data.py").write_text("from . import settings\n")
    (pkg / "grading" / "__init__.py").write_text("import importlib\n"
                                                "def load(n):\n    importlib.import_module(f'companion_lib.grading.p{n}')\n")
    (pkg / "grading" / "p1.py").write_text("def g():\n    from .. import grading\n")
    (pkg / "stray.py").write_text("import companion_lib.settings as s\n")
    g = import_graph(pkg)
    assert g["companion_lib.grading"] == {"companion_lib.grading.p1"}
    assert g["companion_lib.stray"] == {"companion_lib.settings"}
    assert forbidden_edges(g) == ["companion_lib.settings -> companion_lib.data (settings -> data: upward)"]
    assert sorted(circles(g)) == ["companion_lib.data -> companion_lib.settings -> companion_lib.data",
                                  "companion_lib.grading -> companion_lib.grading.p1 -> companion_lib.grading"]
    assert node_of("companion_lib.stray") is None and node_of("companion_lib.grading.p1") == "grading"
