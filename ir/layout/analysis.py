"""Analyses for the compiler, decided on bit layouts: vector width, free views, bank conflicts.

All of them look at each thread's **register bits**: a thread's values are a dense LSB-first bit
stream (value ``v`` occupies register bits ``[v*b, (v+1)*b)``), and register bit ``r`` of thread
``t`` is stored at memory bit ``mem_bits(tv(t, r // b), r % b)``. Tiles are small, so the
analyses are exact: they evaluate every register bit with numpy.

``vector_bits(tv, mem, elem_bits, base_align_bytes=16)`` is the widest legal access per thread:
``w`` in 128, 64, 32, 16, 8 bits such that every thread's register bits split into chunks of ``w``
bits, each contiguous and ``w``-aligned in memory (and ``w`` at most the base alignment).

>>> from vmlang.ir.layout import Layout, local, spatial
>>> tv = local(32) * spatial(32)                  # thread t holds elements 32t .. 32t+31
>>> vector_bits(tv, Layout(1024), 3)              # 32 int3 = 96 bits, starting at bit 96t
VectorAccess(bits=32, accesses=3, reason='64-bit: a thread holds 96 bits, not a multiple of 64')
>>> vector_bits(local(128) * spatial(32), Layout(4096), 3)[:2]   # 128 int3 = 3 x 128 bits
(128, 3)

``check_view(src, src_bits, dst, dst_bits)`` raises unless reinterpreting the packed bits is free
(every thread already holds the same bits); ``view_error`` returns the message instead.
``bank_conflicts(tv, mem, ...)`` counts shared-memory wavefronts per warp access exactly, and
``choose_shared_layout(writer, reader, ...)`` picks padding or a swizzle with the fewest conflicts
that keeps both vector widths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .core import Layout, row_major
from .swizzle import MemLayout, Swizzle
from .tv import TVLayout

WIDTHS = (128, 64, 32, 16, 8)


def _as_tv(tv, n: int | None, what: str) -> TVLayout:
    if isinstance(tv, TVLayout):
        if n is not None and it.product(tv.tile) != n:
            raise LayoutError(f"{what}: the register layout's tile {it.fmt(tv.tile)} has "
                              f"{it.product(tv.tile)} elements but the memory layout has {n}")
        return tv
    if isinstance(tv, Layout):
        return TVLayout(tv, (n if n is not None else tv.cosize,))
    raise LayoutError(f"{what}: expected a TVLayout or a rank-2 Layout, got {tv!r}")


def _as_mem(mem, elem_bits, what: str) -> MemLayout:
    if isinstance(mem, MemLayout):
        if elem_bits is not None and elem_bits != mem.elem_bits:
            raise LayoutError(f"{what}: elem_bits={elem_bits} but the memory layout says {mem.elem_bits}")
        return mem
    if isinstance(mem, Layout):
        if elem_bits is None:
            raise LayoutError(f"{what}: give elem_bits (or a MemLayout) for the memory layout {mem}")
        return MemLayout(mem, elem_bits)
    raise LayoutError(f"{what}: expected a Layout or a MemLayout, got {mem!r}")


def thread_bits(tv, mem, elem_bits=None) -> np.ndarray:
    """``(threads, values*elem_bits)``: memory bit address of every register bit of every thread."""
    m = _as_mem(mem, elem_bits, "thread_bits")
    t = _as_tv(tv, m.size, "thread_bits")
    bt = m.bit_table()
    return bt[t.table()].reshape(t.threads, t.values * m.elem_bits)


@dataclass(frozen=True, slots=True)
class VectorAccess:
    """``bits`` per access (0: no whole-byte access exists), ``accesses`` per thread, and why the
    next wider access is illegal."""

    bits: int
    accesses: int
    reason: str = ""

    def __iter__(self):
        return iter((self.bits, self.accesses, self.reason))

    def __getitem__(self, i):
        return (self.bits, self.accesses, self.reason)[i]


def _width_problem(B: np.ndarray, w: int) -> str | None:
    T, R = B.shape
    if R % w:
        return f"{w}-bit: a thread holds {R} bits, not a multiple of {w}"
    C = B.reshape(T, R // w, w)
    start = C[:, :, 0]
    ok = C == start[:, :, None] + np.arange(w)[None, None, :]
    if not ok.all():
        t, k, j = (int(x[0]) for x in np.nonzero(~ok))
        return (f"{w}-bit: thread {t} access {k} is not contiguous in memory (register bit {k * w + j} is at "
                f"memory bit {int(C[t, k, j])}, expected {int(start[t, k]) + j})")
    bad = np.nonzero(start % w)
    if bad[0].size:
        t, k = int(bad[0][0]), int(bad[1][0])
        return f"{w}-bit: thread {t} access {k} starts at bit {int(start[t, k])}, not a multiple of {w}"
    return None


def vector_bits(tv, mem, elem_bits: int | None = None, base_align_bytes: int = 16,
                max_bits: int = 128) -> VectorAccess:
    """The widest legal per-thread access (see the module docstring).

    ``tv``: a TVLayout (or rank-2 Layout) into the tile; ``mem``: Layout or MemLayout of the tile
    (tile index -> element offset); the tile's base address is ``base_align_bytes``-aligned.
    """
    B = thread_bits(tv, mem, elem_bits)
    reason = ""
    for w in WIDTHS:
        if w > max_bits:
            continue
        if w > 8 * base_align_bytes:
            reason = f"{w}-bit: the tile base is only {base_align_bytes}-byte aligned"
            continue
        problem = _width_problem(B, w)
        if problem is None:
            return VectorAccess(w, B.shape[1] // w, reason)
        reason = problem
    return VectorAccess(0, 0, reason)


# -- views ----------------------------------------------------------------------------------------
def _packed(tv, what: str):
    """Per-thread packed-bit positions: for a TVLayout the tile is read row-major (last axis fastest)."""
    if isinstance(tv, TVLayout):
        order = row_major(tv.tile).table()
        idx = order[tv.table()]
        return idx, tv.tile
    if isinstance(tv, Layout) and tv.rank == 2 and not it.is_int(tv.shape):
        return tv.table().reshape(tv[1].size, tv[0].size).T, None
    raise LayoutError(f"{what}: expected a TVLayout or a rank-2 Layout, got {tv!r}")


def view_error(src, src_bits: int, dst, dst_bits: int) -> str | None:
    """Why viewing ``src`` (``src_bits``-bit elements) as ``dst`` (``dst_bits``) is not free, or None.

    ``src``/``dst`` map (thread, value) to an element of the tile; a TVLayout's tile is read in
    row-major order (the viewed last axis fastest), a plain rank-2 Layout already gives positions
    in that packed order. Free means every thread's register bits are the same tile bits before
    and after.
    """
    S, ts = _packed(src, "check_view")
    D, td = _packed(dst, "check_view")
    head = f"view of {src_bits}-bit elements as {dst_bits}-bit elements"
    if ts is not None and td is not None:
        if ts[:-1] != td[:-1] or ts[-1] * src_bits != td[-1] * dst_bits:
            return (f"{head}: tiles {it.fmt(ts)} and {it.fmt(td)} do not hold the same rows of bits "
                    f"({ts[-1]} x {src_bits} = {ts[-1] * src_bits} bits per row vs "
                    f"{td[-1]} x {dst_bits} = {td[-1] * dst_bits})")
    if S.shape[0] != D.shape[0]:
        return f"{head}: {S.shape[0]} threads before but {D.shape[0]} after"
    rs, rd = S.shape[1] * src_bits, D.shape[1] * dst_bits
    if rs != rd:
        return (f"{head}: a thread holds {S.shape[1]} x {src_bits} = {rs} bits before but "
                f"{D.shape[1]} x {dst_bits} = {rd} bits after")
    PS = (S[:, :, None] * src_bits + np.arange(src_bits)).reshape(S.shape[0], rs)
    PD = (D[:, :, None] * dst_bits + np.arange(dst_bits)).reshape(D.shape[0], rd)
    bad = np.nonzero(PS != PD)
    if not bad[0].size:
        return None
    t, r = int(bad[0][0]), int(bad[1][0])
    vs, bs = divmod(r, src_bits)
    vd, bd = divmod(r, dst_bits)
    g = src_bits * dst_bits // math.gcd(src_bits, dst_bits)
    return (f"{head} is not free: register bit {r} of thread {t} is bit {bs} of value {vs} = tile bit "
            f"{int(S[t, vs])}*{src_bits}+{bs} = {int(PS[t, r])} before, but bit {bd} of value {vd} = tile "
            f"bit {int(D[t, vd])}*{dst_bits}+{bd} = {int(PD[t, r])} after; each thread must hold whole "
            f"{g}-bit granules (lcm of {src_bits} and {dst_bits}) in the same order")


def check_view(src, src_bits: int, dst, dst_bits: int) -> None:
    """Raise ``LayoutError`` (with the bit arithmetic) unless the view is free; see ``view_error``."""
    msg = view_error(src, src_bits, dst, dst_bits)
    if msg:
        raise LayoutError(msg)


# -- shared-memory banks ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BankConflicts:
    """Wavefronts of every warp access: ``wavefronts[warp][k]`` for access ``k`` of each thread,
    ``ideal`` the minimum for the distinct words touched. Phases of 128 bytes: 32, 16 or 8
    threads for accesses of at most 32, 64 or 128 bits; in a phase each bank serves one distinct
    4-byte word per wavefront (equal words are broadcast)."""

    bits: int
    wavefronts: tuple
    ideal: tuple

    @property
    def conflicts(self) -> int:
        """Extra wavefronts over the ideal, summed over all warp accesses."""
        return sum(w - i for ws, is_ in zip(self.wavefronts, self.ideal) for w, i in zip(ws, is_))

    @property
    def worst(self) -> int:
        """The largest wavefront count of any single warp access."""
        return max((w for ws in self.wavefronts for w in ws), default=0)

    def __str__(self) -> str:
        n = sum(len(ws) for ws in self.wavefronts)
        tot = sum(sum(ws) for ws in self.wavefronts)
        ide = sum(sum(ws) for ws in self.ideal)
        return (f"{self.bits}-bit accesses: {n} warp accesses, {tot} wavefronts (ideal {ide}), "
                f"{self.conflicts} from bank conflicts")


def bank_conflicts(tv, mem, elem_bits: int | None = None, bits: int | None = None,
                   base_align_bytes: int = 16) -> BankConflicts:
    """Exact wavefront count of the shared-memory accesses of ``tv`` on ``mem``.

    ``bits`` is the access width per thread (default: ``vector_bits``); threads are grouped into
    warps of 32 consecutive thread numbers.
    """
    B = thread_bits(tv, mem, elem_bits)
    if bits is None:
        bits = vector_bits(tv, mem, elem_bits, base_align_bytes).bits
        if bits == 0:
            raise LayoutError("bank_conflicts: threads do not hold whole, aligned bytes of shared memory "
                              "(vector_bits is 0)")
    elif bits not in WIDTHS or _width_problem(B, bits):
        raise LayoutError(f"bank_conflicts: {bits}-bit accesses are not legal here: "
                          f"{_width_problem(B, bits) if bits in WIDTHS else 'not one of 8..128'}")
    T, R = B.shape
    n = R // bits
    start = B.reshape(T, n, bits)[:, :, 0] // 8                     # byte address per (thread, access)
    nw = max(1, bits // 32)
    per_phase = 32 // nw
    words = (start // 4)[:, :, None] + np.arange(nw)[None, None, :]  # (T, n, nw)
    tids = np.arange(T)
    warp, lane = tids // 32, tids % 32
    group = ((warp[:, None] * n + np.arange(n)[None, :]) * (32 // per_phase) + (lane // per_phase)[:, None])
    g = np.broadcast_to(group[:, :, None], words.shape).ravel()
    w = words.ravel()
    pairs = np.unique(np.stack([g, w], axis=1), axis=0)               # distinct (phase, word)
    nwarps = -(-T // 32)
    phases = 32 // per_phase
    ng = nwarps * n * phases
    bank_key = pairs[:, 0] * 32 + pairs[:, 1] % 32
    per_bank = np.bincount(bank_key, minlength=ng * 32).reshape(ng, 32)
    wave = per_bank.max(axis=1)
    distinct = np.bincount(pairs[:, 0], minlength=ng)
    ideal = -(-distinct // 32)
    wave = wave.reshape(nwarps, n, phases).sum(axis=2)
    ideal = ideal.reshape(nwarps, n, phases).sum(axis=2)
    return BankConflicts(bits, tuple(tuple(int(x) for x in r) for r in wave),
                         tuple(tuple(int(x) for x in r) for r in ideal))


# -- choosing a shared-memory layout ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SharedChoice:
    """The chosen shared layout and its costs; ``candidates`` lists every option considered as
    ``(mem, write_bits, read_bits, extra_wavefronts)``."""

    mem: MemLayout
    write: BankConflicts
    read: BankConflicts
    candidates: tuple

    def __str__(self) -> str:
        return (f"{self.mem}: write {self.write.bits}-bit, {self.write.conflicts} conflicts; "
                f"read {self.read.bits}-bit, {self.read.conflicts} conflicts")


def _candidates(base: Layout, elem_bits: int, max_pad_bytes: int):
    yield MemLayout(base, elem_bits)
    flat = base.leaves()
    if len(flat) == 2 and it.congruent(base.shape, (1, 1)) and sorted(d for _, d in flat)[0] == 1:
        k = 0 if flat[0][1] != 1 else 1                                 # the strided mode
        for pad_bytes in range(1, max_pad_bytes + 1):
            if (pad_bytes * 8) % elem_bits:
                continue
            p = pad_bytes * 8 // elem_bits
            st = list(base.stride)
            st[k] += p
            yield MemLayout(Layout(base.shape, tuple(st)), elem_bits)
    foot = (base.cosize * elem_bits + 7) // 8
    for b in (1, 2, 3):
        for m in range(0, 5):
            if foot % (1 << (m + b)):
                continue
            for s in range(b, 8):
                if (1 << (m + b + s)) > 2 * foot:
                    break
                yield MemLayout(base, elem_bits, Swizzle(b, m, s))


def choose_shared_layout(writer, reader, elem_bits: int, base: Layout | None = None,
                         max_pad_bytes: int = 16, base_align_bytes: int = 128) -> SharedChoice:
    """Pick a shared-memory layout for a tile written by ``writer`` and read by ``reader``.

    Candidates: ``base`` (default ``row_major(tile)``), ``base`` with its row stride padded by
    1..``max_pad_bytes`` bytes, and ``base`` followed by ``Swizzle(b, m, s)`` (``b`` 1..3, chunks of
    ``2**m`` <= 16 bytes). A candidate must keep the vector widths that ``base`` allows both
    threads; among those the fewest extra wavefronts (write + read) win, then the smallest
    footprint, then the fewest swizzle bits.
    """
    if not isinstance(writer, TVLayout) or not isinstance(reader, TVLayout):
        raise LayoutError("choose_shared_layout: writer and reader must be TVLayouts")
    if it.product(writer.tile) != it.product(reader.tile) or writer.tile != reader.tile:
        raise LayoutError(f"choose_shared_layout: writer tile {it.fmt(writer.tile)} and reader tile "
                          f"{it.fmt(reader.tile)} differ")
    base = row_major(writer.tile) if base is None else base
    if base.size != it.product(writer.tile):
        raise LayoutError(f"choose_shared_layout: base {base} does not have the {it.product(writer.tile)} "
                          f"elements of the tile")
    plain = MemLayout(base, elem_bits)
    want_w = vector_bits(writer, plain, base_align_bytes=base_align_bytes).bits
    want_r = vector_bits(reader, plain, base_align_bytes=base_align_bytes).bits
    scored, seen = [], []
    for cand in _candidates(base, elem_bits, max_pad_bytes):
        wb = vector_bits(writer, cand, base_align_bytes=base_align_bytes).bits
        rb = vector_bits(reader, cand, base_align_bytes=base_align_bytes).bits
        if wb == 0 or rb == 0:
            seen.append((cand, wb, rb, None))
            continue
        wc = bank_conflicts(writer, cand, bits=wb)
        rc = bank_conflicts(reader, cand, bits=rb)
        extra = wc.conflicts + rc.conflicts
        seen.append((cand, wb, rb, extra))
        if wb < want_w or rb < want_r:
            continue
        sw = cand.swizzle.bits if cand.swizzle else 0
        scored.append(((extra, cand.footprint_bytes, sw, len(seen)), cand, wc, rc))
    if not scored:
        raise LayoutError("choose_shared_layout: no candidate keeps the vector widths of the base layout")
    scored.sort(key=lambda x: x[0])
    _, cand, wc, rc = scored[0]
    return SharedChoice(cand, wc, rc, tuple(seen))
