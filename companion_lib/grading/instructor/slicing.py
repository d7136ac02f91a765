"""Slicing a notebook: the source that rebuilds the answer a student handed to ``check(pid, answer)``.

The notebook's code cells are read as text with ``ast`` (IPython magics and ``!`` lines transformed
away as text first), never run here. For a problem id, :func:`slice_answer` finds the last
``check("<pid>", <answer>)`` call with that literal id and keeps, from the cells before it (and its
own cell up to its statement), exactly the top-level statements ``<answer>`` needs, found by free
names: imports, ``def``/``class`` (with decorators), assignments, and statements that change a needed
object in place (``x[i] = ...``, ``model.load_state_dict(...)``, a loop that fills a tensor). A name
read inside a function body is looked up as it would be when the function is called (the last
binding before the ``check``); one read at once (a default, a decorator, a right-hand side) as it was
at that statement. ``f = <...>.or_reference()`` is skipped, so ``f`` is the student's own previous
definition. The source ends with ``__answer__ = <answer>``.

Every failure of the analysis raises :class:`SliceError` with the reason, and the grader gives no
credit (fail closed): a non-literal problem id, a cell the parser cannot read other than by a
``SyntaxError`` (a deep expression: ``RecursionError``), a notebook over the size budget, a slice that
binds names through ``exec``/``eval``/``globals()``/``setattr`` on a module/``importlib``. A cell with
a ``SyntaxError`` binds nothing (the kernel refuses it the same way) and is skipped.
"""
from __future__ import annotations

import ast
import builtins
import threading
from dataclasses import dataclass

__all__ = ["SliceError", "AnswerSlice", "slice_answer", "find_check"]

MAX_SOURCE_CHARS = 2_000_000  # the notebook's code, all cells together
MAX_STATEMENTS = 20_000
MAX_SCOPE_DEPTH = 50          # nested def/lambda/class/comprehension scopes
# Calls that bind or run code the slice cannot see: their presence in a slice forfeits credit
_DYNAMIC = {"exec", "eval", "compile", "globals", "locals", "vars", "__import__", "get_ipython"}
_DYNAMIC_MODULES = {"importlib", "builtins", "sys"}
_SHOWS = {"print", "display", "check", "progress", "hint"}  # calls that change nothing the answer needs
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class SliceError(Exception):
    """The notebook cannot be sliced for a problem; ``str(err)`` says why (shown to the student)."""


@dataclass(frozen=True)
class AnswerSlice:
    pid: str
    source: str   # the needed statements, then ``__answer__ = <answer>``
    cell: int     # 1-based index among the code cells of the ``check`` call


def _parse_cell(text: str):
    """The cell's statements, or None for a cell the kernel would refuse too (``SyntaxError``)."""
    try:
        return ast.parse(text).body
    except SyntaxError:
        pass
    from IPython.core.inputtransformer2 import TransformerManager  # text only, nothing is run

    try:
        return ast.parse(TransformerManager().transform_cell(text)).body
    except SyntaxError:
        return None


def _parse(cells) -> list:
    if not isinstance(cells, (list, tuple)) or not all(isinstance(c, str) for c in cells):
        raise TypeError("cells must be a list of strings (the notebook's code cells)")
    if sum(map(len, cells)) > MAX_SOURCE_CHARS:
        raise SliceError(f"the notebook's code is over {MAX_SOURCE_CHARS} characters; it was not analysed")
    parsed = []
    for i, text in enumerate(cells):
        try:
            parsed.append(_parse_cell(text))
        except SliceError:
            raise
        except BaseException as err:  # RecursionError, MemoryError, ...: fail closed
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            raise SliceError(f"code cell {i + 1} could not be analysed ({type(err).__name__})") from None
    if sum(len(b) for b in parsed if b) > MAX_STATEMENTS:
        raise SliceError(f"the notebook has over {MAX_STATEMENTS} statements; it was not analysed")
    return parsed


def _check_calls(stmt):
    """Every ``check(...)`` / ``x.check(...)`` call inside ``stmt``."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check":
            yield node


def _call_pid(call):
    arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "problem_id"), None)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None if arg is None else ...  # ...: an id the grader cannot read


def find_check(parsed, pid: str):
    """(cell index, statement index, call) of the last ``check`` for ``pid``, or None. A later check
    call whose id is not a literal string might be this problem's: SliceError."""
    found = None
    for ci, body in enumerate(parsed):
        for si, stmt in enumerate(body or ()):
            for call in _check_calls(stmt):
                got = _call_pid(call)
                if got == pid:
                    found = (ci, si, call)
                elif got is Ellipsis:
                    found = ("nonliteral", ci)
    if found and found[0] == "nonliteral":
        raise SliceError(f"check is called with a problem id that is not a literal string (code cell "
                         f"{found[1] + 1}): write check(\"{pid}\", your_answer)")
    return found


