"""Hierarchical integer tuples ("int-tuples"), the shapes and strides of layouts.

An int-tuple is a Python ``int`` or a non-empty ``tuple`` of int-tuples. Coordinates are
**colexicographic** everywhere: the first mode is the fastest, so in shape ``(4, (8, 2))`` the
linear index of the coordinate ``(a, (b, c))`` is ``a + 4*b + 32*c``.

>>> flatten((4, (8, 2)))
(4, 8, 2)
>>> product((4, (8, 2)))
64
>>> idx2crd(37, (4, (8, 2)))
(1, (1, 1))
>>> crd2idx((1, (1, 1)), (4, (8, 2)))
37
>>> fmt((4, (8, 2)))
'(4,(8,2))'
>>> parse_inttuple("(4, (8,2))")
(4, (8, 2))
"""
from __future__ import annotations

import operator
from typing import Union

from ..errors import LayoutError

IntTuple = Union[int, tuple]


def is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def normalize(x, what: str = "int-tuple") -> IntTuple:
    """Return ``x`` as an int-tuple of plain Python ints (numpy integers accepted, lists become tuples)."""
    if isinstance(x, (tuple, list)):
        if len(x) == 0:
            raise LayoutError(f"empty tuple in {what}: every tuple in a shape or stride needs a mode")
        return tuple(normalize(e, what) for e in x)
    if isinstance(x, bool):
        raise LayoutError(f"{what} holds a bool ({x!r}); shapes and strides are integers")
    try:
        return operator.index(x)
    except TypeError:
        raise LayoutError(f"{what} holds {x!r} ({type(x).__name__}); shapes and strides are integers "
                          f"or tuples of them") from None


def flatten(x: IntTuple) -> tuple:
    """The leaves of ``x`` in order, as a flat tuple (an int becomes a 1-tuple)."""
    if is_int(x):
        return (x,)
    return tuple(leaf for e in x for leaf in flatten(e))


def product(x: IntTuple) -> int:
    """The product of the leaves."""
    p = 1
    for leaf in flatten(x):
        p *= leaf
    return p


def depth(x: IntTuple) -> int:
    """0 for an int, 1 + the deepest child for a tuple."""
    return 0 if is_int(x) else 1 + max(depth(e) for e in x)


def congruent(a: IntTuple, b: IntTuple) -> bool:
    """Whether ``a`` and ``b`` have the same tree structure."""
    if is_int(a) or is_int(b):
        return is_int(a) and is_int(b)
    return len(a) == len(b) and all(congruent(x, y) for x, y in zip(a, b))


def unflatten(leaves, like: IntTuple) -> IntTuple:
    """Rebuild a tree shaped like ``like`` from a flat sequence of leaves (any objects)."""
    it = iter(leaves)

    def build(t):
        return next(it) if is_int(t) else tuple(build(e) for e in t)

    out = build(like)
    return out


def compact_strides(shape: IntTuple) -> IntTuple:
    """Colexicographic (column-major) strides of ``shape``: ``(4, (8, 2)) -> (1, (4, 32))``."""
    acc = 1
    out = []
    for s in flatten(shape):
        out.append(acc)
        acc *= s
    return unflatten(out, shape)


def idx2crd(idx: int, shape: IntTuple) -> IntTuple:
    """The colexicographic coordinate of linear index ``idx`` in ``shape`` (no bounds check)."""
    leaves = []
    for s in flatten(shape):
        leaves.append(idx % s)
        idx //= s
    return unflatten(leaves, shape)


def crd2idx(crd: IntTuple, shape: IntTuple) -> int:
    """The colexicographic linear index of ``crd`` in ``shape``.

    ``crd`` may be coarser than ``shape``: an int where ``shape`` has a tuple is an index within
    that mode.
    """
    if is_int(crd):
        return crd
    if is_int(shape):
        raise LayoutError(f"coordinate {fmt(crd)} has more structure than the shape {shape}")
    if len(crd) != len(shape):
        raise LayoutError(f"coordinate {fmt(crd)} has {len(crd)} modes but the shape {fmt(shape)} "
                          f"has {len(shape)}")
    idx, acc = 0, 1
    for c, s in zip(crd, shape):
        idx += crd2idx(c, s) * acc
        acc *= product(s)
    return idx


def fmt(x: IntTuple) -> str:
    """CuTe text form without spaces: ``(4,(8,2))``; an int prints as itself."""
    if is_int(x):
        return str(x)
    return "(" + ",".join(fmt(e) for e in x) + ")"


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, msg: str):
        raise LayoutError(f"cannot parse {self.text!r} at column {self.pos + 1}: {msg}")

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            self.fail(f"expected {ch!r}, found {self.peek() or 'end of text'!r}")
        self.pos += 1

    def inttuple(self) -> IntTuple:
        c = self.peek()
        if c == "(":
            self.pos += 1
            items = [self.inttuple()]
            while self.peek() == ",":
                self.pos += 1
                if self.peek() == ")":  # trailing comma: "(8,)"
                    break
                items.append(self.inttuple())
            self.expect(")")
            return tuple(items)
        start = self.pos
        if c == "-":
            self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1
        if self.pos == start or self.text[start:self.pos] == "-":
            self.fail(f"expected an integer or '(', found {c or 'end of text'!r}")
        return int(self.text[start:self.pos])

    def at_end(self) -> bool:
        return self.peek() == ""


def parse_inttuple(text: str) -> IntTuple:
    """Parse ``"(4,(8,2))"`` (spaces allowed); parentheses always make a tuple, so ``"(8)"`` is ``(8,)``."""
    r = _Reader(text)
    out = r.inttuple()
    if not r.at_end():
        r.fail("unexpected text after the int-tuple")
    return out
