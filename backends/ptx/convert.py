"""Conversions between every pair of vmlang dtypes, as LLVM IR (``llvmlite.ir``) for one thread.

How a value of each dtype is held by the PTX lowering ("repr"):

=====================================  ==========  ==============================================
dtype                                  LLVM type   content
=====================================  ==========  ==============================================
bool (= uint1)                         ``i1``      the value
int8/uint8, int16/uint16, int32/uint32 ``iN``      the bits (the dtype says signed or unsigned)
float16                                ``half``    the value
float32                                ``float``   the value
bfloat16                               ``float``   a bfloat16-exact value
every other dtype (storage types:      ``i8``      the code, zero-extended (sub-byte ints, float
sub-byte ints, small floats, fp8,                  formats below 16 bits, e8m0, codebooks)
e8m0, codebooks such as nf4)
=====================================  ==========  ==============================================

The semantics are those of the NumPy VM (:func:`vmlang.backends.numpy.arith.cast`, documented on
:class:`vmlang.ir.nodes.Cast`), bit for bit wherever the VM has a result:

* every float value of every dtype is exact in float32, so a float cast decodes the source to float32
  exactly (:func:`to_f32`) and encodes float32 into the target with one rounding to nearest even
  (:func:`from_f32`);
* binary float formats below 16 bits decode and encode with integer bit manipulation generated from the
  format's data (``exp``, ``man``, ``flavor``, ``signed``; :mod:`.floatfmt`, which has the codebooks too),
  as :mod:`vmlang.ir.floatcodec` defines them: overflow gives +-Inf in formats with Inf unless
  saturating, else the largest finite magnitude; NaN gives the format's canonical NaN code;
* decoding is the hot path of quantized kernels and is branch-free and short (no int -> float conversion
  instruction, which runs at a quarter of the rate): a float format moves its fields into float32's (or
  float16's, for a cast to float16 where every value is exact there) and multiplies by ``2**(127 - bias)``
  (:func:`.floatfmt.decode_into_body`: ``shl``, ``ashr``, ``and``, ``mul``; a select only for the codes of
  formats with Inf/NaN: e4m3's NaN); e5m2 is the top byte of a float16 (``shl``, ``cvt.f32.f16``);
  integers of at most 16 bits (8 bits into float16) use the magic number ``2**23`` (:func:`_int_magic`:
  ``xor``/``or``, ``sub``). NaN codes decode to some NaN (float32/float16 do not keep a payload);
* float16 uses ``fptrunc``/``fpext`` (round to nearest even); bfloat16 (and any IEEE format with float32's
  exponent and fewer mantissa bits) rounds the float32 bits to nearest even;
* codebooks (nf4) decode by selecting over their entries and encode by counting the midpoints below the
  value (a value exactly between two entries takes the lower code);
* float -> int rounds to nearest even (``llvm.roundeven``) and clamps to the target range (NaN gives
  0; the VM rejects NaN and unsaturated out-of-range values, so only saturation is observable);
* int -> int wraps modulo ``2**bits`` (a bool takes the lowest bit), or clamps first when saturating;
* int -> float converts exactly where the integer fits in float32; int32/uint32 into a format narrower
  than float32 first round to odd in float32 (:func:`int_to_f32_rto`), so the final rounding to nearest
  even is not a double rounding.

Values the VM rejects (unsaturated overflow into a format without Inf, NaN into a format without NaN,
NaN to an integer) give what saturation gives, or code 0 for NaN.

The helpers are LLVM functions of the module (internal, ``alwaysinline``), made once per module and
dtype and found again by name (:func:`.llvm_util.helper`), so each conversion site is one call. Only
instructions NVPTX lowers directly are used: integer ops, bitcasts, ``fcmp``/``select``, ``fmul``/``fsub``
(float, and half on sm_53+), ``sitofp``/``uitofp``/``fptosi``/``fptoui``, ``fptrunc``/``fpext`` between
float and half, and ``llvm.roundeven.f32``. No fast-math flags: ``mul.rn.f32`` keeps float32 subnormals
(no ``.ftz``), which the float decoding relies on.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import floatcodec as fc
from vmlang.ir.errors import BackendError
from vmlang.ir.types import BOOL, COMPUTE

from .floatfmt import (codebook_decode_body, codebook_encode_body, decode_float, decodes_exactly_into,
                       encode_float_body, round_f32_body, target_fields)
from .llvm_util import (F16, F32, I1, I8, I32, I64, bits_f32, clamp_f, const, f32, f32_bits, helper, i32, ident,
                        roundeven)

#: (exp, man) of the LLVM float types that hold an IEEE format directly
_NATIVE = {(5, 10): F16, (8, 23): F32}
_F32_EXP, _F32_MAN = 8, 23


# ----------------------------------------------------------------------------------- reprs
def is_storage(dt) -> bool:
    """A dtype held as its code in an ``i8`` (not a compute dtype, not bool)."""
    return dt != BOOL and dt not in COMPUTE


def _int_like(dt) -> bool:
    return dt.is_int and not dt.is_codebook


def _is_float_format(dt) -> bool:
    return isinstance(dt, D.FloatType)


def _held_in_f32(dt) -> bool:
    """A compute float held in a ``float``: float32 itself, or a format with float32's exponent and
    fewer mantissa bits (bfloat16) holding exact values."""
    return (_is_float_format(dt) and not is_storage(dt) and dt.exp == _F32_EXP and dt.man <= _F32_MAN
            and dt.flavor == fc.IEEE)


def repr_type(dt) -> ir.Type:
    """The LLVM type that holds one value of ``dt`` (see the module docstring)."""
    if dt == BOOL:
        return I1
    if is_storage(dt):
        if dt.nbits > 8:
            raise BackendError(f"ptx: no repr for the {dt.nbits}-bit storage type {dt}")
        return I8
    if _int_like(dt):
        return ir.IntType(dt.nbits)
    if _is_float_format(dt):
        t = _NATIVE.get((dt.exp, dt.man))
        if t is not None and dt.flavor == fc.IEEE:
            return t
        if _held_in_f32(dt):
            return F32
    raise BackendError(f"ptx: no repr for the dtype {dt}")


# ----------------------------------------------------------------------------------- integers
def _value_type(dt) -> ir.IntType:
    """i32, or i64 for integer dtypes whose values do not fit in int32 (uint32)."""
    return I64 if (dt.max > 2 ** 31 - 1 or dt.min < -(2 ** 31)) else I32


def int_value(b: ir.IRBuilder, dt, x, ty: ir.IntType | None = None):
    """The integer value of an int-like repr (bool, any int, storage ints), sign- or zero-extended to
    an ``i32`` (an ``i64`` for uint32), or to ``ty`` when given (it must hold every value of ``dt``)."""
    if not _int_like(dt):
        raise BackendError(f"ptx: int_value of the non-integer dtype {dt}")
    want = ty if ty is not None else _value_type(dt)
    if want.width < 64 and _value_type(dt) == I64:
        raise BackendError(f"ptx: {dt} values do not fit in {want}")
    n = dt.nbits
    if dt == BOOL:
        return b.zext(x, want)
    if is_storage(dt):
        v = b.zext(x, want)
        if dt.is_signed:     # sign-extend the n-bit code
            s = const(want, want.width - n)
            v = b.ashr(b.shl(v, s), s)
        return v
    if n == want.width:
        return x
    return b.sext(x, want) if dt.is_signed else b.zext(x, want)


def int_to(b: ir.IRBuilder, dt, v):
    """An integer value (any integer type) wrapped modulo ``2**bits`` into the repr of int-like ``dt``
    (bool takes the lowest bit; a storage int keeps its ``nbits`` code bits zero-extended in an i8)."""
    if not _int_like(dt):
        raise BackendError(f"ptx: int_to of the non-integer dtype {dt}")
    t = repr_type(dt)
    if v.type.width > t.width:
        v = b.trunc(v, t)
    elif v.type.width < t.width:
        v = b.zext(v, t)
    if is_storage(dt) and dt.nbits < t.width:
        v = b.and_(v, const(t, (1 << dt.nbits) - 1))
    return v


def _largest_f32_at_most(x: int) -> float:
    f = np.float32(x)
    if float(f) > x:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _smallest_f32_at_least(x: int) -> float:
    f = np.float32(x)
    if float(f) < x:
        f = np.nextafter(f, np.float32(np.inf))
    return float(f)


def _f32_to_int_body(dt):
    """Body of ``float -> i32``: round to nearest even and clamp to dt's range (NaN -> 0). The result
    holds dt's value (uint32: its bits)."""
    lo, hi = int(dt.min), int(dt.max)
    lo_f, hi_f = _smallest_f32_at_least(lo), _largest_f32_at_most(hi)
    unsigned = lo >= 0

    def body(h, f):
        r = roundeven(h, f)
        inside = h.and_(h.fcmp_ordered(">=", r, f32(lo_f)), h.fcmp_ordered("<=", r, f32(hi_f)))
        safe = h.select(inside, r, f32(0.0))
        v = h.fptoui(safe, I32) if unsigned else h.fptosi(safe, I32)
        # r is an integer: below lo_f means below lo, above hi_f (the largest float32 <= hi) above hi
        v = h.select(h.fcmp_ordered("<", r, f32(lo_f)), i32(lo), v)
        v = h.select(h.fcmp_ordered(">", r, f32(hi_f)), i32(hi), v)
        return v
    return body


