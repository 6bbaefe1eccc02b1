"""Which packed int codes decode two at a time into the two 16-bit lanes of a 32-bit word, and from where.

The packed decode (:mod:`vmlang.backends.ptx.unpack`) turns two int codes into one f16x2/bf16x2 pair with
one ``lop3`` and one ``sub.f16x2``: it masks both codes where they sit in a 32-bit value, ors in a magic
exponent per lane, and subtracts. A code decodes where it sits as long as it lies inside its lane's
mantissa: lane bits ``[o, o + bits)`` with ``0 <= o <= room = man - bits`` (``man`` = 10 for float16
lanes, 7 for bfloat16), the magic's exponent lowered by ``o`` so that the code's low bit weighs 1.

Codes of widths dividing 16 pair when they sit 16 bits apart in one word (the same offset in both lanes).
Odd widths (3, 5, 6, 7 bits) never do; but the 32-bit value need not be a loaded word: a **window** of the
bit stream at any bit ``T`` -- the word itself when ``T % 32 == 0``, else two neighbouring words
funnel-shifted (``shf.r``, one instruction) -- holds code ``c`` in its low lane when
``T <= p_c <= T + room`` and in its high lane when ``T + 16 <= p_c <= T + 16 + room`` (``p_c``: the code's
bit in the stream). Two codes whose bits are ``16 - room .. 16 + room`` apart share such windows.

:func:`block_pairs` pairs the 32 codes of a **block** (``bits`` whole words: 32 codes of an odd width
fill them exactly) at the least cost in instructions (dynamic programming; a window that is a whole word
costs no shift): int3 into float16 lanes takes 16 pairs from 7 windows, 4 of them shifted, 1.1
instructions per code where cutting each code out costs 3. Every block of a packed run is paired the
same way, so the layout pass (the few-row dot's k order, :mod:`.mma_rows`) and the decode agree on the
pairs without talking to each other.

>>> room(3, 10), window(0, 18, 3, 10)          # int3 in float16 lanes: codes 0 and 6 of a block
(7, (-5, 0))
>>> pairs = block_pairs(3, 10)                 # 16 pairs from 7 windows; codes 2 and 8: window at bit 6
>>> len(pairs), len({t for _, _, t in pairs}), pairs[:3]
(16, 7, ((0, 6, 0), (1, 7, 0), (2, 8, 6)))
"""
from __future__ import annotations

import functools

#: codes per block of an odd width: 32 codes of ``b`` bits are ``b`` whole 32-bit words
BLOCK = 32


def room(bits: int, man: int) -> int:
    """The largest lane offset at which a ``bits``-bit code still lies inside a ``man``-bit mantissa."""
    return man - bits


def window(p_lo: int, p_hi: int, bits: int, man: int) -> tuple[int, int] | None:
    """``(first, last)``: the window starts ``T`` (stream bits) holding the code at bit ``p_lo`` in the low
    lane and the one at ``p_hi`` in the high lane, inside both mantissas; None when there is none."""
    r = room(bits, man)
    lo, hi = max(p_lo - r, p_hi - 16 - r), min(p_lo, p_hi - 16)
    return (lo, hi) if r >= 0 and lo <= hi else None


#: what the decode costs, in instructions: a pair (lop3 + sub.f16x2), a window that is not a whole word
#: (one shift), a code decoded on its own (cut out, then paired with another such code or decoded alone)
PAIR, SHIFT, ALONE = 2, 1, 3


@functools.lru_cache(maxsize=None)
def block_pairs(bits: int, man: int) -> tuple[tuple[int, int, int], ...]:
    """``(low code, high code, T)`` for the pairs of a block of :data:`BLOCK` ``bits``-bit codes (code ``i``
    at bit ``i * bits``), decoded from the window at bit ``T`` of the block; codes left out (an even number)
    are decoded another way. Empty for widths dividing 16 (they pair 16 bits apart) and where a code does
    not fit a lane's mantissa.

    The cheapest cover (:data:`PAIR`, :data:`SHIFT`, :data:`ALONE`) by dynamic programming in stream order:
    the first code not yet decided is decoded alone, or is the first of ``m`` consecutive low-lane codes
    paired with ``m`` consecutive high-lane codes ``d`` further on, in one window (a whole word where one
    fits: no shift). The state is which of the next codes are already taken as high-lane codes.

    Post-conditions (tests): every code in at most one pair, each pair inside its window's lanes,
    ``T`` within ``[-room, 32 * bits)``."""
    r = room(bits, man)
    if r < 0 or 16 % bits == 0:
        return ()
    run = r // bits + 1                      # the most codes one lane holds

    @functools.lru_cache(maxsize=None)
    def best(i: int, taken: int) -> tuple[int, tuple]:
        while i < BLOCK and taken & 1:
            i, taken = i + 1, taken >> 1
        if i >= BLOCK:
            return 0, ()
        c, rest = best(i + 1, taken >> 1)
        opts = [(ALONE + c, rest)]
        for m in range(1, run + 1):
            if i + m > BLOCK or taken >> (m - 1) & 1:
                break
            for d in range(m, 16 + run):
                high = [i + d + k for k in range(m)]
                if high[-1] >= BLOCK or any(taken >> (d + k) & 1 for k in range(m)):
                    continue
                spans = [window((i + k) * bits, h * bits, bits, man) for k, h in enumerate(high)]
                if not all(spans):
                    continue
                lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
                if lo > hi:
                    continue
                words = [t for t in range(lo, hi + 1) if t % 32 == 0]
                t = words[0] if words else hi
                mask = taken
                for k in range(m):
                    mask |= 1 << k | 1 << (d + k)
                c2, rest2 = best(i, mask)
                opts.append((PAIR * m + (0 if words else SHIFT) + c2,
                             tuple((i + k, h, t) for k, h in enumerate(high)) + rest2))
        return min(opts, key=lambda o: o[0])

    return best(0, 0)[1]


def run_pairs(bits: int, n: int, man: int) -> tuple[tuple[int, int], ...] | None:
    """The pairs ``(low, high)`` of offsets of a run of ``n`` consecutive ``bits``-bit codes starting on a
    word, in the order the runs' blocks pair them (:func:`block_pairs`), then each block's other codes two
    by two in stream order; None unless ``n`` is whole blocks of an odd width that pairs at all."""
    pairs = block_pairs(bits, man)
    if not pairs or n % BLOCK:
        return None
    paired = {i for a, c, _ in pairs for i in (a, c)}
    rest = [i for i in range(BLOCK) if i not in paired]
    block = [(a, c) for a, c, _ in pairs] + list(zip(rest[0::2], rest[1::2]))
    return tuple((blk + a, blk + c) for blk in range(0, n, BLOCK) for a, c in block)


__all__ = ["BLOCK", "room", "window", "block_pairs", "run_pairs"]
