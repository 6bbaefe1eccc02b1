"""Divides (split a layout into tiles) and products (repeat a layout), built on compose/complement.

* ``logical_divide(a, b) = compose(a, (b, complement(b, size(a))))``: mode 0 is the tile (``a``
  restricted to ``b``), mode 1 enumerates the tiles. With a tuple tiler it works mode by mode.
* ``zipped_divide`` gathers the tile modes and the rest modes: ``((t0, t1), (r0, r1))``;
  ``tiled_divide`` gives ``((t0, t1), r0, r1)`` and ``flat_divide`` ``(t0, t1, r0, r1)``.
* ``logical_product(a, b) = (a, compose(complement(a, M), b))``: mode 0 is ``a``, mode 1 places
  copies of ``a`` in the gaps of ``a`` as ``b`` orders them.
* ``blocked_product(a, b)``: mode ``i`` is ``(a_i, b_i)`` (each copy of ``a`` is a contiguous
  block); ``raked_product(a, b)``: mode ``i`` is ``(b_i, a_i)`` (copies interleaved). Both coalesce
  each mode, as CuTe does.

>>> str(logical_divide(Layout(16), Layout(4, 2)))
'(4,(2,2)):(2,(1,8))'
>>> str(zipped_divide(Layout((8, 8)), (2, 4)))
'((2,4),(4,2)):((1,8),(2,32))'
>>> str(tiled_divide(Layout((8, 8)), (2, 4)))
'((2,4),4,2):((1,8),2,32)'
>>> str(logical_product(Layout(2, 1), Layout(3, 2)))
'(2,3):(1,4)'
>>> str(blocked_product(Layout((2, 2)), Layout((3, 4))))
'((2,3),(2,4)):((1,4),(2,12))'
>>> str(raked_product(Layout((2, 2)), Layout((3, 4))))
'((3,2),(4,2)):((4,1),(12,2))'
"""
from __future__ import annotations

from ..errors import LayoutError
from .algebra import coalesce
from .composition import _as_layout, complement, compose, extent
from .core import Layout, make_layout


def _tiler(b, what: str):
    return tuple(b) if isinstance(b, (tuple, list)) else _as_layout(b, what)


def logical_divide(a: Layout, b) -> Layout:
    """Split ``a`` into tiles shaped by ``b``: ``(tile, rest)``; a tuple ``b`` divides mode by mode.

    Needs ``complement(b, size(a))`` (``b``'s modes nest and their extent divides ``size(a)``).
    ``size`` is kept when ``b`` is injective, and mode 0 is ``compose(a, b)``.
    """
    b = _tiler(b, "logical_divide")
    if isinstance(b, tuple):
        if len(b) > a.rank:
            raise LayoutError(f"logical_divide: the tiler has {len(b)} modes but {a} has rank {a.rank}")
        modes = [a[i] if i >= len(b) or b[i] is None else logical_divide(a[i], b[i])
                 for i in range(a.rank)]
        return make_layout(*modes)
    try:
        c = complement(b, a.size)
    except LayoutError as e:
        raise LayoutError(f"logical_divide({a}, {b}): the tile does not tile a: {e}") from None
    return compose(a, make_layout(b, c))


def _split(a: Layout, b) -> tuple:
    """Tile modes and rest modes of ``logical_divide(a, b)`` as lists of layouts."""
    b = _tiler(b, "divide")
    d = logical_divide(a, b)
    if isinstance(b, Layout):
        return [d[0]], [d[1]]
    tiles, rests = [], []
    for i in range(d.rank):
        if i < len(b) and b[i] is not None:
            tiles.append(d[i][0])
            rests.append(d[i][1])
        else:
            rests.append(d[i])
    return tiles, rests


def zipped_divide(a: Layout, b) -> Layout:
    """``((tile modes), (rest modes))``."""
    tiles, rests = _split(a, b)
    return make_layout(_group(tiles), _group(rests))


def tiled_divide(a: Layout, b) -> Layout:
    """``((tile modes), rest0, rest1, ...)``."""
    tiles, rests = _split(a, b)
    return make_layout(_group(tiles), *rests)


def flat_divide(a: Layout, b) -> Layout:
    """``(tile0, tile1, ..., rest0, rest1, ...)``."""
    tiles, rests = _split(a, b)
    return make_layout(*tiles, *rests)


def _group(modes: list) -> Layout:
    return modes[0] if len(modes) == 1 else make_layout(*modes)


def logical_product(a: Layout, b) -> Layout:
    """``(a, compose(complement(a, M), b))``: ``size(b)`` copies of ``a`` placed in its gaps.

    ``M`` is ``size(a) * cosize(b)`` rounded up to a multiple of ``extent(a)`` (CuTe's choice when
    ``a`` is compact). A tuple ``b`` works mode by mode.
    """
    b = _tiler(b, "logical_product")
    if isinstance(b, tuple):
        if len(b) > a.rank:
            raise LayoutError(f"logical_product: the tiler has {len(b)} modes but {a} has rank {a.rank}")
        return make_layout(*[a[i] if i >= len(b) or b[i] is None else logical_product(a[i], b[i])
                             for i in range(a.rank)])
    live = 1
    for s, d in a.leaves():
        live *= s if d else 1
    e = extent(a)
    m = -(-live * b.cosize // e) * e
    try:
        c = complement(a, m)
    except LayoutError as err:
        raise LayoutError(f"logical_product({a}, {b}): a has no complement to place copies in: {err}") from None
    return make_layout(a, compose(c, b))


def _padded_modes(x: Layout, r: int) -> list:
    modes = list(x.modes())
    return modes + [Layout(1, 0)] * (r - len(modes))


def _zip_product(a: Layout, b: Layout, blocked: bool) -> Layout:
    r = max(a.rank, b.rank)
    am, bm = _padded_modes(a, r), _padded_modes(b, r)
    A = make_layout(*am)
    B = make_layout(*bm)
    p = logical_product(A, B)
    placed = p[1]
    out = []
    for i in range(r):
        pair = (A[i], placed[i]) if blocked else (placed[i], A[i])
        out.append(coalesce(make_layout(*pair)))
    if r == 1:
        return out[0]
    return make_layout(*out)


def blocked_product(a: Layout, b: Layout) -> Layout:
    """Mode ``i`` is ``(a_i, b_i)``: ``b`` arranges whole copies of ``a`` (``a * b``)."""
    return _zip_product(a, _as_layout(b, "blocked_product"), True)


def raked_product(a: Layout, b: Layout) -> Layout:
    """Mode ``i`` is ``(b_i, a_i)``: the copies of ``a`` are interleaved element by element."""
    return _zip_product(a, _as_layout(b, "raked_product"), False)

