"""Triton helper functions that generated kernels call (``vm_*``).

They are plain Python functions written in the Triton language. The code generator copies the source
of each helper a kernel uses (and the helpers those use) into the generated module, under
``@triton.jit``, so a generated ``kernel_triton.py`` is self-contained and readable on its own.

Every helper works identically when compiled for a GPU and under ``TRITON_INTERPRET=1``: they use
integer bit manipulation and IEEE operations whose results both agree on (no libdevice, no inline
asm; the interpreter's own float8/bfloat16 conversions are not used because they do not round to
nearest even).

Float formats are described by data, as in :mod:`vmlang.ir.floatcodec`: ``E`` exponent bits, ``M``
mantissa bits, ``FLAVOR`` (0 finite, 1 fn, 2 ieee, 3 scale), ``SIGNED``; ``MAXMAG`` is the magnitude
code of the largest finite value and ``NANCODE`` the canonical NaN code (-1: none).
"""
from __future__ import annotations

import inspect
import re

import triton.language as tl

FLAVOR_IDS = {"finite": 0, "fn": 1, "ieee": 2, "scale": 3}


# ----------------------------------------------------------------------------------- packed memory
def vm_load_bits(ptr, byte, shift, mask, BITS: tl.constexpr):
    """Read the BITS-bit field starting at bit ``shift`` (0..7) of byte ``ptr + byte`` of the LSB-first
    stream (it may continue into the next byte); masked lanes read 0. Returns uint8 codes."""
    lo = tl.load(ptr + byte, mask=mask, other=0).to(tl.int32)
    if 8 % BITS == 0:
        v = lo >> shift
    else:
        hi = tl.load(ptr + byte + 1, mask=mask & (shift + BITS > 8), other=0).to(tl.int32)
        v = (lo | (hi << 8)) >> shift
    return (v & ((1 << BITS) - 1)).to(tl.uint8)


def vm_store_bits(ptr, byte, shift, code, mask, BITS: tl.constexpr):
    """Write the BITS-bit ``code`` at bit ``shift`` of byte ``ptr + byte`` without touching the other
    bits: an atomic AND (clear the field) and an atomic OR (set it) on the aligned 32-bit word(s)
    holding it, so lanes and blocks writing neighbouring fields of one byte never lose updates.
    ``ptr`` must be 4-byte aligned (the launcher guarantees it)."""
    words = ptr.to(tl.pointer_type(tl.int32), bitcast=True)
    bit = (byte & 3).to(tl.int32) * 8 + shift
    w = byte >> 2
    field = tl.full((), (1 << BITS) - 1, tl.int64) << bit
    val = (code.to(tl.int64) & ((1 << BITS) - 1)) << bit
    tl.atomic_and(words + w, (~field).to(tl.int32), mask=mask, sem="relaxed")
    tl.atomic_or(words + w, val.to(tl.int32), mask=mask, sem="relaxed")
    if 8 % BITS != 0:
        two = mask & (bit + BITS > 32)
        tl.atomic_and(words + w + 1, (~(field >> 32)).to(tl.int32), mask=two, sem="relaxed")
        tl.atomic_or(words + w + 1, (val >> 32).to(tl.int32), mask=two, sem="relaxed")


def vm_bool(x):
    """A bool scalar as a clean int1. (The interpreter records a comparison's result with its
    operands' type, and broadcasting such a scalar to a tile then yields int32 data that
    ``tl.load``/``tl.store`` reject as masks; compiled code folds this select away.)"""
    return tl.where(x, tl.full((), 1, tl.int1), tl.full((), 0, tl.int1))


# ----------------------------------------------------------------------------------- bfloat16
def vm_round_bf16(x):
    """Round float32 values to the nearest bfloat16 (ties to even; overflow -> inf; NaN -> the
    canonical NaN), returned as float32 holding a bfloat16-exact value."""
    bits = x.to(tl.uint32, bitcast=True)
    r = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    r = tl.where(x != x, 0x7FC00000, r)
    return r.to(tl.float32, bitcast=True)


