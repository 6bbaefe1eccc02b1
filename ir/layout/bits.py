"""Element-size changes (``recast``) and common contiguous vectors (``max_common_vector``).

``recast(L, from_bits, to_bits)`` re-expresses a memory layout of ``from_bits``-bit elements in
units of ``to_bits`` bits. It goes through ``g = gcd(from_bits, to_bits)``:

* **split** (``from_bits // g`` units per element): the first stride-1 mode of ``L`` of size > 1
  (else the first stride-1 mode) gets ``from_bits // g`` times as many entries (the units of one
  element are consecutive in it, unit fastest) and every other stride is multiplied by
  ``from_bits // g``;
* **join** (``to_bits // g`` units per new element): the same mode must hold a whole number of
  new elements and every other stride must be a whole number of them; sizes and strides are
  divided.

Splitting back what was joined restores ``L`` (shape and table) when the joined layout has a
single stride-1 mode. When it has several (the joined mode shrank to one unit and another mode's
stride became one unit), which mode held the units is lost: splitting back gives a layout that
joins to the same result, not necessarily ``L``.

So ``recast(L, b, 1)`` is the **bit layout** of ``L``: coordinate (with the bit folded into the
contiguous mode) -> bit offset. Packing, vector widths and view legality are all decided on bit
layouts, so 3-, 5- and 6-bit types need no special cases: 8 int3 = 24 bits = 3 bytes.

>>> str(recast(Layout((4, 8), (16, 1)), 3, 1))      # int3 rows of 8, padded to 16 elements
'(4,24):(48,1)'
>>> str(recast(Layout((4, 8), (16, 1)), 3, 8))      # the same rows in bytes: 3 bytes, row stride 6
'(4,3):(6,1)'
>>> str(recast(Layout((4, 8), (8, 1)), 16, 32))     # f16 pairs as 32-bit words
'(4,4):(4,1)'
>>> recast(Layout(6, 1), 8, 32)
Traceback (most recent call last):
  ...
vmlang.ir.errors.LayoutError: recast(6:1, 8 -> 32 bits): the contiguous mode holds 6 elements = 48 bits, not a whole number of 32-bit units

``max_common_vector(a, b)`` is the number of leading elements that are contiguous, in the same
order, in both ``a`` and ``b``: the largest ``n`` such that the coordinates that ``b`` sends to
offsets ``0 .. n-1`` are sent by ``a`` to the same offsets (``b`` injective).

>>> max_common_vector(Layout((4, 8), (8, 1)), Layout((4, 8), (8, 1)))
32
>>> max_common_vector(Layout((4, 8), (1, 4)), Layout((4, 8), (8, 1)))
1
>>> max_common_vector(Layout((4, 8), (1, 4)), Layout((4, 8), (1, 8)))
4
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .algebra import coalesce
from .composition import compose, right_inverse
from .core import Layout


def _pick_contiguous(pairs: list) -> int | None:
    for k, (s, d) in enumerate(pairs):
        if d == 1 and s > 1:
            return k
    for k, (s, d) in enumerate(pairs):
        if d == 1:
            return k
    return None


def recast(layout: Layout, from_bits: int, to_bits: int) -> Layout:
    """The layout of the same memory in ``to_bits``-bit units (see the module docstring)."""
    for name, v in (("from_bits", from_bits), ("to_bits", to_bits)):
        if not it.is_int(v) or v < 1:
            raise LayoutError(f"recast: {name} must be a positive integer, got {v!r}")
    what = f"recast({layout}, {from_bits} -> {to_bits} bits)"
    g = math.gcd(from_bits, to_bits)
    down, up = from_bits // g, to_bits // g
    pairs = list(layout.leaves())
    if down > 1:
        k = _pick_contiguous(pairs)
        if k is None:
            k = next((j for j, (s, _) in enumerate(pairs) if s == 1), None)
            if k is None:
                raise LayoutError(f"{what}: no mode has stride 1 (or size 1), so there is no mode to "
                                  f"hold the {down} parts of each element")
        pairs = [(s * down, 1) if j == k else (s, d * down) for j, (s, d) in enumerate(pairs)]
    if up > 1:
        k = _pick_contiguous(pairs)
        if k is None or pairs[k][0] == 1 and layout.size > 1:
            raise LayoutError(f"{what}: no mode has stride 1, so no {to_bits}-bit unit is contiguous")
        s, _ = pairs[k]
        if s % up:
            raise LayoutError(f"{what}: the contiguous mode holds {s * g // from_bits} elements = "
                              f"{s * g} bits, not a whole number of {to_bits}-bit units")
        out = []
        for j, (sj, dj) in enumerate(pairs):
            if j == k:
                out.append((sj // up, 1))
            elif dj % up == 0:
                out.append((sj, dj // up))
            elif sj == 1:
                out.append((1, 0))
            else:
                raise LayoutError(f"{what}: a mode has a stride of {dj * g} bits, not a whole number "
                                  f"of {to_bits}-bit units")
        pairs = out
    return Layout(it.unflatten([p[0] for p in pairs], layout.shape),
                  it.unflatten([p[1] for p in pairs], layout.shape))


def max_common_layout(a: Layout, b: Layout) -> Layout:
    """The coordinates (as a layout into the common domain) of the longest common contiguous
    vector of ``a`` and ``b``: ``n:idx`` pieces with ``a(x) == b(x) == i`` for the i-th one."""
    if a.size != b.size:
        raise LayoutError(f"max_common_vector: {a} and {b} have different sizes ({a.size} vs {b.size})")
    r = right_inverse(b)
    n = _common_prefix(a, r)
    return coalesce(compose(r, Layout(n))) if n > 1 else Layout(1, 0)


def max_common_vector(a: Layout, b: Layout) -> int:
    """Number of leading offsets ``0 .. n-1`` that ``a`` and ``b`` reach from the same coordinates."""
    if a.size != b.size:
        raise LayoutError(f"max_common_vector: {a} and {b} have different sizes ({a.size} vs {b.size})")
    return _common_prefix(a, right_inverse(b))


def _common_prefix(a: Layout, r: Layout) -> int:
    try:
        c = coalesce(compose(a, r))
    except LayoutError:
        vals = a(r.table())
        bad = np.flatnonzero(vals != np.arange(vals.size))
        return int(bad[0]) if bad.size else int(vals.size)
    s, d = c.leaves()[0]
    return s if d == 1 else 1
