"""Register layouts: constructors, products, and the mma.sync m16n8k16 fragments of the PTX ISA."""
import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import (MMA_M16N8K16_A, MMA_M16N8K16_B, MMA_M16N8K16_C, Layout, TVLayout, local,
                              replicate, spatial)

FAST = settings(max_examples=100, deadline=None)


def rc(tv, t, v):
    """(row, col) of value v of thread t, from the brute-force table (colexicographic tile index)."""
    idx = bf_table(tv.layout.shape, tv.layout.stride)[t + tv.threads * v]
    rows = tv.tile[0]
    return idx % rows, idx // rows


# PTX ISA 8.x, "Matrix Fragments for mma.m16n8k16 with floating point type", written out directly.
def ptx_a(lane, i):
    group, tig = lane >> 2, lane % 4
    row = group + (8 if i in (2, 3, 6, 7) else 0)
    col = tig * 2 + (i & 1) + (8 if i >= 4 else 0)
    return row, col


def ptx_b(lane, i):
    group, tig = lane >> 2, lane % 4
    row = tig * 2 + (i & 1) + (8 if i >= 2 else 0)
    return row, group


def ptx_c(lane, i):
    group, tig = lane >> 2, lane % 4
    row = group + (8 if i >= 2 else 0)
    return row, tig * 2 + (i & 1)


@pytest.mark.parametrize("tv,ref,tile,nv", [(MMA_M16N8K16_A, ptx_a, (16, 16), 8),
                                            (MMA_M16N8K16_B, ptx_b, (16, 8), 4),
                                            (MMA_M16N8K16_C, ptx_c, (16, 8), 4)])
def test_mma_fragments_match_ptx(tv, ref, tile, nv):
    assert tv.tile == tile and tv.threads == 32 and tv.values == nv
    seen = set()
    for lane in range(32):
        for i in range(nv):
            assert rc(tv, lane, i) == ref(lane, i), (lane, i)
            assert tv.coord(lane, i) == ref(lane, i)
            seen.add(ref(lane, i))
    assert len(seen) == tile[0] * tile[1]            # every element held exactly once


def test_fragment_one_liners_and_text():
    assert MMA_M16N8K16_A == local(1, 2) * spatial(8, 4, order=(1, 0)) * local(2, 2)
    assert MMA_M16N8K16_B == local(2, 1) * spatial(4, 8) * local(2, 1)
    assert MMA_M16N8K16_C == local(1, 2) * spatial(8, 4, order=(1, 0)) * local(2, 1)
    assert str(MMA_M16N8K16_A) == "((4,8),(2,2,2)):((32,1),(16,8,128)) -> (16,16)"
    for tv in (MMA_M16N8K16_A, MMA_M16N8K16_B, MMA_M16N8K16_C):
        assert TVLayout.parse(str(tv)) == tv
    four = MMA_M16N8K16_A * spatial(2, 2)
    assert four.tile == (32, 32) and four.threads == 128
    assert four.layout[0].shape[0] == (4, 8)         # thread mode shaped (32 lanes, warps)
    for t in (0, 37, 70, 127):
        for v in range(8):
            lane, warp = t % 32, t // 32
            r, c = ptx_a(lane, v)
            assert four.coord(t, v) == (r + 16 * (warp % 2), c + 16 * (warp // 2))


@st.composite
def factors(draw):
    rank = draw(st.integers(1, 2))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["spatial", "local", "replicate"]))
        shape = tuple(draw(st.sampled_from([1, 2, 3, 4])) for _ in range(rank))
        order = draw(st.permutations(range(rank)))
        parts.append((kind, shape, tuple(order)))
    return parts


def build(parts):
    out = None
    for kind, shape, order in parts:
        f = (spatial(*shape, order=order) if kind == "spatial" else
             local(*shape, order=order) if kind == "local" else replicate(shape[0]))
        out = f if out is None else out * f
    return out


def twin(parts):
    """Brute force: dict (thread, value) -> tile coordinate, built factor by factor."""
    tile, m = (1,), {(0, 0): (0,)}
    T, V = 1, 1
    for kind, shape, order in parts:
        if kind == "replicate":
            fm, ft, fT, fV = {(t, 0): (0,) for t in range(shape[0])}, (1,), shape[0], 1
        else:
            fm = {}
            n = 1
            for s in shape:
                n *= s
            for k in range(n):
                crd, r = [0] * len(shape), k
                for d in order:
                    crd[d] = r % shape[d]
                    r //= shape[d]
                fm[(k, 0) if kind == "spatial" else (0, k)] = tuple(crd)
            ft, fT, fV = shape, (n if kind == "spatial" else 1), (1 if kind == "spatial" else n)
        r = max(len(tile), len(ft))
        A = tile + (1,) * (r - len(tile))
        B = ft + (1,) * (r - len(ft))
        new = {}
        for (ta, va), ca in m.items():
            for (tb, vb), cb in fm.items():
                ca2 = ca + (0,) * (r - len(ca))
                cb2 = cb + (0,) * (r - len(cb))
                new[(ta + T * tb, va + V * vb)] = tuple(x + a * y for x, a, y in zip(ca2, A, cb2))
        m, tile, T, V = new, tuple(a * b for a, b in zip(A, B)), T * fT, V * fV
    return m, tile, T, V


@FAST
@given(factors())
def test_products_match_brute_force(parts):
    tv = build(parts)
    m, tile, T, V = twin(parts)
    assert tv.threads == T and tv.values == V
    assert tuple(tv.tile) + (1,) * (len(tile) - len(tv.tile)) == tile
    for (t, v), crd in m.items():
        idx, acc = 0, 1
        for c, s in zip(crd, tile):
            idx += c * acc
            acc *= s
        assert tv(t, v) == idx
    assert TVLayout.parse(str(tv)) == tv


def test_tv_errors():
    with pytest.raises(LayoutError, match="rank-2"):
        TVLayout(Layout(32), (32,))
    with pytest.raises(LayoutError, match="reaches tile index"):
        TVLayout(Layout((32, 2), (2, 1)), (32,))
    with pytest.raises(LayoutError, match="permutation"):
        spatial(4, 8, order=(0, 0))
    with pytest.raises(LayoutError):
        TVLayout.parse("(32,4):(4,1)")
    r = replicate(4) * local(8)
    assert r.layout[0].stride == 0 and r.owners()[3] == [(0, 3), (1, 3), (2, 3), (3, 3)]
