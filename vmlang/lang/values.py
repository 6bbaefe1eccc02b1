"""Helpers the lowering uses to combine values: weak literals, implicit casts and broadcasting.

A literal such as ``2.0`` or ``1`` is *weak*: it takes the dtype of the value it meets (as in
Triton), so ``x * 2.0`` keeps ``x``'s f16. Two weak literals fold at compile time. A weak value that
must stand alone becomes int32 (ints), float32 (floats) or bool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import SourceLoc, VMTypeError
from vmlang.ir.types import BOOL, INDEX, ScalarType, TileType, is_compute, promote


@dataclass(frozen=True)
class Weak:
    """A compile-time literal (int, float or bool) not yet given a dtype."""
    value: Union[int, float, bool]
    loc: SourceLoc | None = None

    @property
    def default_dtype(self):
        if isinstance(self.value, bool):
            return BOOL
        return INDEX if isinstance(self.value, int) else D.float32


Operand = Union[N.Value, Weak]


def const_of(lw, w: Weak, dtype) -> N.Value:
    """Materialise a weak literal as a scalar of ``dtype``: integers must fit exactly; floats round to the
    nearest value of ``dtype`` (ties to even) and must not overflow it."""
    v = w.value
    if dtype.is_int:
        if isinstance(v, float) and not float(v).is_integer():
            raise VMTypeError(f"literal {v!r} is not an integer, so it cannot be used as {dtype}", w.loc)
        iv = int(v)
        if not dtype.min <= iv <= dtype.max:
            raise VMTypeError(f"literal {v!r} does not fit in {dtype} [{dtype.min}, {dtype.max}]", w.loc)
        v = bool(iv) if dtype == BOOL else iv
    else:
        try:
            code = dtype.encode([float(v)])
        except ValueError as e:
            raise VMTypeError(f"literal {v!r} cannot be represented as {dtype}: {e}", w.loc) from None
        r = float(dtype.decode(code)[0])  # rounded to nearest even, like a C literal
        if r in (float("inf"), float("-inf")) and abs(float(v)) != float("inf"):
            raise VMTypeError(f"literal {v!r} cannot be represented as {dtype}: it overflows to {r}", w.loc)
        v = r
    saved = lw.b.loc
    lw.b.loc = w.loc
    try:
        return lw.b.const(v, dtype)
    finally:
        lw.b.loc = saved


def materialize(lw, x: Operand) -> N.Value:
    return const_of(lw, x, x.default_dtype) if isinstance(x, Weak) else x


def same_kind_type(v: N.Value, dtype) -> object:
    """The type of ``v`` with its dtype replaced (scalar stays scalar, tile keeps shape/space)."""
    if isinstance(v.type, TileType):
        return v.type.with_(dtype=dtype, layout=None)
    return ScalarType(dtype)


def cast_to(lw, v: N.Value, dtype, loc) -> N.Value:
    if v.dtype == dtype:
        return v
    return lw.b.emit(lambda out: N.Cast(out, v, loc=loc), same_kind_type(v, dtype))


def require_compute(v: N.Value, what: str, loc, allow_bool=False):
    if is_compute(v.dtype) or (allow_bool and v.dtype == BOOL):
        return
    raise VMTypeError(f"{what} needs a compute dtype (f16, bf16, f32, int8..int32, uint8..uint32); "
                      f"{v.dtype} is a storage type: cast it first", loc)


def unify_dtypes(lw, a: Operand, b: Operand, loc, what: str, allow_bool=False):
    """Give two operands one dtype: weak literals adopt the other's dtype; strong ones promote."""
    if isinstance(a, Weak) and isinstance(b, Weak):
        raise AssertionError("two weak operands are folded before this point")
    if isinstance(a, Weak) or isinstance(b, Weak):
        w, s = (a, b) if isinstance(a, Weak) else (b, a)
        require_compute(s, what, loc, allow_bool)
        dt = s.dtype
        if isinstance(w.value, float) and not isinstance(w.value, bool) and dt.is_int and dt != BOOL:
            dt = D.float32
            s = cast_to(lw, s, dt, loc)
        wv = const_of(lw, w, dt)
        return (wv, s) if isinstance(a, Weak) else (s, wv)
    require_compute(a, what, loc, allow_bool)
    require_compute(b, what, loc, allow_bool)
    if a.dtype == b.dtype:
        return a, b
    if BOOL in (a.dtype, b.dtype):
        raise VMTypeError(f"{what} mixes bool with {b.dtype if a.dtype == BOOL else a.dtype}", loc)
    dt = promote(a.dtype, b.dtype)
    return cast_to(lw, a, dt, loc), cast_to(lw, b, dt, loc)


def broadcast_shapes(shapes: list[tuple], loc) -> tuple:
    """NumPy broadcasting of tile shapes (scalars are ``()``)."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            raise VMTypeError("shapes " + ", ".join(str(list(s)) for s in shapes) + " do not broadcast", loc)
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def broadcast_to(lw, v: N.Value, shape: tuple, loc) -> N.Value:
    """Broadcast a tile to ``shape`` (inserting leading axes, then repeating size-1 axes); scalars stay."""
    if v.is_scalar or v.shape == shape:
        return v
    while len(v.shape) < len(shape):
        x = v
        v = lw.b.emit(lambda out: N.ExpandDims(out, x, 0, loc=loc), x.type.with_(shape=(1,) + x.shape, layout=None))
    if v.shape != shape:
        x = v
        v = lw.b.emit(lambda out: N.Broadcast(out, x, loc=loc), x.type.with_(shape=shape, layout=None))
    return v


def result_type(operands: list[N.Value], dtype):
    tiles = [v for v in operands if v.is_tile]
    if not tiles:
        return ScalarType(dtype)
    return TileType(dtype, tiles[0].shape)
