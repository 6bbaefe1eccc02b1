"""Exact NumPy codecs for every binary float format described by (exp, man, flavor).

A format with ``E`` exponent bits and ``M`` mantissa bits has bias ``b = 2**(E-1) - 1``. A code
``s.eeee.mmm`` decodes to

* ``(-1)**s * 2**(1-b) * (m / 2**M)``          when ``e == 0`` (subnormal; formats without subnormals,
  like e8m0, treat ``e == 0`` as an ordinary binade ``2**(-b)``),
* ``(-1)**s * 2**(e-b) * (1 + m / 2**M)``      otherwise,

except for the codes the flavor reserves for Inf/NaN.

Worked example, ``float4_e2m1`` (bias 1): code ``0b0111`` -> s=0, e=3, m=1 -> ``2**2 * 1.5 = 6.0``
(its largest value); code ``0b1001`` -> s=1, e=0, m=1 -> ``-(2**0 * 0.5) = -0.5`` (a subnormal).

Encoding rounds to nearest, ties to even (the code whose LSB is 0: the mantissa LSB, or the exponent
LSB in formats without mantissa bits such as e8m0), exactly: the value is
scaled by a power of two so its mantissa is an integer-valued float64 and ``np.rint`` rounds it;
no double rounding happens because every supported format has ``M <= 23 < 52``.
"""
from __future__ import annotations

import numpy as np

#: flavors: how the all-ones exponent binade is used
FINITE = "finite"   # no Inf/NaN at all (OCP fp4/fp6 and every float{N}_e{E}m{M} below 8 bits)
FN = "fn"           # no Inf; the single code S.1..1.1..1 is NaN (float8_e4m3 = e4m3fn)
IEEE = "ieee"       # all-ones exponent: mantissa 0 = Inf, else NaN (e5m2, float16, bfloat16, float32)
SCALE = "scale"     # unsigned, no zero, no subnormals, all-ones code = NaN (float8_e8m0)
FLAVORS = (FINITE, FN, IEEE, SCALE)


def bias(exp: int) -> int:
    return (1 << (exp - 1)) - 1


def max_magnitude_code(exp: int, man: int, flavor: str) -> int:
    """The code (sign bit clear) of the largest finite value."""
    all_exp = (1 << exp) - 1
    all_man = (1 << man) - 1
    if flavor == FINITE:
        return (all_exp << man) | all_man
    if flavor == FN:
        return (all_exp << man) | (all_man - 1)
    if flavor == IEEE:
        return ((all_exp - 1) << man) | all_man
    if flavor == SCALE:
        return (all_exp << man) - 1
    raise ValueError(f"unknown float flavor {flavor!r}")


def decode(codes: np.ndarray, exp: int, man: int, flavor: str, signed: bool) -> np.ndarray:
    """Decode integer bit patterns to float64 values (exact)."""
    c = codes.astype(np.int64)
    b = bias(exp)
    e = (c >> man) & ((1 << exp) - 1)
    m = c & ((1 << man) - 1)
    s = (c >> (exp + man)) & 1 if signed else np.zeros_like(c)
    if flavor == SCALE:  # no subnormals: e == 0 is the binade 2**-b
        mag = np.ldexp((m + (1 << man)).astype(np.float64), (e - b - man).astype(np.int32))
    else:
        normal = e > 0
        sig = np.where(normal, m + (1 << man), m).astype(np.float64)
        ex = np.where(normal, e - b - man, 1 - b - man).astype(np.int32)
        mag = np.ldexp(sig, ex)
    out = np.where(s == 1, -mag, mag)
    all_exp = (1 << exp) - 1
    all_man = (1 << man) - 1
    if flavor == FN:
        out = np.where((e == all_exp) & (m == all_man), np.nan, out)
    elif flavor == IEEE:
        out = np.where((e == all_exp) & (m == 0), np.where(s == 1, -np.inf, np.inf), out)
        out = np.where((e == all_exp) & (m != 0), np.nan, out)
    elif flavor == SCALE:
        out = np.where(c == (1 << (exp + man)) - 1, np.nan, out)
    return out


def nan_code(exp: int, man: int, flavor: str) -> int | None:
    """The canonical (positive, quiet) NaN code, or None when the format has no NaN."""
    all_exp = (1 << exp) - 1
    if flavor == FN:
        return (all_exp << man) | ((1 << man) - 1)
    if flavor == IEEE:
        return (all_exp << man) | (1 << (man - 1) if man > 0 else 0)
    if flavor == SCALE:
        return (1 << (exp + man)) - 1
    return None


