"""Vectorised global accesses from the vectorize pass's plans (``ld.global.v4.b32`` and friends).

A :class:`~vmlang.passes.vectorize.VectorPlan` of ``w`` bits (128, 64, 32 or 16) for a tile access
promises that each thread's **register bits** (value ``v`` of a ``b``-bit dtype is register bits
``[v*b, (v+1)*b)``) fall into chunks of ``w`` consecutive bits, each contiguous in memory, in
ascending order, at a ``w``-bit aligned address, and that a masked chunk lies wholly inside or
wholly outside the declared shape. So chunk ``k`` is one ``ld.global`` of ``w`` bits at the bit
address of register bit ``k*w``, and value ``v`` is then bits ``[v*b, v*b + b)`` of the
concatenated words -- a shift and a mask, straddling two 32-bit words at most.

Worked example: int3 ``[16, 128]`` with 16 threads x 128 values (one row each). A thread holds
384 register bits = 3 chunks of 128 bits (``ld.global.v4.b32`` x 3, 12 words). Value 10 is bits
30..32: bits 30..31 of word 0 and bit 0 of word 1, ``(w0 >> 30) | (w1 << 2) & 7``. Chunk 1 starts
at register bit 128 = bit 2 of value 42, so its address is the bit address of element 42 plus 2
(a multiple of 128 when the row pitch and the slice start are -- the plan checked both).

``vector_load`` / ``vector_store`` return None / False when the instruction has no such plan (an
8-bit plan is no better than the element path, which reads the same bytes); the caller then accesses
element by element.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import memory as M
from .core import I64, Packed, Tile, const_i32, from_code, to_code
from .staging import read, staged_of

#: widths handled here: one ld/st of a .v4.b32, .v2.b32, .b32 or .u16
VECTOR_WIDTHS = (128, 64, 32, 16)


def vector_plan(lw, i):
    """The vectorize pass's VectorPlan of instruction ``i``, whatever its width (None without one)."""
    from vmlang.passes.vectorize import VectorPlan
    try:
        plan = lw.facts.get(i)
    except TypeError:           # an unhashable instruction: no plan
        return None
    return plan if isinstance(plan, VectorPlan) else None


def plan_of(lw, i):
    """The VectorPlan of instruction ``i`` (None without one or when it is not worth vectorizing)."""
    plan = vector_plan(lw, i)
    if plan is None or plan.bits_per_access not in VECTOR_WIDTHS:
        return None
    return plan


def _chunks(lw, i, g, lay, shape, plan, bits: int):
    """Per chunk ``k``: (byte pointer, predicate, immediate byte offset) -- the address of register bit
    ``k * w`` is the pointer plus the offset. A chunk that follows the one before it in memory for every
    thread (the layout's bit table, run-time terms aside: :func:`vmlang.passes.vectorize.register_bits`)
    takes that one's pointer and ``w / 8`` bytes more as an immediate (``ld.global [p+16]``), where its own
    address would cost a 64-bit add."""
    from vmlang.passes.vectorize import register_bits
    from .rules_memory import positions
    b = lw.b
    w = plan.bits_per_access
    _, valid, _ = lw.thread_part(lay)
    B = register_bits(i.index, lay, bits)
    out = []
    for k in range(plan.accesses_per_thread):
        r0 = k * w
        slot, within = divmod(r0, bits)
        coords = lw.slot_coords(lay, shape, slot)
        if k and np.array_equal(B[:, r0], B[:, r0 - w] + w):
            ptr, imm = out[-1][0], out[-1][2] + w // 8
        else:
            ptr, imm = M.chunk_ptr(lw, g, i.index, coords, within, bits), 0
        ok = b.and_(valid, M.in_bounds(lw, g, positions(lw, i.index, coords))) if plan.masked else valid
        out.append((ptr, ok, imm))
    return out


