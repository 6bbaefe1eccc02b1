"""Register (thread-value) layouts: which thread holds which tile element in which register slot.

A ``TVLayout(layout, tile)`` is a rank-2 layout ``(thread, value) -> tile index`` together with
the tile shape; the tile index is colexicographic over ``tile`` (first dimension fastest). The
thread mode is shaped ``(32 lanes, warps)`` when there is more than a warp; a stride of 0 in the
thread mode means replication (several threads hold the same element). Three constructors build
every layout of practice:

* ``spatial(*shape, order=None)``: one element per thread, the threads cover a tile of ``shape``;
  thread numbers run along the dimensions listed in ``order`` (fastest first; colexicographic by
  default, ``order=(1, 0)`` numbers the threads row-major as PTX does);
* ``local(*shape, order=None)``: one thread holds a whole ``shape`` tile as its values;
* ``a * b`` (blocked product): ``b`` arranges copies of the tile of ``a``. The tile shape
  multiplies dimension by dimension, threads and values combine with ``a``'s fastest, and the
  element at ``(i, j)`` of copy ``(p, q)`` lands at ``(i + p * A0, j + q * A1)``.

The ``mma.sync.m16n8k16`` f16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16"), one line
each; the tile is ``(rows, cols)``:

>>> A = local(1, 2) * spatial(8, 4, order=(1, 0)) * local(2, 2)     # A: 16 x 16, row-major
>>> str(A)
'((4,8),(2,2,2)):((32,1),(16,8,128)) -> (16,16)'
>>> A.coord(5, 3)      # lane 5 = group 1, thread-in-group 1; a3: row 1 + 8, col 2*1 + 1
(9, 3)
>>> str(local(2, 1) * spatial(4, 8) * local(2, 1))                    # B: 16 x 8 (k x n)
'((4,8),(2,2)):((2,16),(1,8)) -> (16,8)'
>>> str(local(1, 2) * spatial(8, 4, order=(1, 0)) * local(2, 1))      # C/D: 16 x 8 f32
'((4,8),(2,2)):((32,1),(16,8)) -> (16,8)'
>>> str(MMA_M16N8K16_A * spatial(2, 2))                              # 4 warps, 32 x 32 tile
'(((4,8),(2,2)),(2,2,2)):(((64,1),(16,512)),(32,8,256)) -> (32,32)'
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .algebra import coalesce, coalesce_leaves
from .composition import compose
from .core import Layout


@dataclass(frozen=True, slots=True)
class TVLayout:
    """``(thread, value) -> tile index`` plus the tile shape (see the module docstring)."""

    layout: Layout
    tile: tuple

    def __post_init__(self):
        if not isinstance(self.layout, Layout) or self.layout.rank != 2 or it.is_int(self.layout.shape):
            raise LayoutError(f"a register layout is a rank-2 layout (thread, value) -> tile index, "
                              f"got {self.layout}")
        tile = it.normalize(self.tile, "tile")
        tile = (tile,) if it.is_int(tile) else it.flatten(tile)
        if any(s < 1 for s in tile):
            raise LayoutError(f"tile {it.fmt(tile)} has a non-positive size")
        object.__setattr__(self, "tile", tile)
        n = it.product(tile)
        if self.layout.cosize > n:
            raise LayoutError(f"register layout {self.layout} reaches tile index {self.layout.cosize - 1} "
                              f"but the tile {it.fmt(tile)} has {n} elements")

    # -- shape -------------------------------------------------------------------------------
    @property
    def threads(self) -> int:
        return self.layout[0].size

    @property
    def values(self) -> int:
        return self.layout[1].size

    @property
    def thread_layout(self) -> Layout:
        return self.layout[0]

    @property
    def value_layout(self) -> Layout:
        return self.layout[1]

    # -- evaluation ----------------------------------------------------------------------------
    def __call__(self, t: int, v: int) -> int:
        """Tile index (colexicographic over ``tile``) of value ``v`` of thread ``t``."""
        return self.layout(t, v)

    def coord(self, t: int, v: int) -> tuple:
        """Tile coordinate of value ``v`` of thread ``t``."""
        return it.flatten(it.idx2crd(self(t, v), self.tile))

    def table(self) -> np.ndarray:
        """``(threads, values)`` int64 array of tile indices."""
        return self.layout.table().reshape(self.values, self.threads).T

    def owners(self) -> list:
        """For each tile index, the list of ``(thread, value)`` holding it (brute force)."""
        out: list = [[] for _ in range(it.product(self.tile))]
        for (t, v), x in np.ndenumerate(self.table()):
            out[int(x)].append((t, v))
        return out

    # -- text ----------------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.layout} -> {it.fmt(self.tile)}"

    @classmethod
    def parse(cls, text: str) -> "TVLayout":
        """``(thread,value):(strides) -> (tile)``."""
        if "->" not in text:
            raise LayoutError(f"cannot parse {text!r} as a register layout: expected 'layout -> (tile)'")
        body, tile = text.rsplit("->", 1)
        return cls(Layout.parse(body), it.parse_inttuple(tile))

    def __mul__(self, other: "TVLayout") -> "TVLayout":
        if not isinstance(other, TVLayout):
            return NotImplemented
        return tv_product(self, other)


def _compact(tile: tuple) -> tuple:
    out, acc = [], 1
    for s in tile:
        out.append(acc)
        acc *= s
    return tuple(out)


def _ordered(shape: tuple, order, what: str) -> Layout:
    shape = tuple(it.normalize(s, "shape") for s in shape)
    if not shape or not all(it.is_int(s) and s >= 1 for s in shape):
        raise LayoutError(f"{what} takes positive integer sizes, got {shape!r}")
    order = tuple(range(len(shape))) if order is None else tuple(order)
    if sorted(order) != list(range(len(shape))):
        raise LayoutError(f"{what}: order {order} is not a permutation of the {len(shape)} dimensions")
    P = _compact(shape)
    return Layout(tuple(shape[i] for i in order), tuple(P[i] for i in order))


def spatial(*shape: int, order=None) -> TVLayout:
    """``prod(shape)`` threads, one element each, covering a tile of ``shape``."""
    L = _ordered(shape, order, "spatial")
    return TVLayout(Layout((coalesce(L).shape, 1), (coalesce(L).stride, 0)), shape)


def local(*shape: int, order=None) -> TVLayout:
    """One thread holding a whole tile of ``shape`` as its values."""
    L = coalesce(_ordered(shape, order, "local"))
    return TVLayout(Layout((1, L.shape), (0, L.stride)), shape)


def replicate(n: int) -> TVLayout:
    """``n`` threads that all hold the same (single) element: stride 0 in the thread mode."""
    return TVLayout(Layout((n, 1), (0, 0)), (1,))


def _split_lanes(mode: Layout) -> Layout:
    """Coalesce a thread mode and, above one warp, shape it ``(32 lanes, warps)`` where possible."""
    pairs = coalesce_leaves(mode.leaves())
    if mode.size > 32 and mode.size % 32 == 0:
        lanes, rest, acc = [], list(pairs), 1
        while acc < 32 and rest and 32 % acc == 0:
            s, d = rest[0]
            need = 32 // acc
            if need % s == 0:
                lanes.append(rest.pop(0))
                acc *= s
            elif s % need == 0:
                lanes.append((need, d))
                rest[0] = (s // need, d * need)
                acc = 32
            else:
                break
        if acc == 32:
            lo, hi = _mode(lanes), _mode(rest)
            return Layout((lo.shape, hi.shape), (lo.stride, hi.stride))
    return _mode(pairs)


def _mode(pairs) -> Layout:
    pairs = list(pairs) or [(1, 0)]
    if len(pairs) == 1:
        return Layout(pairs[0][0], pairs[0][1])
    return Layout(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


def tv_product(a: TVLayout, b: TVLayout) -> TVLayout:
    """``a * b``: ``b`` arranges copies of ``a``'s tile (blocked product; module docstring)."""
    r = max(len(a.tile), len(b.tile))
    ta = a.tile + (1,) * (r - len(a.tile))
    tb = b.tile + (1,) * (r - len(b.tile))
    tile = tuple(x * y for x, y in zip(ta, tb))
    P = _compact(tile)
    ea = Layout(ta, P)                                    # a's tile index -> product tile index
    eb = Layout(tb, tuple(x * p for x, p in zip(ta, P)))  # b's tile index -> its block's corner
    pa, pb = compose(ea, a.layout), compose(eb, b.layout)
    thr = _split_lanes(Layout((pa[0].shape, pb[0].shape), (pa[0].stride, pb[0].stride)))
    val = _mode(coalesce_leaves(Layout((pa[1].shape, pb[1].shape), (pa[1].stride, pb[1].stride)).leaves()))
    return TVLayout(Layout((thr.shape, val.shape), (thr.stride, val.stride)), tile)


#: mma.sync.aligned.m16n8k16 (f16/bf16 inputs) fragments, tiles (rows, cols).
MMA_M16N8K16_A = local(1, 2) * spatial(8, 4, order=(1, 0)) * local(2, 2)   # A: 16 x 16 (m, k)
MMA_M16N8K16_B = local(2, 1) * spatial(4, 8) * local(2, 1)                  # B: 16 x 8  (k, n)
MMA_M16N8K16_C = local(1, 2) * spatial(8, 4, order=(1, 0)) * local(2, 1)   # C/D: 16 x 8 (m, n), f32
