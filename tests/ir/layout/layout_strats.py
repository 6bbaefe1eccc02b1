"""Hypothesis strategies and brute-force twins shared by the layout tests.

The twins here are written from the definitions only (pure Python loops over colexicographic
coordinates) and never call into vmlang.ir.layout beyond reading ``shape``/``stride``.
"""
from __future__ import annotations

import itertools

from hypothesis import strategies as st

SIZES = [1, 2, 3, 4, 5, 6, 8, 12]
STRIDES = [0, 1, 2, 3, 4, 5, 6, 8, 9, 12, 16, 17, 32, 40]


def leaves(x):
    if isinstance(x, int):
        return [x]
    out = []
    for e in x:
        out += leaves(e)
    return out


def bf_table(shape, stride):
    """Brute force: offsets at linear indices 0..size-1 (colexicographic, first leaf fastest)."""
    S, D = leaves(shape), leaves(stride)
    out = []
    ranges = [range(s) for s in reversed(S)]          # product() varies the last fastest
    for crd in itertools.product(*ranges):
        crd = crd[::-1]
        out.append(sum(c * d for c, d in zip(crd, D)))
    return out


def bf_call(layout, i):
    return bf_table(layout.shape, layout.stride)[i]


def canon_leaves(values):
    """Independent twin of "the canonical layout with this table": list of (size, stride) or None."""
    f = list(values)
    if not f or f[0] != 0:
        return None
    modes = []
    while len(f) > 1:
        d = f[1]
        if d < 0:
            return None
        p = 1
        while p < len(f) and f[p] == p * d:
            p += 1
        if len(f) % p:
            return None
        for j in range(len(f) // p):
            for i in range(p):
                if f[j * p + i] != f[j * p] + f[i]:
                    return None
        modes.append((p, d))
        f = f[::p]
    return modes


def tree(leaf, max_leaves=4):
    """An int-tuple of depth <= 2 built from ``leaf`` draws."""
    return st.recursive(leaf, lambda kids: st.lists(kids, min_size=1, max_size=3).map(tuple),
                        max_leaves=max_leaves)


@st.composite
def layouts(draw, max_leaves=4, max_size=4096, sizes=SIZES, strides=STRIDES, stride0=True):
    from vmlang.ir.layout import Layout
    shape = draw(tree(st.sampled_from(sizes), max_leaves))
    n = 1
    for s in leaves(shape):
        n *= s
    if n > max_size:
        shape = leaves(shape)[0]
    pool = strides if stride0 else [d for d in strides if d]
    stride = _like(shape, lambda: draw(st.sampled_from(pool)))
    return Layout(shape, stride)


def _like(t, make):
    return make() if isinstance(t, int) else tuple(_like(e, make) for e in t)


@st.composite
def compact_layouts(draw, max_leaves=4, sizes=SIZES):
    """Bijections onto [0, size): a random permutation of a compact layout's leaves, nested."""
    from vmlang.ir.layout import Layout
    shape = draw(tree(st.sampled_from([s for s in sizes if s > 1] or [2]), max_leaves))
    S = leaves(shape)
    order = draw(st.permutations(range(len(S))))
    strides, acc = [0] * len(S), 1
    for k in order:
        strides[k] = acc
        acc *= S[k]
    it = iter(strides)
    return Layout(shape, _like(shape, lambda: next(it)))