def vm_bf16_from_bits(b):
    """bfloat16 bit patterns (uint16) -> float32 (exact)."""
    return (b.to(tl.uint32) << 16).to(tl.float32, bitcast=True)


def vm_bf16_to_bits(x):
    """float32 holding a bfloat16-exact value -> its bfloat16 bit pattern (uint16)."""
    return (x.to(tl.uint32, bitcast=True) >> 16).to(tl.uint16)


# ----------------------------------------------------------------------------------- float formats
def vm_decode_float(c, E: tl.constexpr, M: tl.constexpr, FLAVOR: tl.constexpr, SIGNED: tl.constexpr):
    """Codes (uint8) of the format (E, M, FLAVOR, SIGNED) -> exact float32 values (NaN canonical)."""
    c = c.to(tl.int32)
    e = (c >> M) & ((1 << E) - 1)
    m = c & ((1 << M) - 1)
    if FLAVOR == 3:
        # no zero and no subnormals: e == 0 is an ordinary binade (2**-bias may be a float32 subnormal)
        ef = e - ((1 << (E - 1)) - 1) + 127
        sig = (m | (1 << M)) << (23 - M)
        bits = tl.where(ef >= 1, (ef << 23) | (m << (23 - M)), sig >> tl.minimum(1 - ef, 24))
        bits = tl.where(c == (1 << (E + M)) - 1, 0x7FC00000, bits)
    else:
        normal = ((e - ((1 << (E - 1)) - 1) + 127) << 23) | (m << (23 - M))
        # a subnormal m * 2**(1 - bias - M) is a normal float32: an exact product with a power of two
        scale = tl.full((), (127 + 1 - ((1 << (E - 1)) - 1) - M) << 23, tl.int32).to(tl.float32, bitcast=True)
        sub = (m.to(tl.float32) * scale).to(tl.int32, bitcast=True)
        bits = tl.where(e == 0, sub, normal)
        if SIGNED:
            bits = bits | (((c >> (E + M)) & 1) << 31)
        if FLAVOR == 1:
            bits = tl.where((e == (1 << E) - 1) & (m == (1 << M) - 1), 0x7FC00000, bits)
        if FLAVOR == 2:
            special = e == (1 << E) - 1
            bits = tl.where(special & (m == 0), (bits & -2147483648) | 0x7F800000, bits)
            bits = tl.where(special & (m != 0), 0x7FC00000, bits)
    return bits.to(tl.float32, bitcast=True)


def vm_encode_float(x, E: tl.constexpr, M: tl.constexpr, FLAVOR: tl.constexpr, SIGNED: tl.constexpr,
                    SAT: tl.constexpr, MAXMAG: tl.constexpr, NANCODE: tl.constexpr):
    """float32 -> codes (uint8) of the format (E, M, FLAVOR, SIGNED), rounding to nearest with ties to
    the even code, exactly as vmlang.ir.floatcodec.encode. Overflow gives +-Inf in formats that have
    it unless SAT, else the largest finite magnitude; values the VM rejects (NaN into a format
    without NaN, underflow of e8m0, negative values of unsigned formats) give the code the VM
    produces with saturation."""
    bits = x.to(tl.int32, bitcast=True)
    neg = bits < 0
    a = bits & 0x7FFFFFFF
    isnan = a > 0x7F800000
    isinf = a == 0x7F800000
    ex = a >> 23
    sig = tl.where(ex > 0, (a & 0x7FFFFF) | 0x800000, a & 0x7FFFFF)
    if FLAVOR == 3:
        EMIN: tl.constexpr = -((1 << (E - 1)) - 1)
    else:
        EMIN: tl.constexpr = 1 - ((1 << (E - 1)) - 1)
    # u: the unbiased exponent of the target binade the value falls in (clamped to the smallest)
    u = tl.where(ex == 0, EMIN, tl.maximum(ex - 127, EMIN))
    shift = tl.minimum(u - M - tl.maximum(ex, 1) + 150, 30)
    q = sig >> shift
    rem = sig & ((1 << shift) - 1)
    half = (1 << shift) >> 1
    if FLAVOR == 3:
        mag = ((u - EMIN) << M) + q - (1 << M)
    else:
        mag = ((u - EMIN) << M) + q
    up = (rem > half) | ((rem == half) & (shift > 0) & ((mag & 1) == 1))
    mag = mag + up.to(tl.int32)
    over = (mag > MAXMAG) | isinf
    if FLAVOR == 2 and not SAT:
        mag = tl.where(over, ((1 << E) - 1) << M, mag)
    else:
        mag = tl.where(over, MAXMAG, mag)
    if not SIGNED:
        mag = tl.where(neg | (mag < 0), 0, mag)
    if NANCODE >= 0:
        mag = tl.where(isnan, NANCODE, mag)
    else:
        mag = tl.where(isnan, 0, mag)
    if SIGNED:
        mag = tl.where(neg & ~isnan, mag | (1 << (E + M)), mag)
    return mag.to(tl.uint8)


