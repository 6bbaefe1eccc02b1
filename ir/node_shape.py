"""IR nodes: shape instructions (broadcast, expand_dims, reshape, permute, convert_layout), reductions
and ``dot``. :mod:`vmlang.ir.nodes` re-exports them."""
from __future__ import annotations

from dataclasses import dataclass

from . import dtypes as D
from .types import is_compute
from .node_base import Value, Instr, _need, _desc, _result_like


# ------------------------------------------------------------------------------------------ shapes
@dataclass(frozen=True, slots=True)
class Broadcast(Instr):
    """``out = x`` repeated along its size-1 axes to out's shape (same rank); a scalar x fills the tile."""
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.out.is_tile and self.out.dtype == self.x.dtype, self.loc, "broadcast keeps the dtype")
        if self.x.is_tile:
            xs, os_ = self.x.shape, self.out.shape
            _need(len(xs) == len(os_) and all(a in (1, b) for a, b in zip(xs, os_)), self.loc,
                  f"cannot broadcast shape {list(xs)} to {list(os_)}")


@dataclass(frozen=True, slots=True)
class ExpandDims(Instr):
    """``out = x`` with a new axis of size 1 inserted at position ``axis``."""
    out: Value
    x: Value
    axis: int

    def __post_init__(self):
        _need(self.x.is_tile, self.loc, "expand_dims needs a tile")
        s = list(self.x.shape)
        _need(0 <= self.axis <= len(s), self.loc, f"axis {self.axis} out of range")
        s.insert(self.axis, 1)
        _need(self.out.is_tile and self.out.shape == tuple(s) and self.out.dtype == self.x.dtype, self.loc,
              "expand_dims result type")


@dataclass(frozen=True, slots=True)
class Reshape(Instr):
    """``out = x`` with the same elements in row-major order and a new shape."""
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.x.is_tile and self.out.is_tile and self.out.dtype == self.x.dtype, self.loc,
              "reshape keeps the dtype")
        _need(self.x.type.numel == self.out.type.numel, self.loc,
              f"cannot reshape {list(self.x.shape)} ({self.x.type.numel} elements) to "
              f"{list(self.out.shape)} ({self.out.type.numel} elements)")


@dataclass(frozen=True, slots=True)
class Permute(Instr):
    """``out = x`` with axes reordered: ``out.shape[i] == x.shape[perm[i]]``."""
    out: Value
    x: Value
    perm: tuple[int, ...]

    def __post_init__(self):
        _need(self.x.is_tile, self.loc, "permute needs a tile")
        _need(sorted(self.perm) == list(range(len(self.x.shape))), self.loc,
              f"{list(self.perm)} is not a permutation of the {len(self.x.shape)} axes")
        _need(self.out.shape == tuple(self.x.shape[p] for p in self.perm) and self.out.dtype == self.x.dtype,
              self.loc, "permute result type")


@dataclass(frozen=True, slots=True)
class ConvertLayout(Instr):
    """``out = x``, moved to out's memory space / layout (no change of value)."""
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.x.is_tile and self.out.is_tile, self.loc, "convert_layout moves a tile")
        _need(self.x.dtype == self.out.dtype and self.x.shape == self.out.shape, self.loc,
              "convert_layout keeps dtype and shape")


# ------------------------------------------------------------------------------------------ reductions
@dataclass(frozen=True, slots=True)
class Reduce(Instr):
    """Base of reductions of tile ``x`` along ``axis`` (the axis is removed; a 1-d tile gives a scalar)."""
    out: Value
    x: Value
    axis: int

    def __post_init__(self):
        name = type(self).__name__.lower()
        _need(self.x.is_tile, self.loc, f"{name} reduces a tile")
        _need(0 <= self.axis < len(self.x.shape), self.loc, f"axis {self.axis} out of range for {_desc(self.x)}")
        _need(is_compute(self.x.dtype), self.loc,
              f"{name} needs a compute dtype; {self.x.dtype} is a storage type: cast it first")
        shape = self.x.shape[:self.axis] + self.x.shape[self.axis + 1:]
        _result_like(self.out, shape, self.x.dtype, self.loc, name)


class Sum(Reduce):
    """Sum along the axis. The VM computes the exactly rounded sum (math.fsum; integers exactly, then
    wrapped) and rounds once to the dtype; compiled backends may add in any order (compare within the
    reduction tolerance)."""
    __slots__ = ()


class ReduceMax(Reduce):
    """Largest element along the axis (NaN only if all are NaN)."""
    __slots__ = ()


class ReduceMin(Reduce):
    """Smallest element along the axis."""
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Dot(Instr):
    """``out = a @ b + acc`` for a ``[M, K]``, b ``[K, N]``, acc ``[M, N]``. a and b are f16, bf16,
    f32 or int8 (same dtype); acc is f32 (floats) or int32 (int8). The VM computes the exact sum of
    the products and acc (products are exact in float64; the sum is exactly rounded with fsum) and
    rounds once to acc's dtype; compiled backends may accumulate in any order."""
    out: Value
    a: Value
    b: Value
    acc: Value

    def __post_init__(self):
        _need(self.a.is_tile and self.b.is_tile and self.acc.is_tile, self.loc, "dot multiplies tiles")
        _need(len(self.a.shape) == 2 and len(self.b.shape) == 2, self.loc, "dot needs 2-d tiles")
        (m, k), (k2, n) = self.a.shape, self.b.shape
        _need(k == k2, self.loc, f"dot inner sizes differ: {_desc(self.a)} @ {_desc(self.b)}")
        _need(self.a.dtype == self.b.dtype, self.loc, f"dot operands differ in dtype: {self.a.dtype}, {self.b.dtype}")
        _need(self.a.dtype in (D.float16, D.bfloat16, D.float32, D.int8), self.loc,
              f"dot takes f16, bf16, f32 or int8 operands, not {self.a.dtype}")
        want = D.int32 if self.a.dtype == D.int8 else D.float32
        _need(self.acc.dtype == want and self.acc.shape == (m, n), self.loc,
              f"dot accumulator must be {want}[{m}, {n}], got {_desc(self.acc)}")
        _need(self.out.is_tile and self.out.shape == (m, n) and self.out.dtype == want, self.loc,
              "dot result type")
