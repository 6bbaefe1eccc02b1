"""passes/tvmaps.py: the default register layout, mma layouts, and layouts carried through shape
instructions, each checked against a brute-force definition."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vmlang.ir.layout import (MMA_M16N8K16_C, Layout, TVLayout, local, row_major, spatial, vector_bits)
from vmlang.passes import default_layout
from vmlang.passes import tvmaps as TM

SHAPES = [(1,), (3,), (17,), (100,), (3, 100), (64, 64), (128, 128)]
BITS = [1, 3, 4, 8, 16, 32]
THREADS = [32, 128, 256]


def spec(shape, bits, threads):
    """The default layout's parameters, written from its definition: vec, threads and values per axis."""
    vec = 1
    while shape[-1] % (2 * vec) == 0 and 2 * vec * bits <= 128:
        vec *= 2
    r = len(shape)
    T, W, budget = [1] * r, [1] * r, threads
    for i in reversed(range(r)):
        ext = shape[i] // vec if i == r - 1 else shape[i]
        T[i] = max(d for d in range(1, min(ext, budget) + 1) if ext % d == 0)
        W[i] = ext // T[i]
        budget //= T[i]
    return vec, T, W


def expected_coord(shape, vec, T, W, t, v):
    """Thread digits run along the last axis first; value digits: vec, then the last axis, then earlier."""
    r = len(shape)
    tc, rem = [0] * r, t
    for i in reversed(range(r)):
        tc[i], rem = rem % T[i], rem // T[i]
    wc, rem = [0] * r, v // vec
    for i in reversed(range(r)):
        wc[i], rem = rem % W[i], rem // W[i]
    c = [tc[i] + T[i] * wc[i] for i in range(r)]
    c[-1] = v % vec + vec * (tc[-1] + T[-1] * wc[-1])
    return tuple(c)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("threads", THREADS)
def test_default_layout_brute_force(shape, bits, threads):
    L = default_layout(shape, bits, threads)
    vec, T, W = spec(shape, bits, threads)
    assert L.tile == shape
    assert L.threads == math.prod(T) <= threads
    assert L.values == vec * math.prod(W)
    for t in range(L.threads):
        for v in range(L.values):
            assert L.coord(t, v) == expected_coord(shape, vec, T, W, t, v), (t, v)
    owners = L.owners()                               # every element held by exactly one (thread, value)
    assert all(len(o) == 1 for o in owners)
    # a thread's run along the last axis is what vector_bits sees in a row-major tile
    if bits % 8 == 0 and vec * bits >= 8:
        got = vector_bits(L, row_major(shape), bits).bits
        assert got == min(128, 1 << int(math.log2(vec * bits)))


def test_default_layout_odd_sizes_use_fewer_threads():
    assert default_layout((17,), 16, 128).threads == 17
    assert default_layout((3, 100), 16, 128).threads == 75      # 25 threads x 4 halves per row, 3 rows
    assert default_layout((100,), 32, 32).threads == 25
    L = default_layout((128,), 16, 128, vec=8)
    assert (L.threads, L.values) == (16, 8)
    L = default_layout((4, 48), 8, 128, vec=48)                 # whole int3 granules for a view: 48 bytes
    assert (L.threads, L.values) == (4, 48)


def test_canonical_and_same_layout():
    a = local(4) * spatial(32)
    b = TM.canonical(a)
    assert TM.same_layout(a, b) and np.array_equal(a.table(), b.table())
    assert not TM.same_layout(a, spatial(32) * local(4))
    assert TM.same_layout(b, TM.canonical(b)) and b == TM.canonical(b)


@pytest.mark.parametrize("m,n,k,warps", [(16, 8, 16, 1), (64, 64, 32, 4), (32, 64, 16, 4), (128, 128, 64, 8),
                                         (16, 16, 16, 4), (48, 24, 32, 2)])
