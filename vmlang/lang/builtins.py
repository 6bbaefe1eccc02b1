"""The built-in functions of the .vm language, one lowering rule each (a registry keyed by name).

``EXPRESSIONS`` hold functions that produce a value, ``STATEMENTS`` those that stand alone.
Each rule checks its arguments and reports errors at the argument's source location.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import VMError, VMTypeError
from vmlang.ir.types import BOOL, INDEX, ScalarType, TileType

from . import ast as A
from .values import (Weak, broadcast_shapes, broadcast_to, cast_to, const_of, materialize, require_compute,
                     result_type, unify_dtypes)

EXPRESSIONS: dict[str, Callable] = {}
STATEMENTS: dict[str, Callable] = {}


def expression(*names):
    def deco(fn):
        for n in names:
            EXPRESSIONS[n] = fn
        return fn
    return deco


def statement(*names):
    def deco(fn):
        for n in names:
            STATEMENTS[n] = fn
        return fn
    return deco


# ------------------------------------------------------------------------------------- argument helpers
def args_of(lw, call: A.Call, positional: list[str], optional: dict[str, object] | None = None):
    """Match a call's arguments against a signature: required positional names, then keyword-capable
    optional names with defaults. Returns a dict name -> AST expr (or the default)."""
    optional = optional or {}
    names = positional + list(optional)
    if len(call.args) > len(names):
        lw.error(f"{call.func}() takes at most {len(names)} arguments ({', '.join(names)}), "
                 f"got {len(call.args)}", call.loc)
    out: dict[str, object] = dict(zip(names, call.args))
    for kw in call.kwargs:
        if kw.name not in names:
            lw.error(f"{call.func}() has no argument named {kw.name} (it takes {', '.join(names)})", kw.loc)
        if kw.name in out:
            lw.error(f"{call.func}() got argument {kw.name} twice", kw.loc)
        out[kw.name] = kw.value
    for n in positional:
        if n not in out:
            lw.error(f"{call.func}() is missing argument {n} (it takes {', '.join(names)})", call.loc)
    for n, d in optional.items():
        out.setdefault(n, d)
    return out


def dtype_arg(lw, e) -> D.DType:
    if not isinstance(e, A.Name):
        lw.error("expected a dtype name", e.loc)
    return lw.dtype_of(e.id, e.loc)


def shape_arg(lw, e) -> tuple[int, ...]:
    items = e.items if isinstance(e, A.ListExpr) else (e,)
    shape = tuple(lw.static_int(x, "a tile dimension") for x in items)
    for x, d in zip(items, shape):
        if d < 1:
            lw.error(f"tile dimensions must be positive, got {d}", x.loc)
    if not shape:
        lw.error("a tile needs at least one dimension", e.loc)
    return shape


def bool_arg(lw, e, what) -> bool:
    if isinstance(e, bool):
        return e
    v = lw.const_eval(e)
    if not isinstance(v, bool):
        lw.error(f"{what} must be true or false", e.loc)
    return v


def tile_arg(lw, e, what) -> N.Value:
    v = lw.expr(e)
    if isinstance(v, Weak) or not v.is_tile:
        lw.error(f"{what} must be a tile", e.loc)
    return v


def value_arg(lw, e, what) -> N.Value | Weak:
    return lw.not_global(lw.expr(e), e.loc)


def emit(lw, cls, type_, *args, loc, **kw):
    return lw.b.emit(lambda out: cls(out, *args, loc=loc, **kw), type_)


# ------------------------------------------------------------------------------------- indexing
def lower_index(lw, src: N.Value, items, loc):
    """Lower the index items of ``src[...]`` into At/Range items (NewAxis is not allowed here)."""
    if len(items) != len(src.shape):
        lw.error(f"{src.name or 'tile'} has {len(src.shape)} dimensions but the index has {len(items)} items", loc)
    out = []
    for axis, it in enumerate(items):
        dim = src.shape[axis]
        static_dim = dim if isinstance(dim, int) else getattr(dim, "value", None)
        if isinstance(it, A.Point):
            out.append(N.At(lw.index_scalar(lw.expr(it.index), it.loc, "an index")))
        elif isinstance(it, A.Slice):
            if it.length is not None:
                start = lw.index_scalar(lw.expr(it.start), it.loc, "a slice start") if it.start is not None \
                    else materialize(lw, Weak(0, it.loc))
                n = lw.static_int(it.length, "a slice length (after ': +')")
            else:
                s0 = 0 if it.start is None else lw.const_eval(it.start) if _is_static(lw, it.start) else None
                if it.stop is None:
                    if static_dim is None:
                        lw.error(f"axis {axis} of {src.name} has symbolic size {dim}: slice it with "
                                 f"'start : +LENGTH' so the tile shape is static", it.loc)
                    stop = static_dim
                else:
                    stop = lw.const_eval(it.stop) if _is_static(lw, it.stop) else None
                if s0 is None or stop is None:
                    lw.error("a slice 'a : b' needs compile-time bounds; write 'start : +LENGTH' for a "
                             "dynamic start", it.loc)
                n = stop - s0
                start = materialize(lw, Weak(s0, it.loc))
            if not isinstance(n, int) or n < 1:
                lw.error(f"slice length must be a positive integer, got {n!r}", it.loc)
            out.append(N.Range(start, n))
        else:
            lw.error("None (a new axis) is only valid when indexing a tile in an expression", it.loc)
    return tuple(out)


def _is_static(lw, e) -> bool:
    try:
        lw.const_eval(e)
        return True
    except VMError:
        return False


def index_tile(lw, e: A.Index):
    """``t[...]`` in an expression: ``:`` and ``None`` reshape a tile (``xt[:, None]``); ranges and
    points read a part of it."""
    src = lw.expr(e.value)
    if isinstance(src, Weak):
        lw.error("cannot index a literal", e.loc)
    lw.not_global(src, e.loc)
    if src.is_scalar:
        lw.error("cannot index a scalar", e.loc)
    only_reshape = all(isinstance(i, A.NewAxis) or (isinstance(i, A.Slice) and i.start is None and
                                                   i.stop is None and i.length is None) for i in e.items)
    if only_reshape:
        n_full = sum(isinstance(i, A.Slice) for i in e.items)
        if n_full != len(src.shape):
            lw.error(f"index has {n_full} ':' items but the tile has {len(src.shape)} dimensions", e.loc)
        v = src
        for pos, it in enumerate(e.items):
            if isinstance(it, A.NewAxis):
                x = v
                s = list(x.shape)
                s.insert(pos, 1)
                v = emit(lw, N.ExpandDims, x.type.with_(shape=tuple(s), layout=None), x, pos, loc=it.loc)
        return v
    if any(isinstance(i, A.NewAxis) for i in e.items):
        lw.error("cannot mix None with ranges or points in one index; index first, then add axes", e.loc)
    index = lower_index(lw, src, e.items, e.loc)
    shape = tuple(i.length for i in index if isinstance(i, N.Range))
    t = TileType(src.dtype, shape) if shape else ScalarType(src.dtype)
    return emit(lw, N.Load, t, src, index, None, False, loc=e.loc)


def ref_arg(lw, e, what: str):
    """The ``x[...]`` argument of load/store/atomic_add: (tensor value, index items, location)."""
    if not isinstance(e, A.Index) or not isinstance(e.value, A.Name):
        lw.error(f"{what} takes an indexed tensor such as x[i, a : +N]", e.loc)
    src = lw.expr(e.value)
    if isinstance(src, Weak) or src.is_scalar:
        lw.error(f"{e.value.id} is not a tensor", e.value.loc)
    return src, lower_index(lw, src, e.items, e.loc)


# ------------------------------------------------------------------------------------- memory
@expression("load")
def _load(lw, call):
    a = args_of(lw, call, ["ref"], {"fill": None, "masked": True})
    src, index = ref_arg(lw, a["ref"], "load")
    masked = bool_arg(lw, a["masked"], "masked")
    if not src.is_global and a["masked"] is not True:
        lw.error("masked= applies to loads of global tensors (a tile read out of bounds is always an error)",
                 a["masked"].loc)
    fill = None
    if a["fill"] is not None:
        if not src.is_global:
            lw.error("fill applies to loads of global tensors (tiles are never read out of bounds)", a["fill"].loc)
        fv = lw.expr(a["fill"])
        if isinstance(fv, Weak):
            fill = const_of(lw, fv, src.dtype)
        elif fv.is_scalar and fv.dtype == src.dtype:
            fill = fv
        else:
            lw.error(f"fill must be a literal or a {src.dtype} scalar, got {fv.type}", a["fill"].loc)
    elif src.is_global and masked:
        fill = const_of(lw, Weak(0 if not src.dtype.is_codebook else 0.0, call.loc), src.dtype) \
            if _zero_ok(src.dtype) else None
    shape = tuple(i.length for i in index if isinstance(i, N.Range))
    t = TileType(src.dtype, shape) if shape else ScalarType(src.dtype)
    return emit(lw, N.Load, t, src, index, fill, masked if src.is_global else False, loc=call.loc)


def _zero_ok(dt) -> bool:
    try:
        return float(dt.decode(dt.encode([0.0]))[0]) == 0.0
    except ValueError:
        return False


def _store_value(lw, dst, index, e, loc):
    shape = tuple(i.length for i in index if isinstance(i, N.Range))
    v = value_arg(lw, e, "stored value")
    if isinstance(v, Weak):
        v = const_of(lw, v, dst.dtype)
    if v.dtype != dst.dtype:
        lw.error(f"cannot store {v.dtype} values into {dst.name} ({dst.dtype}): cast them first", e.loc)
    if v.is_scalar and shape:
        v = emit(lw, N.Broadcast, TileType(dst.dtype, shape), v, loc=loc)
    elif v.is_tile and v.shape != shape:
        try:
            bs = broadcast_shapes([v.shape, shape], loc)
        except VMTypeError:
            bs = None
        if bs != shape:
            lw.error(f"stored value has shape {list(v.shape)}, the region has shape {list(shape)}", e.loc)
        v = broadcast_to(lw, v, shape, loc)
    elif v.is_tile and not shape:
        lw.error("cannot store a tile into a single element", e.loc)
    return v


@statement("store")
def _store(lw, call):
    a = args_of(lw, call, ["ref", "value"], {"masked": True})
    dst, index = ref_arg(lw, a["ref"], "store")
    masked = bool_arg(lw, a["masked"], "masked")
    v = _store_value(lw, dst, index, a["value"], call.loc)
    if dst.is_global:
        lw.b.append(N.Store(dst, index, v, masked, loc=call.loc))
    else:
        name = a["ref"].value.id
        new = emit(lw, N.Insert, dst.type, dst, index, v, loc=call.loc)
        lw.bind(name, new, call.loc)


@expression("insert")
def _insert(lw, call):
    """``insert(t[index], value)``: a copy of tile t with the region replaced (the value form of store)."""
    a = args_of(lw, call, ["ref", "value"])
    dst, index = ref_arg(lw, a["ref"], "insert")
    if not dst.is_tile:
        lw.error("insert updates a tile (use store for global tensors)", a["ref"].loc)
    v = _store_value(lw, dst, index, a["value"], call.loc)
    return emit(lw, N.Insert, dst.type, dst, index, v, loc=call.loc)


@statement("atomic_add")
def _atomic_add(lw, call):
    a = args_of(lw, call, ["ref", "value"], {"masked": True})
    dst, index = ref_arg(lw, a["ref"], "atomic_add")
    if not dst.is_global:
        lw.error("atomic_add writes a global tensor", a["ref"].loc)
    v = _store_value(lw, dst, index, a["value"], call.loc)
    lw.b.append(N.AtomicAdd(dst, index, v, bool_arg(lw, a["masked"], "masked"), loc=call.loc))


@statement("assume")
def _assume(lw, call):
    a = args_of(lw, call, ["cond"])
    c = lw.expr(a["cond"])
    if isinstance(c, Weak):
        if c.value is not True:
            lw.error("assumption is false at compile time", a["cond"].loc)
        return
    if not c.is_scalar or c.dtype != BOOL:
        lw.error("assume needs a bool scalar condition", a["cond"].loc)
    lw.b.append(N.Assume(c, loc=call.loc))


@statement("barrier")
def _barrier(lw, call):
    args_of(lw, call, [])
    lw.b.append(N.Barrier(loc=call.loc))


# ------------------------------------------------------------------------------------- creation
@expression("zeros", "full", "empty")
def _full(lw, call):
    if call.func == "full":
        a = args_of(lw, call, ["dtype", "shape", "value"])
    else:
        a = args_of(lw, call, ["dtype", "shape"])
    dt = dtype_arg(lw, a["dtype"])
    shape = shape_arg(lw, a["shape"])
    val = None
    if call.func == "zeros":
        val = const_of(lw, Weak(0, call.loc), dt)
    elif call.func == "full":
        v = lw.expr(a["value"])
        if isinstance(v, Weak):
            val = const_of(lw, v, dt)
        else:
            if not v.is_scalar:
                lw.error("full() takes a scalar value (use broadcast for tiles)", a["value"].loc)
            val = cast_to(lw, v, dt, call.loc) if v.dtype != dt else v
    return emit(lw, N.Full, TileType(dt, shape), val, loc=call.loc)


@expression("arange")
def _arange(lw, call):
    a = args_of(lw, call, ["n"])
    n = lw.static_int(a["n"], "arange length")
    if n < 1:
        lw.error(f"arange length must be positive, got {n}", a["n"].loc)
    return emit(lw, N.Arange, TileType(INDEX, (n,)), loc=call.loc)


@expression("codebook")
def _codebook(lw, call):
    a = args_of(lw, call, ["of"], {"dtype": None})
    of = dtype_arg(lw, a["of"])
    dt = D.float32 if a["dtype"] is None else dtype_arg(lw, a["dtype"])
    if of.nbits > 8:
        lw.error(f"codebook() needs a dtype of at most 8 bits, not {of}", a["of"].loc)
    if not dt.is_float or dt.is_codebook:
        lw.error(f"codebook table dtype must be a float type, not {dt}", call.loc)
    for v in of.decode(np.arange(1 << of.nbits)):   # the table is static: check it now
        try:
            dt.encode([v])
        except ValueError:
            lw.error(f"codebook({of}, {dt}): {of} has the value {float(v)!r}, which {dt} cannot hold "
                     f"(range [{dt.min}, {dt.max}])", call.loc)
    return emit(lw, N.Codebook, TileType(dt, (1 << of.nbits,)), of, loc=call.loc)


# ------------------------------------------------------------------------------------- conversions
@expression("cast")
def _cast(lw, call):
    a = args_of(lw, call, ["x", "dtype"], {"saturate": False})
    x = materialize(lw, value_arg(lw, a["x"], "cast operand"))
    dt = dtype_arg(lw, a["dtype"])
    sat = bool_arg(lw, a["saturate"], "saturate")
    if x.dtype == dt:
        return x
    t = x.type.with_(dtype=dt, layout=None) if x.is_tile else ScalarType(dt)
    return emit(lw, N.Cast, t, x, sat, loc=call.loc)


@expression("view")
def _view(lw, call):
    a = args_of(lw, call, ["x", "dtype"])
    x = tile_arg(lw, a["x"], "view operand")
    dt = dtype_arg(lw, a["dtype"])
    n, ab, bb = x.shape[-1], x.dtype.nbits, dt.nbits
    if (n * ab) % bb:
        lw.error(f"cannot view {x.dtype}[..., {n}] as {dt}: the last axis holds {n} x {ab} = {n * ab} bits, "
                 f"which is not a multiple of {bb} bits ({dt})", call.loc,
                 hint=f"a whole number of {dt} elements needs a multiple of {bb // _gcd(ab, bb)} "
                      f"{x.dtype} elements in the last axis")
    shape = x.shape[:-1] + ((n * ab) // bb,)
    return emit(lw, N.View, x.type.with_(dtype=dt, shape=shape, layout=None), x, loc=call.loc)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@expression("lookup")
def _lookup(lw, call):
    a = args_of(lw, call, ["table", "codes"])
    table = tile_arg(lw, a["table"], "lookup table")
    codes = tile_arg(lw, a["codes"], "lookup codes")
    if len(table.shape) != 1:
        lw.error(f"lookup table must be a 1-d tile, got shape {list(table.shape)}", a["table"].loc)
    if not (codes.dtype.is_int or codes.dtype.nbits <= 8) or codes.dtype == D.float32:
        lw.error(f"lookup codes must be integers or codes of at most 8 bits, not {codes.dtype}", a["codes"].loc)
    if not _is_compute(codes.dtype) and (1 << codes.dtype.nbits) > table.shape[0]:  # raw storage codes
        lw.error(f"a {codes.dtype} code can be up to {(1 << codes.dtype.nbits) - 1} but the table has only "
                 f"{table.shape[0]} entries", call.loc)
    return emit(lw, N.Lookup, codes.type.with_(dtype=table.dtype, layout=None), table, codes, loc=call.loc)


# ------------------------------------------------------------------------------------- elementwise
_UNARY = {"exp": N.Exp, "exp2": N.Exp2, "log": N.Log, "sqrt": N.Sqrt, "rsqrt": N.Rsqrt, "abs": N.Abs}


@expression(*_UNARY)
def _unary(lw, call):
    a = args_of(lw, call, ["x"])
    x = value_arg(lw, a["x"], f"{call.func} operand")
    cls = _UNARY[call.func]
    if isinstance(x, Weak):
        x = const_of(lw, x, D.float32 if cls is not N.Abs or isinstance(x.value, float) else INDEX)
    require_compute(x, call.func, a["x"].loc)
    if cls is not N.Abs and not x.dtype.is_float:
        lw.error(f"{call.func} needs a float operand, got {x.dtype} (cast it)", a["x"].loc)
    return emit(lw, cls, x.type if x.is_scalar else x.type.with_(layout=None), x, loc=call.loc)


@expression("where")
def _where(lw, call):
    a = args_of(lw, call, ["cond", "a", "b"])
    c = materialize(lw, value_arg(lw, a["cond"], "where condition"))
    if c.dtype != BOOL:
        lw.error(f"where needs a bool condition, got {c.dtype}", a["cond"].loc)
    x, y = value_arg(lw, a["a"], "where operand"), value_arg(lw, a["b"], "where operand")
    if isinstance(x, Weak) and isinstance(y, Weak):
        x = materialize(lw, x)
    if isinstance(x, Weak) or isinstance(y, Weak) or x.dtype != y.dtype:
        if isinstance(x, N.Value) and isinstance(y, N.Value) and not (
                x.dtype in _compute() and y.dtype in _compute()):
            lw.error(f"where branches have different dtypes {x.dtype} and {y.dtype}", call.loc)
        x, y = unify_dtypes(lw, x, y, call.loc, "where", allow_bool=True)
    shape = broadcast_shapes([c.shape, x.shape, y.shape], call.loc)
    c, x, y = (broadcast_to(lw, v, shape, call.loc) for v in (c, x, y))
    return emit(lw, N.Where, result_type([c, x, y], x.dtype), c, x, y, loc=call.loc)


def _compute():
    from vmlang.ir.types import COMPUTE
    return COMPUTE


def _is_compute(dt) -> bool:
    return dt in _compute()


_REDUCE = {"sum": N.Sum, "max": N.ReduceMax, "min": N.ReduceMin}


@expression("sum", "max", "min")
def _reduce_or_minmax(lw, call):
    if call.func in ("max", "min") and len(call.args) == 2:
        a = args_of(lw, call, ["a", "b"])
        x, y = value_arg(lw, a["a"], call.func), value_arg(lw, a["b"], call.func)
        op = "__min__" if call.func == "min" else "__max__"
        if isinstance(x, Weak) and isinstance(y, Weak):
            return Weak(min(x.value, y.value) if call.func == "min" else max(x.value, y.value), call.loc)
        x, y = unify_dtypes(lw, x, y, call.loc, call.func)
        shape = broadcast_shapes([x.shape, y.shape], call.loc)
        x, y = broadcast_to(lw, x, shape, call.loc), broadcast_to(lw, y, shape, call.loc)
        cls = N.Minimum if op == "__min__" else N.Maximum
        return emit(lw, cls, result_type([x, y], x.dtype), x, y, loc=call.loc)
    a = args_of(lw, call, ["x"], {"axis": None})
    x = tile_arg(lw, a["x"], f"{call.func} operand")
    require_compute(x, call.func, a["x"].loc)
    if a["axis"] is None:
        if len(x.shape) != 1:
            lw.error(f"{call.func}() of a {len(x.shape)}-d tile needs axis=", call.loc)
        axis = 0
    else:
        axis = lw.static_int(a["axis"], "axis")
        if axis < 0:
            axis += len(x.shape)
        if not 0 <= axis < len(x.shape):
            lw.error(f"axis {axis} out of range for a {len(x.shape)}-d tile", a["axis"].loc)
    shape = x.shape[:axis] + x.shape[axis + 1:]
    t = TileType(x.dtype, shape) if shape else ScalarType(x.dtype)
    return emit(lw, _REDUCE[call.func], t, x, axis, loc=call.loc)


# ------------------------------------------------------------------------------------- shapes
@expression("reshape")
def _reshape(lw, call):
    a = args_of(lw, call, ["x", "shape"])
    x = tile_arg(lw, a["x"], "reshape operand")
    shape = shape_arg(lw, a["shape"])
    n = 1
    for d in shape:
        n *= d
    if n != x.type.numel:
        lw.error(f"cannot reshape {list(x.shape)} ({x.type.numel} elements) to {list(shape)} ({n} elements)",
                 call.loc)
    return emit(lw, N.Reshape, x.type.with_(shape=shape, layout=None), x, loc=call.loc)


@expression("permute", "trans")
def _permute(lw, call):
    if call.func == "trans":
        a = args_of(lw, call, ["x"])
        x = tile_arg(lw, a["x"], "trans operand")
        if len(x.shape) != 2:
            lw.error(f"trans needs a 2-d tile, got shape {list(x.shape)}", call.loc)
        perm = (1, 0)
    else:
        a = args_of(lw, call, ["x", "perm"])
        x = tile_arg(lw, a["x"], "permute operand")
        if not isinstance(a["perm"], A.ListExpr):
            lw.error("permute takes a list of axes such as [1, 0]", a["perm"].loc)
        perm = tuple(lw.static_int(i, "an axis") for i in a["perm"].items)
        if sorted(perm) != list(range(len(x.shape))):
            lw.error(f"{list(perm)} is not a permutation of the {len(x.shape)} axes", a["perm"].loc)
    shape = tuple(x.shape[p] for p in perm)
    return emit(lw, N.Permute, x.type.with_(shape=shape, layout=None), x, perm, loc=call.loc)


@expression("broadcast")
def _broadcast(lw, call):
    a = args_of(lw, call, ["x", "shape"])
    x = materialize(lw, value_arg(lw, a["x"], "broadcast operand"))
    shape = shape_arg(lw, a["shape"])
    if x.is_tile:
        if broadcast_shapes([x.shape, shape], call.loc) != shape:
            lw.error(f"cannot broadcast shape {list(x.shape)} to {list(shape)}", call.loc)
        return broadcast_to(lw, x, shape, call.loc)
    return emit(lw, N.Broadcast, TileType(x.dtype, shape), x, loc=call.loc)


@expression("dot")
def _dot(lw, call):
    a = args_of(lw, call, ["a", "b"], {"acc": None})
    x = tile_arg(lw, a["a"], "dot operand a")
    y = tile_arg(lw, a["b"], "dot operand b")
    if len(x.shape) != 2 or len(y.shape) != 2:
        lw.error(f"dot needs 2-d tiles, got {list(x.shape)} and {list(y.shape)}", call.loc)
    if x.shape[1] != y.shape[0]:
        lw.error(f"dot inner dimensions differ: {list(x.shape)} @ {list(y.shape)}", call.loc)
    if x.dtype != y.dtype:
        lw.error(f"dot operands must share a dtype, got {x.dtype} and {y.dtype} (cast one)", call.loc)
    if x.dtype not in (D.float16, D.bfloat16, D.float32, D.int8):
        lw.error(f"dot takes f16, bf16, f32 or int8 operands, not {x.dtype}", call.loc)
    acc_dt = D.int32 if x.dtype == D.int8 else D.float32
    shape = (x.shape[0], y.shape[1])
    if a["acc"] is None:
        acc = emit(lw, N.Full, TileType(acc_dt, shape), const_of(lw, Weak(0, call.loc), acc_dt), loc=call.loc)
    else:
        acc = tile_arg(lw, a["acc"], "dot accumulator")
        if acc.dtype != acc_dt or acc.shape != shape:
            lw.error(f"dot accumulator must be {acc_dt}{list(shape)}, got {acc.type}", a["acc"].loc)
    return emit(lw, N.Dot, acc.type.with_(layout=None), x, y, acc, loc=call.loc)


@expression("cdiv")
def _cdiv(lw, call):
    a = args_of(lw, call, ["a", "b"])
    x, y = lw.expr(a["a"]), lw.expr(a["b"])
    if isinstance(x, Weak) and isinstance(y, Weak):
        if y.value == 0:
            lw.error("division by zero", call.loc)
        return Weak(-(-x.value // y.value), call.loc)
    one = Weak(1, call.loc)
    num = lw.binop("-", lw.binop("+", x, y, call.loc), one, call.loc)
    return lw.binop("/", num, y, call.loc)
