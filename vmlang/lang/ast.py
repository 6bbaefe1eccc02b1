"""The abstract syntax tree of the .vm language.

Every node is a frozen dataclass carrying ``loc`` (a :class:`vmlang.ir.errors.SourceLoc` of its first
token) so that every later error can point at the source. The AST says only what was written; names,
types and shapes are resolved when it is lowered to the IR (:mod:`vmlang.lang.lower`).

Operators are kept as their source spelling (``"+"``, ``"<<"``, ``"and"``, ``"not"``, ``"-"`` unary, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from vmlang.ir.errors import SourceLoc


@dataclass(frozen=True)
class Node:
    loc: SourceLoc = field(compare=False, repr=False, kw_only=True)


# ------------------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Int(Node):
    value: int


@dataclass(frozen=True)
class Float(Node):
    value: float


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Attr(Node):
    """``value.attr``, e.g. ``block.x``."""
    value: "Expr"
    attr: str


@dataclass(frozen=True)
class BinOp(Node):
    """Arithmetic, bitwise, shift, comparison and logical (``and``/``or``) binary operators."""
    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class UnaryOp(Node):
    """``-x``, ``~x``, ``not x``."""
    op: str
    operand: "Expr"


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: "Expr"


@dataclass(frozen=True)
class Call(Node):
    """``func(args..., name=value...)``; ``func`` is a plain name (builtins: load, cast, sum, ...)."""
    func: str
    args: tuple["Expr", ...]
    kwargs: tuple[Keyword, ...] = ()


@dataclass(frozen=True)
class ListExpr(Node):
    """``[a, b, c]`` (shapes, permutations)."""
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Point(Node):
    """An index item that selects one position and drops the axis: ``x[i]``."""
    index: "Expr"


@dataclass(frozen=True)
class Slice(Node):
    """An index item that keeps the axis.

    ``a : +n`` -> ``Slice(start=a, length=n)``; ``a : b`` -> ``Slice(start=a, stop=b)``;
    ``:`` -> ``Slice()`` (the whole axis); ``a :`` and ``: b`` leave the other bound None.
    """
    start: Optional["Expr"] = None
    stop: Optional["Expr"] = None
    length: Optional["Expr"] = None


@dataclass(frozen=True)
class NewAxis(Node):
    """``None`` in an index: insert an axis of size 1 (``xt[:, None]``)."""


IndexItem = Union[Point, Slice, NewAxis]


@dataclass(frozen=True)
class Index(Node):
    """``value[item, item, ...]``."""
    value: "Expr"
    items: tuple[IndexItem, ...]


Expr = Union[Name, Int, Float, Bool, Attr, BinOp, UnaryOp, Call, ListExpr, Index]


# ------------------------------------------------------------------------------------- types
@dataclass(frozen=True)
class TypeAnnot(Node):
    """A type as written in a parameter or a variable annotation; every part is optional.

    ``f16[M, K] global`` -> dtype="f16", dims=(Name M, Name K), space="global";
    ``int32`` -> dtype="int32", dims=None (a scalar);
    ``f32[128] register layout("(32,4):(1,32)")`` -> also space and layout text;
    ``shared`` alone -> only space.
    """
    dtype: Optional[str] = None
    dims: Optional[tuple["Expr", ...]] = None
    space: Optional[str] = None          # "global" | "shared" | "register"
    layout: Optional[str] = None         # layout text, parsed by vmlang.ir.layout.Layout.parse
    layout_loc: Optional[SourceLoc] = field(default=None, compare=False, repr=False)


# ------------------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class Assign(Node):
    """``name = value;`` or ``name: annot = value;``."""
    target: str
    value: Expr
    annot: Optional[TypeAnnot] = None


@dataclass(frozen=True)
class AugAssign(Node):
    """``name op= value;`` for op in + - * / % & | ^ << >>."""
    target: str
    op: str
    value: Expr


@dataclass(frozen=True)
class ExprStmt(Node):
    """A call used as a statement: ``store(...)``, ``atomic_add(...)``, ``assume(...)``, ``barrier()``, ``print(...)``."""
    expr: Call


@dataclass(frozen=True)
class For(Node):
    """``for var in range(start, stop[, step]) { body }`` (``range(stop)`` gives start Int(0))."""
    var: str
    start: Expr
    stop: Expr
    step: Optional[Expr]
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class If(Node):
    """``if cond { ... } else { ... }``; ``else if`` nests an If in ``orelse``."""
    cond: Expr
    then: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...] = ()


Stmt = Union[Assign, AugAssign, ExprStmt, For, If]


# ------------------------------------------------------------------------------------- kernel
@dataclass(frozen=True)
class ConstParam(Node):
    """A compile-time parameter ``<NAME = default>`` (default may be None: must be given)."""
    name: str
    default: Optional[Expr] = None


@dataclass(frozen=True)
class Param(Node):
    """``name: type``: a global tensor (``dims`` given) or a scalar (``dims`` None)."""
    name: str
    type: TypeAnnot


@dataclass(frozen=True)
class Kernel(Node):
    name: str
    consts: tuple[ConstParam, ...]
    params: tuple[Param, ...]
    grid: tuple[Expr, ...]
    warps: Optional[Expr]
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Module(Node):
    """A .vm file: one or more kernels."""
    kernels: tuple[Kernel, ...]
    source: str = field(default="", compare=False, repr=False)
    filename: str = field(default="<string>", compare=False, repr=False)
