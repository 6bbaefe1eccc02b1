"""The NumPy VM: executes a kernel one block at a time, each instruction on whole tiles.

Values are NumPy arrays in the representation of :mod:`.arith` (0-d arrays for scalars). A value
computed from uninitialised memory (``empty``) carries a *poison* mask; poison reaching a global
store, an index, a loop bound or a branch condition is an error naming both places.

Rules are registered per instruction class with ``@evaluate(Cls)``; a missing rule fails naming the
instruction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError, VMRuntimeError
from vmlang.ir.registry import registrar
from vmlang.ir.types import BOOL

from . import arith as AR

RULES: dict[type, Callable] = {}


evaluate = registrar(RULES)


@dataclass
class Poisoned:
    """A value some of whose elements derive from uninitialised memory (``valid`` False there)."""
    data: np.ndarray
    valid: np.ndarray
    origin: object = None


def data_of(x):
    return x.data if isinstance(x, Poisoned) else x


def valid_of(x, shape=None):
    if isinstance(x, Poisoned):
        return x.valid
    return None


def merge_valid(out, *inputs, fn=None):
    """Wrap ``out`` as Poisoned if any input is; ``fn`` maps input masks to the output mask
    (default: elementwise AND with broadcasting)."""
    ps = [x for x in inputs if isinstance(x, Poisoned)]
    if not ps:
        return out
    masks = [x.valid if isinstance(x, Poisoned) else np.ones(np.shape(data_of(x)), bool) for x in inputs]
    valid = fn(*masks) if fn else np.logical_and.reduce(np.broadcast_arrays(*masks)) if len(masks) > 1 else masks[0]
    valid = np.broadcast_to(valid, np.shape(out)).copy()
    if valid.all():
        return out
    return Poisoned(out, valid, ps[0].origin)


class Frame:
    """The state of one block: values by id, the global arrays, and the block index."""

    def __init__(self, kernel: N.Kernel, globals_: dict[int, np.ndarray], scalars: dict[int, np.ndarray],
                 sizes: dict[str, int], block: tuple[int, int, int]):
        self.kernel = kernel
        self.g = globals_
        self.env: dict[int, object] = dict(scalars)
        self.sizes = sizes
        self.block = block

    def get(self, v: N.Value):
        return self.env[v.id]

    def set(self, v: N.Value, x):
        self.env[v.id] = x

    def clean(self, v: N.Value, ins, what: str):
        """The value's data, or an error if it is (partly) poisoned."""
        x = self.env[v.id]
        if isinstance(x, Poisoned):
            raise VMRuntimeError(f"{what} uses a value computed from uninitialised memory"
                                 + (f" (allocated by empty() at {x.origin})" if x.origin else ""), ins.loc)
        return x

    def scalar(self, v: N.Value, ins, what: str):
        return self.clean(v, ins, what).item()

    def run(self, block: N.Block):
        for ins in block.instrs:
            rule = RULES.get(type(ins))
            if rule is None:
                raise BackendError(f"the numpy backend has no rule for {type(ins).__name__}")
            rule(self, ins)


# ----------------------------------------------------------------------------------------- leaves
@evaluate(N.Const)
def _const(f, i):
    f.set(i.out, AR.fill_value(i.out.dtype, i.value))


@evaluate(N.BlockIdx)
def _bid(f, i):
    f.set(i.out, np.asarray(f.block[i.axis], dtype=np.int64))


@evaluate(N.SizeOf)
def _size(f, i):
    f.set(i.out, np.asarray(f.sizes[i.symbol], dtype=np.int64))


# ----------------------------------------------------------------------------------------- memory
def _positions(f, ins, index, shape):
    """Per-axis index arrays (broadcastable, in selection order) and a validity mask vs ``shape``."""
    idx, valid_axes = [], []
    for axis, it in enumerate(index):
        if isinstance(it, N.At):
            p = np.asarray([f.scalar(it.index, ins, "an index")], dtype=np.int64)
        else:
            p = f.scalar(it.start, ins, "a slice start") + np.arange(it.length, dtype=np.int64)
        idx.append(p)
        valid_axes.append((p >= 0) & (p < shape[axis]))
    grids = np.ix_(*idx)
    valid = np.ones(tuple(len(p) for p in idx), bool)
    for axis, m in enumerate(valid_axes):
        sh = [1] * len(idx)
        sh[axis] = len(m)
        valid = valid & m.reshape(sh)
    return grids, valid


