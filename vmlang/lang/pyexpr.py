"""Translation of Python ``ast`` expressions and annotations of a ``@vm.jit`` function into the .vm AST
of :mod:`vmlang.lang.ast` (statements: :mod:`vmlang.lang.pystmt`; the driver: :mod:`vmlang.lang.pyfront`).

Names bound by the kernel stay names; other names are resolved statically (:mod:`vmlang.lang.pynames`).
Every error is a VMSyntaxError (VMTypeError for an annotation that is not a type) at the node at fault.
"""
from __future__ import annotations

import ast
import builtins as _py_builtins
import math
import re
import types
from typing import Optional

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir.errors import SourceLoc, VMError, VMSyntaxError, VMTypeError
from vmlang.lang import ast as A
from vmlang.lang.parser import MAX_NESTING, parse_expr
from vmlang.lang.pynames import (Scope, classify, describe, in_string, is_vmlang, split_commas,
                                 strip_unary_plus)
from vmlang.lang.pysource import SourceFile, StringMap, relocate
from vmlang.lang.stubs import BUILTIN_DOCS

__all__ = ["Translator", "CONSTEXPR", "BINOPS", "BAD_BINOPS"]

CONSTEXPR = object()  # type_annot() result for a vm.constexpr annotation


BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.LShift: "<<",
           ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&"}
BAD_BINOPS = {
    ast.FloorDiv: ("//", "'//' is not supported",
                   "vmlang integer division is '/', which truncates toward zero as in C and .vm (so "
                   "-7 / 2 == -3); '%' is the C remainder"),
    ast.Pow: ("**", "'**' (power) is not supported", "multiply, or use vm.exp / vm.exp2 / vm.log"),
    ast.MatMult: ("@", "'@' (matrix multiply) is not supported", "use vm.dot(a, b, acc)"),
}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_BAD_CMPOPS = {ast.Is: ("is", "use =="), ast.IsNot: ("is not", "use !="),
               ast.In: ("in", None), ast.NotIn: ("not in", None)}

_UNSUPPORTED_EXPR = {
    "IfExp": ("a conditional expression 'a if c else b' is not supported", "use vm.where(c, a, b)"),
    "Lambda": ("lambda is not supported inside a kernel", None),
    "ListComp": ("list comprehensions are not supported", None),
    "SetComp": ("set comprehensions are not supported", None),
    "DictComp": ("dict comprehensions are not supported", None),
    "GeneratorExp": ("generator expressions are not supported", None),
    "JoinedStr": ("f-strings are not supported", None),
    "FormattedValue": ("f-strings are not supported", None),
    "NamedExpr": ("assignment expressions ':=' are not supported", "assign in a statement of its own"),
    "Await": ("await is not supported in a kernel", None),
    "Yield": ("yield is not supported in a kernel", None),
    "YieldFrom": ("yield is not supported in a kernel", None),
    "Starred": ("starred expressions '*x' are not supported", None),
    "Dict": ("dicts are not supported in a kernel", None),
    "Set": ("sets are not supported in a kernel", None),
    "Slice": ("a slice is only valid inside an index x[a:b]", None),
    "List": ("a list is only valid as a call argument (a shape such as [BM, BN])", None),
    "Tuple": ("a tuple is only valid as a call argument (a shape such as (BM, BN))", None),
}


_PY_TYPE_HINTS = {"int": "vm.int32", "float": "vm.float32", "bool": "vm.uint1 (bool is uint1)"}

_KNOWN_BUILTINS = frozenset(BUILTIN_DOCS) | {"load", "block"}