# --------------------------------------------------------------------------------------------------
# Names: what a statement binds, reads at once, reads later (function bodies), changes in place
def _walk_scope(nodes):
    """The nodes of ``nodes`` outside nested scopes; nested scopes are yielded, not entered."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def _scope_heads(node) -> list:
    """What a def/lambda/class evaluates where it stands (decorators, defaults, bases)."""
    if isinstance(node, ast.ClassDef):
        return node.decorator_list + node.bases + [k.value for k in node.keywords]
    heads = list(getattr(node, "decorator_list", []))
    return heads + node.args.defaults + [d for d in node.args.kw_defaults if d is not None]


def _bound(nodes) -> set:
    names = set()
    for node in _walk_scope(nodes):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _reads(nodes, depth: int = 0) -> tuple[set, set]:
    """(names read at once, names read later in function bodies) by ``nodes``, minus their locals."""
    if depth > MAX_SCOPE_DEPTH:
        raise SliceError(f"scopes nested over {MAX_SCOPE_DEPTH} deep; the notebook was not analysed")
    now, later = set(), set()
    for node in _walk_scope(nodes):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            now.add(node.id)
        if isinstance(node, _SCOPES) and node not in nodes:
            n, lt = _reads(_scope_heads(node), depth + 1)
            now |= n
            later |= lt
            if isinstance(node, ast.ClassDef):  # the class body runs at once; its methods later
                n, lt = _reads(node.body, depth + 1)
                now |= n - _bound(node.body)
                later |= lt
            else:
                body = node.body if isinstance(node.body, list) else [node.body]
                args = [node.args]
                n, lt = _reads(body, depth + 1)
                later |= (n | lt) - _bound(body + args) | _globals_declared(body)
        elif node in nodes and isinstance(node, _SCOPES):  # a top-level def/class: same rules
            n, lt = _reads([_Wrap(node)], depth)
            now |= n
            later |= lt
    return now, later


class _Wrap(ast.AST):
    """A container so that a top-level def/class is treated as a nested scope by ``_reads``."""
    _fields = ("node",)

    def __init__(self, node):
        super().__init__()
        self.node = node


def _globals_declared(body) -> set:
    return {n for node in _walk_scope(body) if isinstance(node, ast.Global) for n in node.names}


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _changed_in_place(stmt) -> set:
    """Names whose object ``stmt`` may change without rebinding: ``x.a = ...``, ``x[i] += ...``,
    ``x.method(...)`` or ``f(x)`` as a statement (``model.load_state_dict(sd)``, ``nn.init.zeros_(w)``)."""
    roots = set()
    for node in _walk_scope([stmt]):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, "id", None) not in _SHOWS:
            call = node.value  # ``x.method(...)`` or ``fill(x)``: either may change ``x``
            targets = [a for a in [call.func] + call.args + [k.value for k in call.keywords]
                       if isinstance(a, ast.Attribute) or a is not call.func]
            roots.update(a.id for a in targets if isinstance(a, ast.Name))
        for t in targets:
            for sub in ([t] if not isinstance(t, (ast.Tuple, ast.List)) else t.elts):
                if isinstance(sub, (ast.Attribute, ast.Subscript)) and _root(sub):
                    roots.add(_root(sub))
    return roots


def _definite(stmt) -> bool:
    """True when ``stmt`` surely rebinds every name it binds (no earlier binding is needed)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(stmt, ast.Assign) or (isinstance(stmt, ast.AnnAssign) and stmt.value is not None):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return all(isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.Store))
                   for t in targets for n in ast.walk(t))
    return False


def _is_or_reference(stmt) -> bool:
    """``f = <...>.or_reference(...)``: the lesson's fallback, replaced by the previous ``f``."""
    return (isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None
            and any(isinstance(n, ast.Attribute) and n.attr == "or_reference" for n in ast.walk(stmt.value)))


