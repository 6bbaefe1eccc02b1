"""Rules for arithmetic: elementwise unary/binary ops, comparisons, where, reductions and dot.

Float arithmetic matches the VM's "exact result, rounded once" where IEEE operations give it: f16
and f32 + - * are native, division and square root use the correctly rounded ``div_rn`` /
``sqrt_rn``, bf16 computes in f32 and rounds to bfloat16 (exact for + - * / sqrt). exp, exp2, log and
fmod use libdevice on a GPU (within 2 ulps; fmod exact) and NumPy in the interpreter, rsqrt is
``1 / sqrt`` rounded twice, and reductions and dot add in a tree order rather than exactly: those are
compared within the tolerance of tests/support.py.
"""
from __future__ import annotations

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N

from . import reprs as R
from .codegen import expand, pow2, rule

_BIN = {N.Add: "+", N.Sub: "-", N.Mul: "*", N.And: "&", N.Or: "|", N.Xor: "^"}
_CMP = {N.Eq: "==", N.Ne: "!=", N.Lt: "<", N.Le: "<=", N.Gt: ">", N.Ge: ">="}
_MATH = {N.Exp: "vm_exp", N.Exp2: "vm_exp2", N.Log: "vm_log", N.Sqrt: "tl.sqrt_rn"}


def _round_to(cg, dt, f32_expr: str) -> str:
    """An f32 result rounded to the float dtype ``dt`` (in its register repr)."""
    if dt == D.float16:
        return f"({f32_expr}).to(tl.float16)"
    if dt == D.bfloat16:
        return f"{cg.use('vm_round_bf16')}({f32_expr})"
    return f32_expr


def _f32(dt, x: str) -> str:
    return f"{x}.to(tl.float32)" if dt == D.float16 else x


@rule(*_BIN, N.Div, N.Mod, N.Minimum, N.Maximum, N.Shl, N.Shr)
def _binary(cg, i):
    dt = i.a.dtype
    a, b = cg.name(i.a), cg.name(i.b)
    cls = type(i)
    if cls is N.Minimum or cls is N.Maximum:   # floats: with one NaN operand, the other (minNum)
        cg.define(i.out, f"tl.{'minimum' if cls is N.Minimum else 'maximum'}({a}, {b})")
        return
    if dt.is_float:
        if cls is N.Div:
            r = f"tl.div_rn({_f32(dt, a)}, {_f32(dt, b)})"
        elif cls is N.Mod:
            r = f"{cg.use('vm_fmod')}({_f32(dt, a)}, {_f32(dt, b)})"
        elif dt == D.float16:
            cg.define(i.out, f"{a} {_BIN[cls]} {b}")
            return
        else:
            r = f"{a} {_BIN[cls]} {b}"
        cg.define(i.out, _round_to(cg, dt, r))
        return
    c = cg.const_of(i.b)
    if (cls is N.Div or cls is N.Mod) and isinstance(c, int) and c not in (0, -1):
        # a constant divisor other than 0 and -1: Triton's // and % truncate like C, no special cases
        cg.define(i.out, f"{a} {'//' if cls is N.Div else '%'} {b}")
    elif cls is N.Div or cls is N.Mod:
        fn = cg.use("vm_idiv" if cls is N.Div else "vm_imod")
        cg.define(i.out, f"{fn}({a}, {b}, {dt.is_signed})")
    elif cls is N.Shl:
        cg.define(i.out, f"{cg.use('vm_shl')}({a}, {b}, {dt.nbits})")
    elif cls is N.Shr:
        cg.define(i.out, f"{cg.use('vm_shr')}({a}, {b}, {dt.nbits}, {dt.is_signed})")
    else:
        cg.define(i.out, f"{a} {_BIN[cls]} {b}")


@rule(*_CMP)
def _compare(cg, i):
    cg.define(i.out, f"{cg.name(i.a)} {_CMP[type(i)]} {cg.name(i.b)}")


def _wrapped(dt, v32: str) -> str:
    """An int32 expression reduced modulo 2**bits into ``dt``'s range with int32 arithmetic, then narrowed.
    (Widening the result again goes through :func:`reprs.int32_of`, which the H100 gets right.)"""
    b = dt.nbits
    if dt.is_signed:
        v = f"((({v32}) + {1 << (b - 1)}) & {(1 << b) - 1}) - {1 << (b - 1)}"
    else:
        v = f"({v32}) & {(1 << b) - 1}"
    return f"({v}).to({R.tl_type(dt)})"


@rule(N.Neg, N.Abs, N.Invert, *_MATH, N.Rsqrt)
def _unary(cg, i):
    dt = i.x.dtype
    x = cg.name(i.x)
    cls = type(i)
    if cls is N.Neg:
        if dt.is_float:   # Triton lowers -x to 0 - x, which gives +0.0 for x = +0.0; a product by -1 is exact
            cg.define(i.out, f"{x} * {R.const(dt, -1.0)}")
        elif dt.nbits < 32:   # wraps: -(-32768) is -32768 (its widening is in rules_cast._int_value)
            cg.define(i.out, _wrapped(dt, f"-{R.int32_of(dt, x)}"))
        else:
            cg.define(i.out, f"-{x}")
    elif cls is N.Invert:
        cg.define(i.out, f"~{x}")
    elif cls is N.Abs:
        if dt.is_int and not dt.is_signed:
            cg.define(i.out, x)
        elif dt.is_int and dt.nbits < 32:   # abs(MIN) wraps to MIN, as for negation
            if dt == D.int16:     # (see lib.vm_abs_i16: abs.s16 widens wrongly on the H100)
                cg.define(i.out, f"{cg.use('vm_abs_i16')}({x})")
            else:
                v = cg.tmp(R.int32_of(dt, x), "v")
                cg.define(i.out, _wrapped(dt, f"tl.where({v} < 0, 0 - {v}, {v})"))
        else:
            cg.define(i.out, f"tl.abs({x})")
    elif cls is N.Rsqrt:
        cg.define(i.out, _round_to(cg, dt, f"tl.div_rn(1.0, tl.sqrt_rn({_f32(dt, x)}))"))
    else:
        fn = _MATH[cls]
        if fn.startswith("vm_"):
            cg.use(fn)
        cg.define(i.out, _round_to(cg, dt, f"{fn}({_f32(dt, x)})"))