def _describe_oob(ins, what, name, index_grids, valid, shape):
    bad = np.argwhere(~valid)[0]
    pos = [int(g.reshape(-1)[b]) for g, b in zip(index_grids, bad)]
    return VMRuntimeError(f"out-of-bounds {what} {name}{pos} (shape {list(shape)})", ins.loc)


def _kept_shape(index):
    return tuple(it.length for it in index if isinstance(it, N.Range))


@evaluate(N.Load)
def _load(f, i):
    if i.src.is_global:
        arr = f.g[i.src.id]
        shape = arr.shape
        src_val = arr
    else:
        src_val = f.get(i.src)
        shape = np.shape(data_of(src_val))
    grids, valid = _positions(f, i, i.index, shape)
    if not valid.all() and (not i.src.is_global or not i.masked or i.fill is None):
        what = "read of" if i.src.is_global else "read of tile"
        raise _describe_oob(i, what, i.src.name or "tile", grids, valid, shape)
    clipped = tuple(np.clip(g, 0, max(s - 1, 0)) for g, s in zip(grids, shape))
    if i.src.is_global and shape and min(shape) == 0:
        data = np.zeros(valid.shape, arr.dtype)
    else:
        data = data_of(src_val)[clipped]
    if not valid.all():
        data = np.where(valid, data, f.get(i.fill))
    out_shape = _kept_shape(i.index)
    data = data.reshape(out_shape)
    if isinstance(src_val, Poisoned):
        vm = src_val.valid[clipped].reshape(out_shape)
        f.set(i.out, merge_valid(data, Poisoned(data, vm, src_val.origin)))
    else:
        f.set(i.out, data)


def _write(f, i, combine):
    arr = f.g[i.dst.id]
    grids, valid = _positions(f, i, i.index, arr.shape)
    if not valid.all() and not i.masked:
        raise _describe_oob(i, "write of", i.dst.name, grids, valid, arr.shape)
    raw = f.get(i.value)
    if isinstance(raw, Poisoned):
        pv = np.broadcast_to(raw.valid, _kept_shape(i.index)).reshape(valid.shape)
        if not pv[valid].all():
            f.clean(i.value, i, type(i).__name__.lower())   # raises, naming the origin
    val = np.broadcast_to(data_of(raw), _kept_shape(i.index)).reshape(valid.shape)
    sel = tuple(np.broadcast_to(g, valid.shape)[valid] for g in grids)
    arr[sel] = combine(arr[sel], val[valid])


@evaluate(N.Store)
def _store(f, i):
    _write(f, i, lambda old, new: new)


@evaluate(N.AtomicAdd)
def _atomic(f, i):
    dt = i.dst.dtype

    def add(old, new):
        if dt.is_int:
            return AR.wrap_int(dt, old.astype(np.int64) + new.astype(np.int64))
        return AR.round_float(dt, old.astype(np.float64) + new.astype(np.float64))
    _write(f, i, add)


@evaluate(N.Insert)
def _insert(f, i):
    dst = f.get(i.dst)
    shape = np.shape(data_of(dst))
    grids, valid = _positions(f, i, i.index, shape)
    if not valid.all():
        raise _describe_oob(i, "write of tile", i.dst.name or "tile", grids, valid, shape)
    val = f.get(i.value)
    out = data_of(dst).copy()
    vd = np.broadcast_to(data_of(val), _kept_shape(i.index)).reshape(valid.shape)
    out[grids] = vd
    if isinstance(dst, Poisoned) or isinstance(val, Poisoned):
        vmask = valid_of(dst)
        vmask = np.ones(shape, bool) if vmask is None else vmask.copy()
        vv = valid_of(val)
        vmask[grids] = True if vv is None else np.broadcast_to(vv, _kept_shape(i.index)).reshape(valid.shape)
        origin = (dst.origin if isinstance(dst, Poisoned) else val.origin)
        f.set(i.out, out if vmask.all() else Poisoned(out, vmask, origin))
    else:
        f.set(i.out, out)


