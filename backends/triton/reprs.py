"""How each vmlang dtype is held in Triton registers ("repr") and in memory ("storage").

=================  ====================  ===========================================
dtype              register repr          global memory (the kernel's pointer)
=================  ====================  ===========================================
float16, float32   tl.float16/float32     same
bfloat16           tl.float32 (exact)     uint16 bit patterns (torch.bfloat16 storage)
int8..32, uint*    same Triton type       same
bool (= uint1)     tl.int1                packed bits (LSB-first, like every sub-byte type)
other < 8 bits     tl.uint8 code          packed LSB-first bytes
other 8-bit        tl.uint8 code          one byte per code
=================  ====================  ===========================================
"""
from __future__ import annotations

import math

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir import floatcodec as fc
from vmlang.ir.types import BOOL, COMPUTE

_TL = {D.float16: "tl.float16", D.float32: "tl.float32", D.bfloat16: "tl.float32",
       D.int8: "tl.int8", D.int16: "tl.int16", D.int32: "tl.int32",
       D.uint8: "tl.uint8", D.uint16: "tl.uint16", D.uint32: "tl.uint32", BOOL: "tl.int1"}


#: dtypes whose tensors the launcher passes as signed torch storage of the same width (bf16 bits and
#: unsigned 16/32-bit ints as int16/int32); the kernel reinterprets the pointer
REINTERPRETED_POINTERS = (D.bfloat16, D.uint16, D.uint32)


def is_storage(dt) -> bool:
    """A dtype held as uint8 codes (not a compute dtype, not bool)."""
    return dt not in COMPUTE and dt != BOOL


def is_packed(dt) -> bool:
    """Stored as a packed LSB-first bit stream in global memory."""
    return dt.nbits < 8


def tl_type(dt) -> str:
    return _TL.get(dt, "tl.uint8")


def storage_type(dt) -> str:
    """The element type of the kernel's pointer for a global tensor of ``dt``."""
    if is_packed(dt):
        return "tl.uint8"
    if dt == D.bfloat16:
        return "tl.uint16"
    return tl_type(dt)


def float_literal(x: float) -> str:
    if math.isnan(x):
        return 'float("nan")'
    if math.isinf(x):
        return 'float("inf")' if x > 0 else 'float("-inf")'
    return repr(float(x))


def code_of(dt, value) -> int:
    """The bit pattern of an exactly representable constant of dtype ``dt``."""
    if dt == BOOL:
        return int(bool(value))
    if dt.is_int and not dt.is_codebook:
        return int(value) & ((1 << dt.nbits) - 1)
    return int(dt.encode(np.asarray([float(value)]))[0])


def literal(dt, value) -> str:
    """A Python literal of ``value`` in the register repr of ``dt``."""
    if dt == BOOL:
        return "1" if value else "0"
    if is_storage(dt):
        return str(code_of(dt, value))
    if dt.is_float:
        return float_literal(float(value))
    return str(int(value))


def int32_of(dt, x: str) -> str:
    """The int32 value of an integer register repr (not uint32, whose values need int64).

    Signed 8/16-bit values are sign-extended by hand: on the H100, `sext(sub i16 0, x)` (the widening of an
    int16 negation) gave 32768 for x = -32768; zero-extending the bits and flipping the sign bit is not
    rewritten that way. Example: int16 0x8000 -> 0x8000 ^ 0x8000 - 0x8000 = -32768."""
    if is_storage(dt) and dt.is_signed:    # a packed sub-byte int: its code sits in a uint8
        s = 32 - dt.nbits
        return f"(({x}.to(tl.int32) << {s}) >> {s})"
    if dt.nbits < 32 and dt.is_signed:
        h = 1 << (dt.nbits - 1)
        return f"(({x}.to(tl.uint{dt.nbits}, bitcast=True).to(tl.int32) ^ {h}) - {h})"
    return f"{x}.to(tl.int32)"


def const(dt, value) -> str:
    """A 0-d tensor expression of a constant.

    -0.0 is built from its bit pattern: on the GPU ``tl.full`` turns any constant equal to 0 into the type's
    null value, +0.0 (the interpreter keeps the sign)."""
    if dt.is_float and not is_storage(dt) and float(value) == 0 and math.copysign(1.0, float(value)) < 0:
        bits = {"tl.float16": 16, "tl.float32": 32}[tl_type(dt)]
        return f"tl.full((), {-(1 << (bits - 1))}, tl.int{bits}).to({tl_type(dt)}, bitcast=True)"
    return f"tl.full((), {literal(dt, value)}, {tl_type(dt)})"


def scalar_from_bits(dt, arg: str) -> str:
    """A scalar argument, passed as its bit pattern in an int32 (see :func:`scalar_bits`), turned into the
    register repr: the same conversion as :func:`from_codes` (narrowing drops the sign-extension bits)."""
    return from_codes(dt, arg)


from vmlang.runtime.args import scalar_bits  # noqa: E402,F401  (shared with the ptx backend)


# ----------------------------------------------------------------------------------- codes
def to_codes(dt, x: str) -> tuple[str, str]:
    """(expression, type) of the unsigned bit patterns of a value in register repr (int32, or int64
    for 32-bit dtypes)."""
    if is_storage(dt):
        return f"{x}.to(tl.int32)", "tl.int32"
    if dt == BOOL:
        return f"{x}.to(tl.int32)", "tl.int32"
    if dt == D.float16:
        return f"({x}.to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF)", "tl.int32"
    if dt == D.bfloat16:
        return f"(({x}.to(tl.int32, bitcast=True) >> 16) & 0xFFFF)", "tl.int32"
    if dt == D.float32:
        return f"({x}.to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF)", "tl.int64"
    if dt.nbits == 32:
        return f"({x}.to(tl.int64) & 0xFFFFFFFF)", "tl.int64"
    return f"({x}.to(tl.int32) & {(1 << dt.nbits) - 1})", "tl.int32"


def from_codes(dt, c: str) -> str:
    """Register repr from unsigned bit patterns (an int32 or int64 expression holding < 2**nbits)."""
    if is_storage(dt):
        return f"({c}).to(tl.uint8)"
    if dt == BOOL:
        return f"({c}) != 0"
    if dt == D.float16:
        return f"({c}).to(tl.int16).to(tl.float16, bitcast=True)"
    if dt == D.bfloat16:
        return f"(({c}).to(tl.int32) << 16).to(tl.float32, bitcast=True)"
    if dt == D.float32:
        return f"({c}).to(tl.int32).to(tl.float32, bitcast=True)"
    signed = "int" if dt.is_signed else "uint"
    return f"({c}).to(tl.int{dt.nbits}).to(tl.{signed}{dt.nbits}, bitcast=True)"


# ----------------------------------------------------------------------------------- float formats
def float_params(dt) -> str:
    """``E, M, FLAVOR, SIGNED`` of a binary float format, as helper arguments."""
    from .lib import FLAVOR_IDS
    return f"{dt.exp}, {dt.man}, {FLAVOR_IDS[dt.flavor]}, {dt.signed}"


def encode_params(dt, saturate: bool) -> str:
    mag = fc.max_magnitude_code(dt.exp, dt.man, dt.flavor)
    nan = fc.nan_code(dt.exp, dt.man, dt.flavor)
    return f"{float_params(dt)}, {bool(saturate)}, {mag}, {-1 if nan is None else nan}"
