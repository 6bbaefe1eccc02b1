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
  format's data (``exp``, ``man``, ``flavor``, ``signed``), as :mod:`vmlang.ir.floatcodec` defines them:
  overflow gives +-Inf in formats with Inf unless saturating, else the largest finite magnitude; NaN
  gives the format's canonical NaN code;
* decoding is the hot path of quantized kernels and is branch-free and short (no int -> float conversion
  instruction, which runs at a quarter of the rate): a float format moves its fields into float32's (or
  float16's, for a cast to float16 where every value is exact there) and multiplies by ``2**(127 - bias)``
  (:func:`_decode_into_body`: ``shl``, ``ashr``, ``and``, ``mul``; a select only for the codes of
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
dtype and found again by name, so each conversion site is one call. Only instructions NVPTX lowers
directly are used: integer ops, bitcasts, ``fcmp``/``select``, ``fmul``/``fsub`` (float, and half on
sm_53+), ``sitofp``/``uitofp``/``fptosi``/``fptoui``, ``fptrunc``/``fpext`` between float and half, and
``llvm.roundeven.f32``. No fast-math flags: ``mul.rn.f32`` keeps float32 subnormals (no ``.ftz``), which
the float decoding relies on.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import floatcodec as fc
from vmlang.ir.errors import BackendError
from vmlang.ir.types import BOOL, COMPUTE

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32 = ir.HalfType(), ir.FloatType()

#: (exp, man) of the LLVM float types that hold an IEEE format directly
_NATIVE = {(5, 10): F16, (8, 23): F32}
_F32_EXP, _F32_MAN = 8, 23
_NAN32 = 0x7FC00000
_PREFIX = "vm.cvt."


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


# ----------------------------------------------------------------------------------- small pieces
def _ci(t, v) -> ir.Constant:
    """An integer constant of type ``t`` from the low ``t.width`` bits of ``v`` (written signed)."""
    v = int(v) & ((1 << t.width) - 1)
    if t.width > 1 and v >= 1 << (t.width - 1):
        v -= 1 << t.width
    return ir.Constant(t, v)


def _i32(v) -> ir.Constant:
    return _ci(I32, v)


def _f32c(v) -> ir.Constant:
    v = float(v)
    if float(np.float32(v)) != v and not np.isnan(v):
        raise AssertionError(f"{v!r} is not a float32 value")
    return ir.Constant(F32, v)


def _f32_bits(b, f):
    return b.bitcast(f, I32)


def _bits_f32(b, i):
    return b.bitcast(i, F32)


def _smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def _smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _ident(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _helper(b: ir.IRBuilder, name: str, ret: ir.Type, arg_types: list, body, args: list):
    """Call the module's helper function ``name`` (made by ``body(builder, *params)`` the first time it
    is asked for in a module: internal linkage, always inlined)."""
    module = b.module
    full = _PREFIX + name
    fn = module.globals.get(full)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, arg_types), name=full)
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline")
        fn.attributes.add("nounwind")
        hb = ir.IRBuilder(fn.append_basic_block("entry"))
        hb.ret(body(hb, *fn.args))
    return b.call(fn, args)


def _roundeven(b, f):
    module = b.module
    fn = module.globals.get("llvm.roundeven.f32")
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(F32, [F32]), name="llvm.roundeven.f32")
    return b.call(fn, [f])


def _clamp_f(b, f, lo: float, hi: float):
    """Clamp a float to [lo, hi]; NaN stays NaN (ordered compares are false for NaN)."""
    f = b.select(b.fcmp_ordered(">", f, _f32c(hi)), _f32c(hi), f)
    return b.select(b.fcmp_ordered("<", f, _f32c(lo)), _f32c(lo), f)


# ----------------------------------------------------------------------------------- binary float formats
def _target_fields(t) -> tuple[int, int, int]:
    """(exp, man, bits) of the LLVM IEEE float type ``t`` (``half`` or ``float``)."""
    return (5, 10, 16) if t == F16 else (_F32_EXP, _F32_MAN, 32)


