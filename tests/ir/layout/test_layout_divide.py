"""Divides and products: size and first-mode laws, and exactness against brute force."""
import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table, layouts, leaves
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import (Layout, blocked_product, compose, flat_divide, logical_divide, logical_product,
                              raked_product, tiled_divide, zipped_divide)

FAST = settings(max_examples=200, deadline=None)


@st.composite
def tiles_of(draw, a):
    """An injective tile made of some refined digits of a's domain (so logical_divide is admissible)."""
    if isinstance(a, int):
        a = Layout(a)
    fs, places, acc = [], [], 1
    for n in leaves(a.shape):
        rest = n
        while rest > 1:
            q = draw(st.sampled_from([q for q in range(2, rest + 1) if rest % q == 0]))
            fs.append(q)
            places.append(acc)
            acc *= q
            rest //= q
    pick = sorted(i for i in range(len(fs)) if draw(st.booleans()))
    order = draw(st.permutations(pick))
    if not order:
        return Layout(1, 0)
    return Layout(tuple(fs[i] for i in order), tuple(places[i] for i in order))


def size_of(x):
    n = 1
    for s in leaves(x):
        n *= s
    return n


@FAST
@given(layouts(max_size=512), st.data())
def test_logical_divide_laws(a, data):
    b = data.draw(tiles_of(a))
    d = logical_divide(a, b)
    ta = bf_table(a.shape, a.stride)
    td = d.table().tolist()
    assert d.size == a.size
    assert sorted(td) == sorted(ta)                             # a re-indexed by a bijection
    tb = bf_table(b.shape, b.stride)
    assert d[0].table().tolist() == [ta[x] for x in tb]         # first mode = a∘b
    assert td[:b.size] == [ta[x] for x in tb]
    assert d[1].size == a.size // b.size


@FAST
@given(layouts(max_size=256), layouts(max_size=64))
def test_logical_divide_is_exact_or_raises(a, b):
    try:
        d = logical_divide(a, b)
    except LayoutError:
        return
    ta = bf_table(a.shape, a.stride)
    assert d[0].table().tolist() == [ta[x] for x in bf_table(b.shape, b.stride)]
    assert set(d.table().tolist()) <= set(ta)


@FAST
@given(st.sampled_from([(4, 6), (8, 8), (12, 5), (6, 12), (16, 4)]), st.data())
def test_divides_by_mode(shape, data):
    a = Layout(shape, (shape[1], 1))
    t0 = data.draw(tiles_of(shape[0]))
    t1 = data.draw(tiles_of(shape[1]))
    L = logical_divide(a, (t0, t1))
    Z, T, F = zipped_divide(a, (t0, t1)), tiled_divide(a, (t0, t1)), flat_divide(a, (t0, t1))
    assert L.size == Z.size == T.size == F.size == a.size
    n0, n1 = t0.size, t1.size
    r0, r1 = shape[0] // n0, shape[1] // n1
    for i0 in range(n0):
        for i1 in range(n1):
            for j0 in range(r0):
                for j1 in range(r1):
                    v = L((i0, j0), (i1, j1))
                    assert v == Z((i0, i1), (j0, j1)) == T((i0, i1), j0, j1) == F(i0, i1, j0, j1)
    # first-mode law per mode: tile element (i0, i1) of tile (0, 0) is a(t0(i0), t1(i1))
    for i0 in range(n0):
        for i1 in range(n1):
            assert Z((i0, i1), (0, 0)) == a(t0(i0), t1(i1))


@FAST
@given(layouts(max_size=64, stride0=False), layouts(max_size=32))
def test_logical_product_laws(a, b):
    try:
        p = logical_product(a, b)
    except LayoutError:
        return
    ta = bf_table(a.shape, a.stride)
    assert p.size == a.size * b.size
    assert p[0] == a
    tp = p.table().tolist()
    copies = [tp[j * a.size:(j + 1) * a.size] for j in range(b.size)]
    for c in copies:                                            # each copy is a translate of a
        assert [x - c[0] for x in c] == ta
    if len(set(ta)) == len(ta):
        offs = {c[0] for c in copies}
        for o1 in offs:                                         # distinct copies never overlap
            for o2 in offs:
                if o1 != o2:
                    assert not {x + o1 for x in ta} & {x + o2 for x in ta}


@FAST
@given(st.lists(st.sampled_from([1, 2, 3, 4, 5]), min_size=2, max_size=2),
       st.lists(st.sampled_from([1, 2, 3, 4]), min_size=2, max_size=2), st.booleans())
def test_blocked_and_raked_products_of_compact_tiles(sa, sb, row):
    a = Layout(tuple(sa))
    b = Layout(tuple(sb), (sb[1], 1)) if row else Layout(tuple(sb))
    bl, rk = blocked_product(a, b), raked_product(a, b)
    assert (a * b) == bl
    na = sa[0] * sa[1]
    for x0 in range(sa[0] * sb[0]):
        for x1 in range(sa[1] * sb[1]):
            ca, cb = (x0 % sa[0], x1 % sa[1]), (x0 // sa[0], x1 // sa[1])
            assert bl(x0, x1) == a(ca) + na * b(cb)
            cb, ca = (x0 % sb[0], x1 % sb[1]), (x0 // sb[0], x1 // sb[1])
            assert rk(x0, x1) == a(ca) + na * b(cb)


def test_divide_product_examples():
    assert str(logical_divide(Layout(16), Layout(4, 2))) == "(4,(2,2)):(2,(1,8))"
    assert str(zipped_divide(Layout((8, 8)), (2, 4))) == "((2,4),(4,2)):((1,8),(2,32))"
    assert str(tiled_divide(Layout((8, 8)), (2, 4))) == "((2,4),4,2):((1,8),2,32)"
    assert str(logical_product(Layout(2, 1), Layout(3, 2))) == "(2,3):(1,4)"
    with pytest.raises(LayoutError, match="does not tile"):
        logical_divide(Layout(12), Layout(8))                   # 8 does not divide 12
    with pytest.raises(LayoutError):
        logical_divide(Layout(8), Layout((2, 2), (1, 3)))       # tile modes do not nest
    assert compose(Layout(16), Layout(4, 2)) == logical_divide(Layout(16), Layout(4, 2))[0]
