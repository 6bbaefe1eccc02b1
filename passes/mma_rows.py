"""Layouts for a ``dot`` with few rows (``m`` in 1, 2, 4, 8) on tensor cores: the transposed product.

``out[m, n] = a[m, k] @ b[k, n] + acc`` with ``m < 16`` wastes most of an ``mma.m16n8k16`` whose M side
is ``a``'s rows. The transposed product ``out^T[n, m] = b^T[n, k] @ a^T[k, m]`` puts ``b`` (the weights of
a GEMV, ``n`` a multiple of 16) on the M side and ``a`` (x, ``m`` rows) on the N = 8 side: one mma per
``16 x 16`` block of weights, whatever ``m`` is. The roles (PTX fragments, :mod:`vmlang.backends.ptx.mma`):
mma A = ``b^T`` (lane ``(g, t)`` = ``(l // 4, l % 4)`` holds rows ``g`` and ``g + 8``), mma B = ``a^T``
(lane ``(g, t)`` holds column ``g``, i.e. row ``g % m`` of ``a``: columns past ``m`` repeat the rows, so
every column of the result is a row of ``out``), mma C = ``out^T``.

**K is free.** A dot sums over ``k``: any bijection ``pi`` of the ``k`` indices, used for both operands,
gives the same sum. The layouts here give each lane ``t`` the ``Q = k / 4`` *consecutive* ``k``
``[t * Q, (t + 1) * Q)`` of its rows, in memory order (a vector load reads them: int4, ``k = 128``: 32
codes, one 128-bit load per row), and the lowering feeds them to the mma in the order :func:`k_order`
gives, which both operands share. ``k_order`` pairs the codes that the packed decode produces two at a
time (``lop3`` into f16x2 lanes: codes 16 bits apart in one 32-bit word, ``pair`` = 16 / bits codes
apart; odd-width ints from windows of the stream, :mod:`.lanes`) into one 32-bit mma register, so a
decoded pair feeds the mma as it is.

Slots (every layout lists them in this order, the lowering relies on it):

* ``b`` (``[k, n]``): slot ``o + Q * (h + 2 * r)`` of lane ``(g, t)`` in warp ``w`` is
  ``(t * Q + o, 16 * (w * R + r) + g + 8 * h)``: ``R`` row tiles of 16 per warp, ``o`` fastest;
* ``a`` (``[m, k]``): slot ``o`` is ``(g % m, t * Q + o)`` (all warps hold the same);
* ``out`` (``[m, n]``): slot ``c + C * (h + 2 * r)`` (``C = min(m, 2)``) is the mma C element ``e = c + 2 *
  h`` of tile ``r``: ``((2 * t + c) % m, 16 * (w * R + r) + g + 8 * h)``; for ``m < 8`` some lanes hold
  the same elements (replicated threads).

>>> L = rows_layouts(1, 64, 128, 4)
>>> L.wn, L.R, L.Q, L.b.coord(5, 0), L.b.coord(5, 32), L.a.coord(5, 3), L.c.coord(4, 1)
(4, 1, 32, (32, 1), (32, 9), (0, 35), (0, 9))
>>> k_order(32, distance_pairs(32, 4)).tolist()     # int4, k = 32: step 0 feeds offsets 0, 4 | 1, 5
[[[0, 4], [1, 5]], [[2, 6], [3, 7]]]
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from vmlang.ir.layout import TVLayout

from .lanes import run_pairs
from .tvmaps import tv_from_table

ROWS = (1, 2, 4, 8)


@dataclass(frozen=True)
class RowsLayouts:
    """The layouts of a few-row dot (module docstring) over ``wn`` warps, ``R`` row tiles of 16 per warp."""
    a: TVLayout
    b: TVLayout
    c: TVLayout
    wn: int
    R: int
    Q: int


def applies(m: int, n: int, k: int) -> bool:
    return m in ROWS and n % 16 == 0 and k % 16 == 0 and n > 0 and k > 0


@functools.lru_cache(maxsize=64)
def rows_layouts(m: int, n: int, k: int, warps: int) -> RowsLayouts | None:
    """The a/b/out layouts of the transposed product (None when :func:`applies` does not); cached: layout
    inference, the lowering and its schedule each ask for them."""
    if not applies(m, n, k):
        return None
    tiles = n // 16
    wn = max(d for d in range(1, warps + 1) if tiles % d == 0)
    R, Q = tiles // wn, k // 4
    T = 32 * wn
    th = np.arange(T)
    lane, w = th % 32, th // 32
    g, t = lane // 4, lane % 4
    o = np.arange(Q)
    a = (g % m)[:, None] + m * (t[:, None] * Q + o[None, :])
    b, c = [], []
    for r in range(R):
        for h in range(2):
            nn = 16 * (w * R + r) + g + 8 * h
            b.append(t[:, None] * Q + o[None, :] + k * nn[:, None])
            for cc in range(min(m, 2)):
                c.append(((2 * t + cc) % m + m * nn)[:, None])
    La = tv_from_table(a, (m, k))
    Lb = tv_from_table(np.concatenate(b, axis=1), (k, n))
    Lc = tv_from_table(np.concatenate(c, axis=1), (m, n))
    if La is None or Lb is None or Lc is None:
        return None
    return RowsLayouts(La, Lb, Lc, wn, R, Q)


def pair_distance(bits: int, k: int) -> int:
    """How many codes apart the two halves of one mma register are taken: ``16 / bits`` for codes that
    the packed decode produces in pairs (widths dividing 16), when the ``k / 2`` registers of a lane's
    row fill whole words; else 1 (neighbours)."""
    if bits < 16 and 16 % bits == 0:
        d = 16 // bits
        if (k // 8) % d == 0:
            return d
    return 1


def distance_pairs(k: int, pair: int) -> tuple:
    """The pairs of offsets of a lane's run (``k / 4`` codes) fed to each mma register, in register order,
    for codes ``pair`` apart: register ``P`` takes the pair ``P % pair`` of word ``P // pair`` (a word holds
    ``2 * pair`` codes), offsets ``2 * pair * (P // pair) + P % pair`` and ``pair`` more."""
    return tuple((2 * pair * (P // pair) + P % pair, 2 * pair * (P // pair) + P % pair + pair)
                 for P in range(k // 8))


def run_order(dt, k: int, man: int) -> tuple:
    """The pairs of offsets of a lane's run of ``k / 4`` codes of dtype ``dt`` fed to each mma register, in
    register order: the pairs the packed decode makes into lanes with ``man`` mantissa bits (10: float16):
    codes ``16 / bits`` apart (:func:`pair_distance`), for odd-width ints the windows' pairs of
    :func:`vmlang.passes.lanes.run_pairs`, else neighbours."""
    bits = dt.nbits
    d = pair_distance(bits, k)
    if d == 1 and dt.is_int and not dt.is_codebook:
        odd = run_pairs(bits, k // 4, man)
        if odd:
            return odd
    return distance_pairs(k, d)


def k_order(k: int, pairs) -> np.ndarray:
    """``off[j, p, q]``: the offset (in ``[0, k / 4)``) of lane ``t``'s run that feeds k step ``j``, mma
    register ``p`` (elements ``2 p``, ``2 p + 1`` of B; of A: ``4 p + 2 h``, ``+ 1``), half ``q``: register
    ``2 j + p`` takes ``pairs[2 j + p]`` (:func:`run_order`). Post-condition (tests): a permutation of
    ``range(k / 4)`` when the pairs are."""
    return np.asarray(pairs, dtype=np.int64).reshape(k // 16, 2, 2)


__all__ = ["RowsLayouts", "applies", "rows_layouts", "pair_distance", "distance_pairs", "run_order", "k_order", "ROWS"]