def _decodes_exactly_into(dt, t) -> bool:
    """Whether :func:`_decode_into_body` decodes the storage binary float format ``dt`` into the IEEE type
    ``t`` (``half``/``float``): every finite value is exact in ``t``, the exponent field fits in ``t``'s
    below its all-ones value (or is ``t``'s own, with IEEE Inf/NaN), and the format has zero and
    subnormals (not e8m0)."""
    if not (_is_float_format(dt) and is_storage(dt)) or dt.flavor == fc.SCALE:
        return False
    Et, Mt, _ = _target_fields(t)
    Bt = fc.bias(Et)
    E, M, B = dt.exp, dt.man, dt.bias
    if M > Mt or E > Et or (E == Et and not (dt.flavor == fc.IEEE and dt.signed)):
        return False
    top = (1 << E) - 1 - B                  # the exponent of the top binade (finite or not)
    if dt.flavor != fc.IEEE and top > Bt:   # finite values up to 2**(top + 1) must stay below Inf
        return False
    return 1 - B - M >= 1 - Bt - Mt         # the smallest subnormal is one of t's


def _decode_into_body(dt, t):
    """Body of ``i8 code -> t`` (``half`` or ``float``) for a storage binary float format whose values
    are all exact in ``t`` (:func:`_decodes_exactly_into`): exact, branch-free, generated from the
    format's data.

    The code's fields are moved into ``t``'s fields unchanged (sign to the sign bit, the exponent field
    into the low bits of ``t``'s exponent field, the mantissa to the top of ``t``'s mantissa), which is the
    value times ``2**(B - Bt)`` (``B``, ``Bt`` the biases) for normal and subnormal codes alike (a code
    with a zero exponent field becomes one of ``t``'s subnormals); one multiplication by ``2**(Bt - B)``,
    exact, gives the value (a signed code: one ``shl``, one ``ashr``, one ``and``, one ``mul``; zero and
    negative zero come out right). A format with ``t``'s own exponent width and IEEE Inf/NaN is the top of
    ``t``'s bits (one ``shl``). Only formats with Inf/NaN codes have a select: FN (NaN at S.1..1.1..1)
    selects ``t``'s canonical NaN; IEEE sets ``t``'s exponent field to all ones before the multiplication
    (Inf stays Inf, a NaN stays a NaN, payload not kept)."""
    E, M, flavor, B, n = dt.exp, dt.man, dt.flavor, dt.bias, dt.nbits
    Et, Mt, W = _target_fields(t)
    It = ir.IntType(W)
    all_e, all_m = (1 << E) - 1, (1 << M) - 1

    def c_(v):
        return _ci(It, v)

    def body(h, c8):
        c = h.zext(c8, It)
        if E == Et:
            return h.bitcast(h.shl(c, c_(W - n)), t)
        if dt.signed:
            # the code at the top (its sign in t's sign bit), shifted down arithmetically by the exponent
            # widths' difference: the exponent field lands in t's exponent bits, the mantissa at the top of
            # t's mantissa; the and drops the copies of the sign between them
            r = h.ashr(h.shl(c, c_(W - n)), c_(Et - E))
            bits = h.and_(r, c_((1 << (W - 1)) | (((1 << (E + M)) - 1) << (Mt - M))))
        else:
            bits = h.shl(c, c_(Mt - M))
        if flavor == fc.IEEE:
            top = h.icmp_unsigned("==", h.and_(c, c_(all_e << M)), c_(all_e << M))
            bits = h.select(top, h.or_(bits, c_(((1 << Et) - 1) << Mt)), bits)
        f = h.fmul(h.bitcast(bits, t), ir.Constant(t, 2.0 ** (fc.bias(Et) - B)))
        if flavor == fc.FN:
            mag = (all_e << M) | all_m
            isnan = h.icmp_unsigned("==", h.and_(c, c_(mag)), c_(mag))
            nan = _NAN32 if t == F32 else 0x7E00
            f = h.select(isnan, h.bitcast(c_(nan), t), f)
        return f
    return body


def _decode_scale_body(dt):
    """Body of ``i8 code -> float`` for the SCALE flavor (e8m0: no zero, no subnormals; e == 0 is an
    ordinary binade 2**-bias, a float32 subnormal when bias >= 127; the all-ones code is NaN)."""
    E, M, bias = dt.exp, dt.man, dt.bias
    all_e, all_m = (1 << E) - 1, (1 << M) - 1
    rebias = 127 - bias      # float32's bias minus the format's

    def body(h, c8):
        c = h.zext(c8, I32)
        e = h.and_(h.lshr(c, _i32(M)), _i32(all_e))
        frac = h.shl(h.and_(c, _i32(all_m)), _i32(23 - M))
        ef = h.add(e, _i32(rebias))
        bits = h.or_(h.shl(ef, _i32(23)), frac)
        if rebias < 1:
            sig = h.or_(frac, _i32(1 << 23))
            sh = _smin(h, h.sub(_i32(1), ef), _i32(24))
            sh = _smax(h, sh, _i32(0))
            sub = h.lshr(sig, sh)
            bits = h.select(h.icmp_signed(">=", ef, _i32(1)), bits, sub)
        code_nan = (1 << dt.nbits) - 1
        return _bits_f32(h, h.select(h.icmp_unsigned("==", c, _i32(code_nan)), _i32(_NAN32), bits))
    return body


