"""The dense LSB-first bit stream that stores sub-byte tensors.

An ``n``-element row of ``b``-bit codes occupies ``ceil(n*b/8)`` bytes: element ``i`` sits in bits
``[i*b, (i+1)*b)`` of the little-endian byte stream, its least significant bit first, and the
last byte is padded with zero bits. Worked example, three 3-bit codes ``a=0b101, b=0b011, c=0b110``::

    stream bit:  0 1 2 | 3 4 5 | 6 7 | 8   ...
    element:     a0a1a2| b0b1b2| c0c1| c2  (then 7 zero padding bits)
    byte 0 = c1 c0 b2 b1 b0 a2 a1 a0 (MSB..LSB) = 0b10_011_101 = 0x9D,  byte 1 = 0b0000000_1 = 0x01

For 4-bit codes this is "element 0 in the low nibble" (as OCP MX and PyTorch); 8 int3 codes fill
exactly 3 bytes, 4 int6 codes 3 bytes.

>>> pack([0b101, 0b011, 0b110], 3).tolist()
[157, 1]
>>> unpack(pack([0b101, 0b011, 0b110], 3), 3, 3).tolist()
[5, 3, 6]
"""
from __future__ import annotations

import numpy as np


def _check_nbits(nbits) -> int:
    if not isinstance(nbits, (int, np.integer)) or isinstance(nbits, bool) or not 1 <= nbits <= 8:
        raise ValueError(f"nbits must be an integer in 1..8, got {nbits!r}")
    return int(nbits)


def packed_length(count: int, nbits: int) -> int:
    """Bytes holding ``count`` codes of ``nbits`` bits: ``ceil(count * nbits / 8)``."""
    return (count * _check_nbits(nbits) + 7) // 8


def pack(codes, nbits: int, axis: int = -1) -> np.ndarray:
    """Pack unsigned codes of ``nbits`` bits along ``axis`` into the LSB-first byte stream (uint8)."""
    nbits = _check_nbits(nbits)
    c = np.asarray(codes)
    if c.dtype == np.bool_:
        c = c.astype(np.uint8)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"pack expects integer codes, got dtype {c.dtype}")
    if c.ndim == 0:
        raise ValueError("pack expects at least one axis")
    if c.size:
        lo, hi = int(c.min()), int(c.max())
        if lo < 0 or hi >= (1 << nbits):
            raise ValueError(f"code {lo if lo < 0 else hi} does not fit in {nbits} bits "
                             f"(codes must lie in [0, {(1 << nbits) - 1}])")
    c = np.moveaxis(c.astype(np.uint8), axis, -1)
    n = c.shape[-1]
    bits = (c[..., None] >> np.arange(nbits, dtype=np.uint8)) & 1          # [..., n, nbits]
    bits = bits.reshape(c.shape[:-1] + (n * nbits,))
    out = np.packbits(bits, axis=-1, bitorder="little")                   # pads with zero bits
    return np.moveaxis(out, -1, axis)


def unpack(packed, nbits: int, count: int, axis: int = -1) -> np.ndarray:
    """Inverse of :func:`pack`: read ``count`` codes of ``nbits`` bits along ``axis`` (uint8)."""
    nbits = _check_nbits(nbits)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise ValueError(f"unpack expects packed uint8 bytes, got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError("unpack expects at least one axis")
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    p = np.moveaxis(p, axis, -1)
    need = packed_length(int(count), nbits)
    if p.shape[-1] != need:
        raise ValueError(f"{count} codes of {nbits} bits take {need} bytes, but the packed axis has "
                         f"{p.shape[-1]}")
    bits = np.unpackbits(p, axis=-1, bitorder="little")[..., : count * nbits]
    bits = bits.reshape(p.shape[:-1] + (int(count), nbits))
    weights = (1 << np.arange(nbits, dtype=np.uint16)).astype(np.uint16)
    out = (bits.astype(np.uint16) * weights).sum(axis=-1).astype(np.uint8)
    return np.moveaxis(out, -1, axis)