def encode(values: np.ndarray, exp: int, man: int, flavor: str, signed: bool, saturate: bool,
           name: str) -> np.ndarray:
    """Encode float64 values to integer codes (int64 array), rounding to nearest even.

    Out-of-range finite values raise ``ValueError`` unless ``saturate`` (clamp to +-max); in formats
    with Inf (IEEE flavor) they overflow to +-Inf like IEEE arithmetic. NaN into a format without NaN
    always raises.
    """
    v = np.asarray(values, dtype=np.float64)
    b = bias(exp)
    nbits = exp + man + (1 if signed else 0)
    has_zero = flavor != SCALE
    emin = 1 - b if has_zero else -b
    maxmag = max_magnitude_code(exp, man, flavor)
    neg = np.signbit(v)
    a = np.abs(v)
    isnan = np.isnan(v)
    isinf = np.isinf(v)
    fin = ~(isnan | isinf)
    af = np.where(fin & (a > 0), a, 1.0)
    _, x = np.frexp(af)
    e = np.maximum(x.astype(np.int64) - 1, emin)
    scaled = np.ldexp(af, (man - e).astype(np.int32))
    q = np.rint(scaled)
    if man == 0:
        # No mantissa bits: a tie lies between two binades, and "even" means the even exponent field.
        # (rint would always pick the upper one, since the lower significand 1 is odd.)
        tie_keep_lower = (scaled - np.floor(scaled) == 0.5) & (scaled >= 1) & ((e + b) % 2 == 0)
        q = np.where(tie_keep_lower, np.floor(scaled), q)
    carry = q >= (1 << (man + 1))
    e = np.where(carry, e + 1, e)
    q = np.where(carry, q / 2, q).astype(np.int64)
    implicit = 1 << man
    if has_zero:
        is_normal = q >= implicit
        expfield = np.where(is_normal, e + b, 0)
        mant = np.where(is_normal, q - implicit, q)
        underflow = np.zeros_like(fin)
    else:
        underflow = fin & ((q < implicit) | (a == 0))
        expfield = e + b
        mant = q - implicit
    mag = (np.minimum(expfield, 1 << 20) << man) | np.where(mant < 0, 0, mant)
    mag = np.where(fin & (a == 0), 0, mag)
    overflow = fin & ~underflow & (mag > maxmag)
    if signed:
        negative_unsigned = np.zeros_like(neg)
    else:
        negative_unsigned = neg & ~isnan & ~(fin & (a == 0) & has_zero)
    # --- resolve special cases -------------------------------------------------------------------
    inf_code = ((1 << exp) - 1) << man
    has_inf = flavor == IEEE
    ncode = nan_code(exp, man, flavor)
    if isnan.any() and ncode is None:
        bad = v[isnan][0]
        raise ValueError(f"cannot encode NaN as {name}: the format has no NaN (value {float(bad)!r})")
    out_of_range = overflow | underflow | negative_unsigned | (isinf & (not has_inf))
    if has_inf and not saturate:
        mag = np.where(overflow | isinf, inf_code, mag)
        out_of_range = out_of_range & ~(overflow | isinf)
    if saturate:
        clamp_hi = overflow | isinf
        mag = np.where(clamp_hi & ~(negative_unsigned), maxmag, mag)
        mag = np.where(underflow | negative_unsigned, 0, mag)  # smallest code (no-zero formats only)
    elif out_of_range.any():
        bad = v[out_of_range][0]
        raise ValueError(
            f"value {float(bad)!r} is out of range for {name} (representable: "
            f"{describe_range(exp, man, flavor, signed)}); pass saturate=True to clamp")
    if ncode is not None:
        mag = np.where(isnan, ncode, mag)
    code = mag
    if signed:
        code = np.where(neg & ~isnan, code | (1 << (nbits - 1)), code)
    return code


def describe_range(exp: int, man: int, flavor: str, signed: bool) -> str:
    vmax = float(decode(np.array([max_magnitude_code(exp, man, flavor)]), exp, man, flavor, False)[0])
    if flavor == SCALE:
        vmin = float(decode(np.array([0]), exp, man, flavor, False)[0])
        return f"[{vmin!r}, {vmax!r}]"
    return f"[{-vmax!r}, {vmax!r}]" if signed else f"[0, {vmax!r}]"
