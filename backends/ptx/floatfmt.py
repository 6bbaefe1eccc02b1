"""Binary float formats below 16 bits and codebooks (nf4) in LLVM IR: the bodies of the decode and encode
helpers that :mod:`.convert` calls, generated from each format's data (``exp``, ``man``, ``flavor``,
``signed``) as :mod:`vmlang.ir.floatcodec` defines them, and from a codebook's entries. The semantics and
the instruction choices are :mod:`.convert`'s (see its docstring)."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import floatcodec as fc
from vmlang.ir.errors import BackendError
from vmlang.ir.types import COMPUTE

from .llvm_util import F16, F32, I1, I8, I32, bits_f32, const, f32, f32_bits, helper, i32, ident, smax, smin

_F32_EXP, _F32_MAN = 8, 23
_NAN32 = 0x7FC00000


def _is_storage_float(dt) -> bool:
    return isinstance(dt, D.FloatType) and dt not in COMPUTE


# ----------------------------------------------------------------------------------- binary float formats
def target_fields(t) -> tuple[int, int, int]:
    """(exp, man, bits) of the LLVM IEEE float type ``t`` (``half`` or ``float``)."""
    return (5, 10, 16) if t == F16 else (_F32_EXP, _F32_MAN, 32)


def decodes_exactly_into(dt, t) -> bool:
    """Whether :func:`decode_into_body` decodes the storage binary float format ``dt`` into the IEEE type
    ``t`` (``half``/``float``): every finite value is exact in ``t``, the exponent field fits in ``t``'s
    below its all-ones value (or is ``t``'s own, with IEEE Inf/NaN), and the format has zero and
    subnormals (not e8m0)."""
    if not _is_storage_float(dt) or dt.flavor == fc.SCALE:
        return False
    Et, Mt, _ = target_fields(t)
    Bt = fc.bias(Et)
    E, M, B = dt.exp, dt.man, dt.bias
    if M > Mt or E > Et or (E == Et and not (dt.flavor == fc.IEEE and dt.signed)):
        return False
    top = (1 << E) - 1 - B                  # the exponent of the top binade (finite or not)
    if dt.flavor != fc.IEEE and top > Bt:   # finite values up to 2**(top + 1) must stay below Inf
        return False
    return 1 - B - M >= 1 - Bt - Mt         # the smallest subnormal is one of t's


def decode_into_body(dt, t):
    """Body of ``i8 code -> t`` (``half`` or ``float``) for a storage binary float format whose values
    are all exact in ``t`` (:func:`decodes_exactly_into`): exact, branch-free, generated from the
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
    Et, Mt, W = target_fields(t)
    It = ir.IntType(W)
    all_e, all_m = (1 << E) - 1, (1 << M) - 1

    def c_(v):
        return const(It, v)

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


def decode_scale_body(dt):
    """Body of ``i8 code -> float`` for the SCALE flavor (e8m0: no zero, no subnormals; e == 0 is an
    ordinary binade 2**-bias, a float32 subnormal when bias >= 127; the all-ones code is NaN)."""
    E, M, bias = dt.exp, dt.man, dt.bias
    all_e, all_m = (1 << E) - 1, (1 << M) - 1
    rebias = 127 - bias      # float32's bias minus the format's

    def body(h, c8):
        c = h.zext(c8, I32)
        e = h.and_(h.lshr(c, i32(M)), i32(all_e))
        frac = h.shl(h.and_(c, i32(all_m)), i32(23 - M))
        ef = h.add(e, i32(rebias))
        bits = h.or_(h.shl(ef, i32(23)), frac)
        if rebias < 1:
            sig = h.or_(frac, i32(1 << 23))
            sh = smin(h, h.sub(i32(1), ef), i32(24))
            sh = smax(h, sh, i32(0))
            sub = h.lshr(sig, sh)
            bits = h.select(h.icmp_signed(">=", ef, i32(1)), bits, sub)
        code_nan = (1 << dt.nbits) - 1
        return bits_f32(h, h.select(h.icmp_unsigned("==", c, i32(code_nan)), i32(_NAN32), bits))
    return body


def decode_float(b, dt, x, t):
    """The value of the storage binary float code ``x`` as ``t`` (``half``/``float``), exact: a format
    that is the top of ``half``'s bits (e5m2: ``half``'s exponent width with IEEE Inf/NaN) decodes into
    ``half`` (one shift) and widens to ``float`` (one ``cvt.f32.f16``); other formats decode straight into
    ``t`` (:func:`decode_into_body`); e8m0 into ``float`` only."""
    if dt.flavor == fc.SCALE and t == F32:
        return helper(b, f"decode.{ident(dt.name)}", F32, [I8], decode_scale_body(dt), [x])
    if t == F32 and dt.exp == target_fields(F16)[0] and decodes_exactly_into(dt, F16):
        return b.fpext(decode_float(b, dt, x, F16), F32)
    if not decodes_exactly_into(dt, t):
        raise BackendError(f"ptx: {dt} does not decode exactly into {t}")
    suffix = "" if t == F32 else ".f16"
    return helper(b, f"decode.{ident(dt.name)}{suffix}", t, [I8], decode_into_body(dt, t), [x])


def encode_float_body(dt, saturate: bool):
    """Body of ``float -> i8 code`` for a storage binary float format: round to nearest, ties to the
    even code, as :func:`vmlang.ir.floatcodec.encode`."""
    E, M, flavor, bias = dt.exp, dt.man, dt.flavor, dt.bias
    emin = -bias if flavor == fc.SCALE else 1 - bias
    maxmag = fc.max_magnitude_code(E, M, flavor)
    nan = fc.nan_code(E, M, flavor)
    over_code = (((1 << E) - 1) << M) if (flavor == fc.IEEE and not saturate) else maxmag

    def body(h, f):
        bits = f32_bits(h, f)
        neg = h.icmp_signed("<", bits, i32(0))
        a = h.and_(bits, i32(0x7FFFFFFF))
        isnan = h.icmp_signed(">", a, i32(0x7F800000))
        isinf = h.icmp_signed("==", a, i32(0x7F800000))
        ex = h.lshr(a, i32(23))
        frac = h.and_(a, i32(0x7FFFFF))
        exnz = h.icmp_signed(">", ex, i32(0))
        sig = h.select(exnz, h.or_(frac, i32(0x800000)), frac)
        # u: the unbiased exponent of the target binade the value falls in (at least the smallest one)
        u = h.select(exnz, smax(h, h.sub(ex, i32(127)), i32(emin)), i32(emin))
        # the value is sig * 2**(max(ex, 1) - 150); the target's quantum in binade u is 2**(u - M)
        shift = h.add(h.sub(u, smax(h, ex, i32(1))), i32(150 - M))
        shift = smin(h, shift, i32(30))
        q = h.lshr(sig, shift)
        one = h.shl(i32(1), shift)
        rem = h.and_(sig, h.sub(one, i32(1)))
        half = h.lshr(one, i32(1))
        mag = h.add(h.shl(h.sub(u, i32(emin)), i32(M)), q)
        if flavor == fc.SCALE:
            mag = h.sub(mag, i32(1 << M))
        odd = h.icmp_signed("!=", h.and_(mag, i32(1)), i32(0))
        tie = h.and_(h.icmp_signed("==", rem, half), h.icmp_signed(">", shift, i32(0)))
        up = h.or_(h.icmp_signed(">", rem, half), h.and_(tie, odd))
        mag = h.add(mag, h.zext(up, I32))
        over = h.or_(h.icmp_signed(">", mag, i32(maxmag)), isinf)
        mag = h.select(over, i32(over_code), mag)
        if not dt.signed:
            mag = h.select(h.or_(neg, h.icmp_signed("<", mag, i32(0))), i32(0), mag)
        mag = h.select(isnan, i32(0 if nan is None else nan), mag)
        if dt.signed:
            signed = h.or_(mag, i32(1 << (E + M)))
            mag = h.select(h.and_(neg, h.not_(isnan)), signed, mag)
        return h.trunc(mag, I8)
    return body


def round_f32_body(dt):
    """Body of ``float -> float``: round float32 to the IEEE format with float32's exponent and
    ``dt.man`` mantissa bits (bfloat16), ties to even; overflow -> Inf; NaN -> the canonical NaN."""
    k = _F32_MAN - dt.man
    nan = fc.nan_code(dt.exp, dt.man, dt.flavor) << k

    def body(h, f):
        bits = f32_bits(h, f)
        lsb = h.and_(h.lshr(bits, i32(k)), i32(1))
        r = h.add(h.add(bits, i32((1 << (k - 1)) - 1)), lsb)
        r = h.and_(r, i32(~((1 << k) - 1)))
        r = h.select(h.fcmp_unordered("uno", f, f), i32(nan), r)
        return bits_f32(h, r)
    return body


# ----------------------------------------------------------------------------------- codebooks
def codebook_decode_body(dt):
    """Body of ``i8 code -> float``: a tree of selects over the code's bits and the entries."""
    entries = [float(v) for v in dt.entries]

    def body(h, c8):
        vals = [f32(v) for v in entries]
        bit = 0
        while len(vals) > 1:
            sel = h.trunc(h.lshr(c8, const(I8, bit)), I1)
            vals = [h.select(sel, vals[j + 1], vals[j]) for j in range(0, len(vals), 2)]
            bit += 1
        return vals[0]
    return body


def codebook_mid_constants(dt) -> list[float]:
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


def codebook_encode_body(dt):
    """Body of ``float -> i8 code``: the number of midpoints below the value (nearest entry; a value
    exactly between two entries takes the lower code; out-of-range values clamp; NaN -> 0)."""
    mids = codebook_mid_constants(dt)

    def body(h, f):
        c = i32(0)
        for m in mids:
            c = h.add(c, h.zext(h.fcmp_ordered(">", f, f32(m)), I32))
        return h.trunc(c, I8)
    return body