# ----------------------------------------------------------------------------------------- creation
@evaluate(N.Full)
def _full(f, i):
    t = i.out.type
    if i.value is None:
        data = np.zeros(t.shape, AR.repr_dtype(t.dtype))
        f.set(i.out, Poisoned(data, np.zeros(t.shape, bool), i.loc))
    else:
        v = f.get(i.value)
        f.set(i.out, merge_valid(np.full(t.shape, data_of(v), AR.repr_dtype(t.dtype)), v))


@evaluate(N.Arange)
def _arange(f, i):
    f.set(i.out, np.arange(i.out.shape[0], dtype=np.int64))


@evaluate(N.Codebook)
def _codebook(f, i):
    vals = i.of.values
    f.set(i.out, AR.from_values(i.out.dtype, vals, saturate=False))


# ----------------------------------------------------------------------------------------- elementwise
def _quiet(x) -> np.ndarray:
    """float64 values with every NaN made a quiet NaN: a signalling NaN (e.g. float16 0xFC06 widened
    bit for bit by NumPy) makes np.fmax/np.fmin return NaN, where "NaN only if both are NaN" is meant."""
    x = np.asarray(x, np.float64)
    return np.where(np.isnan(x), np.nan, x)


def _float_op(dt, fn, *xs):
    with np.errstate(all="ignore"):
        r = fn(*[(_quiet(x) if fn in (np.fmax, np.fmin) else np.asarray(x, np.float64)) for x in xs])
    return AR.round_float(dt, r)


def _int_binary(f, i, fn):
    a, b = (np.asarray(data_of(f.get(v)), np.int64) for v in (i.a, i.b))
    return fn(a, b)


def _trunc_div(f, i, a, b):
    if np.any(b == 0):
        raise VMRuntimeError("integer division by zero", i.loc)
    q = np.abs(a) // np.abs(b)
    return np.where((a >= 0) == (b >= 0), q, -q)


_FLOAT_BIN = {N.Add: np.add, N.Sub: np.subtract, N.Mul: np.multiply, N.Div: np.divide, N.Mod: np.fmod,
              N.Minimum: np.fmin, N.Maximum: np.fmax}
_INT_BIN = {N.Add: np.add, N.Sub: np.subtract, N.Mul: np.multiply, N.Minimum: np.minimum,
            N.Maximum: np.maximum, N.And: np.bitwise_and, N.Or: np.bitwise_or, N.Xor: np.bitwise_xor}
_CMP = {N.Eq: np.equal, N.Ne: np.not_equal, N.Lt: np.less, N.Le: np.less_equal, N.Gt: np.greater,
        N.Ge: np.greater_equal}


@evaluate(*set(_FLOAT_BIN) | set(_INT_BIN) | {N.Shl, N.Shr})
def _binary(f, i):
    dt = i.a.dtype
    A, B = f.get(i.a), f.get(i.b)
    a, b = data_of(A), data_of(B)
    cls = type(i)
    if dt == BOOL:
        r = _INT_BIN[cls](np.asarray(a, bool), np.asarray(b, bool))
    elif dt.is_float:
        r = _float_op(dt, _FLOAT_BIN[cls], a, b)
    else:
        x, y = np.asarray(a, np.int64), np.asarray(b, np.int64)
        if cls is N.Div:
            r = _trunc_div(f, i, x, y)
        elif cls is N.Mod:
            r = x - y * _trunc_div(f, i, x, y)
        elif cls is N.Shl:
            r = np.where((y >= dt.nbits) | (y < 0), 0, x << np.clip(y, 0, 63))
        elif cls is N.Shr:
            if np.any(y < 0):
                raise VMRuntimeError("negative shift amount", i.loc)
            big = np.where(x < 0, -1, 0)
            r = np.where(y >= dt.nbits, big, x >> np.minimum(y, 63))
        else:
            r = _INT_BIN[cls](x, y)
        r = AR.wrap_int(dt, r)
    f.set(i.out, merge_valid(np.asarray(r), A, B))


