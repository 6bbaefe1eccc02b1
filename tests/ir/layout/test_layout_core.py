"""Layout construction, text form, evaluation and the function-preserving normal forms."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table, canon_leaves, layouts, leaves
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import (Layout, coalesce, cosize, depth, filter, filter_zeros, fit, flatten, image,
                              is_bijective, is_injective, make_layout, rank, row_major, size)

FAST = settings(max_examples=150, deadline=None)


def test_text_examples():
    L = Layout((4, (8, 2)), (16, (1, 8)))
    assert str(L) == "(4,(8,2)):(16,(1,8))"
    assert Layout.parse("(4,(8,2)):(16,(1,8))") == L
    assert str(Layout(8, 1)) == "8:1" and str(Layout(8)) == "8:1"
    assert Layout.parse("8:1") == Layout(8, 1)
    assert Layout.parse(" ( 4 , 8 ) ") == Layout((4, 8), (1, 4))        # bare shape: compact
    assert str(Layout((8,), (1,))) == "(8):(1)" and Layout.parse("(8):(1)") == Layout((8,), (1,))
    assert str(row_major(4, 8)) == "(4,8):(8,1)"
    assert repr(L) == "Layout((4, (8, 2)), (16, (1, 8)))"


@pytest.mark.parametrize("text", ["(4,8):(1,", "(4,8):(1,2,3)", "4:-1", "0:1", "():()", "(4,8)x", "a:1"])
def test_parse_errors(text):
    with pytest.raises(LayoutError):
        Layout.parse(text)


def test_constructor_errors():
    for shape, stride in [((4, 8), (1,)), (4, (1, 2)), ((4, 0), (1, 4)), (4, -2), ((), ()), (4.0, 1),
                          (True, 1)]:
        with pytest.raises(LayoutError):
            Layout(shape, stride)


@FAST
@given(layouts())
def test_parse_print_round_trip_and_hash(L):
    M = Layout.parse(str(L))
    assert M == L and hash(M) == hash(L) and str(M) == str(L)
    assert Layout.parse(str(L).replace(",", ", ")) == L


@FAST
@given(layouts())
def test_table_and_measures_match_brute_force(L):
    t = bf_table(L.shape, L.stride)
    assert L.table().tolist() == t
    assert size(L) == len(t) and cosize(L) == max(t) + 1
    assert rank(L) == (1 if isinstance(L.shape, int) else len(L.shape))
    d = depth(L)
    assert d == 0 if isinstance(L.shape, int) else d >= 1
    for i in range(0, len(t), max(1, len(t) // 7)):
        assert L(i) == t[i]
    idx = np.arange(len(t))
    assert L(idx).tolist() == t


@FAST
@given(layouts(), st.data())
def test_call_on_coordinates(L, data):
    S = leaves(L.shape)
    crd = [data.draw(st.integers(0, s - 1)) for s in S]
    i, acc = 0, 1
    for c, s in zip(crd, S):
        i += c * acc
        acc *= s
    it = iter(crd)

    def build(t):
        return next(it) if isinstance(t, int) else tuple(build(e) for e in t)
    full = build(L.shape)
    assert L(full) == bf_table(L.shape, L.stride)[i]
    if not isinstance(L.shape, int):          # coarse coordinate: one index per top mode
        top = []
        j = i
        for m in L.shape:
            n = 1
            for s in leaves(m):
                n *= s
            top.append(j % n)
            j //= n
        assert L(tuple(top)) == L(i) == L(*top)


def test_call_errors():
    L = Layout((4, 8), (8, 1))
    for bad in (32, -1, (4, 0), (0, 0, 0), ((1, 1), 0)):
        with pytest.raises(LayoutError):
            L(bad)
    with pytest.raises(LayoutError):
        L(np.array([0, 32]))


@FAST
@given(layouts())
def test_coalesce_preserves_function_is_canonical_and_idempotent(L):
    C = coalesce(L)
    assert C.table().tolist() == L.table().tolist()
    assert coalesce(C) == C
    assert [(s, d) for s, d in C.leaves() if s > 1] == canon_leaves(bf_table(L.shape, L.stride))
    assert fit(L.table()) == C


@FAST
@given(layouts(max_leaves=3), st.data())
def test_coalesce_is_canonical_across_refinements(L, data):
    # split a leaf s = s1*s2 into (s1, s2):(d, s1*d) and regroup: same function, same canonical form
    pairs = list(L.leaves())
    k = data.draw(st.integers(0, len(pairs) - 1))
    s, d = pairs[k]
    divs = [q for q in range(1, s + 1) if s % q == 0]
    s1 = data.draw(st.sampled_from(divs))
    new = pairs[:k] + [(s1, d), (s // s1, s1 * d)] + pairs[k + 1:]
    cut = data.draw(st.integers(1, len(new)))
    M = make_layout(Layout(tuple(p[0] for p in new[:cut]), tuple(p[1] for p in new[:cut])),
                    *([Layout(tuple(p[0] for p in new[cut:]), tuple(p[1] for p in new[cut:]))]
                      if cut < len(new) else []))
    assert M.table().tolist() == L.table().tolist()
    assert coalesce(M) == coalesce(L)


@FAST
@given(layouts())
def test_flatten_and_filter(L):
    F = flatten(L)
    assert F.table().tolist() == L.table().tolist()
    assert all(isinstance(s, int) for s in (F.shape if isinstance(F.shape, tuple) else (F.shape,)))
    G = filter(L)
    assert set(G.table().tolist()) == set(L.table().tolist())
    assert all(d != 0 for s, d in G.leaves() if s > 1)
    Z = filter_zeros(L)
    assert Z.stride == L.stride
    # filter_zeros is L with every broadcast coordinate pinned to 0
    keep = [i for i, crd in enumerate(_coords(L)) if all(c == 0 for c, (s, d) in zip(crd, L.leaves()) if d == 0)]
    assert Z.table().tolist() == [L(i) for i in keep]
    assert image(L).tolist() == sorted(set(bf_table(L.shape, L.stride)))


def _coords(L):
    S = [s for s, _ in L.leaves()]
    for i in range(L.size):
        crd = []
        for s in S:
            crd.append(i % s)
            i //= s
        yield crd


@FAST
@given(layouts(max_size=512))
def test_predicates_match_brute_force(L):
    t = bf_table(L.shape, L.stride)
    assert is_injective(L) == (len(set(t)) == len(t))
    assert is_bijective(L) == (sorted(t) == list(range(len(t))))


def test_coalesce_examples():
    assert str(coalesce(Layout((2, (1, 6)), (1, (7, 2))))) == "12:1"
    assert str(coalesce(Layout(1, 5))) == "1:0"
    assert str(coalesce(Layout((4, 3), (0, 0)))) == "12:0"
    assert str(coalesce(Layout(((2, 2), (3, 4)), ((1, 2), (4, 24))), (1, 1))) == "(4,(3,4)):(1,(4,24))"
    with pytest.raises(LayoutError):
        fit([0, 1, 3])
