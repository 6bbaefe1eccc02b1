"""Rules for scalars, creation and elementwise computation: constants, block indices, sizes, full,
arange, unary/binary/compare, where and cast.

Arithmetic follows the NumPy VM (``backends/numpy/machine.py``): integers wrap modulo ``2**bits``
(computed in i32/i64 and truncated), division truncates toward zero (``MIN / -1`` wraps), shifts by
``>= bits`` give 0 (``<<``) or the sign fill (``>>``); float16 and bfloat16 compute in float32 and round
once (exact for + - * / sqrt), float32 uses IEEE ``div.rn``/``sqrt.rn``; exp/log/exp2/fmod call libdevice.
"""
from __future__ import annotations

from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.types import BOOL

from . import convert as C
from .core import F16, F32, I1, Tile, lower


def constant(dt, value) -> ir.Constant:
    """The repr of a constant of dtype ``dt``."""
    t = C.repr_type(dt)
    if dt == BOOL:
        return ir.Constant(I1, int(bool(value)))
    if dt in (D.float32, D.bfloat16):
        return ir.Constant(F32, float(value))
    if dt == D.float16:
        return ir.Constant(F16, float(value))
    if dt.is_int and not dt.is_codebook:
        return ir.Constant(t, int(value) & ((1 << dt.nbits) - 1))
    import numpy as np
    return ir.Constant(t, int(dt.encode(np.asarray([float(value)]))[0]))


def define(lw, out: N.Value, fn, *operands: N.Value):
    """Apply ``fn(*per_slot_values)`` slot by slot (tiles) or once (scalars)."""
    if out.is_tile:
        lay = lw.layout_of(out)
        n = lay.values
        cols = [lw.slots(v, n) for v in operands]
        lw.set(out, Tile([fn(*xs) for xs in zip(*cols)], lay, out.dtype))
    else:
        lw.set(out, fn(*(lw.get(v) for v in operands)))


@lower(N.Const)
def _const(lw, i):
    lw.consts[i.out.id] = i.value
    lw.set(i.out, constant(i.out.dtype, i.value))


@lower(N.BlockIdx)
def _block_idx(lw, i):
    lw.set(i.out, lw.sreg("ctaid." + "xyz"[i.axis]))


@lower(N.SizeOf)
def _size_of(lw, i):
    lw.set(i.out, lw.sizes[i.symbol])


@lower(N.Full)
def _full(lw, i):
    lay = lw.layout_of(i.out)
    if i.value is None:      # empty(): uninitialised; zeros here
        x = ir.Constant(C.repr_type(i.out.dtype), 0)
    else:
        x = lw.get(i.value)
    lw.set(i.out, Tile([x] * lay.values, lay, i.out.dtype))


@lower(N.Arange)
def _arange(lw, i):
    lay = lw.layout_of(i.out)
    lw.set(i.out, Tile([c[0] for c in lw.coords(lay, i.out.shape)], lay, i.out.dtype))


@lower(N.Assume)
def _assume(lw, i):
    x = lw.get(i.cond)
    fn = lw.intrinsic("llvm.assume", ir.FunctionType(ir.VoidType(), [I1]))
    lw.b.call(fn, [x])


@lower(N.Barrier)
def _barrier(lw, i):
    lw.barrier()


# ----------------------------------------------------------------------------------- float helpers
def _f32(lw, dt, x):
    return lw.b.fpext(x, F32) if dt == D.float16 else x


def _round(lw, dt, f):
    """float32 -> float dtype (one rounding)."""
    if dt == D.float32:
        return f
    return C.from_f32(lw.b, dt, f, False)


def libdevice(lw, name: str, nargs: int = 1):
    return lw.intrinsic(name, ir.FunctionType(F32, [F32] * nargs))


_MATH = {N.Exp: "__nv_expf", N.Exp2: "__nv_exp2f", N.Log: "__nv_logf"}


@lower(N.Neg, N.Abs, N.Invert, N.Exp, N.Exp2, N.Log, N.Sqrt, N.Rsqrt)
def _unary(lw, i):
    dt = i.x.dtype
    cls = type(i)
    b = lw.b
    if dt == BOOL:      # invert of bool
        define(lw, i.out, lambda x: b.xor(x, ir.Constant(I1, 1)), i.x)
        return
    if dt.is_int:
        t = C.repr_type(dt)
        if cls is N.Invert:
            define(lw, i.out, lambda x: b.xor(x, ir.Constant(t, -1)), i.x)
        elif cls is N.Neg:
            define(lw, i.out, lambda x: b.sub(ir.Constant(t, 0), x), i.x)
        else:   # abs wraps: abs(MIN) = MIN
            def f(x):
                if not dt.is_signed:
                    return x
                neg = b.icmp_signed("<", x, ir.Constant(t, 0))
                return b.select(neg, b.sub(ir.Constant(t, 0), x), x)
            define(lw, i.out, f, i.x)
        return

    def f(x):
        if cls is N.Neg:        # IEEE negation flips the sign bit (also of 0 and NaN)
            return b.fneg(x)
        if cls is N.Abs:
            fn = lw.intrinsic("llvm.fabs.f16" if dt == D.float16 else "llvm.fabs.f32",
                              ir.FunctionType(x.type, [x.type]))
            return b.call(fn, [x])
        v = _f32(lw, dt, x)
        if cls is N.Sqrt:
            r = b.call(lw.intrinsic("llvm.sqrt.f32", ir.FunctionType(F32, [F32])), [v])
        elif cls is N.Rsqrt:
            r = b.fdiv(ir.Constant(F32, 1.0), b.call(lw.intrinsic("llvm.sqrt.f32", ir.FunctionType(F32, [F32])), [v]))
        else:
            r = b.call(libdevice(lw, _MATH[cls]), [v])
        return _round(lw, dt, r)
    define(lw, i.out, f, i.x)


