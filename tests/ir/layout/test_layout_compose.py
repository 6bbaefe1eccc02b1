"""compose: exact against brute force or LayoutError; complete on admissible inputs; laws."""
import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table, canon_leaves, layouts, leaves
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import Layout, coalesce, compose
from vmlang.ir.layout.composition import STATS

FAST = settings(max_examples=300, deadline=None)


def bf_compose(a, b):
    ta, tb = bf_table(a.shape, a.stride), bf_table(b.shape, b.stride)
    return [ta[x] for x in tb]


def representable(a, b):
    """Brute force: is a∘b a layout with b's profile (each leaf of b refined)?"""
    t = bf_compose(a, b)
    S = leaves(b.shape)
    parts, pos = [], 1
    for s in S:
        m = canon_leaves([t[i * pos] for i in range(s)])
        if m is None:
            return False
        parts.append(m)
        pos *= s
    # additivity over the leaves of b
    for i in range(len(t)):
        j, tot = i, 0
        for s, m in zip(S, parts):
            c = j % s
            j //= s
            for ms, md in m:
                tot += (c % ms) * md
                c //= ms
        if tot != t[i]:
            return False
    return True


def check_shape_refines(res, b):
    """Each leaf of b became an int or a tuple of ints with the same product."""
    def walk(r, s):
        if isinstance(s, int):
            n = 1
            for x in leaves(r):
                n *= x
            assert n == s
        else:
            assert isinstance(r, tuple) and len(r) == len(s)
            for x, y in zip(r, s):
                walk(x, y)
    walk(res.shape, b.shape)


@FAST
@given(layouts(max_size=1024), layouts(max_size=256))
def test_compose_is_exact_or_raises(a, b):
    try:
        r = compose(a, b)
    except LayoutError as e:
        msg = str(e)
        assert "compose(a, b)" in msg
        tb = bf_table(b.shape, b.stride)
        if max(tb) < len(bf_table(a.shape, a.stride)):
            # in the domain: it raised only because no layout represents a∘b
            assert not representable(a, b), msg
        else:
            assert "only defined on" in msg
        return
    assert r.table().tolist() == bf_compose(a, b)
    check_shape_refines(r, b)


@st.composite
def admissible(draw):
    """a arbitrary; b made of disjoint runs of a's refined digits (the divisibility cases)."""
    a = draw(layouts(max_size=4096))
    digits = []                                        # refined radix: (size, place)
    place = 1
    for s, _ in a.leaves():
        f = [q for q in range(2, s + 1) if s % q == 0]
        rest = s
        while rest > 1:
            q = draw(st.sampled_from([x for x in f if rest % x == 0]))
            digits.append((q, place))
            place *= q
            rest //= q
    cuts = sorted(set(draw(st.lists(st.integers(0, len(digits)), max_size=4))) | {0, len(digits)})
    runs = [digits[i:j] for i, j in zip(cuts, cuts[1:]) if j > i]
    runs = [r for r in runs if draw(st.booleans()) or len(runs) == 1]
    order = draw(st.permutations(range(len(runs))))
    shape, stride = [], []
    for k in order:
        n = 1
        for q, _ in runs[k]:
            n *= q
        shape.append(n)
        stride.append(runs[k][0][1])
    for _ in range(draw(st.integers(0, 2))):       # broadcast and trivial modes anywhere
        pos = draw(st.integers(0, len(shape)))
        shape.insert(pos, draw(st.sampled_from([1, 2, 3])))
        stride.insert(pos, draw(st.sampled_from([0, 7])) if shape[pos] == 1 else 0)
    if not shape:
        shape, stride = [1], [0]
    if len(shape) > 2 and draw(st.booleans()):
        shape, stride = [tuple(shape[:2])] + shape[2:], [tuple(stride[:2])] + stride[2:]
    return a, Layout(tuple(shape), tuple(stride))


@FAST
@given(admissible())
def test_compose_complete_on_admissible_inputs(ab):
    a, b = ab
    before = STATS["fallback"]
    r = compose(a, b)                                  # must not raise
    assert STATS["fallback"] == before, "the algebraic rule should cover the divisibility cases"
    assert r.table().tolist() == bf_compose(a, b)


@FAST
@given(layouts(max_size=512), layouts(max_size=128), layouts(max_size=64))
def test_compose_associative_where_defined(a, b, c):
    try:
        left = compose(compose(a, b), c)
        right = compose(a, compose(b, c))
    except LayoutError:
        return
    assert left.table().tolist() == right.table().tolist()


@FAST
@given(layouts(max_size=1024))
def test_compose_identities(a):
    n = a.size
    assert compose(a, Layout(n)).table().tolist() == a.table().tolist()
    assert coalesce(compose(a, Layout(n))) == coalesce(a)
    N = a.cosize
    r = compose(Layout(N), a)
    assert r.table().tolist() == a.table().tolist() and coalesce(r) == coalesce(a)


def test_no_algebra_mismatch_recorded():
    assert STATS["algebra_mismatch"] == 0


def test_compose_examples_and_tilers():
    a = Layout((4, 8), (8, 1))
    assert str(compose(a, Layout((2, 2), (1, 4)))) == "(2,2):(8,1)"
    assert str(compose(Layout((6, 2), (8, 2)), Layout((4, 3), (3, 1)))) == "((2,2),3):((24,2),8)"
    assert str(compose(Layout((12, 8), (8, 1)), (Layout(3, 4), 4))) == "(3,4):(32,1)"
    assert str(compose(Layout((12, 8), (8, 1)), (None, Layout(2, 2)))) == "(12,2):(8,2)"
    with pytest.raises(LayoutError, match="only defined on"):
        compose(Layout(8), Layout(4, 3))
    with pytest.raises(LayoutError, match="would carry"):
        compose(Layout((2, 2), (1, 10)), Layout((2, 2), (1, 1)))
    # pycute-style wrong answers we must not give: stride that falls between modes
    with pytest.raises(LayoutError):
        compose(Layout((4, 3), (1, 100)), Layout(3, 3))
    # the fit fallback finds layouts the digit rule does not
    assert compose(Layout((4, 3), (1, 4)), Layout(3, 4)).table().tolist() == [0, 4, 8]


def test_compose_large_is_algebraic():
    a = Layout((4096, 4096), (4096, 1))                # row-major 4096 x 4096
    tile = Layout((128, 64), (1, 4096))
    r = compose(a, tile)
    assert str(r) == "(128,64):(4096,1)"
    with pytest.raises(LayoutError, match="too many"):
        compose(Layout((3, 1 << 21), (1, 5)), Layout(1 << 21, 2))