def vm_clamp(x, LO: tl.constexpr, HI: tl.constexpr):
    """Clamp floats to [LO, HI]; NaN stays NaN (saturating casts)."""
    return tl.where(x != x, x, tl.minimum(tl.maximum(x, LO), HI))


# ----------------------------------------------------------------------------------- float <-> int
def vm_rint(x):
    """Round float32 to the nearest integer, ties to even (exact: adding 2**23 rounds in the FPU)."""
    a = tl.abs(x)
    r = (a + 8388608.0) - 8388608.0
    r = tl.where(a < 8388608.0, r, a)
    return tl.where(x < 0, -r, r)


def vm_f32_to_int(x, LO: tl.constexpr, HI: tl.constexpr):
    """float32 -> int64 rounded to nearest even and clamped to [LO, HI] (NaN -> 0)."""
    r = vm_rint(x)
    r = tl.where(r != r, 0.0, r)
    r = tl.minimum(tl.maximum(r, -1099511627776.0), 1099511627776.0)
    return tl.minimum(tl.maximum(r.to(tl.int64), LO), HI)


def vm_int_to_f32_rto(v):
    """int64 (|v| < 2**40) -> float32 rounded to odd: truncate toward zero and set the last bit when
    inexact. A later rounding to nearest even of at most 22 significant bits is then exact, as if
    made from the integer directly (no double rounding)."""
    f = v.to(tl.float32)
    back = f.to(tl.int64)
    mag = f.to(tl.int32, bitcast=True) & 0x7FFFFFFF
    mag = tl.where(tl.abs(back) > tl.abs(v), mag - 1, mag)
    mag = tl.where(back != v, mag | 1, mag)
    mag = tl.where(v < 0, mag | -2147483648, mag)
    return mag.to(tl.float32, bitcast=True)


# ----------------------------------------------------------------------------------- integers
def vm_shl(a, s, BITS: tl.constexpr):
    """a << s; a shift by >= BITS or < 0 gives 0."""
    ok = (s >= 0) & (s < BITS)
    return tl.where(ok, a << tl.where(ok, s, 0), 0)


def vm_shr(a, s, BITS: tl.constexpr, SIGNED: tl.constexpr):
    """a >> s (arithmetic when SIGNED); a shift by >= BITS gives 0 or -1."""
    if SIGNED:
        return a >> tl.minimum(tl.maximum(s, 0), BITS - 1)
    else:
        ok = s < BITS
        return tl.where(ok, a >> tl.where(ok, s, 0), 0)


def vm_idiv(a, b, SIGNED: tl.constexpr):
    """Integer division truncating toward zero; MIN / -1 wraps; division by 0 gives 0 (the VM
    reports it as an error)."""
    safe = tl.where(b == 0, 1, b)
    if SIGNED:
        q = tl.where(safe == -1, -a, a // safe)
    else:
        q = a // safe
    return tl.where(b == 0, 0, q)


def vm_imod(a, b, SIGNED: tl.constexpr):
    """C remainder (the sign of a): a - b * trunc(a / b)."""
    return a - b * vm_idiv(a, b, SIGNED)


# ----------------------------------------------------------------------------------- mode-dependent
def vm_dot_bf16(a, b, acc):
    """a @ b + acc for bf16 values held in f32: bf16 tensor cores on a GPU; in the interpreter (which
    stores bf16 as raw uint16 and cannot multiply it) an exact f32 product of the same values."""
    if VM_INTERPRET:
        return tl.dot(a, b, acc, input_precision="ieee")
    else:
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), acc)