@evaluate(*_CMP)
def _compare(f, i):
    A, B = f.get(i.a), f.get(i.b)
    dt = i.a.dtype
    conv = np.float64 if dt.is_float else (np.bool_ if dt == BOOL else np.int64)
    r = _CMP[type(i)](np.asarray(data_of(A), conv), np.asarray(data_of(B), conv))
    f.set(i.out, merge_valid(np.asarray(r), A, B))


_FLOAT_UN = {N.Neg: np.negative, N.Abs: np.abs, N.Exp: np.exp, N.Exp2: np.exp2, N.Log: np.log, N.Sqrt: np.sqrt,
             N.Rsqrt: lambda x: 1.0 / np.sqrt(x)}


@evaluate(*_FLOAT_UN, N.Invert)
def _unary(f, i):
    X = f.get(i.x)
    x = data_of(X)
    dt = i.x.dtype
    cls = type(i)
    if dt == BOOL:
        r = ~np.asarray(x, bool)
    elif dt.is_float:
        r = _float_op(dt, _FLOAT_UN[cls], x)
    elif cls is N.Invert:
        r = AR.wrap_int(dt, ~np.asarray(x, np.int64))
    elif cls is N.Neg:
        r = AR.wrap_int(dt, -np.asarray(x, np.int64))
    else:
        r = AR.wrap_int(dt, np.abs(np.asarray(x, np.int64)))
    f.set(i.out, merge_valid(np.asarray(r), X))


@evaluate(N.Where)
def _where(f, i):
    C, A, B = f.get(i.cond), f.get(i.a), f.get(i.b)
    cond = np.asarray(data_of(C), bool)
    r = np.where(cond, data_of(A), data_of(B)).astype(AR.repr_dtype(i.out.dtype))
    f.set(i.out, merge_valid(r, C, A, B, fn=lambda vc, va, vb: vc & np.where(cond, va, vb)))


# ----------------------------------------------------------------------------------------- conversions
@evaluate(N.Cast)
def _cast(f, i):
    X = f.get(i.x)
    x = data_of(X)
    if isinstance(X, Poisoned):
        x = np.where(X.valid, x, np.zeros((), x.dtype))
    try:
        r = AR.cast(i.x.dtype, i.out.dtype, x, i.saturate)
    except AR.CastError as e:
        raise VMRuntimeError(f"cast from {i.x.dtype} to {i.out.dtype}: {e}", i.loc) from None
    f.set(i.out, merge_valid(np.asarray(r), X))


@evaluate(N.View)
def _view(f, i):
    X = f.get(i.x)
    r = AR.view_bits(i.x.dtype, i.out.dtype, data_of(X))

    def mask(v):
        k = v.shape[-1] * i.x.dtype.nbits
        bits = np.repeat(v, i.x.dtype.nbits, axis=-1).reshape(v.shape[:-1] + (k // i.out.dtype.nbits,
                                                                               i.out.dtype.nbits))
        return bits.all(axis=-1)
    f.set(i.out, merge_valid(r, X, fn=mask))


@evaluate(N.Lookup)
def _lookup(f, i):
    T, C = f.get(i.table), f.get(i.codes)
    codes = np.asarray(data_of(C)).astype(np.int64)
    n = i.table.shape[0]
    if codes.size and (codes.min() < 0 or codes.max() >= n):
        bad = codes[(codes < 0) | (codes >= n)][0]
        raise VMRuntimeError(f"lookup index {int(bad)} is outside the table of {n} entries", i.loc)
    r = data_of(T)[codes]
    f.set(i.out, merge_valid(r, T, C, fn=lambda tv, cv: tv[codes] & cv))


# ----------------------------------------------------------------------------------------- shapes
def _shape_rule(fn):
    def rule(f, i):
        X = f.get(i.x)
        r = fn(data_of(X), i)
        f.set(i.out, merge_valid(r, X, fn=lambda v: fn(v, i)))
    return rule


RULES[N.Broadcast] = _shape_rule(lambda x, i: np.broadcast_to(x, i.out.shape).copy())
RULES[N.ExpandDims] = _shape_rule(lambda x, i: np.expand_dims(x, i.axis))
RULES[N.Reshape] = _shape_rule(lambda x, i: np.reshape(x, i.out.shape))
RULES[N.Permute] = _shape_rule(lambda x, i: np.transpose(x, i.perm).copy())
RULES[N.ConvertLayout] = _shape_rule(lambda x, i: x)