def _decode_float(b, dt, x, t):
    """The value of the storage binary float code ``x`` as ``t`` (``half``/``float``), exact: a format
    that is the top of ``half``'s bits (e5m2: ``half``'s exponent width with IEEE Inf/NaN) decodes into
    ``half`` (one shift) and widens to ``float`` (one ``cvt.f32.f16``); other formats decode straight into
    ``t`` (:func:`_decode_into_body`); e8m0 into ``float`` only."""
    if dt.flavor == fc.SCALE and t == F32:
        return _helper(b, f"decode.{_ident(dt.name)}", F32, [I8], _decode_scale_body(dt), [x])
    if t == F32 and dt.exp == _target_fields(F16)[0] and _decodes_exactly_into(dt, F16):
        return b.fpext(_decode_float(b, dt, x, F16), F32)
    if not _decodes_exactly_into(dt, t):
        raise BackendError(f"ptx: {dt} does not decode exactly into {t}")
    suffix = "" if t == F32 else ".f16"
    return _helper(b, f"decode.{_ident(dt.name)}{suffix}", t, [I8], _decode_into_body(dt, t), [x])


def _encode_float_body(dt, saturate: bool):
    """Body of ``float -> i8 code`` for a storage binary float format: round to nearest, ties to the
    even code, as :func:`vmlang.ir.floatcodec.encode`."""
    E, M, flavor, bias = dt.exp, dt.man, dt.flavor, dt.bias
    emin = -bias if flavor == fc.SCALE else 1 - bias
    maxmag = fc.max_magnitude_code(E, M, flavor)
    nan = fc.nan_code(E, M, flavor)
    over_code = (((1 << E) - 1) << M) if (flavor == fc.IEEE and not saturate) else maxmag

    def body(h, f):
        bits = _f32_bits(h, f)
        neg = h.icmp_signed("<", bits, _i32(0))
        a = h.and_(bits, _i32(0x7FFFFFFF))
        isnan = h.icmp_signed(">", a, _i32(0x7F800000))
        isinf = h.icmp_signed("==", a, _i32(0x7F800000))
        ex = h.lshr(a, _i32(23))
        frac = h.and_(a, _i32(0x7FFFFF))
        exnz = h.icmp_signed(">", ex, _i32(0))
        sig = h.select(exnz, h.or_(frac, _i32(0x800000)), frac)
        # u: the unbiased exponent of the target binade the value falls in (at least the smallest one)
        u = h.select(exnz, _smax(h, h.sub(ex, _i32(127)), _i32(emin)), _i32(emin))
        # the value is sig * 2**(max(ex, 1) - 150); the target's quantum in binade u is 2**(u - M)
        shift = h.add(h.sub(u, _smax(h, ex, _i32(1))), _i32(150 - M))
        shift = _smin(h, shift, _i32(30))
        q = h.lshr(sig, shift)
        one = h.shl(_i32(1), shift)
        rem = h.and_(sig, h.sub(one, _i32(1)))
        half = h.lshr(one, _i32(1))
        mag = h.add(h.shl(h.sub(u, _i32(emin)), _i32(M)), q)
        if flavor == fc.SCALE:
            mag = h.sub(mag, _i32(1 << M))
        odd = h.icmp_signed("!=", h.and_(mag, _i32(1)), _i32(0))
        tie = h.and_(h.icmp_signed("==", rem, half), h.icmp_signed(">", shift, _i32(0)))
        up = h.or_(h.icmp_signed(">", rem, half), h.and_(tie, odd))
        mag = h.add(mag, h.zext(up, I32))
        over = h.or_(h.icmp_signed(">", mag, _i32(maxmag)), isinf)
        mag = h.select(over, _i32(over_code), mag)
        if not dt.signed:
            mag = h.select(h.or_(neg, h.icmp_signed("<", mag, _i32(0))), _i32(0), mag)
        mag = h.select(isnan, _i32(0 if nan is None else nan), mag)
        if dt.signed:
            signed = h.or_(mag, _i32(1 << (E + M)))
            mag = h.select(h.and_(neg, h.not_(isnan)), signed, mag)
        return h.trunc(mag, I8)
    return body


