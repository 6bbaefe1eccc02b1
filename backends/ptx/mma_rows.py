"""``dot`` with few rows (1, 2, 4, 8) on tensor cores: the transposed product ``out^T = b^T a^T``.

Layout inference (:mod:`vmlang.passes.mma_rows`) gives the operands and the result the layouts of the
transposed product and records it in the dot's :class:`~vmlang.passes.DotPlan` (``rows``, ``pair``); this
rule rebuilds those layouts, checks that the tiles have them (else False: the generic rule runs) and
emits, for every k step ``j`` and row tile ``r`` of the warp, one ``mma.m16n8k16``:

* mma A (16 x 16 of ``b^T``): register ``2 p + h`` of lane ``(g, t)`` = the codes of row ``g + 8 h`` at
  offsets ``off[j, p, 0]``, ``off[j, p, 1]`` of the lane's k run (:func:`~vmlang.passes.mma_rows.k_order`);
* mma B (16 x 8 of ``a^T``): register ``p`` = x at the same offsets (the same k for both operands: the sum
  is the dot over a permuted k);
* mma C: the accumulator slots; for ``m = 1`` both columns ``2 t``, ``2 t + 1`` of a lane compute the same
  output (every column of B is x's one row), the slot takes column ``2 t``.

A register whose two halves are the two lanes of one decoded pair (:mod:`.unpack`: ``extractelement`` 0
and 1 of one ``<2 x half>``) is that pair's word, with no repacking. The k steps alternate between two
accumulator chains (joined by one f32 add at the end) when there are at least four and fewer than four row
tiles per warp, so consecutive mma do not wait on each other (with four or more row tiles, the tiles' own
chains already separate them, and a second chain would cost an f32 add and four registers per tile).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.passes import tvmaps as TM
from vmlang.passes.conversions import DotPlan
from vmlang.passes.mma_rows import distance_pairs, k_order, rows_layouts

from .core import I32, Tile
from .mma import _mma, _pack
from .unpack import prmt


def pack2(b, dt, lo, hi):
    """Two 16-bit values in one 32-bit register (``lo`` in the low half); the word itself when they are
    the two lanes of one vector."""
    if (isinstance(lo, ir.instructions.ExtractElement) and isinstance(hi, ir.instructions.ExtractElement)
            and lo.operands[0] is hi.operands[0] and _index(lo) == 0 and _index(hi) == 1
            and lo.operands[0].type.count == 2):
        return b.bitcast(lo.operands[0], I32)
    return _pack(b, dt, lo, hi)


def pack_slots(b, dt, tile: Tile, lo: int, hi: int):
    """Slots ``lo``, ``hi`` of a 16-bit tile in one register: a vector-loaded tile's halves are picked
    from the words it read by one ``prmt`` (or are one word already), others by :func:`pack2`."""
    pk = tile.packed
    if pk is not None and pk.bits == 16 and pk.where[lo] is not None and pk.where[hi] is not None:
        (jl, sl), (jh, sh) = pk.where[lo], pk.where[hi]
        if jl == jh and (sl, sh) == (0, 16):
            return pk.words[jl]
        return prmt(b, pk.words[jl], pk.words[jh], (sl // 8, sl // 8 + 1, 4 + sh // 8, 5 + sh // 8))
    return pack2(b, dt, tile.slots[lo], tile.slots[hi])


def _index(x) -> int | None:
    c = x.operands[1]
    return int(c.constant) if isinstance(c, ir.Constant) else None


@dataclass(frozen=True)
class Step:
    """One mma of the transposed product: k step ``j`` of row tile ``r`` on accumulator chain ``chain``.
    ``a``: the 4 (low, high) slot pairs of ``b`` forming mma A registers a0..a3; ``x``: the 2 slot pairs of
    ``a`` forming B registers b0, b1; ``c``: the accumulator slot of each C element; ``keep``: whether C
    element ``e``'s result is written back (for m = 1 only the elements of column ``2 t``)."""
    j: int
    r: int
    chain: int
    a: tuple
    x: tuple
    c: tuple
    keep: tuple


def schedule(m: int, n: int, k: int, warps: int, pairs: tuple) -> tuple[list, int]:
    """``(steps, chains)``: the mma of a few-row dot in issue order (k step outermost), the lane's run fed
    to the mma registers as ``pairs`` (:func:`~vmlang.passes.mma_rows.run_order`; empty: neighbours); pure
    data (the CPU tests emulate it with the PTX ISA's fragments)."""
    L = rows_layouts(m, n, k, warps)
    off = k_order(k, pairs or distance_pairs(k, 1))
    S, Q, C = k // 16, L.Q, min(m, 2)
    chains = 2 if S >= 4 and L.R < 4 else 1        # 4 row tiles per warp: 4 chains already

    def c_slot(e: int, r: int) -> int:
        return (e % 2 if C == 2 else 0) + C * (e // 2 + 2 * r)

    steps = []
    for j in range(S):
        x = tuple((int(off[j, p, 0]), int(off[j, p, 1])) for p in (0, 1))
        for r in range(L.R):
            a = tuple((Q * (h + 2 * r) + int(off[j, p, 0]), Q * (h + 2 * r) + int(off[j, p, 1]))
                      for p in (0, 1) for h in (0, 1))
            steps.append(Step(j, r, j % chains, a, x, tuple(c_slot(e, r) for e in range(4)),
                              tuple(C == 2 or e % 2 == 0 for e in range(4))))
    return steps, chains


def try_lower(lw, i) -> bool:
    """Lower ``Dot`` ``i`` as the transposed product when its plan says so and the layouts agree."""
    plan = lw.facts.get(i)
    if not (isinstance(plan, DotPlan) and plan.rows):
        return False
    (m, k), n = i.a.shape, i.b.shape[1]
    L = rows_layouts(m, n, k, lw.kernel.warps)
    if L is None:
        return False
    A, B, acc = lw.get(i.a), lw.get(i.b), lw.get(i.acc)
    for t, want in ((A, L.a), (B, L.b), (acc, L.c)):
        if not (isinstance(t, Tile) and TM.same_layout(t.layout, want)):
            return False
    b, dt = lw.b, i.a.dtype
    steps, chains = schedule(m, n, k, lw.kernel.warps, plan.pairs)
    zero = ir.Constant(acc.slots[0].type, 0.0)
    out = [list(acc.slots)] + [[zero] * len(acc.slots) for _ in range(chains - 1)]
    # m = 1: column 2 t + 1 computes the same values as column 2 t (every column of B is x's row); its own
    # result is its next C, so no register is copied between the mma of a chain
    twins: list[dict] = [{} for _ in out]
    xs: dict = {}
    for st in steps:
        if st.j not in xs:
            xs = {st.j: [pack_slots(b, dt, A, lo, hi) for lo, hi in st.x]}
        ws = [pack_slots(b, dt, B, lo, hi) for lo, hi in st.a]
        cur, twin = out[st.chain], twins[st.chain]
        res = _mma(b, dt, ws, xs[st.j], [cur[s] if st.keep[e] else twin.get(s, cur[s]) for e, s in enumerate(st.c)])
        for e in range(4):
            (cur if st.keep[e] else twin)[st.c[e]] = res[e]
    slots = out[0]
    for extra in out[1:]:
        slots = [b.fadd(x, y) for x, y in zip(slots, extra)]
    lw.set(i.out, Tile(slots, acc.layout, D.float32))
    return True


__all__ = ["try_lower", "schedule", "Step", "pack2", "pack_slots"]