def int_to_f32_rto(b: ir.IRBuilder, v):
    """An i64 integer (|v| < 2**62) -> float32 rounded to odd: truncated toward zero, the last bit set
    when inexact. A later rounding to nearest even to at most 22 significant bits is then the correct
    rounding of the integer itself (no double rounding)."""
    def body(h, x):
        f = h.sitofp(x, F32)
        back = h.fptosi(f, I64)
        zero = const(I64, 0)
        absb = h.select(h.icmp_signed("<", back, zero), h.sub(zero, back), back)
        absv = h.select(h.icmp_signed("<", x, zero), h.sub(zero, x), x)
        mag = h.and_(f32_bits(h, f), i32(0x7FFFFFFF))
        mag = h.select(h.icmp_signed(">", absb, absv), h.sub(mag, i32(1)), mag)
        mag = h.select(h.icmp_signed("!=", back, x), h.or_(mag, i32(1)), mag)
        mag = h.select(h.icmp_signed("<", x, zero), h.or_(mag, i32(-(1 << 31))), mag)
        return bits_f32(h, mag)
    if v.type != I64:
        raise BackendError("ptx: int_to_f32_rto takes an i64")
    return helper(b, "i2f.rto", F32, [I64], body, [v])


def _exact_in_f32(dt) -> bool:
    return -(2 ** 24) <= dt.min and dt.max <= 2 ** 24