def test_mma_layouts(m, n, k, warps):
    r = TM.mma_layouts(m, n, k, warps)
    assert r.wm * r.wn <= warps and (m // 16) % r.wm == 0 and (n // 8) % r.wn == 0
    for L, tile in ((r.a, (m, k)), (r.b, (k, n)), (r.c, (m, n))):
        assert L.tile == tile and L.threads == 32 * r.wm * r.wn
        assert sorted(np.unique(L.table())) == list(range(math.prod(tile)))
    assert all(len(o) == 1 for o in r.c.owners())               # C: each element once
    # warp w = (i, j) holds the C block i, j; lane l holds MMA_C's elements of each 16 x 8 sub-tile
    bm, bn = m // r.wm, n // r.wn
    for t in range(r.c.threads):
        w, lane = divmod(t, 32)
        i, j = w % r.wm, w // r.wm
        mine = {r.c.coord(t, v) for v in range(r.c.values)}
        frag = {MMA_M16N8K16_C.coord(lane, v) for v in range(4)}
        want = {(i * bm + a * 16 + x, j * bn + b * 8 + y) for a in range(bm // 16) for b in range(bn // 8)
                for x, y in frag}
        assert mine == want
    # A is replicated over the warps along n, B over the warps along m
    if r.wn > 1:
        assert r.a.coord(0, 0) == r.a.coord(32 * r.wm, 0)
    assert TM.mma_layouts(m + 8, n, k, warps) is None and TM.mma_layouts(m, n, k + 8, warps) is None


# ------------------------------------------------------------------------------------------ tables
layouts = st.builds(
    lambda shape, bits, threads: default_layout(shape, bits, threads),
    st.sampled_from([(8,), (12,), (64,), (4, 16), (6, 8), (2, 3, 8), (16, 32), (3, 40)]),
    st.sampled_from([4, 8, 16, 32]), st.sampled_from([32, 64, 128]))


@settings(max_examples=60, deadline=None)
@given(L=layouts)
def test_tv_from_table_round_trip(L):
    M = TM.tv_from_table(L.table(), L.tile)
    assert M is not None and np.array_equal(M.table(), L.table()) and M.tile == L.tile


def test_tv_from_table_rejects_non_layouts():
    assert TM.tv_from_table(np.array([[0, 1], [1, 0]]), (2,)) is None
    assert TM.tv_from_table(np.array([[1, 2]]), (3,)) is None


def _rm(idx, shape):
    return np.ravel_multi_index(np.unravel_index(idx, shape, order="F"), shape)


@settings(max_examples=60, deadline=None)
@given(L=layouts, data=st.data())
def test_carry_through_reshape_keeps_each_threads_elements(L, data):
    n = math.prod(L.tile)
    divs = [d for d in range(1, n + 1) if n % d == 0]
    a = data.draw(st.sampled_from(divs))
    out = (a, n // a)
    C = TM.carry(L, TM.reshape_map(L.tile, out), out)
    if C is None:            # e.g. 12 = 3 threads x 4 as [2, 6]: thread 1 holds (0, 4), (0, 5), (1, 0), (1, 1)
        return
    # thread t, slot v holds the element with the same row-major position
    assert np.array_equal(_rm(C.table(), out), _rm(L.table(), L.tile))
    back = TM.carry(C, TM.inverse(TM.reshape_map(L.tile, out)), L.tile)
    assert np.array_equal(back.table(), L.table())


def test_carry_of_the_kernels_reshapes():
    for src, out, bits in (((64, 128), (64, 2, 64), 32), ((4, 128), (4, 4, 32), 32), ((128,), (128, 1), 16),
                           ((64,), (1, 64), 32)):
        L = default_layout(src, bits, 128)
        C = TM.carry(L, TM.reshape_map(src, out), out)
        assert C is not None and np.array_equal(_rm(C.table(), out), _rm(L.table(), src))


def test_permute_map_and_holds_all():
    L = default_layout((8, 16), 16, 32)
    P = TM.carry(L, TM.permute_map((8, 16), (1, 0)), (16, 8))
    for t in range(L.threads):
        for v in range(L.values):
            i, j = L.coord(t, v)
            assert P.coord(t, v) == (j, i)
    g = TM.inverse(TM.permute_map((8, 16), (1, 0)))
    assert TM.holds_all(L, P, g)
    assert not TM.holds_all(L, default_layout((16, 8), 16, 32), g)
    assert TM.holds_all(L, L) and not TM.holds_all(L, default_layout((8, 16), 32, 64))


@pytest.mark.parametrize("shape,axis", [((64, 128), 1), ((64, 128), 0), ((4, 6, 8), 1), ((128,), 0)])
def test_collapse_reduce(shape, axis):
    L = default_layout(shape, 32, 128)
    out = shape[:axis] + shape[axis + 1:] or (1,)
    g = TM.reduce_map(shape, axis) if len(shape) > 1 else np.zeros(math.prod(shape), np.int64)
    R = TM.collapse(L, g, out)
    assert R is not None and R.threads == L.threads
    # a thread's result slots are exactly the images of its elements, each once
    for t in range(L.threads):
        mine = {int(g[L(t, v)]) for v in range(L.values)}
        slots = [R(t, v) for v in range(R.values)]
        assert sorted(slots) == sorted(mine)


def test_reduce_scope():
    L = default_layout((64, 128), 32, 128)         # 32 lanes along the row, 4 rows per warp
    assert TM.reduce_scope(L, (64, 128), 1) == "warp"
    assert TM.reduce_scope(L, (64, 128), 0) == "block"
    assert TM.reduce_scope(local(8, 4) * spatial(1, 32), (8, 128), 0) == "thread"


def test_expand_and_broadcast_pullback():
    x = default_layout((16, 1), 16, 32)
    E = TM.expand(x, (16, 1), (16, 8))
    g = TM.broadcast_map((16, 1), (16, 8))
    assert E is not None and TM.holds_all(x, E, g)
    big = default_layout((16, 8), 32, 128)          # 2 threads per row: thread t holds row t // 2
    P = TM.collapse(big, g, (16, 1))
    assert P is not None and TM.holds_all(P, big, g)
    assert not TM.holds_all(x, big, g)


@pytest.mark.parametrize("src_bits,dst_bits,cols", [(8, 3, 48), (8, 4, 64), (32, 4, 16), (8, 6, 24), (16, 8, 32)])
def test_view_carry_keeps_bits(src_bits, dst_bits, cols):
    rows = 4
    vec = TM.view_source_vec((rows, cols), src_bits, dst_bits)
    L = default_layout((rows, cols), src_bits, 128, vec=vec)
    out = (rows, cols * src_bits // dst_bits)
    V = TM.view_carry(L, (rows, cols), src_bits, out, dst_bits)
    assert V is not None
    # each thread holds the same bits (row-major packed positions) before and after
    for t in range(L.threads):
        before = sorted(b for v in range(L.values) for b in range(_rm(L(t, v), (rows, cols)) * src_bits,
                                                                  _rm(L(t, v), (rows, cols)) * src_bits + src_bits))
        after = sorted(b for v in range(V.values) for b in range(_rm(V(t, v), out) * dst_bits,
                                                                 _rm(V(t, v), out) * dst_bits + dst_bits))
        assert before == after
    # and back
    assert TM.same_layout(TM.view_carry(V, out, dst_bits, (rows, cols), src_bits), L)


def test_view_source_vec_prefers_whole_granules_and_wide_accesses():
    assert TM.view_source_vec((4, 48), 8, 3) == 48          # 48 bytes = 128 int3 = 3 x 128 bits
    assert TM.view_source_vec((4, 12), 8, 3) == 12          # one row of 32 int3 = 96 bits
    assert TM.view_source_vec((2, 64), 8, 4) == 16          # 16 bytes = 128 bits
    assert TM.view_source_vec((2, 3), 8, 3) == 3            # a single granule


def test_describe():
    text = TM.describe(default_layout((128, 128), 4, 128), 4)
    assert text == "128 threads x 128 values, 32 contiguous (128 bits) along the last axis"
    rep = TVLayout(Layout(((4, 8), 2), ((0, 1), 8)), (16,))
    assert "each element held by 4 threads" in TM.describe(rep, 32)


def test_all_combinations_build():
    for shape, bits, threads in itertools.product([(5, 7), (2, 2, 2), (96,), (1, 1)], BITS, [32, 96, 1024]):
        L = default_layout(shape, bits, threads)
        assert L.tile == shape and L.threads <= threads