_INT_OPS = {N.Add: "add", N.Sub: "sub", N.Mul: "mul", N.And: "and_", N.Or: "or_", N.Xor: "xor"}
_FLOAT_OPS = {N.Add: "fadd", N.Sub: "fsub", N.Mul: "fmul", N.Div: "fdiv"}


@lower(N.Add, N.Sub, N.Mul, N.Div, N.Mod, N.Minimum, N.Maximum, N.And, N.Or, N.Xor, N.Shl, N.Shr)
def _binary(lw, i):
    dt = i.a.dtype
    cls = type(i)
    b = lw.b
    if dt == BOOL:
        op = {N.And: "and_", N.Or: "or_", N.Xor: "xor", N.Minimum: "and_", N.Maximum: "or_",
              N.Mul: "and_", N.Add: "or_", N.Sub: "xor"}[cls]   # as NumPy on bools
        define(lw, i.out, lambda x, y: getattr(b, op)(x, y), i.a, i.b)
        return
    if dt.is_float:
        def f(x, y):
            u, v = _f32(lw, dt, x), _f32(lw, dt, y)
            if cls in _FLOAT_OPS:
                r = getattr(b, _FLOAT_OPS[cls])(u, v)
            elif cls is N.Mod:
                r = b.call(libdevice(lw, "__nv_fmodf", 2), [u, v])
            else:   # fmin/fmax: NaN only if both are NaN
                name = "llvm.minnum.f32" if cls is N.Minimum else "llvm.maxnum.f32"
                r = b.call(lw.intrinsic(name, ir.FunctionType(F32, [F32, F32])), [u, v])
            return _round(lw, dt, r)
        define(lw, i.out, f, i.a, i.b)
        return
    t = C.repr_type(dt)
    w = dt.nbits
    signed = dt.is_signed

    def f(x, y):
        if cls in _INT_OPS:
            return getattr(b, _INT_OPS[cls])(x, y)
        if cls in (N.Minimum, N.Maximum):
            lt = b.icmp_signed("<", x, y) if signed else b.icmp_unsigned("<", x, y)
            return b.select(lt, x, y) if cls is N.Minimum else b.select(lt, y, x)
        if cls is N.Shl:
            big = b.icmp_unsigned(">=", y, ir.Constant(t, w)) if not signed else \
                b.or_(b.icmp_signed(">=", y, ir.Constant(t, w)), b.icmp_signed("<", y, ir.Constant(t, 0)))
            return b.select(big, ir.Constant(t, 0), b.shl(x, b.select(big, ir.Constant(t, 0), y)))
        if cls is N.Shr:
            big = b.icmp_unsigned(">=", y, ir.Constant(t, w))
            amt = b.select(big, ir.Constant(t, w - 1), y)
            if signed:
                return b.ashr(x, amt)     # >= bits: the sign fill, as ashr by bits-1
            return b.select(big, ir.Constant(t, 0), b.lshr(x, amt))
        # Div / Mod truncate toward zero; MIN / -1 wraps to MIN (and MIN % -1 = 0); x / 0 is an error in
        # the VM, any value here
        zero = b.icmp_unsigned("==", y, ir.Constant(t, 0))
        safe_y = b.select(zero, ir.Constant(t, 1), y)
        if signed:
            ovf = b.and_(b.icmp_signed("==", y, ir.Constant(t, -1)),
                         b.icmp_signed("==", x, ir.Constant(t, -(1 << (t.width - 1)))))
            safe_y = b.select(ovf, ir.Constant(t, 1), safe_y)
            if cls is N.Div:
                return b.select(ovf, x, b.sdiv(x, safe_y))
            return b.select(ovf, ir.Constant(t, 0), b.srem(x, safe_y))
        return b.udiv(x, safe_y) if cls is N.Div else b.urem(x, safe_y)
    define(lw, i.out, f, i.a, i.b)


_ICMP = {N.Eq: "==", N.Ne: "!=", N.Lt: "<", N.Le: "<=", N.Gt: ">", N.Ge: ">="}


@lower(*_ICMP)
def _compare(lw, i):
    dt = i.a.dtype
    op = _ICMP[type(i)]
    b = lw.b
    if dt.is_float:
        def f(x, y):
            # ordered comparisons (false with NaN), except != which is true with NaN
            return b.fcmp_unordered(op, x, y) if op == "!=" else b.fcmp_ordered(op, x, y)
    elif dt.is_signed:
        def f(x, y):
            return b.icmp_signed(op, x, y)
    else:
        def f(x, y):
            return b.icmp_unsigned(op, x, y)
    define(lw, i.out, f, i.a, i.b)


@lower(N.Where)
def _where(lw, i):
    define(lw, i.out, lambda c, x, y: lw.b.select(c, x, y), i.cond, i.a, i.b)


@lower(N.Cast)
def _cast(lw, i):
    src, dst = i.x.dtype, i.out.dtype
    x = lw.get(i.x)
    if isinstance(x, Tile) and x.packed is not None and x.dtype == src and i.out.is_tile:
        # codes still in the words a vector load read: two per word operation where they pair up
        from .unpack import cast_packed
        lay = lw.layout_of(i.out)
        if str(lay) == str(x.layout):
            slots = cast_packed(lw.b, src, dst, x.packed, x.slots, i.saturate)
            if slots is not None:
                lw.set(i.out, Tile(slots, lay, dst))
                return
    define(lw, i.out, lambda x: C.cast(lw.b, src, dst, x, i.saturate), i.x)

