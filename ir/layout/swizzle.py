"""Memory layouts: tile coordinate -> element offset, optionally followed by an XOR swizzle.

``Swizzle(bits, base, shift)`` acts on **byte addresses** (CuTe's ``Swizzle<B, M, S>`` with
``B = bits, M = base, S = shift``)::

    y = x ^ ((x >> shift) & (((1 << bits) - 1) << base))

i.e. the ``bits`` address bits ``[base, base + bits)`` are XORed with the bits
``[base + shift, base + shift + bits)``. ``shift >= bits`` is required, so the source bits are
never modified: the swizzle is an involution (``sw(sw(x)) == x``), a bijection on every aligned
block of ``2**(base + bits + shift)`` bytes, it keeps the low ``base`` bits (whole
``2**base``-byte chunks move together) and it never leaves an aligned ``2**(base + bits)``-byte
block. ``Swizzle(3, 4, 3)`` permutes the eight 16-byte chunks of each 128-byte row by the row
number: the classic conflict-free layout for 16-byte accesses to 64-half rows.

>>> sw = Swizzle(3, 4, 3)
>>> [sw(x) for x in (0, 16, 128, 128 + 16, 3 * 128 + 5)]
[0, 16, 144, 128, 437]
>>> str(sw), Swizzle.parse("Sw<3,4,3>") == sw
('Sw<3,4,3>', True)

``MemLayout(layout, elem_bits, swizzle=None)`` bundles the offset layout, the element size and the
swizzle. Bits of element ``x`` live at ``swizzle_bits(layout(x) * elem_bits + b)``, where the
swizzle applies to the byte part of a bit address and keeps the bit within the byte.

>>> m = MemLayout.parse("Sw<3,4,3> o (8,64):(64,1) @16b")
>>> str(m), m.footprint_bytes
('Sw<3,4,3> o (8,64):(64,1) @16b', 1024)
>>> m.table()[[0, 1, 8]].tolist()        # element (1, 0) at byte 128 moves to byte 144 = element 72
[0, 72, 1]
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .core import Layout


@dataclass(frozen=True, slots=True)
class Swizzle:
    """XOR swizzle of byte addresses; see the module docstring for the exact definition."""

    bits: int
    base: int
    shift: int

    def __post_init__(self):
        for name in ("bits", "base", "shift"):
            v = getattr(self, name)
            if not it.is_int(v) or v < 0:
                raise LayoutError(f"Swizzle {name} must be a non-negative integer, got {v!r}")
        if self.bits and self.shift < self.bits:
            raise LayoutError(f"Swizzle({self.bits},{self.base},{self.shift}): shift must be at least bits, "
                              f"or the XOR would modify its own source bits (not an involution)")

    @property
    def mask(self) -> int:
        """The address bits that change: ``[base, base + bits)``."""
        return ((1 << self.bits) - 1) << self.base

    @property
    def period(self) -> int:
        """Bytes after which the pattern repeats: ``2**(base + bits + shift)``."""
        return 1 << (self.base + self.bits + self.shift)

    def __call__(self, x):
        if isinstance(x, np.ndarray):
            x = x.astype(np.int64)
            return x ^ ((x >> self.shift) & self.mask)
        return x ^ ((x >> self.shift) & self.mask)

    def on_bits(self, bit_addr):
        """The swizzle applied to a bit address (the byte part moves, the bit in the byte stays)."""
        return (self(bit_addr >> 3) << 3) | (bit_addr & 7)

    def __str__(self) -> str:
        return f"Sw<{self.bits},{self.base},{self.shift}>"

    @classmethod
    def parse(cls, text: str) -> "Swizzle":
        m = re.fullmatch(r"\s*Sw(?:izzle)?\s*[<(]\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*[>)]\s*", text)
        if not m:
            raise LayoutError(f"cannot parse {text!r} as a swizzle (expected Sw<bits,base,shift>)")
        return cls(int(m[1]), int(m[2]), int(m[3]))


@dataclass(frozen=True, slots=True)
class MemLayout:
    """A memory layout: ``layout`` (tile coordinate -> element offset), element bits, optional swizzle."""

    layout: Layout
    elem_bits: int = 8
    swizzle: Swizzle | None = None

    def __post_init__(self):
        if not isinstance(self.layout, Layout):
            raise LayoutError(f"MemLayout needs a Layout, got {self.layout!r}")
        if not it.is_int(self.elem_bits) or not 1 <= self.elem_bits <= 1024:
            raise LayoutError(f"MemLayout elem_bits must be an integer in 1..1024, got {self.elem_bits!r}")

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def footprint_bytes(self) -> int:
        """Bytes spanned by the unswizzled layout (``cosize * elem_bits``, rounded up)."""
        return (self.layout.cosize * self.elem_bits + 7) // 8

    def bit_table(self) -> np.ndarray:
        """``(size, elem_bits)`` array: physical bit address of bit ``b`` of element ``x``."""
        start = self.layout.table() * self.elem_bits
        bits = start[:, None] + np.arange(self.elem_bits, dtype=np.int64)[None, :]
        return self.swizzle.on_bits(bits) if self.swizzle else bits

    def byte_table(self) -> np.ndarray:
        """Physical byte address holding the first bit of each element."""
        return self.bit_table()[:, 0] >> 3

    def table(self) -> np.ndarray:
        """Physical element offsets (swizzle included); ``LayoutError`` if the swizzle splits elements."""
        if not self.swizzle:
            return self.layout.table()
        bt = self.bit_table()
        whole = np.all(bt == bt[:, :1] + np.arange(self.elem_bits)[None, :]) and np.all(bt[:, 0] % self.elem_bits == 0)
        if not whole:
            raise LayoutError(f"{self}: the swizzle moves {8 << self.swizzle.base}-bit chunks, which "
                              f"split {self.elem_bits}-bit elements; use bit_table()")
        return bt[:, 0] // self.elem_bits

    def __str__(self) -> str:
        sw = f"{self.swizzle} o " if self.swizzle else ""
        return f"{sw}{self.layout} @{self.elem_bits}b"

    @classmethod
    def parse(cls, text: str) -> "MemLayout":
        """``[Sw<b,m,s> o] shape:stride [@ 16b | @ float16]`` (element bits default to 8)."""
        body, bits, sw = text.strip(), 8, None
        if "@" in body:
            body, tail = body.rsplit("@", 1)
            bits = _parse_bits(tail.strip())
        m = re.match(r"\s*(Sw(?:izzle)?\s*[<(][^>)]*[>)])\s*o\s*(.*)$", body, re.S)
        if m:
            sw = Swizzle.parse(m[1])
            body = m[2]
        return cls(Layout.parse(body), bits, sw)


def _parse_bits(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*b(?:its?)?", text)
    if m:
        return int(m[1])
    from ..dtypes import dtype
    from ..errors import DTypeError
    try:
        return dtype(text).nbits
    except DTypeError as e:
        raise LayoutError(f"cannot read element bits from {text!r}: expected e.g. 16b or a dtype name ({e})") from None