def _round_f32_body(dt):
    """Body of ``float -> float``: round float32 to the IEEE format with float32's exponent and
    ``dt.man`` mantissa bits (bfloat16), ties to even; overflow -> Inf; NaN -> the canonical NaN."""
    k = _F32_MAN - dt.man
    nan = fc.nan_code(dt.exp, dt.man, dt.flavor) << k

    def body(h, f):
        bits = _f32_bits(h, f)
        lsb = h.and_(h.lshr(bits, _i32(k)), _i32(1))
        r = h.add(h.add(bits, _i32((1 << (k - 1)) - 1)), lsb)
        r = h.and_(r, _i32(~((1 << k) - 1)))
        r = h.select(h.fcmp_unordered("uno", f, f), _i32(nan), r)
        return _bits_f32(h, r)
    return body


# ----------------------------------------------------------------------------------- codebooks
def _codebook_decode_body(dt):
    """Body of ``i8 code -> float``: a tree of selects over the code's bits and the entries."""
    entries = [float(v) for v in dt.entries]

    def body(h, c8):
        vals = [_f32c(v) for v in entries]
        bit = 0
        while len(vals) > 1:
            sel = h.trunc(h.lshr(c8, _ci(I8, bit)), I1)
            vals = [h.select(sel, vals[j + 1], vals[j]) for j in range(0, len(vals), 2)]
            bit += 1
        return vals[0]
    return body


def _codebook_mid_constants(dt) -> list[float]:
    """For each pair of neighbouring entries, the largest float32 not above their midpoint: a float32
    value v is above the midpoint exactly when it is above this constant."""
    t = np.asarray(dt.entries, dtype=np.float64)
    out = []
    for k in range(len(t) - 1):
        mid = (t[k] + t[k + 1]) / 2
        m32 = np.float32(mid)
        if float(m32) > mid:
            m32 = np.nextafter(m32, np.float32(-np.inf))
        out.append(float(m32))
    return out


def _codebook_encode_body(dt):
    """Body of ``float -> i8 code``: the number of midpoints below the value (nearest entry; a value
    exactly between two entries takes the lower code; out-of-range values clamp; NaN -> 0)."""
    mids = _codebook_mid_constants(dt)

    def body(h, f):
        c = _i32(0)
        for m in mids:
            c = h.add(c, h.zext(h.fcmp_ordered(">", f, _f32c(m)), I32))
        return h.trunc(c, I8)
    return body


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
            s = _ci(want, want.width - n)
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
        v = b.and_(v, _ci(t, (1 << dt.nbits) - 1))
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
        r = _roundeven(h, f)
        inside = h.and_(h.fcmp_ordered(">=", r, _f32c(lo_f)), h.fcmp_ordered("<=", r, _f32c(hi_f)))
        safe = h.select(inside, r, _f32c(0.0))
        v = h.fptoui(safe, I32) if unsigned else h.fptosi(safe, I32)
        # r is an integer: below lo_f means below lo, above hi_f (the largest float32 <= hi) above hi
        v = h.select(h.fcmp_ordered("<", r, _f32c(lo_f)), _i32(lo), v)
        v = h.select(h.fcmp_ordered(">", r, _f32c(hi_f)), _i32(hi), v)
        return v
    return body


def int_to_f32_rto(b: ir.IRBuilder, v):
    """An i64 integer (|v| < 2**62) -> float32 rounded to odd: truncated toward zero, the last bit set
    when inexact. A later rounding to nearest even to at most 22 significant bits is then the correct
    rounding of the integer itself (no double rounding)."""
    def body(h, x):
        f = h.sitofp(x, F32)
        back = h.fptosi(f, I64)
        zero = _ci(I64, 0)
        absb = h.select(h.icmp_signed("<", back, zero), h.sub(zero, back), back)
        absv = h.select(h.icmp_signed("<", x, zero), h.sub(zero, x), x)
        mag = h.and_(_f32_bits(h, f), _i32(0x7FFFFFFF))
        mag = h.select(h.icmp_signed(">", absb, absv), h.sub(mag, _i32(1)), mag)
        mag = h.select(h.icmp_signed("!=", back, x), h.or_(mag, _i32(1)), mag)
        mag = h.select(h.icmp_signed("<", x, zero), h.or_(mag, _i32(-(1 << 31))), mag)
        return _bits_f32(h, mag)
    if v.type != I64:
        raise BackendError("ptx: int_to_f32_rto takes an i64")
    return _helper(b, "i2f.rto", F32, [I64], body, [v])


def _exact_in_f32(dt) -> bool:
    return -(2 ** 24) <= dt.min and dt.max <= 2 ** 24


