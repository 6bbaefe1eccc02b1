"""recast (bit layouts) and max_common_vector against brute force."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table, compact_layouts, layouts, leaves
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import Layout, max_common_layout, max_common_vector, recast

FAST = settings(max_examples=300, deadline=None)
BITS = [1, 2, 3, 4, 5, 6, 8, 16, 32]


def contiguous_leaf(S, D):
    for k, (s, d) in enumerate(zip(S, D)):
        if d == 1 and s > 1:
            return k
    for k, (s, d) in enumerate(zip(S, D)):
        if d == 1:
            return k
    for k, s in enumerate(S):
        if s == 1:
            return k
    return None


def units(L, f, g):
    """Spec twin of the split step: table of g-bit units, the unit fastest inside the contiguous leaf."""
    S, D = leaves(L.shape), leaves(L.stride)
    down = f // g
    k = contiguous_leaf(S, D)
    S2 = [s * down if j == k else s for j, s in enumerate(S)]
    out = {}
    t = bf_table(L.shape, L.stride)
    for i, off in enumerate(t):
        crd, r = [], i
        for s in S:
            crd.append(r % s)
            r //= s
        for b in range(down):
            c2 = list(crd)
            c2[k] = crd[k] * down + b
            out[tuple(c2)] = off * down + b
    return S2, k, out


@FAST
@given(layouts(max_size=256), st.sampled_from(BITS), st.sampled_from(BITS))
def test_recast_is_exact_or_raises(L, f, t):
    try:
        R = recast(L, f, t)
    except LayoutError as e:
        assert "recast(" in str(e)
        return
    g = math.gcd(f, t)
    up = t // g
    S2, k, U = units(L, f, g) if f // g > 1 else (leaves(L.shape), contiguous_leaf(leaves(L.shape), leaves(L.stride)),
                                                  None)
    if U is None:                                   # no split: units are the elements themselves
        tb = bf_table(L.shape, L.stride)
        U = {}
        for i, off in enumerate(tb):
            crd, r = [], i
            for s in S2:
                crd.append(r % s)
                r //= s
            U[tuple(crd)] = off
    SR = leaves(R.shape)
    assert R.size * t == L.size * f
    tr = bf_table(R.shape, R.stride)
    kk = k                                          # the contiguous leaf of the spec joins the units
    for i, off in enumerate(tr):
        crd, r = [], i
        for s in SR:
            crd.append(r % s)
            r //= s
        if up == 1:
            assert U[tuple(crd)] == off
        else:                                       # new unit = `up` consecutive old units
            for j in range(up):
                c2 = list(crd)
                c2[kk] = crd[kk] * up + j
                assert U[tuple(c2)] == off * up + j


@FAST
@given(layouts(max_size=256), st.sampled_from(BITS), st.sampled_from(BITS))
def test_recast_round_trip(L, f, t):
    """The post-condition of recast's docstring: recasting back restores L when the result has a
    single stride-1 mode; otherwise it gives a layout that recasts to the same result."""
    try:
        R = recast(L, f, t)
    except LayoutError:
        return
    back = recast(R, t, f)
    if sum(1 for _, d in R.leaves() if d == 1) <= 1:
        assert back.shape == L.shape
        assert back.table().tolist() == L.table().tolist()
    else:
        again = recast(back, f, t)
        assert again.shape == R.shape
        assert again.table().tolist() == R.table().tolist()


@pytest.mark.parametrize("L, f, t", [
    (Layout(((1, 2, 1), 2), ((0, 1, 0), 2)), 1, 2),
    (Layout(((1, 1, 8),), ((0, 8, 1),)), 1, 8),
    (Layout((2, 4), (4, 1)), 8, 32),
])
def test_recast_round_trip_where_the_unit_position_is_lost(L, f, t):
    """Found by hypothesis: the joined mode shrinks to one unit while another mode's stride becomes one
    unit, so the result has two stride-1 modes and cannot say where the units came from."""
    R = recast(L, f, t)
    assert sum(1 for _, d in R.leaves() if d == 1) == 2
    back = recast(R, t, f)
    assert (back.shape, back.table().tolist()) != (L.shape, L.table().tolist())
    again = recast(back, f, t)
    assert again.shape == R.shape and again.table().tolist() == R.table().tolist()


def test_recast_examples():
    assert str(recast(Layout((4, 8), (16, 1)), 3, 1)) == "(4,24):(48,1)"
    assert str(recast(Layout((4, 8), (16, 1)), 3, 8)) == "(4,3):(6,1)"
    assert str(recast(Layout((4, 8), (8, 1)), 16, 32)) == "(4,4):(4,1)"
    assert str(recast(Layout((4, 8), (8, 1)), 16, 8)) == "(4,16):(16,1)"
    assert str(recast(Layout(8, 1), 3, 24)) == "1:1"          # 8 int3 = one 24-bit granule
    assert str(recast(Layout((2, 4), (0, 1)), 4, 8)) == "(2,2):(0,1)"   # broadcast survives
    for L, f, t, msg in [(Layout(6, 1), 8, 32, "48 bits"), (Layout((4, 8), (9, 1)), 8, 16, "stride of 72 bits"),
                         (Layout(4, 2), 16, 8, "no mode has stride 1"), (Layout(4, 2), 8, 16, "no mode")]:
        with pytest.raises(LayoutError, match=msg):
            recast(L, f, t)


@FAST
@given(compact_layouts(max_leaves=4), st.data())
def test_max_common_vector_matches_brute_force(b, data):
    n = b.size
    a = data.draw(st.one_of(compact_layouts(max_leaves=4, sizes=[n]),
                            st.just(b), st.just(Layout(n)),
                            layouts(max_size=n).filter(lambda x: x.size == n)))
    if a.size != n:
        a = Layout(n)
    ta, tb = bf_table(a.shape, a.stride), bf_table(b.shape, b.stride)
    inv = {y: x for x, y in enumerate(tb)}
    k = 0
    while k < n and k in inv and ta[inv[k]] == k:
        k += 1
    assert max_common_vector(a, b) == max(k, 1)
    lay = max_common_layout(a, b)
    if k > 1:
        assert lay.size == k and [tb[x] for x in lay.table()] == list(range(k))


def test_max_common_vector_errors():
    with pytest.raises(LayoutError, match="different sizes"):
        max_common_vector(Layout(8), Layout(4))
