"""The ``Layout``: a function from a hierarchical coordinate space to integer offsets.

A layout is a pair of congruent int-tuples, a **shape** (positive sizes) and a **stride**
(non-negative integers). Coordinates are colexicographic (first mode fastest). The layout maps
the coordinate ``c`` to ``sum(c_i * d_i)`` over its leaves, and a linear index ``i`` in
``[0, size)`` to the value at the coordinate ``idx2crd(i, shape)``. A stride of 0 broadcasts
(every coordinate of that mode maps to the same offset). Omitting the stride gives the compact
column-major layout. The text form is CuTe's ``shape:stride``.

>>> L = Layout((4, (8, 2)), (16, (1, 8)))
>>> str(L)
'(4,(8,2)):(16,(1,8))'
>>> L.size, L.cosize, L.rank, L.depth
(64, 64, 2, 2)
>>> L(5), L(1, (1, 0)), L((1, 1))
(17, 17, 17)
>>> Layout.parse("(4,(8,2)):(16,(1,8))") == L
True
>>> str(Layout(8)), str(Layout((2, 3)))
('8:1', '(2,3):(1,2)')
>>> L.table()[:6].tolist()
[0, 16, 32, 48, 1, 17]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .inttuple import IntTuple

#: Largest domain :meth:`Layout.table` enumerates unless told otherwise.
TABLE_LIMIT = 1 << 24


@dataclass(frozen=True, slots=True)
class Layout:
    """``Layout(shape, stride=None)``: see the module docstring."""

    shape: IntTuple
    stride: IntTuple = None

    def __post_init__(self):
        shape = it.normalize(self.shape, "shape")
        for s in it.flatten(shape):
            if s < 1:
                raise LayoutError(f"shape {it.fmt(shape)} has a size {s}; sizes are positive integers")
        if self.stride is None:
            stride = it.compact_strides(shape)
        else:
            stride = it.normalize(self.stride, "stride")
            if not it.congruent(shape, stride):
                raise LayoutError(f"stride {it.fmt(stride)} does not have the structure of the shape "
                                  f"{it.fmt(shape)}")
            for d in it.flatten(stride):
                if d < 0:
                    raise LayoutError(f"stride {it.fmt(stride)} has a negative entry {d}; strides are "
                                      f"non-negative integers (0 broadcasts)")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "stride", stride)

    # -- text --------------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{it.fmt(self.shape)}:{it.fmt(self.stride)}"

    def __repr__(self) -> str:
        return f"Layout({self.shape!r}, {self.stride!r})"

    @classmethod
    def parse(cls, text: str) -> "Layout":
        """Parse ``shape:stride`` (or a bare ``shape``, meaning the compact layout)."""
        r = it._Reader(text)
        shape = r.inttuple()
        stride = None
        if r.peek() == ":":
            r.pos += 1
            stride = r.inttuple()
        if not r.at_end():
            r.fail("unexpected text after the layout")
        return cls(shape, stride)

    # -- measures ----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of coordinates (the product of the shape)."""
        return it.product(self.shape)

    @property
    def cosize(self) -> int:
        """One past the largest offset: ``L(size - 1) + 1`` (strides are non-negative)."""
        return sum((s - 1) * d for s, d in self.leaves()) + 1

    @property
    def rank(self) -> int:
        """Number of top-level modes (1 for an int shape)."""
        return 1 if it.is_int(self.shape) else len(self.shape)

    @property
    def depth(self) -> int:
        return it.depth(self.shape)

    def leaves(self) -> tuple:
        """The flat ``(size, stride)`` pairs in colexicographic order."""
        return tuple(zip(it.flatten(self.shape), it.flatten(self.stride)))

    # -- modes -------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> "Layout":
        """Mode ``i`` as a layout (``L[0]`` of an int-shaped layout is the layout itself)."""
        if it.is_int(self.shape):
            if i in (0, -1):
                return self
            raise LayoutError(f"layout {self} has rank 1; no mode {i}")
        if not -len(self.shape) <= i < len(self.shape):
            raise LayoutError(f"layout {self} has rank {len(self.shape)}; no mode {i}")
        return Layout(self.shape[i], self.stride[i])

    def modes(self) -> tuple:
        return tuple(self[i] for i in range(self.rank))

    # -- evaluation --------------------------------------------------------------------------
    def __call__(self, *crd):
        """Evaluate at a linear index, a coordinate tuple, or ``L(i, j, ...)`` (one entry per mode).

        A numpy integer array of linear indices is evaluated elementwise.
        """
        if len(crd) == 1:
            crd = crd[0]
        if isinstance(crd, np.ndarray):
            return self._eval_array(crd)
        crd = it.normalize(crd, "coordinate")
        if it.is_int(crd):
            if not 0 <= crd < self.size:
                raise LayoutError(f"index {crd} is out of range for the layout {self} of size {self.size}")
            return _eval_int(crd, self.shape, self.stride)
        return _eval_crd(crd, self.shape, self.stride, self)

    def _eval_array(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            bad = idx[(idx < 0) | (idx >= self.size)].flat[0]
            raise LayoutError(f"index {int(bad)} is out of range for the layout {self} of size {self.size}")
        out = np.zeros(idx.shape, dtype=np.int64)
        rest = idx.copy()
        for s, d in self.leaves():
            if d:
                out += (rest % s) * d
            rest //= s
        return out

    def table(self, limit: int = TABLE_LIMIT) -> np.ndarray:
        """The layout evaluated at every linear index ``0 .. size-1`` (int64), the brute-force oracle."""
        n = self.size
        if n > limit:
            raise LayoutError(f"layout {self} has {n} coordinates, more than the table limit {limit}")
        t = np.zeros(1, dtype=np.int64)
        for s, d in self.leaves():
            t = (np.arange(s, dtype=np.int64)[:, None] * d + t[None, :]).ravel()
        return t

    # -- operators -----------------------------------------------------------------------------
    def __mul__(self, other):
        """``a * b`` is ``blocked_product(a, b)``."""
        if not isinstance(other, Layout):
            return NotImplemented
        from .divide import blocked_product
        return blocked_product(self, other)


def _eval_int(idx: int, shape, stride) -> int:
    out = 0
    for s, d in zip(it.flatten(shape), it.flatten(stride)):
        out += (idx % s) * d
        idx //= s
    return out


def _eval_crd(crd, shape, stride, whole) -> int:
    if it.is_int(crd):
        n = it.product(shape)
        if not 0 <= crd < n:
            raise LayoutError(f"coordinate entry {crd} is out of range for the mode {it.fmt(shape)} "
                              f"of {whole}")
        return _eval_int(crd, shape, stride)
    if it.is_int(shape) or len(crd) != len(shape):
        raise LayoutError(f"coordinate {it.fmt(crd)} does not match the shape {it.fmt(whole.shape)} of {whole}")
    return sum(_eval_crd(c, s, d, whole) for c, s, d in zip(crd, shape, stride))


# -- module-level measures (accept a Layout or a shape) --------------------------------------------
def size(x) -> int:
    """``size(L)``: number of coordinates; also accepts a shape int-tuple."""
    return x.size if isinstance(x, Layout) else it.product(it.normalize(x))


def cosize(x: Layout) -> int:
    """``cosize(L)``: one past the largest offset."""
    return x.cosize


def rank(x) -> int:
    """``rank(L)``: number of top-level modes; also accepts a shape int-tuple."""
    if isinstance(x, Layout):
        return x.rank
    x = it.normalize(x)
    return 1 if it.is_int(x) else len(x)


def depth(x) -> int:
    """``depth(L)``: nesting depth of the shape (0 for an int shape)."""
    return x.depth if isinstance(x, Layout) else it.depth(it.normalize(x))


def table(x: Layout, limit: int = TABLE_LIMIT) -> np.ndarray:
    return x.table(limit)


def make_layout(*layouts: Layout) -> Layout:
    """Concatenate layouts as the modes of a new one: ``make_layout(4:1, 2:8) == (4,2):(1,8)``."""
    if not layouts:
        raise LayoutError("make_layout needs at least one layout")
    return Layout(tuple(l.shape for l in layouts), tuple(l.stride for l in layouts))


def row_major(*shape) -> Layout:
    """The compact layout whose **last** mode is contiguous: ``row_major(4, 8) == (4,8):(8,1)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = it.normalize(tuple(shape), "shape")
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= it.product(s)
    # nested modes are laid out column-major inside themselves, then scaled
    out = tuple(_scale(it.compact_strides(s), d) for s, d in zip(shape, reversed(strides)))
    return Layout(shape, out)


def col_major(*shape) -> Layout:
    """The compact colexicographic layout ``Layout(shape)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Layout(tuple(shape))


def _scale(x: IntTuple, k: int) -> IntTuple:
    return x * k if it.is_int(x) else tuple(_scale(e, k) for e in x)
