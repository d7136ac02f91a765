"""The defining-cell audit: does a function answer use the reference? Cells are read as text with
``ast``, never run; nothing named in a submission is imported here."""
from __future__ import annotations

import ast
import inspect
import sys


_FORBIDDEN_ATTRS = ("expected", "or_reference")


def _parse(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:  # IPython syntax (%magics, !shell): transformed as text, never run
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:
        return None


def _check_call(tree, pid: str):
    """The last ``check(pid, answer)`` call in ``tree`` and its top-level statement."""
    found = None
    for stmt in getattr(tree, "body", []):
        for node in ast.walk(stmt):
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value == pid
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"):
                found = (node, stmt)
    return found


def _aliases(trees) -> dict:
    """Name -> dotted path, for every import in the notebook (``import a.b as m``, ``from a import b``)."""
    names = {}
    for tree in trees:
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                for a in node.names:
                    names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node, aliases):
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _resolve(dotted: str):
    """The object a dotted name denotes in this process, from modules already imported (nothing is
    imported here, so a name in a submission can never load code into the grader)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        obj = sys.modules.get(".".join(parts[:i]))
        if obj is not None:
            for attr in parts[i:]:
                try:
                    obj = inspect.getattr_static(obj, attr)
                except AttributeError:
                    return None
            return obj
    return None


def _uses_reference(nodes, aliases, forbidden_names, forbidden_objects) -> set:
    hits = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and node.id == "PROBLEMS":
                hits.add("PROBLEMS")
            if isinstance(node, ast.Attribute):
                if node.attr in _FORBIDDEN_ATTRS:
                    hits.add(f".{node.attr}()")
                if node.attr == "PROBLEMS":
                    hits.add("PROBLEMS")
            dotted = None
            if isinstance(node, (ast.Name, ast.Attribute)):
                dotted = _dotted(node, aliases)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in forbidden_names or any(_resolve(full) is o for o in forbidden_objects):
                        hits.add(full)
            if dotted and (dotted in forbidden_names or any(_resolve(dotted) is o for o in forbidden_objects)):
                hits.add(dotted)
    return hits


def _binds(stmt, name: str) -> bool:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name == name
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    targets = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    return any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t))


def reference_use(cells: list[str], cell_no: int, problem, answer_meta: dict) -> str | None:
    """Why a function answer gets no credit (it is, or its defining cell uses, the reference), or None."""
    if answer_meta.get("library"):
        where = ".".join(x for x in (answer_meta.get("module"), answer_meta.get("name")) if x)
        return f"the answer is the library's own object ({where}), not your code"
    trees = [_parse(c) for c in cells]
    idx = cell_no - 1 if 0 < cell_no <= len(cells) and _check_call(trees[cell_no - 1], problem.id) else None
    if idx is None:
        hits_at = [i for i, t in enumerate(trees) if t is not None and _check_call(t, problem.id)]
        if not hits_at:
            return None  # check called indirectly: judged on its outputs alone
        idx = hits_at[-1]
    call, check_stmt = _check_call(trees[idx], problem.id)
    arg = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "answer"), None)
    if arg is None:
        return None
    scan = [arg]
    if isinstance(arg, ast.Name):
        for j in range(idx, -1, -1):
            body = list(getattr(trees[j], "body", []))
            if j == idx:
                body = body[:body.index(check_stmt)]
            defining = next((s for s in reversed(body) if _binds(s, arg.id)), None)
            if defining is not None:
                used = {n.id for n in ast.walk(defining) if isinstance(n, ast.Name)}
                scan += [s for s in body[:body.index(defining)] if any(_binds(s, u) for u in used)]
                scan.append(defining)
                break
    forbidden_names = set(problem.forbidden_names())
    forbidden_objects = [problem.reference] + [o for o in map(_resolve, forbidden_names) if o is not None]
    hits = _uses_reference(scan, _aliases(trees), forbidden_names, forbidden_objects)
    if hits:
        return (f"the answer's defining cell uses {', '.join(sorted(hits))}: an answer must be your own "
                "code, not a call to the reference")
    return None