def vm_atomic_add_bf16(ptr, off, val, mask):
    """Atomically add bf16 values (held in f32) to bf16 memory (``ptr`` points to uint16 bits), one
    rounding per addition. The interpreter runs blocks one after another, so there a plain
    read-add-write is atomic; it has no bf16 atomics."""
    if VM_INTERPRET:
        old = vm_bf16_from_bits(tl.load(ptr + off, mask=mask, other=0))
        tl.store(ptr + off, vm_bf16_to_bits(vm_round_bf16(old + val)), mask=mask)
    else:
        tl.atomic_add(ptr.to(tl.pointer_type(tl.bfloat16), bitcast=True) + off, val.to(tl.bfloat16), mask=mask,
                      sem="relaxed")


def vm_abs_i16(x):
    """abs of int16, wrapping (abs(-32768) = -32768). On the H100 every formula LLVM turns into
    ``abs.s16`` came out 32768 once widened (ptxas keeps the 32-bit register of abs.s16 as if the result
    fitted): the absolute value is taken in 32 bits in PTX and truncated."""
    if VM_INTERPRET:
        v = x.to(tl.int32)
        return (((tl.where(v < 0, 0 - v, v) + 32768) & 65535) - 32768).to(tl.int16)
    else:
        return tl.inline_asm_elementwise("{ .reg .s32 t; cvt.s32.s16 t, $1; abs.s32 t, t; cvt.u16.u32 $0, t; }",
                                         "=h,h", [x], dtype=tl.int16, is_pure=True, pack=1)


def vm_exp(x):
    """e**x of float32: libdevice's expf on a GPU (within 2 ulps; ``tl.exp`` is ex2.approx of x * log2(e),
    whose error grows with |x|), NumPy's in the interpreter."""
    if VM_INTERPRET:
        return tl.exp(x)
    else:
        return libdevice.exp(x)


def vm_exp2(x):
    """2**x of float32 (libdevice on a GPU)."""
    if VM_INTERPRET:
        return tl.exp2(x)
    else:
        return libdevice.exp2(x)


def vm_log(x):
    """Natural logarithm of float32 (libdevice on a GPU: ``tl.log`` is lg2.approx, whose relative error is
    large near 1)."""
    if VM_INTERPRET:
        return tl.log(x)
    else:
        return libdevice.log(x)


def vm_fmod(a, b):
    """C fmod of float32, exact (libdevice on a GPU; LLVM's frem lowering divides approximately)."""
    if VM_INTERPRET:
        return a % b
    else:
        return libdevice.fmod(a, b)


#: module-level names some helpers need, emitted into the generated module when a helper uses them
GLOBALS = {
    "VM_INTERPRET": ["import os",
                     'VM_INTERPRET = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0").lower() in '
                     '("1", "true", "on"))'],
    "libdevice": ["from triton.language.extra import libdevice"],
}


# ----------------------------------------------------------------------------------- registry
HELPERS = {name: fn for name, fn in dict(globals()).items() if name.startswith("vm_") and inspect.isfunction(fn)}
_CALL = re.compile(r"\b(vm_\w+)\(")


def helper_source(name: str) -> str:
    return "@triton.jit\n" + inspect.getsource(HELPERS[name])


def closure(names) -> list[str]:
    """The helpers ``names`` and every helper they call, in a stable order."""
    todo, seen = list(names), set()
    while todo:
        n = todo.pop()
        if n in seen or n not in HELPERS:
            continue
        seen.add(n)
        todo.extend(m for m in _CALL.findall(inspect.getsource(HELPERS[n])) if m != n)
    order = list(HELPERS)
    return sorted(seen, key=order.index)