class Translator:
    """Python ast -> .vm AST for one piece of source (a function body, a grid lambda, annotations).

    ``names``: the kernel's own names. ``mode``: ``"body"`` (kernel names first, then Python scope),
    ``"python"`` (Python scope only: parameter defaults and decorator values, which Python evaluated in
    the enclosing scope) or ``"dims"`` (annotation dimensions: kernel names, Python int constants inlined,
    any other unknown name is a size symbol).
    """

    def __init__(self, sf: SourceFile, scope: Scope, names=frozenset(), mode: str = "body",
                 consts=frozenset()):
        self.sf = sf
        self.scope = scope
        self.names = set(names)
        self.consts = set(consts)
        self.mode = mode
        self.depth = 0

    # ------------------------------------------------------------------------------------- helpers
    def err(self, message, node, hint=None, cls=VMSyntaxError, width=None):
        return self.sf.error(message, node, hint, cls, width)

    def loc(self, node, width=None) -> SourceLoc:
        return self.sf.loc(node, width)

    def span(self, first, last) -> SourceLoc:
        a, b = self.loc(first), self.loc(last)
        end = b.end_column if a.line == b.line and getattr(last, "end_lineno", None) == a.line else None
        return SourceLoc(a.file, a.line, a.column, end)

    def between(self, left, right, pattern: str, fallback) -> SourceLoc:
        """The location of an operator (regex ``pattern``) written between two nodes on one line."""
        line = getattr(left, "end_lineno", None)
        if line is not None and line == getattr(right, "lineno", None) and 1 <= line <= len(self.sf.lines):
            c0 = self.sf.char_col(line, left.end_col_offset)
            c1 = self.sf.char_col(line, right.col_offset)
            m = re.search(pattern, self.sf.lines[line - 1][c0:c1])
            if m:
                return SourceLoc(self.sf.filename, line, c0 + m.start() + 1, c0 + m.end() + 1)
        return fallback if isinstance(fallback, SourceLoc) else self.loc(fallback)

    def kernel_name(self, name: str) -> bool:
        return self.mode != "python" and name in self.names

    # ------------------------------------------------------------------------------------- names
    def resolve_name(self, node: ast.Name):
        obj = self.scope.lookup(node.id)
        kind, val = classify(obj)
        return kind, val, node.id

    def resolve(self, node):
        """(kind, value, spelling) of a Name or a dotted Attribute chain that is not a kernel name."""
        if isinstance(node, ast.Name):
            if self.kernel_name(node.id):
                raise self.err(f"{node.id} is a kernel variable, not a Python object", node)
            return self.resolve_name(node)
        if not isinstance(node, ast.Attribute):
            raise self.err("attribute access is only supported on modules (vm.cast, vm.f16) and on "
                           "vm.block (vm.block.x)", node)
        base = node.value
        if isinstance(base, ast.Name) and self.kernel_name(base.id):
            raise self.err(f"attribute access on kernel variable {base.id} (.{node.attr}) is not supported",
                           node, hint="the only attributes in a kernel are vm.<name> and vm.block.x/.y/.z")
        if isinstance(base, (ast.Name, ast.Attribute)):
            kind, val, spelled = self.resolve(base)
        else:
            raise self.err(f"attribute access .{node.attr} is not supported here", node,
                           hint="the only attributes in a kernel are vm.<name> and vm.block.x/.y/.z")
        attr = node.attr
        if kind == "missing":
            raise self.undefined(spelled, base)
        if kind == "module":
            d = val.__dict__
            if is_vmlang(val) and attr == "load":
                return "builtin", "load", attr
            if attr in d:
                k, v = classify(d[attr])
                return k, v, attr
            if is_vmlang(val) and attr in _KNOWN_BUILTINS:
                return "builtin", attr, attr
            raise self.err(f"module {d.get('__name__', spelled)} has no attribute {attr!r}", node)
        if kind == "builtin" and val == "block":
            if attr in ("x", "y", "z"):
                return "builtin", f"block.{attr}", attr
            raise self.err(f"vm.block has no attribute {attr!r} (use x, y or z)", node)
        what = f"vm.{val}" if kind == "builtin" else spelled if kind == "dtype" else describe(val)
        raise self.err(f"attribute access .{attr} on {what} is not supported", node,
                       hint="the only attributes in a kernel are vm.<name> and vm.block.x/.y/.z")

    def undefined(self, name: str, node):
        hint = None
        if name in _KNOWN_BUILTINS:
            hint = f"write vm.{name} (with import vmlang as vm)"
        else:
            try:
                D.dtype(name)
                hint = f"write vm.{name} (with import vmlang as vm)"
            except VMError:
                pass
        return self.err(f"name {name!r} is not defined", node, hint=hint)

    def dtype_name(self, dt: D.DType, spelled: Optional[str], node) -> str:
        for cand in (spelled, dt.name):
            if cand:
                try:
                    if D.dtype(cand) == dt:
                        return cand
                except VMError:
                    pass
        raise self.err(f"dtype {dt!r} is not a named vmlang dtype; only named dtypes can be used in a kernel",
                       node, cls=VMTypeError)

    def literal(self, value, node):
        loc = self.loc(node)
        if isinstance(value, bool):
            return A.Bool(value, loc=loc)
        if isinstance(value, int):
            lit = A.Int(abs(value), loc=loc)
            return A.UnaryOp("-", lit, loc=loc) if value < 0 else lit
        if not math.isfinite(value):
            raise self.err(f"the float {value!r} cannot be used in a kernel (there are no inf/nan literals)",
                           node, cls=VMTypeError)
        lit = A.Float(abs(value), loc=loc)
        return A.UnaryOp("-", lit, loc=loc) if math.copysign(1.0, value) < 0 else lit

    def value_of(self, kind, val, spelled, node):
        """The meaning of a resolved Python object used as a value."""
        if kind == "const":
            return self.literal(val, node)
        if kind == "dtype":
            return A.Name(self.dtype_name(val, spelled, node), loc=self.loc(node))
        if kind == "builtin":
            if val.startswith("block."):
                loc = self.loc(node)
                return A.Attr(A.Name("block", loc=loc), val[6:], loc=loc)
            if val == "block":
                raise self.err("vm.block is not a value: use vm.block.x, vm.block.y or vm.block.z", node)
            raise self.err(f"vm.{val} is a function: call it", node)
        if kind == "missing":
            raise self.undefined(spelled, node)
        if kind == "constexpr":
            raise self.err("vm.constexpr is only valid as the annotation of a kernel parameter", node)
        if kind == "module":
            raise self.err(f"module {spelled} is not a value", node)
        if kind == "pybuiltin":
            raise self.err(f"{val} is a function: call it" if val != "range" else
                           "range() is only valid as the iterable of a for loop", node)
        hint = None
        if isinstance(val, (list, tuple, np.ndarray)):
            hint = "pass arrays as tensor parameters, and numbers as vm.constexpr parameters or constants"
        elif isinstance(val, str):
            hint = "strings are only valid as type annotations"
        elif callable(val):
            hint = "a kernel can only call vm builtins"
        raise self.err(f"{spelled} is {describe(val)}; a kernel can only use ints, floats, bools, dtypes "
                       f"and vm builtins from Python", node, hint=hint, cls=VMTypeError)

    # ------------------------------------------------------------------------------------- expressions
    def expr(self, node):
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.err(f"expression nested too deeply (more than {MAX_NESTING} levels)", node,
                               hint="split it into several statements")
            method = getattr(self, "x_" + type(node).__name__, None)
            if method is None:
                msg, hint = _UNSUPPORTED_EXPR.get(type(node).__name__,
                                                  (f"{type(node).__name__} expressions are not supported", None))
                raise self.err(msg, node, hint=hint)
            return method(node)
        finally:
            self.depth -= 1

    def x_Name(self, node: ast.Name):
        if self.kernel_name(node.id):
            return A.Name(node.id, loc=self.loc(node))
        kind, val, spelled = self.resolve_name(node)
        if self.mode == "dims":
            if kind == "missing":
                return A.Name(node.id, loc=self.loc(node))   # a size symbol
            if kind == "const" and type(val) is int:
                return self.literal(val, node)
        return self.value_of(kind, val, spelled, node)

    def x_Attribute(self, node: ast.Attribute):
        kind, val, spelled = self.resolve(node)
        if kind == "missing":
            raise self.undefined(spelled, node)
        return self.value_of(kind, val, spelled, node)

    def x_Constant(self, node: ast.Constant):
        v = node.value
        if isinstance(v, (bool, int, float)):
            return self.literal(v, node)
        if v is None:
            raise self.err("None is only allowed as an index item, where it inserts a new axis", node,
                           hint="as in xt[:, None]")
        if isinstance(v, str):
            raise self.err("strings are only valid as type annotations", node)
        if v is Ellipsis:
            raise self.err("'...' is not supported in a kernel", node)
        raise self.err(f"{type(v).__name__} literals are not supported in a kernel", node)

    def x_BinOp(self, node: ast.BinOp):
        bad = BAD_BINOPS.get(type(node.op))
        if bad is not None:
            text, msg, hint = bad
            raise self.err(msg, self.between(node.left, node.right, re.escape(text), node), hint=hint)
        op = BINOPS[type(node.op)]
        return A.BinOp(op, self.expr(node.left), self.expr(node.right), loc=self.loc(node))

    def x_UnaryOp(self, node: ast.UnaryOp):
        if isinstance(node.op, ast.UAdd):
            raise self.err("unary '+' is only valid after ':' in a slice, as in x[a:+n]", self.loc(node, 1),
                           hint="drop the '+'")
        op = {ast.USub: "-", ast.Invert: "~", ast.Not: "not"}[type(node.op)]
        return A.UnaryOp(op, self.expr(node.operand), loc=self.loc(node))

    def x_BoolOp(self, node: ast.BoolOp):
        op = "and" if isinstance(node.op, ast.And) else "or"
        first = node.values[0]
        left = self.expr(first)
        for v in node.values[1:]:
            left = A.BinOp(op, left, self.expr(v), loc=self.span(first, v))
        return left

    def x_Compare(self, node: ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _BAD_CMPOPS:
                text, hint = _BAD_CMPOPS[type(op)]
                left = node.left if i == 0 else node.comparators[i - 1]
                where = self.between(left, node.comparators[i], r"\bis\s+not\b|\bnot\s+in\b|\bis\b|\bin\b", node)
                raise self.err(f"'{text}' is not supported in a kernel", where, hint=hint)
        if len(node.ops) > 1:
            where = self.between(node.comparators[0], node.comparators[1], r"==|!=|<=|>=|<|>", node)
            raise self.err("comparison operators cannot be chained", where,
                           hint="write 'a < b and b < c'")
        return A.BinOp(_CMPOPS[type(node.ops[0])], self.expr(node.left), self.expr(node.comparators[0]),
                       loc=self.loc(node))

    def callee(self, func) -> str:
        if isinstance(func, ast.Name) and self.kernel_name(func.id):
            raise self.err(f"{func.id} is a kernel variable, not a function", func)
        if not isinstance(func, (ast.Name, ast.Attribute)):
            raise self.err("only vm builtins can be called (vm.cast(...), vm.load(...), ...)", func)
        kind, val, spelled = self.resolve(func)
        if kind == "builtin":
            if val == "block" or val.startswith("block."):
                raise self.err(f"vm.{val} is not a function", func)
            return val
        if kind == "pybuiltin":
            return val
        if kind == "missing":
            raise self.undefined(spelled, func)
        if kind == "dtype":
            raise self.err(f"a dtype cannot be called: use vm.cast(x, vm.{spelled})", func, cls=VMTypeError)
        if kind == "other" and isinstance(val, types.BuiltinFunctionType | type) and \
                getattr(_py_builtins, getattr(val, "__name__", ""), None) is val:
            hint = {"int": "use vm.cast(x, vm.int32)", "float": "use vm.cast(x, vm.float32)",
                    "print": "kernels cannot print", "len": "sizes are the names in the annotations",
                    "pow": "multiply, or use vm.exp2 / vm.log"}.get(val.__name__)
            raise self.err(f"the Python builtin {val.__name__}() is not available in a kernel", func, hint=hint)
        raise self.err(f"{spelled} is {describe(val)} and cannot be called in a kernel" if kind == "other"
                       else f"{spelled} cannot be called", func,
                       hint="a kernel can only call vm builtins (vm.cast, vm.load, ...)")

    def arg(self, a):
        if isinstance(a, (ast.List, ast.Tuple)):
            return A.ListExpr(tuple(self.expr(e) for e in a.elts), loc=self.loc(a))
        if isinstance(a, ast.Starred):
            raise self.err("'*' unpacking of arguments is not supported", a)
        return self.expr(a)

    def x_Call(self, node: ast.Call):
        name = self.callee(node.func)
        if name == "range":
            raise self.err("range() is only valid as the iterable of a for loop", node)
        args = tuple(self.arg(a) for a in node.args)
        kws = []
        for kw in node.keywords:
            if kw.arg is None:
                raise self.err("'**' unpacking of keyword arguments is not supported", kw)
            kws.append(A.Keyword(kw.arg, self.arg(kw.value), loc=self.loc(kw)))
        return A.Call(name, args, tuple(kws), loc=self.loc(node))

    def x_Subscript(self, node: ast.Subscript):
        value = self.expr(node.value)
        sl = node.slice
        items = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        if not items:
            raise self.err("an index needs at least one item", sl)
        return A.Index(value, tuple(self.index_item(i) for i in items), loc=self.loc(node))

    def index_item(self, it):
        if isinstance(it, ast.Slice):
            if it.step is not None:
                raise self.err("slice steps are not supported", it.step,
                               hint="an index item is start:stop, start:+length or a single position")
            start = self.expr(it.lower) if it.lower is not None else None
            up = it.upper
            length = strip_unary_plus(up) if up is not None else None
            if length is not None:  # x[a:+n]: Python reads '+n * 2' as '(+n) * 2'; the length is 'n * 2'
                return A.Slice(start, None, self.expr(length), loc=self.loc(it))
            stop = self.expr(up) if up is not None else None
            return A.Slice(start, stop, None, loc=self.loc(it))
        if isinstance(it, ast.Constant) and it.value is None:
            return A.NewAxis(loc=self.loc(it))
        if isinstance(it, ast.Starred):
            raise self.err("'*' unpacking in an index is not supported", it)
        return A.Point(self.expr(it), loc=self.loc(it))

    # ------------------------------------------------------------------------------------- types
    def is_constexpr(self, node) -> bool:
        """Whether an annotation is vm.constexpr (never raises)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.strip() in ("constexpr", "vm.constexpr", "vmlang.constexpr")
        if isinstance(node, (ast.Name, ast.Attribute)):
            saved, self.mode = self.mode, "python"
            try:
                return self.resolve(node)[0] == "constexpr"
            except VMError:
                return False
            finally:
                self.mode = saved
        return False

    def type_annot(self, node):
        """A parameter or variable annotation -> A.TypeAnnot, or CONSTEXPR."""
        if self.is_constexpr(node):
            return CONSTEXPR
        loc = self.loc(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.type_string(node)
        if isinstance(node, ast.Subscript):
            dtype = self.dtype_of(node.value)
            sl = node.slice
            items = sl.elts if isinstance(sl, ast.Tuple) else [sl]
            return A.TypeAnnot(dtype, tuple(self.dim(d) for d in items), loc=loc)
        return A.TypeAnnot(self.dtype_of(node), loc=loc)

    def dtype_of(self, node) -> str:
        """The dtype part of an annotation: a dtype object or a dtype-valued constexpr name."""
        if isinstance(node, ast.Name) and node.id in self.consts:
            return node.id
        if isinstance(node, ast.Name) and node.id in self.names:
            raise self.err(f"{node.id} is not a dtype", node, cls=VMTypeError,
                           hint="a dtype in an annotation is vm.<dtype> or a vm.constexpr parameter")
        if isinstance(node, (ast.Name, ast.Attribute)):
            saved, self.mode = self.mode, "python"
            try:
                kind, val, spelled = self.resolve(node)
            finally:
                self.mode = saved
            if kind == "dtype":
                return self.dtype_name(val, spelled, node)
            if kind == "missing":
                raise self.undefined(spelled, node)
            if kind == "constexpr":
                raise self.err("vm.constexpr takes no dimensions", node, cls=VMTypeError)
            hint = "write vm.f16['M', 'K'] for a tensor, vm.int32 for a scalar, vm.constexpr for a constant"
            if isinstance(val, type) and val.__name__ in _PY_TYPE_HINTS:
                hint = f"write {_PY_TYPE_HINTS[val.__name__]}"
            what = f"vm.{val}" if kind == "builtin" else describe(val) if kind == "other" else spelled
            raise self.err(f"annotation {spelled} is not a vmlang dtype (it is {what})"
                           if kind == "other" else f"annotation {spelled} is not a vmlang dtype",
                           node, cls=VMTypeError, hint=hint)
        raise self.err("expected a dtype annotation such as vm.f16['M', 'K'], vm.int32 or vm.constexpr", node,
                       cls=VMTypeError)

    def dim(self, node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.string_expr(node, node.value, 0)
        saved, self.mode = self.mode, "dims"
        try:
            return self.expr(node)
        finally:
            self.mode = saved

    def string_expr(self, node: ast.Constant, text: str, offset: int):
        """Parse ``text`` (which stands at ``offset`` in the string literal ``node``) as a .vm expression."""
        smap = StringMap(self.sf, node)
        move = smap.mapper(offset)
        try:
            e = parse_expr(text, self.sf.filename)
        except VMSyntaxError as e:
            raise VMSyntaxError(in_string(e.message), loc=move(e.loc) if e.loc else smap.whole, source=self.sf.text,
                                hint=e.hint) from None
        return relocate(e, move)

    def string_exprs(self, node: ast.Constant) -> tuple:
        """A string of comma-separated .vm expressions (``"cdiv(N, BN), M"``)."""
        pieces = split_commas(node.value)
        if isinstance(pieces, int):
            raise self.err("empty expression in a comma-separated list", StringMap(self.sf, node).loc(pieces))
        return tuple(self.string_expr(node, node.value[a:b], a) for a, b in pieces)

    def type_string(self, node: ast.Constant) -> A.TypeAnnot:
        """``"f16[M, K]"``, ``"f32[128] shared"``, ``'f32[8] register layout("(8):(1)")'``, ``"T[K, N]"``."""
        text = node.value
        smap = StringMap(self.sf, node)
        end = len(text)
        layout = layout_loc = space = None
        m = re.search(r'\blayout\s*\(\s*"([^"\n]*)"\s*\)\s*$', text)
        if m:
            layout, layout_loc, end = m.group(1), smap.loc(m.start(1) - 1, m.end(1) + 1), m.start()
        m = re.search(r'(?:^|\s)(global|shared|register)\s*$', text[:end])
        if m:
            space, end = m.group(1), m.start(1)
        core = text[:end].strip()
        if not core:
            if space is None and layout is None:
                raise self.err("empty type annotation", node, cls=VMTypeError)
            return A.TypeAnnot(None, None, space, layout, layout_loc, loc=smap.loc(0, len(text)))
        off = text.index(core)
        e = self.string_expr(node, core, off)
        loc = smap.loc(off, len(text.rstrip()))
        if isinstance(e, A.Name):
            return A.TypeAnnot(e.id, None, space, layout, layout_loc, loc=loc)
        if isinstance(e, A.Index) and isinstance(e.value, A.Name):
            dims = []
            for it in e.items:
                if not isinstance(it, A.Point):
                    raise VMSyntaxError("a dimension is a size expression, not a slice or None", loc=it.loc,
                                        source=self.sf.text)
                dims.append(it.index)
            return A.TypeAnnot(e.value.id, tuple(dims), space, layout, layout_loc, loc=loc)
        raise VMSyntaxError(f"expected a type such as \"f16[M, K]\" or \"f32[128] shared\", got {text!r}",
                            loc=smap.whole, source=self.sf.text)
