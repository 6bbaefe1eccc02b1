"""Register layouts for layout inference: the default layout, mma layouts, and layouts carried
through shape instructions, all decided on brute-force tables (tiles are small).

**Default layout** (``default_layout(shape, elem_bits, threads)``), row-major thinking (the last axis is
contiguous in memory): each thread holds ``vec`` consecutive elements of the last axis (the largest
power of two dividing ``shape[-1]`` with ``vec * elem_bits <= 128``, extended to whole 32-bit words for
widths such as 5 and 7 bits: :func:`default_vec`); threads then cover the rest of
the last axis and then the earlier axes, on each axis the largest count that divides the remaining
extent and fits in the threads left; what remains becomes value modes. Odd sizes use fewer threads,
never padding (threads ``t >= layout.threads`` hold nothing).

>>> L = default_layout((3, 100), 16, 128)     # vec 4 (100 = 4 * 25): 25 threads per row, 3 rows
>>> L.threads, L.values, L.coord(0, 3), L.coord(1, 0), L.coord(25, 0)
(75, 4, (0, 3), (0, 4), (1, 0))
>>> L = default_layout((128, 128), 4, 128)    # int4: 32 codes = 128 bits per thread, 4 threads per row
>>> L.threads, L.values, L.coord(1, 0), L.coord(4, 0), L.coord(0, 32)
(128, 128, (0, 32), (1, 0), (32, 0))

**Tables.** A TVLayout's table (``(threads, values)`` -> colexicographic tile index) is what every
function here computes with; :func:`tv_from_table` fits a table back into a TVLayout (or returns None
when no shape:stride layout has it). A shape instruction with an element map carries a layout along:

>>> L = default_layout((128,), 16, 128)        # f16[128]: 16 threads x 8
>>> E = carry(L, reshape_map((128,), (128, 1)), (128, 1))   # x[:, None]: the same threads, free
>>> [E.coord(t, v) for t, v in ((0, 0), (0, 7), (1, 0))]
[(0, 0), (7, 0), (8, 0)]
>>> S = collapse(default_layout((64, 128), 32, 128), reduce_map((64, 128), 1), (64,))   # sum(axis=1)
>>> S.threads, S.values, S.coord(0, 0), S.coord(31, 0), S.coord(32, 0)
(128, 16, (0,), (0,), (1,))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import (Layout, MMA_M16N8K16_A, MMA_M16N8K16_B, MMA_M16N8K16_C, TVLayout, check_view,
                              local, spatial)
from vmlang.ir.layout.algebra import fit_leaves
# the lane/warp split of a thread mode, as tv_product shapes it (thread mode (32 lanes, warps))
from vmlang.ir.layout.tv import _mode, _split_lanes

MAX_VECTOR_BITS = 128


# ------------------------------------------------------------------------------------------ defaults
def pow2_divisor(n: int, cap: int) -> int:
    """The largest power of two dividing ``n`` and at most ``cap`` (>= 1)."""
    p = 1
    while n % (2 * p) == 0 and 2 * p <= cap:
        p *= 2
    return p


def _largest_divisor(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def default_vec(shape, elem_bits: int) -> int:
    """The per-thread run along the last axis: the largest power of two dividing ``shape[-1]`` with
    ``vec * elem_bits <= 128`` -- for widths that do not divide 128 bits (3, 5, 6, 7 bits...) extended to
    whole 32-bit words where that divides the last axis (int5: 16 codes are 80 bits, 2-byte loads; 32
    are five whole words). Measured on an H100 (qmatmul GEMV, M = 1, 28672x8192, 2026-11-22): int5
    80 us vs 123, int7 97 us vs 141; runs of whole 128-bit granules (128 int3 = 3 x 128-bit loads) were
    slower for int3 (77 vs 65 us at 32 x 512), so the default stops at words.

    >>> default_vec((16, 512), 4), default_vec((16, 512), 5), default_vec((16, 512), 3)
    (32, 32, 32)
    >>> default_vec((16, 512), 6), default_vec((3, 100), 5), default_vec((3, 100), 6)
    (16, 4, 4)
    """
    last = int(shape[-1])
    vec = pow2_divisor(last, max(1, MAX_VECTOR_BITS // max(1, elem_bits)))
    if (vec * elem_bits) % 32 == 0 or elem_bits >= 32:
        return vec
    run = max(vec, 32 // math.gcd(elem_bits, 32))
    return run if last % run == 0 else vec


def default_layout(shape, elem_bits: int, threads: int, vec: int | None = None) -> TVLayout:
    """The default register layout of a tile (module docstring); ``vec`` overrides the per-thread run
    along the last axis (it must divide ``shape[-1]``)."""
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise LayoutError(f"default_layout: bad shape {shape}")
    r = len(shape)
    if vec is None:
        vec = default_vec(shape, elem_bits)
    if shape[-1] % vec:
        raise LayoutError(f"default_layout: vec {vec} does not divide the last axis {shape[-1]}")
    T = [1] * r
    W = [1] * r
    budget = threads
    for i in reversed(range(r)):
        ext = shape[i] // vec if i == r - 1 else shape[i]
        T[i] = _largest_divisor(ext, budget)
        budget //= T[i]
        W[i] = ext // T[i]
    first = local(*([1] * (r - 1) + [vec]))
    rev = tuple(reversed(range(r)))
    L = first * spatial(*T, order=rev) * local(*W, order=rev)
    return canonical(L)


def canonical(tv: TVLayout) -> TVLayout:
    """The same function in canonical form (coalesced modes, thread mode split into lanes and warps):
    two canonical layouts are equal exactly when they hold the same elements in the same slots."""
    out = tv_from_table(tv.table(), tv.tile)
    return out if out is not None else tv


def same_layout(a, b) -> bool:
    """Whether two layouts are the same function (register: same table; memory: equal)."""
    if a is b or a == b:
        return True
    if isinstance(a, TVLayout) and isinstance(b, TVLayout):
        return (a.tile == b.tile and a.threads == b.threads and a.values == b.values
                and np.array_equal(a.table(), b.table()))
    return False


# ------------------------------------------------------------------------------------------ mma
@dataclass(frozen=True)
class MmaLayouts:
    """``mma.sync.m16n8k16`` fragments tiled over ``wm x wn`` warps for an ``M x N x K`` dot."""
    a: TVLayout
    b: TVLayout
    c: TVLayout
    wm: int
    wn: int


def _spread(wm: int, wn: int, along_m: bool) -> TVLayout:
    """Warps ``(wm, wn)``: each warp along ``m`` (or ``n``) gets its own copy, the others replicate."""
    stride = (1, 0) if along_m else (0, 1)
    tile = (wm, 1) if along_m else (1, wn)
    return TVLayout(Layout(((wm, wn), 1), (stride, 0)), tile)


def mma_layouts(m: int, n: int, k: int, warps: int) -> MmaLayouts | None:
    """The A/B/C layouts when ``m % 16 == n % 8 == k % 16 == 0``, else None. The warps split the
    C tile into ``wm x wn`` blocks (as many warps as divide the tile, the most square warp tiles)."""
    if m % 16 or n % 8 or k % 16:
        return None
    best = None
    for wm in range(1, warps + 1):
        for wn in range(1, warps // wm + 1):
            if (m // 16) % wm or (n // 8) % wn:
                continue
            skew = abs(math.log((m / wm) / (n / wn)))
            key = (-(wm * wn), skew)
            if best is None or key < best[0]:
                best = (key, wm, wn)
    _, wm, wn = best
    rm, rn, rk = m // (16 * wm), n // (8 * wn), k // 16
    c = MMA_M16N8K16_C * local(rm, rn) * spatial(wm, wn)
    a = MMA_M16N8K16_A * local(rm, rk) * _spread(wm, wn, True)
    b = MMA_M16N8K16_B * local(rk, rn) * _spread(wm, wn, False)
    return MmaLayouts(a, b, c, wm, wn)


# ------------------------------------------------------------------------------------------ tables
def tv_from_table(tbl: np.ndarray, tile) -> TVLayout | None:
    """The TVLayout whose table is ``tbl`` (``(threads, values)`` of tile indices), or None."""
    tbl = np.asarray(tbl, dtype=np.int64)
    if tbl.ndim != 2 or tbl.size == 0:
        return None
    thr, val = fit_leaves(tbl[:, 0]), fit_leaves(tbl[0, :])
    if thr is None or val is None:
        return None
    tl, vl = _mode(thr), _mode(val)
    if not np.array_equal(tbl, tl.table()[:, None] + vl.table()[None, :]):
        return None
    tl = _split_lanes(tl)
    try:
        return TVLayout(Layout((tl.shape, vl.shape), (tl.stride, vl.stride)), tuple(tile))
    except LayoutError:
        return None


def colex(shape) -> np.ndarray:
    """An array of ``shape`` whose entry at coordinate ``c`` is the colexicographic index of ``c``."""
    n = int(np.prod(shape))
    return np.arange(n, dtype=np.int64).reshape(tuple(shape), order="F")


def reshape_map(in_shape, out_shape) -> np.ndarray:
    """in index -> out index of ``reshape`` (row-major order kept; also ``expand_dims``)."""
    psi = np.empty(int(np.prod(in_shape)), dtype=np.int64)
    psi[colex(in_shape).ravel()] = colex(out_shape).ravel()
    return psi


def permute_map(in_shape, perm) -> np.ndarray:
    """in index -> out index of ``permute`` (``out.shape[i] = in.shape[perm[i]]``)."""
    out_shape = tuple(in_shape[p] for p in perm)
    psi = np.empty(int(np.prod(in_shape)), dtype=np.int64)
    psi[np.transpose(colex(in_shape), perm).ravel()] = colex(out_shape).ravel()
    return psi


def broadcast_map(x_shape, out_shape) -> np.ndarray:
    """out index -> x index of ``broadcast`` (size-1 axes repeat)."""
    E = colex(x_shape)
    return np.broadcast_to(E, tuple(out_shape)).ravel(order="F").copy()


def reduce_map(in_shape, axis: int) -> np.ndarray:
    """in index -> out index of a reduction along ``axis`` (the axis removed)."""
    out_shape = tuple(in_shape[:axis]) + tuple(in_shape[axis + 1:])
    E = colex(out_shape) if out_shape else np.zeros((), np.int64)
    E = np.expand_dims(E, axis)
    return np.broadcast_to(E, tuple(in_shape)).ravel(order="F").copy()


def inverse(psi: np.ndarray) -> np.ndarray:
    inv = np.empty_like(psi)
    inv[psi] = np.arange(psi.size, dtype=np.int64)
    return inv


def carry(tv: TVLayout, psi: np.ndarray, out_shape) -> TVLayout | None:
    """The layout where every thread holds the images under the bijection ``psi`` of its elements."""
    return tv_from_table(psi[tv.table()], out_shape)


def collapse(tv: TVLayout, g: np.ndarray, out_shape) -> TVLayout | None:
    """Each thread holds the images under the many-to-one map ``g`` of its elements, each once
    (value slots whose image repeats one of the thread's earlier slots are dropped; all threads must
    drop the same slots). Reductions and broadcast pullbacks."""
    tbl = g[tv.table()]
    _, first = np.unique(tbl[0], return_index=True)
    kept = np.sort(first)
    tk = tbl[:, kept]
    srt = np.sort(tbl, axis=1)
    distinct = (np.diff(srt, axis=1) != 0).sum(axis=1) + 1
    if not np.all(distinct == kept.size):
        return None
    if kept.size > 1 and not np.all(np.diff(np.sort(tk, axis=1), axis=1) != 0):
        return None
    return tv_from_table(tk, out_shape)


def expand(tv: TVLayout, x_shape, out_shape) -> TVLayout | None:
    """Broadcast's own layout: each thread keeps its elements and holds every copy of them."""
    xs, os_ = tuple(x_shape), tuple(out_shape)
    axes = [i for i, (a, b) in enumerate(zip(xs, os_)) if a == 1 and b > 1]
    coords = np.unravel_index(tv.table(), xs, order="F")
    ext = tuple(os_[i] for i in axes)
    parts = []
    for b in range(int(np.prod(ext)) if ext else 1):
        bc = np.unravel_index(b, ext, order="F") if ext else ()
        c = list(coords)
        for i, v in zip(axes, bc):
            c[i] = np.full_like(coords[i], v)
        parts.append(np.ravel_multi_index(tuple(c), os_, order="F"))
    arr = np.stack(parts, axis=1)                      # (T, B, V): x's values fastest
    return tv_from_table(arr.reshape(arr.shape[0], -1), os_)


