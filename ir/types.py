"""IR value types: block-uniform scalars, tiles (register/shared/auto) and global tensors.

Type rules are data: which dtypes may take part in arithmetic (``COMPUTE``), and how two dtypes
promote (:func:`promote`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from . import dtypes as D
from .dtypes import DType
from .errors import VMTypeError
from .symexpr import SymExpr

GLOBAL, SHARED, REGISTER, AUTO = "global", "shared", "register", "auto"
TILE_SPACES = (REGISTER, SHARED, AUTO)

#: ``bool`` is ``uint1``: comparisons produce it, ``where`` and ``if`` consume it.
BOOL = D.uint1
INDEX = D.int32

#: dtypes that arithmetic accepts directly; every other dtype is a storage type: load, store, view,
#: cast, lookup and where move it, and arithmetic needs a cast first.
FLOAT_COMPUTE = (D.float16, D.bfloat16, D.float32)
INT_COMPUTE = (D.int8, D.int16, D.int32, D.uint8, D.uint16, D.uint32)
COMPUTE = FLOAT_COMPUTE + INT_COMPUTE


def is_compute(dt: DType) -> bool:
    return dt in COMPUTE


def promote(a: DType, b: DType) -> DType:
    """The dtype two compute dtypes meet in.

    floats beat ints; the wider float wins, and ``float16`` with ``bfloat16`` meet in ``float32``;
    between ints the wider wins, and at equal width a signed type wins.

    >>> promote(D.float16, D.float32).name, promote(D.float16, D.bfloat16).name, promote(D.int8, D.uint8).name
    ('float32', 'float32', 'int8')
    """
    if a == b:
        return a
    if a.is_float and b.is_float:
        if a.nbits == b.nbits:
            return D.float32
        return a if a.nbits > b.nbits else b
    if a.is_float:
        return a
    if b.is_float:
        return b
    if a.nbits != b.nbits:
        return a if a.nbits > b.nbits else b
    return a if a.is_signed else b


@dataclass(frozen=True, slots=True)
class ScalarType:
    """A block-uniform scalar (sizes, offsets, loop indices, block.x, scalar parameters)."""
    dtype: DType

    @property
    def shape(self) -> tuple:
        return ()

    def __str__(self) -> str:
        return self.dtype.name


@dataclass(frozen=True, slots=True)
class TileType:
    """A tile with a static shape in register or shared memory (``auto``: the compiler chooses).

    ``layout`` is a :class:`vmlang.ir.layout.Layout` (thread-value layout for register tiles, memory
    layout for shared tiles) or None until layout inference assigns one.
    """
    dtype: DType
    shape: tuple[int, ...]
    space: str = AUTO
    layout: Optional[object] = None

    def __post_init__(self):
        if self.space not in TILE_SPACES:
            raise VMTypeError(f"a tile lives in {', '.join(TILE_SPACES)} memory, not {self.space!r}")
        if not self.shape or any((not isinstance(d, int)) or d < 1 for d in self.shape):
            raise VMTypeError(f"a tile shape is a non-empty tuple of positive integers, got {self.shape}")

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_(self, **kw) -> "TileType":
        f = {"dtype": self.dtype, "shape": self.shape, "space": self.space, "layout": self.layout}
        f.update(kw)
        return TileType(**f)

    def __str__(self) -> str:
        s = f"{self.dtype.name}[{', '.join(map(str, self.shape))}]"
        if self.space != AUTO:
            s += f" {self.space}"
        if self.layout is not None:
            s += f' layout("{self.layout}")'
        return s


@dataclass(frozen=True, slots=True)
class GlobalType:
    """A kernel argument in global memory: dtype and symbolic shape (row-major, packed last axis)."""
    dtype: DType
    dims: tuple[SymExpr, ...]

    @property
    def shape(self) -> tuple:
        return self.dims

    def __str__(self) -> str:
        return f"{self.dtype.name}[{', '.join(map(str, self.dims))}] global"


Type = Union[ScalarType, TileType, GlobalType]
