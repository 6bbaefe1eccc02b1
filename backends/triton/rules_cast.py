"""Rules for conversions between any two dtypes (``cast``) and value tables (``codebook``).

Every float value of every dtype except int32/uint32 is exact in float32, so a cast decodes the
source to float32 exactly and encodes float32 to the target with one rounding to nearest even:

* float formats of <= 8 bits decode/encode with integer bit manipulation generated from the
  format's (E, M, flavor) data (:func:`lib.vm_decode_float`, :func:`lib.vm_encode_float`);
* f16 uses the hardware conversion (round to nearest even), bf16 :func:`lib.vm_round_bf16`;
* codebooks (nf4) decode through a select chain over their entries and encode by counting the
  midpoints below the value (ties take the lower code, as bitsandbytes);
* int32/uint32 into a format narrower than f32 first round to odd in float32, so the final rounding
  is not a double rounding;
* float -> int rounds to nearest even and clamps (the VM rejects unsaturated out-of-range values);
  int -> int wraps, or clamps when saturating.
"""
from __future__ import annotations

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.types import BOOL

from . import reprs as R
from .codegen import rule


def _int_value(dt, x: str) -> tuple[str, str]:
    """(expression, type) of the integer value of an int-like repr."""
    if dt == BOOL:
        return f"{x}.to(tl.int32)", "tl.int32"
    if dt == D.uint32:
        return f"{x}.to(tl.int64)", "tl.int64"
    if dt == D.int32:
        return x, "tl.int32"
    return R.int32_of(dt, x), "tl.int32"


def _int_to(dt, v: str) -> str:
    """An integer expression (already in range, or to be wrapped) converted to int-like ``dt``."""
    if dt == BOOL:
        return f"(({v}) & 1) != 0"
    if R.is_storage(dt):
        return f"(({v}) & {(1 << dt.nbits) - 1}).to(tl.uint8)"
    return f"({v}).to({R.tl_type(dt)})"


def _cb_helper_name(cg, dt, kind: str) -> str:
    name = f"vm_cb_{kind}_{_ident(dt.name)}"
    if name in cg.extra_helpers:
        return name
    t = np.asarray(dt.entries, dtype=np.float64)
    if kind == "decode":
        lines = [f"    \"\"\"{dt.name} codes -> float32 values.\"\"\"", "    c = c.to(tl.int32)",
                 f"    v = tl.where(c == 0, {R.float_literal(t[0])}, {R.float_literal(t[1])})"]
        for k in range(2, len(t)):
            lines.append(f"    v = tl.where(c == {k}, {R.float_literal(t[k])}, v)")
        lines.append("    return v")
        src = f"@triton.jit\ndef {name}(c):\n" + "\n".join(lines) + "\n"
    else:
        lines = [f"    \"\"\"float32 -> the nearest {dt.name} code (a value halfway between two entries takes",
                 "    the lower code). Each constant is the largest float32 <= the midpoint of two entries.\"\"\"",
                 "    c = tl.zeros(x.shape, tl.int32)"]
        for k in range(len(t) - 1):
            mid = (t[k] + t[k + 1]) / 2
            m32 = np.float32(mid)
            if float(m32) > mid:
                m32 = np.nextafter(m32, np.float32(-np.inf))
            lines.append(f"    c += (x > {R.float_literal(float(m32))}).to(tl.int32)")
        lines.append("    return c.to(tl.uint8)")
        src = f"@triton.jit\ndef {name}(x):\n" + "\n".join(lines) + "\n"
    cg.extra_helpers[name] = src
    return name


def _ident(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s)


def to_f32(cg, dt, x: str) -> str:
    """Exact float32 value of a float-like repr."""
    if dt == D.float16:
        return f"{x}.to(tl.float32)"
    if dt in (D.float32, D.bfloat16):
        return x
    if dt.is_codebook:
        return f"{_cb_helper_name(cg, dt, 'decode')}({x})"
    return f"{cg.use('vm_decode_float')}({x}, {R.float_params(dt)})"


def from_f32(cg, dt, f: str, saturate: bool) -> str:
    """float32 -> float-like ``dt`` with one rounding to nearest even."""
    if dt in (D.float32, D.float16, D.bfloat16):
        if saturate:
            m = R.float_literal(dt.max)
            f = f"{cg.use('vm_clamp')}({f}, -{m}, {m})"
        if dt == D.float16:
            return f"({f}).to(tl.float16)"
        if dt == D.bfloat16:
            return f"{cg.use('vm_round_bf16')}({f})"
        return f
    if dt.is_codebook:
        return f"{_cb_helper_name(cg, dt, 'encode')}({f})"
    return f"{cg.use('vm_encode_float')}({f}, {R.encode_params(dt, saturate)})"


def cast_expr(cg, src, dst, x: str, saturate: bool) -> str:
    if src == dst:
        return x
    src_int = src.is_int
    dst_int = dst.is_int
    if src_int and dst_int:
        v, vt = _int_value(src, x)
        if saturate:
            if vt == "tl.int32" and dst == D.uint32:
                v = f"{v}.to(tl.int64)"
            lo, hi = max(dst.min, src.min), min(dst.max, src.max)
            v = f"tl.minimum(tl.maximum({v}, {lo}), {hi})"
        return _int_to(dst, v)
    if src_int:
        v, vt = _int_value(src, x)
        if src in (D.int32, D.uint32) and not (dst in (D.float32, D.float16)):
            f = f"{cg.use('vm_int_to_f32_rto')}({v}.to(tl.int64))"
        else:
            f = f"{v}.to(tl.float32)"
        return from_f32(cg, dst, f, saturate)
    if src == D.float16 and dst == D.float32 and not saturate:
        return f"{x}.to(tl.float32)"
    f = to_f32(cg, src, x)
    if dst_int:
        v = f"{cg.use('vm_f32_to_int')}({f}, {dst.min}, {dst.max})"
        return _int_to(dst, v)
    return from_f32(cg, dst, f, saturate)


@rule(N.Cast)
def _cast(cg, i):
    cg.define(i.out, cast_expr(cg, i.x.dtype, i.out.dtype, cg.name(i.x), i.saturate))


@rule(N.Codebook)
def _codebook(cg, i):
    n = 1 << i.of.nbits
    codes = cg.tmp(R.from_codes(i.of, f"tl.arange(0, {n})"), "codes")
    cg.define(i.out, cast_expr(cg, i.of, i.out.dtype, codes, False))