def view_carry(tv: TVLayout, in_shape, in_bits: int, out_shape, out_bits: int) -> TVLayout | None:
    """The layout of ``view`` that keeps every thread's bits, when they are whole ``out_bits``
    elements (row-major packed order); None otherwise."""
    tbl = tv.table()
    T, V = tbl.shape
    rm = np.ravel_multi_index(np.unravel_index(tbl, tuple(in_shape), order="F"), tuple(in_shape))
    if (V * in_bits) % out_bits:
        return None
    P = (rm[:, :, None] * in_bits + np.arange(in_bits)).reshape(T, V * in_bits)
    Q = P.reshape(T, -1, out_bits)
    if not np.all(Q == Q[:, :, :1] + np.arange(out_bits)) or np.any(Q[:, :, 0] % out_bits):
        return None
    k = Q[:, :, 0] // out_bits
    out = np.ravel_multi_index(np.unravel_index(k, tuple(out_shape)), tuple(out_shape), order="F")
    res = tv_from_table(out, out_shape)
    if res is None:
        return None
    try:
        check_view(tv, in_bits, res, out_bits)
    except LayoutError:
        return None
    return res


def view_source_vec(src_shape, src_bits: int, dst_bits: int) -> int | None:
    """Elements per thread along the last axis of a view's source so that each thread holds whole
    granules (lcm of the two widths) and the widest accesses: ``lcm(granule, 128)`` bits if the row
    allows, else 64, 32, 16, 8 bits, else one granule."""
    g = math.lcm(src_bits, dst_bits)
    for w in (128, 64, 32, 16, 8, 1):
        c = math.lcm(g, w)
        if c % src_bits == 0 and src_shape[-1] % (c // src_bits) == 0:
            return c // src_bits
    return None


# ------------------------------------------------------------------------------------------ movement
def holds_all(src: TVLayout, dst: TVLayout, g: np.ndarray | None = None) -> bool:
    """Whether every thread already holds, under ``src``, each element it needs under ``dst``
    (``g``: dst index -> src index; identity when None). Then the move costs no data exchange."""
    ts, td = src.table(), dst.table()
    if td.shape[0] > ts.shape[0]:
        return False
    n = int(max(ts.max(initial=0), (g.max() if g is not None else td.max(initial=0)))) + 1
    have = (np.arange(ts.shape[0])[:, None] * n + ts).ravel()
    need_idx = g[td] if g is not None else td
    need = (np.arange(td.shape[0])[:, None] * n + need_idx).ravel()
    return bool(np.isin(need, have).all())


def reduce_scope(tv: TVLayout, in_shape, axis: int) -> str:
    """``"thread"`` (each thread reduces its own values), ``"warp"`` (lanes of one warp combine:
    shuffles) or ``"block"`` (warps combine through shared memory)."""
    g = reduce_map(in_shape, axis)
    tbl = tv.table()
    T, V = tbl.shape
    n = int(np.prod(in_shape))
    t = np.repeat(np.arange(T), V)
    idx = tbl.ravel()
    pairs = np.unique(t * n + idx)
    pt, pi = pairs // n, pairs % n
    pe = g[pi]
    m = int(pe.max(initial=0)) + 1
    te, counts = np.unique(pt * m + pe, return_counts=True)
    if np.all(counts == in_shape[axis]):
        return "thread"
    e_of, w_of = te % m, (te // m) // 32
    lo = np.full(m, np.iinfo(np.int64).max)
    hi = np.full(m, -1)
    np.minimum.at(lo, e_of, w_of)
    np.maximum.at(hi, e_of, w_of)
    return "warp" if np.all(lo[e_of] == hi[e_of]) else "block"


# ------------------------------------------------------------------------------------------ text
def contiguous_run(tv: TVLayout) -> int:
    """How many of thread 0's first value slots are consecutive elements along the last axis (contiguous
    in a row-major tensor): the most elements one load of this layout can cover.

    >>> contiguous_run(default_layout((16, 256), 4, 128)), contiguous_run(default_layout((3, 100), 16, 128))
    (32, 4)
    """
    tbl = tv.table()
    coords = np.unravel_index(tbl[0], tv.tile, order="F")
    last = coords[-1]
    run = 1
    while run < last.size and last[run] == last[0] + run and all(c[run] == c[0] for c in coords[:-1]):
        run += 1
    return run


def describe(tv: TVLayout, bits: int | None = None) -> str:
    """``"128 threads x 32 values, 32 contiguous (128 bits) along the last axis"`` and replication."""
    tbl = tv.table()
    rep = tbl.size // max(1, np.unique(tbl).size)
    run = contiguous_run(tv)
    text = f"{tv.threads} threads x {tv.values} values"
    if run > 1:
        text += f", {run} contiguous" + (f" ({run * bits} bits)" if bits else "") + " along the last axis"
    if rep > 1:
        text += f", each element held by {rep} threads"
    return text