def _magic_fits(dt, t) -> bool:
    """Whether :func:`_int_magic` converts the int-like ``dt`` into ``t`` (``half``/``float``): its codes
    fit in ``t``'s mantissa."""
    return _int_like(dt) and dt.nbits <= target_fields(t)[1]


def _int_magic(b, dt, x, t):
    """The exact value of an int-like repr of at most ``Mt`` bits (``t``'s mantissa bits: 23 for float,
    10 for half) as ``t``, without an int -> float conversion instruction (``cvt.rn.f32.s32`` runs at a
    quarter of the rate): with ``u`` the n-bit code zero-extended, ``t``'s bits ``2**Mt``-exponent |
    ``u`` are ``2**Mt + u`` exactly (``0x4B000000 | u`` in float32), less ``2**Mt`` is ``u``; a signed code
    ``u ^ 2**(n-1)`` is value + ``2**(n-1)``, and the xor with ``magic | 2**(n-1)`` sets both at once, so
    ``bits(c ^ (magic | 2**(n-1))) - (2**Mt + 2**(n-1))`` is the value. One ``xor``/``or`` and one
    ``sub`` (zero gives +0)."""
    Et, Mt, W = target_fields(t)
    It = ir.IntType(W)
    n = dt.nbits
    if not _magic_fits(dt, t):
        raise BackendError(f"ptx: {dt} does not fit the magic-number conversion into {t}")
    c = b.zext(x, It) if x.type.width < W else b.trunc(x, It) if x.type.width > W else x
    magic = (fc.bias(Et) + Mt) << Mt
    if dt.is_signed:
        bits = b.xor(c, const(It, magic | (1 << (n - 1))))
        off = 2.0 ** Mt + 2.0 ** (n - 1)
    else:
        bits = b.or_(c, const(It, magic))
        off = 2.0 ** Mt
    return b.fsub(b.bitcast(bits, t), ir.Constant(t, off))