def _dynamic_use(nodes, magics: bool = True) -> str | None:
    """The first construct in ``nodes`` that binds or runs code out of the parser's sight, or None
    (``magics=False``: ``get_ipython()``, which every transformed magic calls, is not counted)."""
    imported = {n for s in nodes if isinstance(s, (ast.Import, ast.ImportFrom))
                for n in _bound([s])}
    for node in (n for s in nodes for n in ast.walk(s)):
        if isinstance(node, ast.Name) and node.id in _DYNAMIC and (magics or node.id != "get_ipython"):
            return f"{node.id}()"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            hit = next((m for m in mods if m.split(".")[0] in _DYNAMIC_MODULES), None)
            if hit:
                return f"import {hit}"
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("setattr", "delattr")
                and node.args and _root(node.args[0]) in imported):
            return f"{node.func.id}() on a module"
    return None


# --------------------------------------------------------------------------------------------------
@dataclass
class _Stmt:
    node: ast.stmt
    binds: set
    now: set
    later: set
    changes: set
    definite: bool
    fallback: bool


def _facts(node) -> _Stmt:
    now, later = _reads([node])
    return _Stmt(node, _bound([node]), now, later, _changed_in_place(node), _definite(node),
                 _is_or_reference(node))


#: Held around every use of ``ast`` in the grader's process. Notebooks are evaluated in threads, and
#: CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not per thread: two
#: threads parsing at once fail with "SystemError: AST constructor recursion depth mismatch".
AST_LOCK = threading.RLock()


def slice_answer(cells, pid: str) -> AnswerSlice | None:
    """The slice rebuilding ``pid``'s answer from ``cells`` (the notebook's code cells, in order), or
    None when no ``check`` call for ``pid`` exists. Raises :class:`SliceError` (fail closed)."""
    if not isinstance(pid, str):
        raise TypeError(f"pid must be a problem id string, got {type(pid).__name__}")
    try:
        with AST_LOCK:
            return _slice(_parse(cells), pid)
    except (SliceError, TypeError):
        raise
    except RecursionError:
        raise SliceError("the notebook's code is nested too deeply to be analysed") from None
    except Exception as err:  # anything unforeseen: no credit, with the reason
        raise SliceError(f"the notebook could not be analysed ({type(err).__name__}: {err})"[:300]) from None


def _slice(parsed, pid: str) -> AnswerSlice | None:
    found = find_check(parsed, pid)
    if found is None:
        return None
    ci, si, call = found
    answer = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "answer"), None)
    if answer is None:
        raise SliceError(f"check(\"{pid}\", ...) is called without an answer (code cell {ci + 1})")
    prior = [_facts(s) for body in parsed[:ci] for s in (body or ())] + [_facts(s) for s in parsed[ci][:si]]
    end = len(prior)
    now, later = _reads([ast.Expr(answer)])
    todo = [(n, end) for n in now | later]
    chosen, seen = set(), set()
    while todo:
        name, limit = todo.pop()
        if (name, limit) in seen:
            continue
        seen.add((name, limit))
        i = limit - 1
        while i >= 0:  # the latest binding of ``name`` before ``limit`` (and what changes it after)
            st = prior[i]
            if name in st.binds and not st.fallback:
                break
            i -= 1
        bound_at = i
        for j in range(max(bound_at, 0), limit):
            st = prior[j]
            if (j == bound_at or name in st.changes) and j not in chosen:
                chosen.add(j)
                todo += [(n, j) for n in st.now] + [(n, end) for n in st.later]
                todo += [(n, j) for n in st.binds - st.now if not st.definite]
        if bound_at >= 0 and not prior[bound_at].definite:
            todo.append((name, bound_at))  # a loop or an ``if`` may not bind it: the one before too
    nodes = [prior[j].node for j in sorted(chosen)]
    comprehended = {n.id for st in prior for node in ast.walk(st.node) if isinstance(node, ast.comprehension)
                    for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    unbound = sorted({n for n, limit in seen if not any(n in prior[j].binds for j in range(limit))}
                     - set(dir(builtins)) - comprehended - {"get_ipython", "display", "In", "Out"})
    hidden = _dynamic_use([st.node for st in prior], magics=False) if unbound else None
    if hidden:  # a name no statement binds, in a notebook that binds names out of the parser's sight
        raise SliceError(f"the answer needs {', '.join(unbound[:5])}, which no cell binds as plain code, and "
                         f"the notebook uses {hidden}: the grader reads answers as source and cannot follow that")
    why = _dynamic_use(nodes + [ast.Expr(answer)])
    if why:
        raise SliceError(f"the code defining this answer uses {why}: the grader reads answers as "
                         "source and cannot follow names bound that way")
    body = [ast.unparse(n) for n in nodes] + [f"__answer__ = {ast.unparse(answer)}"]
    return AnswerSlice(pid, "\n".join(body) + "\n", ci + 1)
