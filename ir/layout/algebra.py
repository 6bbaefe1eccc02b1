"""Function-preserving normal forms and predicates: coalesce, filter, flatten, fit, injectivity.

``coalesce`` is the canonical form of a layout's function: two layouts with the same size agree
at every linear index exactly when their coalesced forms are equal. It flattens, drops size-1
modes and merges neighbours ``(s0, s1):(d0, d1)`` with ``d1 == s0 * d0``.

>>> str(coalesce(Layout((2, (1, 6)), (1, (7, 2)))))
'12:1'
>>> str(coalesce(Layout((4, 3), (0, 0))))
'12:0'
>>> str(coalesce(Layout((4, (8, 2)), (16, (1, 8))), (1, 1)))
'(4,16):(16,1)'
>>> str(filter(Layout((4, 2, 3), (0, 1, 2))))
'6:1'
>>> str(fit(np.array([0, 1, 8, 9, 16, 17])))
'(2,3):(1,8)'
>>> is_injective(Layout((2, 2), (1, 1))), is_bijective(Layout((2, 3), (3, 1)))
(False, True)
"""
from __future__ import annotations

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .core import TABLE_LIMIT, Layout


def _from_leaves(pairs) -> Layout:
    """A layout from ``(size, stride)`` pairs: ``1:0`` if none, an int mode if one, else flat."""
    pairs = list(pairs)
    if not pairs:
        return Layout(1, 0)
    if len(pairs) == 1:
        return Layout(pairs[0][0], pairs[0][1])
    return Layout(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


def coalesce_leaves(pairs) -> list:
    """Merge a flat list of ``(size, stride)`` pairs into the canonical list (no size-1 modes)."""
    out: list = []
    for s, d in pairs:
        if s == 1:
            continue
        if out and d == out[-1][0] * out[-1][1]:
            out[-1] = (out[-1][0] * s, out[-1][1])
        else:
            out.append((s, d))
    return out


def coalesce(layout: Layout, profile=None) -> Layout:
    """The canonical layout with the same function (and size) as ``layout``.

    With ``profile`` (an int-tuple pattern such as ``(1, 1)``), each sub-layout that the pattern
    reaches with an int is coalesced on its own, keeping the outer structure.
    """
    if profile is not None and not it.is_int(profile):
        if layout.rank < len(profile) or it.is_int(layout.shape):
            raise LayoutError(f"coalesce: profile {it.fmt(profile)} has more modes than {layout}")
        modes = [coalesce(layout[i], p) for i, p in enumerate(profile)]
        modes += [layout[i] for i in range(len(profile), layout.rank)]
        return Layout(tuple(m.shape for m in modes), tuple(m.stride for m in modes))
    return _from_leaves(coalesce_leaves(layout.leaves()))


def flatten(layout: Layout) -> Layout:
    """The same function with a flat shape: ``(4,(8,2)):(16,(1,8)) -> (4,8,2):(16,1,8)``."""
    if it.is_int(layout.shape):
        return layout
    return Layout(it.flatten(layout.shape), it.flatten(layout.stride))


def filter_zeros(layout: Layout) -> Layout:
    """Keep the structure, but give every stride-0 mode size 1 (so it no longer repeats values)."""
    shape = it.unflatten([1 if d == 0 else s for s, d in layout.leaves()], layout.shape)
    return Layout(shape, layout.stride)


def filter(layout: Layout) -> Layout:
    """``coalesce(filter_zeros(layout))``: the same image (set of offsets) without repetitions
    from broadcast modes, in canonical form."""
    return coalesce(filter_zeros(layout))


# -- fitting a layout to a table ------------------------------------------------------------------
def fit_leaves(values: np.ndarray):
    """The canonical ``(size, stride)`` list whose layout has ``values`` as its table, or ``None``.

    Greedy and complete: the first mode's stride is ``values[1]``, its size the length of the
    linear prefix, and the rest is the fit of ``values[::size]``. O(len(values)).
    """
    f = np.asarray(values, dtype=np.int64).ravel()
    if f.size == 0 or f[0] != 0:
        return None
    modes = []
    while f.size > 1:
        d = int(f[1])
        if d < 0:
            return None
        lin = np.arange(f.size, dtype=np.int64) * d
        bad = np.flatnonzero(f != lin)
        p = int(bad[0]) if bad.size else f.size
        if f.size % p:
            return None
        g = f.reshape(-1, p)
        if not np.array_equal(g, g[:, :1] + g[0][None, :]):
            return None
        modes.append((p, d))
        f = g[:, 0]
    return modes


def fit(values) -> Layout:
    """The canonical (coalesced) layout whose table is ``values``; ``LayoutError`` if there is none."""
    modes = fit_leaves(values)
    if modes is None:
        v = np.asarray(values).ravel()
        head = ", ".join(str(int(x)) for x in v[:12]) + (", ..." if v.size > 12 else "")
        raise LayoutError(f"no layout has the table [{head}] (it is not a sum of strided modes "
                          f"with non-negative strides starting at 0)")
    return _from_leaves(modes)


# -- predicates ---------------------------------------------------------------------------------
def _superincreasing(pairs) -> bool:
    """Sorted by stride, each stride exceeds the largest offset of the smaller modes (sufficient
    for injectivity)."""
    reach = 0
    for s, d in sorted(pairs, key=lambda p: p[1]):
        if d <= reach:
            return False
        reach += (s - 1) * d
    return True


def is_injective(layout: Layout, limit: int = TABLE_LIMIT) -> bool:
    """Whether distinct linear indices map to distinct offsets (exact)."""
    pairs = [(s, d) for s, d in layout.leaves() if s > 1]
    if any(d == 0 for _, d in pairs):
        return False
    if _superincreasing(pairs):
        return True
    if layout.size > limit:
        raise LayoutError(f"is_injective: {layout} is not a nested tiling and has {layout.size} "
                          f"coordinates, more than the enumeration limit {limit}")
    t = layout.table()
    return np.unique(t).size == t.size


def is_bijective(layout: Layout, limit: int = TABLE_LIMIT) -> bool:
    """Whether the layout is a bijection from ``[0, size)`` onto ``[0, size)``."""
    return layout.cosize == layout.size and is_injective(layout, limit)


def image(layout: Layout) -> np.ndarray:
    """The sorted distinct offsets of ``layout``."""
    return np.unique(layout.table())


__all__ = ["coalesce", "flatten", "filter", "filter_zeros", "fit", "is_injective", "is_bijective", "image"]
