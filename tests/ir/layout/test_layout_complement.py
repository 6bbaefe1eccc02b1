"""complement and the inverses against brute force."""
import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table, layouts, leaves
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import Layout, complement, left_inverse, make_layout, right_inverse

FAST = settings(max_examples=300, deadline=None)


def nests(a, m):
    """Independent statement of the precondition: sorted non-broadcast modes nest, m a multiple."""
    pairs = sorted((s, d) for s, d in zip(leaves(a.shape), leaves(a.stride)) if s > 1 and d > 0)
    pairs.sort(key=lambda p: p[1])
    cur = 1
    for s, d in pairs:
        if d % cur or (pairs.count((s, d)) > 1):
            return False
        cur = s * d
    if len({d for _, d in pairs}) != len(pairs):
        return False
    return m % cur == 0


def check_complement(a, m, c):
    ta = sorted(set(bf_table(a.shape, a.stride)))           # filter(a): distinct offsets
    tc = bf_table(c.shape, c.stride)
    assert set(ta) & set(tc) == {0}                          # disjoint apart from 0
    both = sorted(x + y for x in ta for y in tc)
    assert both == list(range(m))                            # (a, c) is a bijection onto [0, m)
    strides = [d for s, d in zip(leaves(c.shape), leaves(c.stride)) if s > 1]
    assert strides == sorted(strides) and len(set(strides)) == len(strides)


@FAST
@given(layouts(max_size=512), st.sampled_from([None, 1, 2, 6, 12, 16, 24, 36, 48, 64, 96, 128, 144, 512]))
def test_complement_is_exact_or_raises(a, m):
    try:
        c = complement(a, m)
    except LayoutError as e:
        assert "complement(" in str(e)
        pairs = [(s, d) for s, d in zip(leaves(a.shape), leaves(a.stride)) if s > 1 and d > 0]
        ext = max((s * d for s, d in pairs), default=1)
        assert not nests(a, ext if m is None else m), str(e)
        return
    mm = m if m is not None else max([s * d for s, d in a.leaves() if s > 1 and d > 0], default=1)
    check_complement(a, mm, c)


@st.composite
def nested(draw):
    """a = some digits of a mixed radix for m (any order, grouped), plus broadcast modes."""
    radix = draw(st.lists(st.sampled_from([2, 3, 4, 5, 6]), min_size=1, max_size=5))
    places, acc = [], 1
    for r in radix:
        places.append(acc)
        acc *= r
    m = acc * draw(st.sampled_from([1, 2, 3]))
    pick = [i for i in range(len(radix)) if draw(st.booleans())]
    order = draw(st.permutations(pick))
    shape = [radix[i] for i in order] + [draw(st.sampled_from([1, 2, 3]))]
    stride = [places[i] for i in order] + [0]
    return Layout(tuple(shape), tuple(stride)), m


@FAST
@given(nested())
def test_complement_complete_on_nested_layouts(am):
    a, m = am
    check_complement(a, m, complement(a, m))


def test_complement_examples():
    assert str(complement(Layout(4, 2), 16)) == "(2,2):(1,8)"
    assert str(complement(Layout((4, 2), (1, 16)), 64)) == "(4,2):(4,32)"
    assert str(complement(Layout(4, 1), 4)) == "1:0"
    assert str(complement(Layout(4, 0), 3)) == "3:1"          # broadcast modes add nothing
    for a, m in [(Layout((2, 2), (1, 3)), 8), (Layout(4, 1), 6), (Layout((2, 2), (2, 2)), 8),
                 (Layout((3, 2), (2, 3)), 12)]:                 # pycute answers these wrongly
        with pytest.raises(LayoutError):
            complement(a, m)


@FAST
@given(layouts(max_size=512))
def test_right_inverse(a):
    r = right_inverse(a)
    ta, tr = bf_table(a.shape, a.stride), bf_table(r.shape, r.stride)
    assert [ta[x] for x in tr] == list(range(len(tr)))
    if len(set(ta)) == len(ta):                              # injective: longest prefix of the image
        n = 0
        s = set(ta)
        while n in s:
            n += 1
        assert len(tr) == n


@FAST
@given(nested())
def test_left_inverse(am):
    a, _ = am
    a = Layout(a.shape[:-1] or 1, a.stride[:-1] or 0) if isinstance(a.shape, tuple) else a
    l = left_inverse(a)
    ta, tl = bf_table(a.shape, a.stride), bf_table(l.shape, l.stride)
    assert [tl[y] for y in ta] == list(range(len(ta)))


def test_inverse_errors_and_examples():
    assert str(right_inverse(Layout((4, 8), (8, 1)))) == "(8,4):(4,1)"
    assert right_inverse(Layout(4, 2)) == Layout(1, 0)
    with pytest.raises(LayoutError, match="not injective"):
        left_inverse(Layout((2, 2), (1, 1)))
    with pytest.raises(LayoutError, match="no layout inverse"):
        left_inverse(Layout((2, 2), (1, 3)))
    b = Layout((4, 8), (8, 1))
    assert make_layout(b, Layout(1, 0)).size == 32