@rule(N.Where)
def _where(cg, i):
    cg.define(i.out, f"tl.where({cg.name(i.cond)}, {cg.name(i.a)}, {cg.name(i.b)})")


# ----------------------------------------------------------------------------------- reductions
@rule(N.Sum, N.ReduceMax, N.ReduceMin)
def _reduce(cg, i):
    dt = i.x.dtype
    x = cg.name(i.x)
    ax = i.axis
    lanes = cg.lane_mask(i.x.shape)
    cls = type(i)
    if cls is N.Sum:
        if dt.is_float:
            xf = _f32(dt, x)
            if lanes:
                xf = f"tl.where({lanes}, {xf}, 0.0)"
            cg.define(i.out, _round_to(cg, dt, f"tl.sum({xf}, axis={ax})"))
        else:
            xi = f"tl.where({lanes}, {x}, 0)" if lanes else x
            cg.define(i.out, f"tl.sum({xi}, axis={ax}).to({R.tl_type(dt)})")
        return
    fn = "tl.max" if cls is N.ReduceMax else "tl.min"
    if dt.is_float:
        # every NaN made quiet first: the interpreter reduces with NumPy, whose fmax returns a signalling
        # NaN (e.g. float16 0xFC06) instead of ignoring it
        x = cg.tmp(f"tl.where({x} == {x}, {x}, float(\"nan\")).to({R.tl_type(dt)})", "q")
        if not lanes:   # tl.max / tl.min ignore NaN unless every element is NaN
            cg.define(i.out, f"{fn}({x}, axis={ax})")
            return
        pad = 'float("-inf")' if cls is N.ReduceMax else 'float("inf")'
        r = cg.tmp(f"{fn}(tl.where({lanes}, {x}, {pad}), axis={ax})", "r")
        seen = cg.tmp(f"tl.max(({lanes} & ({x} == {x})).to(tl.int32), axis={ax})", "seen")
        # (.to: the interpreter promotes an f16 tile selected against a Python float to f32)
        cg.define(i.out, f"tl.where({seen} > 0, {r}, float(\"nan\")).to({R.tl_type(dt)})")
    else:
        pad = dt.min if cls is N.ReduceMax else dt.max
        xi = f"tl.where({lanes}, {x}, {pad})" if lanes else x
        cg.define(i.out, f"{fn}({xi}, axis={ax}).to({R.tl_type(dt)})")   # (a Python-int pad promotes)


@rule(N.Dot)
def _dot(cg, i):
    (m, k), (_, n) = i.a.shape, i.b.shape
    PM, PK, PN = pow2(m), pow2(k), pow2(n)
    a, b, acc = cg.name(i.a), cg.name(i.b), cg.name(i.acc)
    dt = i.a.dtype
    zero = "0" if dt == D.int8 else "0.0"
    if k != PK:   # padding lanes of the inner axis must add nothing
        a = cg.tmp(f"tl.where({expand(f'(tl.arange(0, {PK}) < {k})', 1, 2)}, {a}, {zero})", "a")
        b = cg.tmp(f"tl.where({expand(f'(tl.arange(0, {PK}) < {k})', 0, 2)}, {b}, {zero})", "b")
    if min(PM, PN) >= 16 and PK >= (32 if dt == D.int8 else 16):   # Triton's minimum MMA shapes
        if dt == D.float32:
            cg.define(i.out, f"tl.dot({a}, {b}, {acc}, input_precision=\"ieee\")")
        elif dt == D.bfloat16:
            cg.define(i.out, f"{cg.use('vm_dot_bf16')}({a}, {b}, {acc})")
        elif dt == D.int8:
            # int8 MMA accumulates with saturation (mma ... .satfinite) while vmlang's int32 sums wrap:
            # the products are summed from 0 (|sum| <= K * 2**14 cannot saturate for K < 2**17) and the
            # accumulator is added with a wrapping int32 add. (out_dtype: Triton 3.6 defaults to float32.)
            # (through uint32 bitcasts: Triton folds dot(a, b, 0) + acc back into dot(a, b, acc))
            prod = cg.tmp(f"tl.dot({a}, {b}, out_dtype=tl.int32).to(tl.uint32, bitcast=True)", "p")
            cg.define(i.out, f"({prod} + {acc}.to(tl.uint32, bitcast=True)).to(tl.int32, bitcast=True)")
        else:
            cg.define(i.out, f"tl.dot({a}, {b}, {acc})")
        return
    # tiles below Triton's minimum (16 x 16 x 16; K >= 32 for int8): broadcast multiply and sum
    wide = "tl.int32" if dt == D.int8 else "tl.float32"
    cg.define(i.out, f"tl.sum({a}[:, :, None].to({wide}) * {b}[None, :, :].to({wide}), axis=1) + {acc}")
