"""Static name resolution for the ``@vm.jit`` front end, and small helpers shared by its modules.

Names are resolved without running user code: a name that the kernel does not bind is looked up in the
function's closure cells, globals and builtins, and the object found decides what it means
(:func:`classify`): a vm builtin stub (anything with a string ``__vm_builtin__``), a dtype, an int/float/bool
(inlined as a literal), one of Python's ``range``/``min``/``max``/``abs``/``sum``, a module (for ``vm.x``
chains), or anything else (an error naming the name and its Python type).
"""
from __future__ import annotations

import ast
import builtins as _py_builtins
import copy
import inspect
import types

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.lang.stubs import ConstExpr

__all__ = ["MISSING", "classify", "describe", "Scope", "bound_names", "strip_unary_plus", "split_commas",
           "in_string", "is_vmlang"]

#: what Scope.lookup returns for a name that is not defined
MISSING = object()

_PY_BUILTINS = {id(getattr(_py_builtins, n)): n for n in ("range", "min", "max", "abs", "sum")}


def _static_attr(obj, name: str):
    """``getattr`` without running descriptors or ``__getattr__`` (never user code)."""
    try:
        return inspect.getattr_static(obj, name, None)
    except Exception:  # noqa: BLE001
        return None


def describe(obj) -> str:
    t = type(obj)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        return "a Python function"
    if isinstance(obj, type):
        return f"the Python class {obj.__name__}"
    return f"a Python {t.__module__ + '.' if t.__module__ not in ('builtins',) else ''}{t.__qualname__}"


def classify(obj) -> tuple[str, object]:
    """What a Python object means inside a kernel: (kind, value)."""
    if obj is MISSING:
        return "missing", None
    tag = _static_attr(obj, "__vm_builtin__")
    if isinstance(tag, str):
        return "builtin", tag
    if isinstance(obj, D.DType):
        return "dtype", obj
    if isinstance(obj, ConstExpr):
        return "constexpr", obj
    if isinstance(obj, types.ModuleType):
        return "module", obj
    t = type(obj)
    if t is bool or isinstance(obj, np.bool_):
        return "const", bool(obj)
    if isinstance(obj, int):
        return "const", int.__int__(obj)
    if isinstance(obj, np.integer):
        return "const", int(obj)
    if isinstance(obj, float):
        return "const", float.__float__(obj)
    if isinstance(obj, np.floating):
        return "const", float(obj)
    name = _PY_BUILTINS.get(id(obj))
    if name is not None and getattr(_py_builtins, name) is obj:
        return "pybuiltin", name
    return "other", obj


class Scope:
    """The Python names a function sees: closure cells, then globals, then builtins."""

    def __init__(self, fn=None):
        g = getattr(fn, "__globals__", None)
        self.globals = g if isinstance(g, dict) else {}
        self.closure: dict[str, object] = {}
        code = getattr(fn, "__code__", None)
        cells = getattr(fn, "__closure__", None) or ()
        if code is not None:
            for name, cell in zip(code.co_freevars, cells):
                try:
                    self.closure[name] = cell.cell_contents
                except ValueError:  # an empty cell: the variable is not assigned yet
                    self.closure[name] = MISSING
        b = self.globals.get("__builtins__", _py_builtins)
        self.builtins = b.__dict__ if isinstance(b, types.ModuleType) else b if isinstance(b, dict) \
            else _py_builtins.__dict__

    def lookup(self, name: str):
        for d in (self.closure, self.globals, self.builtins):
            if name in d:
                return d[name]
        return MISSING


def bound_names(stmts) -> set[str]:
    """Names a function body binds (Python's rule: such a name is local everywhere in the body)."""
    out: set[str] = set()
    stack = list(stmts)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        if isinstance(n, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ListComp,
                          ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return out


def strip_unary_plus(node):
    """The expression without its leading unary '+' (``+n * 2`` -> ``n * 2``), or None if it has none.

    Unary '+' binds tighter than every binary operator except '**', so a leading '+' sits at the bottom of
    the left spine of binary operators, comparisons and boolean operators.
    """
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return node.operand
    field = {ast.BinOp: "left", ast.Compare: "left"}.get(type(node))
    if field is not None:
        inner = strip_unary_plus(getattr(node, field))
        if inner is None:
            return None
        new = copy.copy(node)
        setattr(new, field, inner)
        new.col_offset = inner.col_offset if inner.lineno == node.lineno else node.col_offset
        return new
    if isinstance(node, ast.BoolOp):
        inner = strip_unary_plus(node.values[0])
        if inner is None:
            return None
        new = copy.copy(node)
        new.values = [inner] + node.values[1:]
        return new
    return None


def in_string(message: str) -> str:
    return message.replace("end of file", "end of the string")


def split_commas(text: str):
    """(start, end) offsets of the comma-separated pieces of ``text`` at bracket depth 0 (a trailing
    comma is allowed), or the offset of an empty piece."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append((start, i))
            start = i + 1
    pieces.append((start, len(text)))
    if len(pieces) > 1 and not text[pieces[-1][0]:].strip():
        pieces.pop()
    for a, b in pieces:
        if not text[a:b].strip():
            return a
    return pieces


def is_vmlang(module) -> bool:
    return isinstance(module, types.ModuleType) and module.__dict__.get("__name__") == "vmlang"