# ----------------------------------------------------------------------------------------- reductions
def _exact_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """The exactly rounded float64 sum along ``axis`` (math.fsum), then one rounding by the caller."""
    if not np.isfinite(x).all():   # Inf/NaN follow IEEE addition
        return np.sum(x, axis=axis)
    if not x.shape[axis]:
        return np.sum(x, axis=axis)
    s = np.apply_along_axis(math.fsum, axis, x)
    # IEEE: an exact zero sum is +0.0 unless every term is -0.0 (fsum always returns +0.0)
    return np.where(np.all((x == 0) & np.signbit(x), axis=axis), -0.0, s)


@evaluate(N.Sum, N.ReduceMax, N.ReduceMin)
def _reduce(f, i):
    X = f.get(i.x)
    x = data_of(X)
    dt = i.x.dtype
    cls = type(i)
    if dt.is_float:
        xf = _quiet(x)
        with np.errstate(all="ignore"):
            if cls is N.Sum:
                r = AR.round_float(dt, _exact_sum(xf, i.axis))
            else:
                fn = np.fmax.reduce if cls is N.ReduceMax else np.fmin.reduce
                r = AR.round_float(dt, fn(xf, axis=i.axis))
    elif dt == BOOL:
        raise VMRuntimeError("cannot reduce bool tiles", i.loc)
    else:
        fn = {N.Sum: np.sum, N.ReduceMax: np.max, N.ReduceMin: np.min}[cls]
        r = AR.wrap_int(dt, fn(np.asarray(x, np.int64), axis=i.axis))
    f.set(i.out, merge_valid(np.asarray(r), X, fn=lambda v: v.all(axis=i.axis)))


@evaluate(N.Dot)
def _dot(f, i):
    A, B, C = f.get(i.a), f.get(i.b), f.get(i.acc)
    if i.a.dtype == D.int8:
        r = np.asarray(data_of(A), np.int64) @ np.asarray(data_of(B), np.int64) + np.asarray(data_of(C), np.int64)
        r = AR.wrap_int(D.int32, r)
    else:
        a = np.asarray(data_of(A), np.float64)
        b = np.asarray(data_of(B), np.float64)
        c = np.asarray(data_of(C), np.float64)
        with np.errstate(all="ignore"):
            # products of f16/bf16/f32 values are exact in float64; the sum is then exactly rounded
            terms = np.concatenate([a[:, :, None] * b[None, :, :], c[:, None, :]], axis=1)  # [M, K+1, N]
            r = _exact_sum(terms, 1)
        r = AR.round_float(i.out.dtype, r)

    def mask(va, vb, vc):
        return (va.all(axis=1)[:, None] & vb.all(axis=0)[None, :]) & vc
    f.set(i.out, merge_valid(r, A, B, C, fn=mask))


# ----------------------------------------------------------------------------------------- control
@evaluate(N.Assume)
def _assume(f, i):
    if not f.scalar(i.cond, i, "assume"):
        raise VMRuntimeError("an assumption does not hold for this launch", i.loc)


@evaluate(N.Barrier)
def _barrier(f, i):
    pass


@evaluate(N.For)
def _for(f, i):
    start = f.scalar(i.start, i, "a loop bound")
    stop = f.scalar(i.stop, i, "a loop bound")
    step = f.scalar(i.step, i, "a loop step")
    if step <= 0:
        raise VMRuntimeError(f"loop step must be positive, got {step}", i.loc)
    cur = [f.get(v) for v in i.inits]
    for k in range(start, stop, step):
        f.set(i.var, np.asarray(k, dtype=np.int64))
        for c, x in zip(i.carried, cur):
            f.set(c, x)
        f.run(i.body)
        cur = [f.get(y) for y in i.yields]
    for o, x in zip(i.outs, cur):
        f.set(o, x)


@evaluate(N.If)
def _if(f, i):
    taken = f.scalar(i.cond, i, "a branch condition")
    block, ys = (i.then, i.then_yields) if taken else (i.orelse, i.else_yields)
    f.run(block)
    for o, y in zip(i.outs, ys):
        f.set(o, f.get(y))
