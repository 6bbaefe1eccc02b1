"""IR nodes, the base: :class:`Value`, :class:`Instr`, :class:`Block`, the index items of loads and stores
(:class:`At`, :class:`Range`) and the leaf instructions. :mod:`vmlang.ir.nodes` re-exports every node."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from . import dtypes as D
from .errors import SourceLoc, VMTypeError
from .types import INDEX, GlobalType, ScalarType, TileType, Type


@dataclass(frozen=True, slots=True)
class Value:
    """An SSA value: a unique id, a type and a name hint (from the source, for printing)."""
    id: int
    type: Type
    name: str = field(default="", compare=False)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.type, ScalarType)

    @property
    def is_tile(self) -> bool:
        return isinstance(self.type, TileType)

    @property
    def is_global(self) -> bool:
        return isinstance(self.type, GlobalType)

    @property
    def dtype(self) -> D.DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape


def _fail(loc, msg):
    raise VMTypeError(msg, loc)


def _need(cond: bool, loc, msg: str):
    if not cond:
        _fail(loc, msg)


def _desc(v: Value) -> str:
    return str(v.type)


def _elementwise_shape(loc, *xs: Value):
    shapes = {x.shape for x in xs if x.is_tile}
    _need(all(x.is_tile or x.is_scalar for x in xs), loc, "elementwise operands are tiles or scalars")
    _need(len(shapes) <= 1, loc,
          "elementwise operands must have one shape (broadcast first): " + ", ".join(_desc(x) for x in xs))
    return shapes.pop() if shapes else ()


def _result_like(out: Value, shape, dtype, loc, what: str):
    if shape:
        _need(out.is_tile and out.shape == shape, loc, f"{what} result must be a tile of shape {shape}")
    else:
        _need(out.is_scalar, loc, f"{what} of scalars is a scalar")
    _need(out.dtype == dtype, loc, f"{what} result dtype must be {dtype}, not {out.dtype}")


@dataclass(frozen=True, slots=True)
class Instr:
    """Base of every instruction. ``results`` are the values it defines; ``operands`` those it uses."""
    loc: Optional[SourceLoc] = field(default=None, compare=False, kw_only=True)

    @property
    def results(self) -> tuple[Value, ...]:
        out = getattr(self, "out", None)
        return (out,) if out is not None else ()

    @property
    def operands(self) -> tuple[Value, ...]:
        vals = []
        for name in self.__dataclass_fields__:
            if name in ("out", "loc"):
                continue
            x = getattr(self, name)
            if isinstance(x, Value):
                vals.append(x)
            elif isinstance(x, tuple):
                for y in x:
                    if isinstance(y, Value):
                        vals.append(y)
                    elif isinstance(y, IndexItem):
                        vals.extend(y.values())
        return tuple(vals)

    def blocks(self) -> tuple["Block", ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Block:
    instrs: tuple[Instr, ...]


# ------------------------------------------------------------------------------------------ leaves
@dataclass(frozen=True, slots=True)
class Const(Instr):
    """``out = value``: a scalar constant of ``out``'s dtype (exactly representable)."""
    out: Value
    value: Union[int, float, bool]

    def __post_init__(self):
        _need(self.out.is_scalar, self.loc, "a constant is a scalar")


@dataclass(frozen=True, slots=True)
class BlockIdx(Instr):
    """``out = block.{x,y,z}``: this block's index along grid axis 0, 1 or 2 (int32)."""
    out: Value
    axis: int

    def __post_init__(self):
        _need(self.axis in (0, 1, 2), self.loc, "block index axis is 0, 1 or 2 (x, y, z)")
        _need(self.out.type == ScalarType(INDEX), self.loc, "block index is an int32 scalar")


@dataclass(frozen=True, slots=True)
class SizeOf(Instr):
    """``out = <size symbol>``: the launch-time value of a size symbol (int32 scalar)."""
    out: Value
    symbol: str

    def __post_init__(self):
        _need(self.out.type == ScalarType(INDEX), self.loc, "a size is an int32 scalar")


# ------------------------------------------------------------------------------------------ index items
class IndexItem:
    __slots__ = ()

    def values(self) -> tuple[Value, ...]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class At(IndexItem):
    """Select position ``index`` of an axis and drop the axis."""
    index: Value

    def values(self):
        return (self.index,)


@dataclass(frozen=True, slots=True)
class Range(IndexItem):
    """Select ``length`` (static) consecutive positions starting at ``start`` and keep the axis."""
    start: Value
    length: int

    def values(self):
        return (self.start,)