def _magic_fits(dt, t) -> bool:
    """Whether :func:`_int_magic` converts the int-like ``dt`` into ``t`` (``half``/``float``): its codes
    fit in ``t``'s mantissa."""
    return _int_like(dt) and dt.nbits <= _target_fields(t)[1]


def _int_magic(b, dt, x, t):
    """The exact value of an int-like repr of at most ``Mt`` bits (``t``'s mantissa bits: 23 for float,
    10 for half) as ``t``, without an int -> float conversion instruction (``cvt.rn.f32.s32`` runs at a
    quarter of the rate): with ``u`` the n-bit code zero-extended, ``t``'s bits ``2**Mt``-exponent |
    ``u`` are ``2**Mt + u`` exactly (``0x4B000000 | u`` in float32), less ``2**Mt`` is ``u``; a signed code
    ``u ^ 2**(n-1)`` is value + ``2**(n-1)``, and the xor with ``magic | 2**(n-1)`` sets both at once, so
    ``bits(c ^ (magic | 2**(n-1))) - (2**Mt + 2**(n-1))`` is the value. One ``xor``/``or`` and one
    ``sub`` (zero gives +0)."""
    Et, Mt, W = _target_fields(t)
    It = ir.IntType(W)
    n = dt.nbits
    if not _magic_fits(dt, t):
        raise BackendError(f"ptx: {dt} does not fit the magic-number conversion into {t}")
    c = b.zext(x, It) if x.type.width < W else b.trunc(x, It) if x.type.width > W else x
    magic = (fc.bias(Et) + Mt) << Mt
    if dt.is_signed:
        bits = b.xor(c, _ci(It, magic | (1 << (n - 1))))
        off = 2.0 ** Mt + 2.0 ** (n - 1)
    else:
        bits = b.or_(c, _ci(It, magic))
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
        return _helper(b, f"decode.{_ident(dt.name)}", F32, [I8], _codebook_decode_body(dt), [x])
    if not _is_float_format(dt):
        raise BackendError(f"ptx: cannot convert {dt}")
    if is_storage(dt):
        return _decode_float(b, dt, x, F32)
    t = repr_type(dt)
    if t == F32:
        return x
    return b.fpext(x, F32)


def from_f32(b: ir.IRBuilder, dt, f, saturate: bool = False):
    """A float32 value -> the repr of ``dt`` with one rounding to nearest even (integers: to the
    nearest integer, ties to even, clamped). ``saturate`` clamps out-of-range values to the finite
    range (Inf too); otherwise float overflow gives +-Inf where ``dt`` has Inf."""
    if _int_like(dt):
        v = _helper(b, f"f2i.{_ident(dt.name)}", I32, [F32], _f32_to_int_body(dt), [f])
        return int_to(b, dt, v)
    if dt.is_codebook:
        return _helper(b, f"encode.{_ident(dt.name)}", I8, [F32], _codebook_encode_body(dt), [f])
    if not _is_float_format(dt):
        raise BackendError(f"ptx: cannot convert to {dt}")
    if is_storage(dt):
        # saturation changes the result only where overflow would give Inf
        sat = saturate and dt.flavor == fc.IEEE
        name = f"encode.{_ident(dt.name)}" + (".sat" if sat else "")
        return _helper(b, name, I8, [F32], _encode_float_body(dt, sat), [f])
    t = repr_type(dt)
    if saturate:
        f = _clamp_f(b, f, -dt.max, dt.max)
    if t == F16:
        return b.fptrunc(f, F16)
    if dt.man == _F32_MAN:
        return f
    return _helper(b, f"round.{_ident(dt.name)}", F32, [F32], _round_f32_body(dt), [f])


# ----------------------------------------------------------------------------------- cast
def _int_to_int(b, src, dst, x, saturate):
    v = int_value(b, src, x)
    if saturate:
        lo, hi = max(dst.min, src.min), min(dst.max, src.max)
        if lo > src.min:
            v = b.select(b.icmp_signed("<", v, _ci(v.type, lo)), _ci(v.type, lo), v)
        if hi < src.max:
            v = b.select(b.icmp_signed(">", v, _ci(v.type, hi)), _ci(v.type, hi), v)
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
    if repr_type(dst) == F16 and _decodes_exactly_into(src, F16) and not (saturate and src.has_inf):
        return _decode_float(b, src, x, F16)    # exact; saturation only changes Inf
    return from_f32(b, dst, to_f32(b, src, x), saturate)


__all__ = ["cast", "from_f32", "int_to", "int_to_f32_rto", "int_value", "is_storage", "repr_type", "to_f32"]