def vector_load(lw, i, src, lay):
    """``(codes, oks, packed)`` per value slot (codes: i32 holding the low ``b`` bits; packed: the
    :class:`~.core.Packed` words the codes were cut from, None for 16-bit chunks), or None."""
    plan = plan_of(lw, i)
    dt = i.out.dtype
    bits = dt.nbits
    if plan is None or lay.values * bits != plan.bits_per_access * plan.accesses_per_thread:
        return None
    w = plan.bits_per_access
    st = staged_of(lw, i)
    if st is not None and st.plan.lay == lay:
        # copied by cp.async iterations ago into this thread's slots (staging.py); staged for another
        # layout, its chunks would not be this one's: then it loads from global memory below
        words, preds = read(lw, i, src, st)
    else:
        words, preds = [], []
        for ptr, ok, imm in _chunks(lw, i, src, lay, i.out.shape, plan, bits):
            if w == 128:
                ws = M.load_global_vec(lw, ptr, ok, 4, imm)
            elif w == 64:
                ws = M.load_global_vec(lw, ptr, ok, 2, imm)
            else:
                ws = [M.load_global(lw, ptr, ok, w, imm)]
            words += ws
            preds.append(ok)
    unit = 16 if w == 16 else 32
    codes, where = split_words(lw.b, words, bits, lay.values, unit)
    oks = [preds[v * bits // w] for v in range(lay.values)]
    packed = Packed(tuple(words), tuple(where), bits) if unit == 32 else None
    return codes, oks, packed


def split_words(b, words: list, bits: int, n: int, unit: int = 32):
    """The ``n`` codes of ``bits`` bits packed LSB first in ``words`` (i32 values holding ``unit`` = 32 or
    16 bits each): ``(codes, where)``, codes as i32 (low bits), ``where[v]`` = (word, bit offset), or None
    for a code straddling two words (``(lo >> sh) | (hi << (unit - sh))``, masked)."""
    codes, where = [], []
    mask = (1 << bits) - 1
    for v in range(n):
        j, sh = divmod(v * bits, unit)
        x = words[j]
        where.append((j, sh) if sh + bits <= unit else None)
        if sh + bits > unit:
            hi = b.shl(words[j + 1], const_i32(unit - sh))
            x = b.or_(b.lshr(x, const_i32(sh)) if sh else x, hi)
            sh = 0
        if sh:
            x = b.lshr(x, const_i32(sh))
        if bits < 32:
            x = b.and_(x, const_i32(mask))
        codes.append(x)
    return codes, where


def pack_words(b, dt, slots: list, unit: int = 32) -> list:
    """The inverse of :func:`split_words`: the slots' codes (reprs of ``dt``) packed LSB first into words
    of ``unit`` = 32 or 16 bits (i32 values; ``len(slots) * bits`` must be a multiple of ``unit``)."""
    bits = dt.nbits
    words = [const_i32(0)] * (len(slots) * bits // unit)
    for v, x in enumerate(slots):
        c = b.and_(to_code(b, dt, x), const_i32((1 << bits) - 1)) if bits < 32 else to_code(b, dt, x)
        j, sh = divmod(v * bits, unit)
        words[j] = b.or_(words[j], b.shl(c, const_i32(sh)) if sh else c)
        if sh + bits > unit:
            words[j + 1] = b.or_(words[j + 1], b.lshr(c, const_i32(unit - sh)))
    if unit == 16:
        words = [b.and_(x, const_i32(0xFFFF)) for x in words]
    return words


def tile_of_words(b, dt, words: list, lay):
    """The register tile whose codes are the bit stream ``words`` (32-bit, LSB first), with the words kept
    (:class:`~.core.Packed`): the slots are cut as a vector load cuts them."""
    codes, where = split_words(b, words, dt.nbits, lay.values)
    slots = [from_code(b, dt, c) for c in codes]
    return Tile(slots, lay, dt, packed=Packed(tuple(words), tuple(where), dt.nbits))


def vector_store(lw, i, dst, tile) -> bool:
    """Store a register tile with the plan's vector width: every thread that is the first holder of its
    values writes whole chunks (a chunk of a replicated holder is written by the primary one only)."""
    from .rules_memory import first_holders
    plan = plan_of(lw, i)
    dt = i.dst.dtype
    bits = dt.nbits
    lay = tile.layout
    if plan is None or lay.values * bits != plan.bits_per_access * plan.accesses_per_thread:
        return False
    writer, first = first_holders(lw, lay)
    if not all(first):                   # a thread holding an element twice: not a plain stream
        return False
    b = lw.b
    w = plan.bits_per_access
    # pack the register bit stream into 32-bit words (16-bit for w == 16)
    unit = 16 if w == 16 else 32
    words = pack_words(b, dt, tile.slots, unit)
    per = w // unit
    for k, (ptr, ok, imm) in enumerate(_chunks(lw, i, dst, lay, i.value.shape, plan, bits)):
        ok = b.and_(ok, writer)
        ptr = M.byte_ptr(lw, ptr, ir.Constant(I64, imm)) if imm else ptr
        chunk = words[k * per:(k + 1) * per]
        if w in (128, 64):
            M.store_global_vec(lw, ptr, ok, chunk)
        else:
            M.store_global(lw, ptr, ok, chunk[0], w)
    return True


__all__ = ["pack_words", "plan_of", "split_words", "tile_of_words", "vector_load", "vector_store"]
