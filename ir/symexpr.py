"""Symbolic sizes: the shapes of global tensors, e.g. ``f16[M, K / G]``.

A dimension is a small expression over size symbols (bound at launch from argument shapes) and
integer constants (compile-time parameters are substituted before the IR is built).

>>> d = SymOp("/", SymVar("K"), SymConst(128))
>>> str(d), d.evaluate({"K": 4096}), d.symbols()
('K / 128', 32, {'K'})
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import VMTypeError

_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: _trunc_div(a, b),
    "%": lambda a, b: a - b * _trunc_div(a, b),
    "cdiv": lambda a, b: _trunc_div(a + b - 1, b),
    "min": min,
    "max": max,
}
_FUNCS = ("cdiv", "min", "max")
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2, "cdiv": 3, "min": 3, "max": 3}


def _trunc_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in a shape expression")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


class SymExpr:
    __slots__ = ()
    prec = 3

    def evaluate(self, env: dict[str, int]) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def symbols(self) -> set[str]:
        return set()


@dataclass(frozen=True, slots=True)
class SymConst(SymExpr):
    value: int

    def evaluate(self, env):
        return self.value

    def __str__(self):
        return str(self.value)


@dataclass(frozen=True, slots=True)
class SymVar(SymExpr):
    name: str

    def evaluate(self, env):
        try:
            return env[self.name]
        except KeyError:
            raise VMTypeError(f"size symbol {self.name} is not bound") from None

    def symbols(self):
        return {self.name}

    def __str__(self):
        return self.name


@dataclass(frozen=True, slots=True)
class SymOp(SymExpr):
    op: str
    left: SymExpr
    right: SymExpr

    def __post_init__(self):
        if self.op not in _OPS:
            raise VMTypeError(f"operator {self.op!r} is not allowed in a shape expression (use + - * / %, cdiv, min, max)")

    @property
    def prec(self):  # type: ignore[override]
        return _PREC[self.op]

    def evaluate(self, env):
        return _OPS[self.op](self.left.evaluate(env), self.right.evaluate(env))

    def symbols(self):
        return self.left.symbols() | self.right.symbols()

    def __str__(self):
        if self.op in _FUNCS:
            return f"{self.op}({self.left}, {self.right})"
        ls = str(self.left) if self.left.prec >= self.prec else f"({self.left})"
        rs = str(self.right) if self.right.prec > self.prec else f"({self.right})"
        return f"{ls} {self.op} {rs}"


def sym_binop(op: str, a: SymExpr, b: SymExpr) -> SymExpr:
    """Build ``a op b``, folding constants."""
    if isinstance(a, SymConst) and isinstance(b, SymConst):
        return SymConst(_OPS[op](a.value, b.value))
    return SymOp(op, a, b)
