"""Layouts for ``dot`` on Hopper's warpgroup MMA (``wgmma.mma_async``, sm_90a): the accumulator's register
layout and the canonical shared-memory layouts of the operands.

**The instruction** ``wgmma.mma_async.sync.aligned.m64nNk16.f32.{f16,bf16}``: the 4 warps of a
**warpgroup** (warps ``4g .. 4g+3``) multiply a 64 x 16 tile of a by a 16 x N tile of b (N a multiple of 8
up to 256), both read from shared memory through 64-bit *descriptors*, into 64 x N f32 accumulators held in
registers: warp ``q`` of the group holds rows ``16q .. 16q+15``, laid out like ``mma.sync.m16n8k16``'s C
fragment repeated over the ``N / 8`` column tiles (lane ``l``, ``g = l // 4``, ``t = l % 4``: register
``4j + e`` is element ``(16q + g + 8 (e // 2), 8j + 2t + e % 2)``).

:func:`wgmma_layouts` tiles an ``m x n`` accumulator over ``gm x gn`` warpgroups, each issuing ``mb``
instructions of ``64 x (n / gn)`` per k step of 16::

    c = MMA_M16N8K16_C * local(1, N / 8) * spatial(4, 1) * local(mb, 1) * spatial(gm, gn)

Worked example: 128 x 128 with 4 warps (one warpgroup): ``gm = gn = 1``, ``mb = 2``, ``N = 128``; thread
``32 q + l`` holds rows ``16q + g (+8)`` and ``64 + 16q + g (+8)`` of all 16 column tiles: 128 floats.
With 8 warps: ``gm = 2``, ``mb = 1``: warpgroup ``g`` holds rows ``64g .. 64g+63``, 64 floats a thread.

**Shared operands** (PTX ISA, "Shared Memory Matrix Layout"): a tile is made of *swizzle atoms* of 8 rows
of ``W`` bytes (``W`` = 128, 64 or 32: the swizzle mode), rows ``W`` bytes apart, XOR-swizzled on the
absolute address (``Swizzle(log2(W / 16), 4, 3)``: bits 7.. of the byte address, the row within the 8-row
group, xor into the 16-byte chunk number; atoms 1024-byte aligned). :func:`canonical_shared` lays a
row-major ``[R, C]`` tile (C the contiguous axis: K for a = ``[M, K]``, "K-major"; N for b = ``[K, N]``,
"N-major", read transposed) as column **panels** of ``P = W / 2`` elements: element ``(r, c)`` at
``(c // P) * R * P + r * P + c % P``, then swizzled. ``W`` is the widest mode whose panel divides C.

Worked example: b = f16[32, 128]: ``W = 128``, ``P = 64``: element (k, n) at ``(n // 64) * 2048 + 64 k +
n % 64`` (two panels of 4 KiB); the descriptor's leading byte offset (atom to atom along N) is 4096, its
stride byte offset (8 k rows to the next 8) is 1024. a = f16[128, 32]: ``W = 64``, one panel: plain
row-major with ``Swizzle(2, 4, 3)``; stride byte offset 512 (8 rows of 64 bytes).

>>> w = wgmma_layouts(128, 128, 32, 4); (w.gm, w.gn, w.mb, w.n)
(1, 1, 2, 128)
>>> print(canonical_shared((32, 128), 16))
Sw<3,4,3> o (32,(64,2)):(64,(1,2048)) @16b
"""
from __future__ import annotations

from dataclasses import dataclass

from vmlang.ir.layout import MMA_M16N8K16_C, Layout, MemLayout, Swizzle, TVLayout, local, spatial

#: the architectures with warpgroup MMA (a kernel using it is emitted for sm_90a)
ARCHS = ("sm_90", "sm_90a")

#: the widest accumulator an instruction computes (m64n256k16)
MAX_N = 256

#: swizzle modes by atom row bytes, widest first, and the descriptor's code for each
MODES = {128: 1, 64: 2, 32: 3}


@dataclass(frozen=True)
class WgmmaLayouts:
    c: TVLayout     # the accumulator (and result) layout
    gm: int         # warpgroups along m
    gn: int         # warpgroups along n
    mb: int         # 64-row instructions per warpgroup and k step
    n: int          # the instruction's N (columns per warpgroup)


def wgmma_layouts(m: int, n: int, k: int, warps: int) -> WgmmaLayouts | None:
    """The accumulator layout of an ``m x n x k`` dot on wgmma over ``warps`` warps, or None when the shape
    does not fit (warps a multiple of 4, ``m % 64 == n % 8 == k % 16 == 0``, at most 256 columns per
    warpgroup). Among the ways to share the tile between warpgroups, the fewest instructions per k step
    win, then the widest N."""
    if warps % 4 or not warps or m % 64 or n % 8 or k % 16:
        return None
    G = warps // 4
    best = None
    for gm in range(1, G + 1):
        if G % gm:
            continue
        gn = G // gm
        if (m // 64) % gm or n % (8 * gn) or n // gn > MAX_N:
            continue
        key = (m // (64 * gm), -(n // gn))
        if best is None or key < best[0]:
            best = (key, gm, gn)
    if best is None:
        return None
    _, gm, gn = best
    mb, nn = m // (64 * gm), n // gn
    c = MMA_M16N8K16_C * local(1, nn // 8) * spatial(4, 1) * local(mb, 1) * spatial(gm, gn)
    return WgmmaLayouts(c, gm, gn, mb, nn)


def swizzle_bytes(shape, bits: int, block: int | None = None) -> int | None:
    """The swizzle mode (atom row bytes: 128, 64 or 32) of a row-major ``[R, C]`` operand, or None: the
    widest whose panel of ``P = W / 2`` elements divides C and ``block`` (the columns one warpgroup's
    instruction reads of b, which must start on a panel: 16 x 48 split over 3 warpgroups has 32-byte
    panels, not 64).

    >>> swizzle_bytes((16, 64), 16), swizzle_bytes((16, 64), 16, block=32), swizzle_bytes((16, 48), 16, block=24)
    (128, 64, None)
    """
    R, C = shape
    if bits != 16 or R % 8:
        return None
    for w in MODES:
        P = w * 8 // bits
        if C % P == 0 and (block is None or block % P == 0):
            return w
    return None


def canonical_shared(shape, bits: int, block: int | None = None) -> MemLayout | None:
    """The canonical wgmma shared layout of a row-major ``[R, C]`` tile of 16-bit elements (C contiguous;
    see the module docstring; ``block``: see :func:`swizzle_bytes`), or None when C (or ``block``) is not
    a multiple of 16 elements or R of 8."""
    w = swizzle_bytes(shape, bits, block)
    if w is None:
        return None
    R, C = shape
    P = w * 8 // bits
    lay = Layout((R, (P, C // P)), (P, (1, R * P))) if C > P else Layout((R, C), (C, 1))
    return MemLayout(lay, bits, Swizzle(w.bit_length() - 5, 4, 3))


__all__ = ["WgmmaLayouts", "wgmma_layouts", "canonical_shared", "swizzle_bytes", "ARCHS", "MODES", "MAX_N"]
