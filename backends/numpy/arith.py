"""How the NumPy VM represents values of each dtype, and its exact conversions.

Machine representation ("repr") of an array of dtype ``dt``:

* ``float16`` -> ``np.float16``; ``float32`` -> ``np.float32``; ``bfloat16`` -> ``np.float32`` holding
  bf16-exact values;
* compute integers (int8..32, uint8..32) -> ``np.int64`` holding the value (always in range);
* ``bool`` (= uint1) -> ``np.bool_``;
* every other dtype (a *storage* type: sub-byte ints, small floats, fp8, e8m0, nf4) -> ``np.uint8`` codes.

Float arithmetic is done in float64 and rounded once to the result dtype: for +, -, *, / and sqrt this
is the correctly rounded result, since 53 >= 2p + 2 for p = 11 (f16), 8 (bf16) and 24 (f32).
"""
from __future__ import annotations

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir.types import BOOL, COMPUTE


class CastError(ValueError):
    """A conversion that has no defined result (overflow without saturation, NaN to int, ...)."""


def is_storage(dt) -> bool:
    return dt not in COMPUTE and dt != BOOL


def repr_dtype(dt) -> np.dtype:
    if dt == D.float16:
        return np.dtype(np.float16)
    if dt in (D.float32, D.bfloat16):
        return np.dtype(np.float32)
    if dt == BOOL:
        return np.dtype(np.bool_)
    if dt in COMPUTE:
        return np.dtype(np.int64)
    return np.dtype(np.uint8)


def round_float(dt, x: np.ndarray) -> np.ndarray:
    """Round float64 values to the float compute dtype ``dt`` (RNE; overflow -> +-Inf), in repr."""
    x = np.asarray(x, dtype=np.float64)
    if dt == D.float16:
        with np.errstate(over="ignore"):
            return x.astype(np.float16)
    if dt == D.float32:
        with np.errstate(over="ignore"):
            return x.astype(np.float32)
    if dt == D.bfloat16:
        return D.bfloat16.decode(D.bfloat16.encode(x)).astype(np.float32)
    raise AssertionError(dt)


def wrap_int(dt, x: np.ndarray) -> np.ndarray:
    """Reduce integers modulo 2**bits into dt's range (two's complement wrap-around)."""
    x = np.asarray(x, dtype=np.int64)
    m = 1 << dt.nbits
    if dt.is_signed:
        return ((x - dt.min) % m) + dt.min
    return x % m


def to_values(dt, a: np.ndarray) -> np.ndarray:
    """repr -> float64 values (exact)."""
    if is_storage(dt):
        return dt.decode(a)
    return np.asarray(a).astype(np.float64)


def from_values(dt, v: np.ndarray, saturate: bool = False) -> np.ndarray:
    """float64 values -> repr of ``dt`` with cast semantics (see :class:`vmlang.ir.nodes.Cast`).

    Raises :class:`CastError` where the result is undefined.
    """
    v = np.asarray(v, dtype=np.float64)
    if dt == BOOL:
        return wrap_int(D.uint1, _round_to_int(v, dt, saturate)).astype(np.bool_)
    if dt.is_int:
        r = _round_to_int(v, dt, saturate)
        return r if not is_storage(dt) else (r & ((1 << dt.nbits) - 1)).astype(np.uint8)
    if dt in (D.float16, D.float32, D.bfloat16):
        if saturate:
            v = np.where(np.isnan(v), v, np.clip(v, dt.min, dt.max))
            out = round_float(dt, v)
            return np.where(np.isinf(out), np.sign(out) * dt.max, out).astype(out.dtype)
        return round_float(dt, v)
    try:
        return dt.encode(v, saturate=saturate)
    except ValueError as e:
        raise CastError(str(e)) from None


def _round_to_int(v, dt, saturate):
    if np.isnan(v).any():
        raise CastError(f"cannot convert NaN to {dt}")
    r = np.rint(v)
    bad = (r < dt.min) | (r > dt.max)
    if bad.any():
        if not saturate:
            raise CastError(f"value {float(v[bad][0])!r} is out of range for {dt} [{dt.min}, {dt.max}] "
                            f"(use saturate=true to clamp)")
        r = np.clip(r, dt.min, dt.max)
    return r.astype(np.int64)


def cast(src, dst, a: np.ndarray, saturate: bool) -> np.ndarray:
    """Convert repr ``a`` of dtype ``src`` to the repr of ``dst``."""
    if src.is_int and dst.is_int and not src.is_codebook:
        vals = to_values(src, a).astype(np.int64) if is_storage(src) else np.asarray(a, dtype=np.int64)
        if saturate:
            vals = np.clip(vals, dst.min, dst.max)
        w = wrap_int(dst, vals)
        if dst == BOOL:
            return w.astype(np.bool_)
        return (w & ((1 << dst.nbits) - 1)).astype(np.uint8) if is_storage(dst) else w
    return from_values(dst, to_values(src, a), saturate)


def to_codes(dt, a: np.ndarray) -> np.ndarray:
    """repr -> unsigned bit patterns (uint64)."""
    if is_storage(dt):
        return np.asarray(a).astype(np.uint64)
    if dt == D.float16:
        return np.asarray(a, np.float16).view(np.uint16).astype(np.uint64)
    if dt == D.float32:
        return np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    if dt == D.bfloat16:
        return D.bfloat16.encode(np.asarray(a, np.float64)).astype(np.uint64)
    if dt == BOOL:
        return np.asarray(a).astype(np.uint64)
    return (np.asarray(a, np.int64) & ((1 << dt.nbits) - 1)).astype(np.uint64)


def from_codes(dt, c: np.ndarray) -> np.ndarray:
    """unsigned bit patterns -> repr."""
    c = np.asarray(c, dtype=np.uint64)
    if is_storage(dt):
        return c.astype(np.uint8)
    if dt == D.float16:
        return c.astype(np.uint16).view(np.float16)
    if dt == D.float32:
        return c.astype(np.uint32).view(np.float32)
    if dt == D.bfloat16:
        return D.bfloat16.decode(c.astype(np.int64)).astype(np.float32)
    if dt == BOOL:
        return c.astype(np.bool_)
    return dt.decode(c.astype(np.int64)).astype(np.int64)


def view_bits(src, dst, a: np.ndarray) -> np.ndarray:
    """Reinterpret the LSB-first bit stream of the last axis of ``a`` (dtype src) as dtype dst."""
    codes = to_codes(src, a)
    nb_a, nb_b = src.nbits, dst.nbits
    bits = ((codes[..., None] >> np.arange(nb_a, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    lead = codes.shape[:-1]
    total = codes.shape[-1] * nb_a
    bits = bits.reshape(lead + (total // nb_b, nb_b))
    weights = (np.uint64(1) << np.arange(nb_b, dtype=np.uint64))
    out = (bits.astype(np.uint64) * weights).sum(axis=-1, dtype=np.uint64)
    return from_codes(dst, out)


def fill_value(dt, value) -> np.ndarray:
    """The repr of a constant (a number as written in the program)."""
    if dt == BOOL:
        return np.asarray(bool(value))
    if dt.is_int and not is_storage(dt):
        return np.asarray(int(value), dtype=np.int64)
    return from_values(dt, np.asarray(float(value)))