# ----------------------------------------------------------------------------------- float <-> float32
def to_f32(b: ir.IRBuilder, dt, x):
    """The float32 value of a repr: exact for every float-like dtype and every integer of at most 24
    bits; int32/uint32 round to nearest even."""
    if _int_like(dt):
        if _magic_fits(dt, F32):
            return _int_magic(b, dt, x, F32)
        v = int_value(b, dt, x)
        if v.type == I64:
            return b.uitofp(x, F32) if not dt.is_signed else b.sitofp(v, F32)
        return b.sitofp(v, F32)
    if dt.is_codebook:
        return helper(b, f"decode.{ident(dt.name)}", F32, [I8], codebook_decode_body(dt), [x])
    if not _is_float_format(dt):
        raise BackendError(f"ptx: cannot convert {dt}")
    if is_storage(dt):
        return decode_float(b, dt, x, F32)
    t = repr_type(dt)
    if t == F32:
        return x
    return b.fpext(x, F32)


def from_f32(b: ir.IRBuilder, dt, f, saturate: bool = False):
    """A float32 value -> the repr of ``dt`` with one rounding to nearest even (integers: to the
    nearest integer, ties to even, clamped). ``saturate`` clamps out-of-range values to the finite
    range (Inf too); otherwise float overflow gives +-Inf where ``dt`` has Inf."""
    if _int_like(dt):
        v = helper(b, f"f2i.{ident(dt.name)}", I32, [F32], _f32_to_int_body(dt), [f])
        return int_to(b, dt, v)
    if dt.is_codebook:
        return helper(b, f"encode.{ident(dt.name)}", I8, [F32], codebook_encode_body(dt), [f])
    if not _is_float_format(dt):
        raise BackendError(f"ptx: cannot convert to {dt}")
    if is_storage(dt):
        # saturation changes the result only where overflow would give Inf
        sat = saturate and dt.flavor == fc.IEEE
        name = f"encode.{ident(dt.name)}" + (".sat" if sat else "")
        return helper(b, name, I8, [F32], encode_float_body(dt, sat), [f])
    t = repr_type(dt)
    if saturate:
        f = clamp_f(b, f, -dt.max, dt.max)
    if t == F16:
        return b.fptrunc(f, F16)
    if dt.man == _F32_MAN:
        return f
    return helper(b, f"round.{ident(dt.name)}", F32, [F32], round_f32_body(dt), [f])


# ----------------------------------------------------------------------------------- cast
def _int_to_int(b, src, dst, x, saturate):
    v = int_value(b, src, x)
    if saturate:
        lo, hi = max(dst.min, src.min), min(dst.max, src.max)
        if lo > src.min:
            v = b.select(b.icmp_signed("<", v, const(v.type, lo)), const(v.type, lo), v)
        if hi < src.max:
            v = b.select(b.icmp_signed(">", v, const(v.type, hi)), const(v.type, hi), v)
    return int_to(b, dst, v)


def _int_to_float(b, src, dst, x, saturate):
    if repr_type(dst) == F16 and _magic_fits(src, F16):
        return _int_magic(b, src, x, F16)       # exact and in range: saturation changes nothing
    if _exact_in_f32(src):
        return from_f32(b, dst, to_f32(b, src, x), saturate)
    v = int_value(b, src, x)
    rne = b.uitofp(x, F32) if not src.is_signed and v.type == I64 else b.sitofp(v, F32)
    if _is_float_format(dst) and not is_storage(dst) and dst.man == _F32_MAN:
        return from_f32(b, dst, rne, saturate)      # float32 itself: one rounding to nearest even
    if dst.max < 2 ** 24:
        # every integer beyond float32's exact range overflows dst either way
        return from_f32(b, dst, rne, saturate)
    return from_f32(b, dst, int_to_f32_rto(b, b.sext(v, I64) if v.type != I64 else v), saturate)


def cast(b: ir.IRBuilder, src, dst, x, saturate: bool = False):
    """Convert the repr ``x`` of ``src`` to the repr of ``dst`` (semantics of :class:`vmlang.ir.nodes.Cast`
    and the NumPy VM; see the module docstring)."""
    if x.type != repr_type(src):
        raise BackendError(f"ptx: cast from {src} expects {repr_type(src)}, got {x.type}")
    if _int_like(src) and _int_like(dst):
        return _int_to_int(b, src, dst, x, saturate)
    if src == dst and not saturate and not is_storage(src):
        return x
    if _int_like(src):
        return _int_to_float(b, src, dst, x, saturate)
    if repr_type(dst) == F16 and decodes_exactly_into(src, F16) and not (saturate and src.has_inf):
        return decode_float(b, src, x, F16)    # exact; saturation only changes Inf
    return from_f32(b, dst, to_f32(b, src, x), saturate)


__all__ = ["cast", "from_f32", "int_to", "int_to_f32_rto", "int_value", "is_storage", "repr_type", "to_f32"]
