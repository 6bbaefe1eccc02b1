"""Bank conflicts of ``ldmatrix`` reads, and the shared layout of an mma operand chosen by them.

The PTX backend reads the shared a and b operands of a tensor-core ``dot`` with ``ldmatrix`` (``.trans``
for b): each 8 x 8 matrix is one **phase** of 8 row addresses, rows ``r0 .. r0+7`` (``r0 % 8 == 0``) of
one 16-byte column chunk (8 elements of 16 bits). A phase takes one shared-memory wavefront when its 8
chunks fall in 8 different 16-byte slots of a 128-byte bank line (``byte // 16 % 8``), else as many as the
most crowded slot holds. The generic fragment model of :func:`vmlang.ir.layout.choose_shared_layout`
(each lane reading its own fragment elements) does not see this.

Worked example: b = f16[32, 128] row-major, rows 256 bytes apart, so every row starts in slot 0. With
``Sw<2,4,5>`` (bits 9..10 of the byte address xor into bits 4..5) rows 2j and 2j+1 get the same xor and
land in the same slot: each phase takes 2 wavefronts. ``Sw<3,4,4>`` xors bits 8..10 = ``r % 8`` into
bits 4..6: the 8 rows of a phase use 8 slots, 1 wavefront each.

>>> from vmlang.ir.layout import MemLayout, Swizzle, row_major
>>> [ldmatrix_extra(MemLayout(row_major((32, 128)), 16, Swizzle(*s)), (32, 128)) for s in ((2, 4, 5), (3, 4, 4))]
[64, 0]
"""
from __future__ import annotations

import numpy as np


def byte_table(mem, shape) -> np.ndarray | None:
    """``[r, c] -> byte offset`` (swizzle included) of a 2-D tile of 16-bit elements; None without a table."""
    R, C = shape
    f = getattr(mem, "layout", mem)
    try:
        elem = np.asarray(f.table(), dtype=np.int64)
    except Exception:  # noqa: BLE001 - a layout without a table: no ldmatrix ranking
        return None
    if elem.size < R * C:
        return None
    byte = elem[:R * C] * 2
    sw = getattr(mem, "swizzle", None)
    if sw is not None and getattr(sw, "bits", 0):
        byte = np.asarray(sw(byte), dtype=np.int64)
    return byte.reshape(C, R).T                  # tile index is colexicographic: r + R * c


def segments_ok(byte: np.ndarray) -> bool:
    """Every row segment of 8 elements is 16 contiguous, 16-byte aligned bytes (what ldmatrix needs)."""
    R, C = byte.shape
    seg = byte.reshape(R, C // 8, 8)
    return bool(np.all(seg[:, :, 0] % 16 == 0) and np.all(seg == seg[:, :, :1] + 2 * np.arange(8)))


def ldmatrix_extra(mem, shape) -> int | None:
    """Extra wavefronts (beyond one per phase) of reading every 8 x 8 matrix of the tile with ldmatrix;
    None when the layout cannot be read with ldmatrix (segments not contiguous and aligned)."""
    R, C = shape
    if R % 8 or C % 8:
        return None
    byte = byte_table(mem, shape)
    if byte is None or not segments_ok(byte):
        return None
    slot = (byte[:, ::8] // 16) % 8                              # [r, chunk]
    phases = slot.reshape(R // 8, 8, C // 8).transpose(0, 2, 1)  # [row block, chunk, 8 rows]
    counts = (phases[..., None] == np.arange(8)).sum(axis=2)     # [row block, chunk, slot]
    return int((counts.max(axis=2) - 1).sum())


def choose_for_ldmatrix(choice, writer, shape, elem_bits: int):
    """Among the candidates ``choose_shared_layout`` scored (``choice.candidates``), the layout with the
    fewest write conflicts plus extra ldmatrix wavefronts that keeps the chosen write width and ldmatrix
    row segments; ties: smaller footprint, fewer swizzle bits. ``(mem, write_conflicts, ldmatrix_extra)``,
    or None when no candidate qualifies (not 16-bit, not 2-D, ...)."""
    from vmlang.ir.layout import bank_conflicts
    if elem_bits != 16 or len(shape) != 2:
        return None
    best = None
    for n, (mem, wb, _rb, _extra) in enumerate(choice.candidates):
        if wb != choice.write.bits:
            continue
        lx = ldmatrix_extra(mem, shape)
        if lx is None:
            continue
        wc = bank_conflicts(writer, mem, bits=wb).conflicts
        sw = mem.swizzle.bits if mem.swizzle else 0
        key = (wc + lx, mem.footprint_bytes, sw, n)
        if best is None or key < best[0]:
            best = (key, mem, wc, lx)
    return None if best is None else best[1:]


__all__ = ["ldmatrix_extra", "choose_for_ldmatrix", "segments_ok", "byte_table"]
