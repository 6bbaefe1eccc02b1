"""Composition, complement and inverses, each exact or a ``LayoutError`` that names the reason.

**Composition** ``compose(a, b)`` is "a after b": ``compose(a, b)(i) == a(b(i))`` for every ``i``
in ``[0, size(b))``, with the shape of ``b`` (each leaf of ``b`` possibly refined into a tuple).
``b`` must stay inside ``a``'s domain ``[0, size(a))``.

How it is computed: ``a``'s non-trivial leaves are the digits of a mixed-radix number system
(radix ``s_j``, place value ``r_j = s_0 ... s_{j-1}``). A leaf ``s:d`` of ``b`` with ``d = u*r_p``
either stays inside digit ``p`` (``(s-1)*u < s_p``) or walks up whole digits (``u`` divides
``s_p``, the next sizes divide what is left, the last digit is a prefix). Then ``i*d`` has
carry-free digits and ``a(i*d)`` is a layout. When the leaves of ``b`` together never overflow a
digit, ``a(b(x))`` is the sum of the parts, so the result is exact by construction (results of
at most ``VALIDATE_LIMIT`` elements are re-checked against ``table()`` anyway). Otherwise — the
"subtle" cases where pycute silently returns wrong layouts — the composition is enumerated
(``FIT_LIMIT`` elements at most), a layout is fitted along each mode of ``b`` and verified on the
whole domain; if no layout fits, ``LayoutError`` says why.

>>> str(compose(Layout((4, 8), (8, 1)), Layout((2, 2), (1, 4))))
'(2,2):(8,1)'
>>> str(compose(Layout((3, 4), (1, 10)), Layout(2, 2)))        # inside one digit of a
'2:2'
>>> str(compose(Layout((6, 2), (8, 2)), Layout((4, 3), (3, 1))))
'((2,2),3):((24,2),8)'
>>> compose(Layout((2, 2), (1, 10)), Layout((2, 2), (1, 1)))
Traceback (most recent call last):
  ...
vmlang.ir.errors.LayoutError: compose(a, b) with a = (2,2):(1,10), b = (2,2):(1,1): a∘b is not a layout: a(b(x)) is not a sum over the modes of b (at index 3: a(b(3)) = 10, the modes give 2); modes 0 and 1 of b overlap in mode 0 of a (size 2): their offsets there add up to 2 and would carry

**Complement** ``complement(a, m)`` is the layout ``c`` with increasing strides such that
``(a, c)`` is a bijection onto ``[0, m)`` (stride-0 modes of ``a`` are ignored). It exists when
the modes of ``a``, sorted by stride, nest: each stride is a multiple of the previous extent
``size*stride``, and ``m`` is a multiple of the last extent.

>>> str(complement(Layout(4, 2), 16))
'(2,2):(1,8)'
>>> str(complement(Layout((2, 2), (1, 3)), 8))
Traceback (most recent call last):
  ...
vmlang.ir.errors.LayoutError: complement((2,2):(1,3), 8): the modes of a do not nest: stride 3 is not a multiple of 2, the extent (size*stride) of the modes below it

>>> str(right_inverse(Layout((4, 8), (8, 1))))
'(8,4):(4,1)'
>>> str(left_inverse(Layout(4, 2)))
'(2,4):(4,1)'
"""
from __future__ import annotations

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .algebra import _from_leaves, coalesce, coalesce_leaves, fit_leaves, is_injective
from .core import Layout, make_layout

#: Largest composition enumerated when the algebraic rule does not apply.
FIT_LIMIT = 1 << 20
#: Algebraic results of at most this many elements are re-checked against ``table()``.
VALIDATE_LIMIT = 1 << 12
#: Counters for tests: ``algebra_mismatch`` must stay 0; ``fallback`` counts enumerated compositions.
STATS = {"algebra_mismatch": 0, "fallback": 0}


def _as_layout(x, what: str) -> Layout:
    if isinstance(x, Layout):
        return x
    if it.is_int(x):
        return Layout(x)
    raise LayoutError(f"{what}: expected a Layout, an int (n means n:1) or a tuple of them, got {x!r}")


def compose(a: Layout, b) -> Layout:
    """``a`` after ``b`` (see the module docstring). ``b`` may also be an int ``n`` (meaning
    ``n:1``) or a tuple "tiler" composed mode by mode with ``a``'s top modes (``None`` keeps a mode).
    """
    if isinstance(b, (tuple, list)):
        return _compose_by_mode(a, tuple(b))
    b = _as_layout(b, "compose")
    top = b.cosize - 1
    if top >= a.size:
        raise LayoutError(f"compose(a, b) with a = {a}, b = {b}: b reaches offset {top} but a is only "
                          f"defined on [0, {a.size})")
    res = _compose_algebraic(a, b)
    if isinstance(res, Layout):
        if b.size > VALIDATE_LIMIT or np.array_equal(res.table(), a(b.table())):
            return res
        STATS["algebra_mismatch"] += 1
        reason = f"internal check of the algebraic result {res} failed"
    else:
        reason = res
    return _compose_by_table(a, b, reason)


def _compose_by_mode(a: Layout, tiler: tuple) -> Layout:
    if len(tiler) > a.rank:
        raise LayoutError(f"compose: the tiler has {len(tiler)} modes but {a} has rank {a.rank}")
    modes = []
    for i in range(a.rank):
        t = tiler[i] if i < len(tiler) else None
        modes.append(a[i] if t is None else compose(a[i], t))
    return make_layout(*modes)


def _compose_algebraic(a: Layout, b: Layout):
    """The composition as a Layout, or a string saying which digit condition failed."""
    digits = [(s, d) for s, d in a.leaves() if s > 1]
    places, acc = [], 1
    for s, _ in digits:
        places.append(acc)
        acc *= s
    foot = [0] * len(digits)
    users: list = [[] for _ in digits]
    out = []
    for k, (s, d) in enumerate(b.leaves()):
        if s == 1 or d == 0:
            out.append([(s, 0)] if s > 1 else [])
            continue
        p = max(j for j in range(len(digits)) if places[j] <= d and d % places[j] == 0)
        u = d // places[p]
        sp, dp = digits[p]
        if u >= sp:
            return (f"stride {d} of mode {k} of b falls between the modes of a (a multiple of "
                    f"{places[p]} but not of {places[p] * sp})")
        if (s - 1) * u < sp:
            pieces = [(s, u * dp)]
            foot[p] += (s - 1) * u
            users[p].append(k)
        else:
            if sp % u:
                return (f"mode {k} of b ({s}:{d}) steps by {u} across mode {p} of a, whose size {sp} "
                        f"is not a multiple of {u}")
            t0 = sp // u
            if s % t0:
                return (f"mode {k} of b ({s}:{d}) leaves mode {p} of a after {t0} steps, and {t0} does "
                        f"not divide {s}")
            pieces = [(t0, u * dp)]
            foot[p] += sp - u
            users[p].append(k)
            rest, q = s // t0, p + 1
            while rest > 1:
                if q >= len(digits):
                    return f"mode {k} of b ({s}:{d}) runs past the last mode of a"
                sq, dq = digits[q]
                users[q].append(k)
                if rest <= sq:
                    pieces.append((rest, dq))
                    foot[q] += rest - 1
                    rest = 1
                elif rest % sq:
                    return (f"mode {k} of b ({s}:{d}) covers mode {q} of a (size {sq}) with {rest} "
                            f"steps left, not a multiple of {sq}")
                else:
                    pieces.append((sq, dq))
                    foot[q] += sq - 1
                    rest //= sq
                    q += 1
        out.append(coalesce_leaves(pieces))
    for j, (s, _) in enumerate(digits):
        if foot[j] >= s:
            who = " and ".join(str(k) for k in users[j])
            return (f"modes {who} of b overlap in mode {j} of a (size {s}): their offsets there add up "
                    f"to {foot[j]} and would carry")
    return _build(out, b)


def _build(leaf_pieces: list, b: Layout) -> Layout:
    shapes, strides = [], []
    for pieces in leaf_pieces:
        if not pieces:
            shapes.append(1)
            strides.append(0)
        elif len(pieces) == 1:
            shapes.append(pieces[0][0])
            strides.append(pieces[0][1])
        else:
            shapes.append(tuple(p[0] for p in pieces))
            strides.append(tuple(p[1] for p in pieces))
    return Layout(it.unflatten(shapes, b.shape), it.unflatten(strides, b.shape))


def _compose_by_table(a: Layout, b: Layout, reason: str) -> Layout:
    head = f"compose(a, b) with a = {a}, b = {b}"
    n = b.size
    if n > FIT_LIMIT:
        raise LayoutError(f"{head}: {reason}; the result has {n} elements, too many to check by "
                          f"enumeration (limit {FIT_LIMIT})")
    STATS["fallback"] += 1
    T = a(b.table())
    pieces, pos = [], 1
    for k, (s, _) in enumerate(b.leaves()):
        vals = T[np.arange(s, dtype=np.int64) * pos]
        modes = fit_leaves(vals)
        if modes is None:
            shown = ", ".join(str(int(v)) for v in vals[:8]) + (", ..." if s > 8 else "")
            raise LayoutError(f"{head}: a∘b is not a layout: along mode {k} of b the offsets are "
                              f"[{shown}], not a strided pattern; {reason}")
        pieces.append(modes)
        pos *= s
    res = _build(pieces, b)
    got = res.table()
    if not np.array_equal(got, T):
        x = int(np.flatnonzero(got != T)[0])
        raise LayoutError(f"{head}: a∘b is not a layout: a(b(x)) is not a sum over the modes of b (at "
                          f"index {x}: a(b({x})) = {int(T[x])}, the modes give {int(got[x])}); {reason}")
    return res


# -- complement ---------------------------------------------------------------------------------
def _sorted_modes(a: Layout, what: str) -> list:
    pairs = sorted(((s, d) for s, d in a.leaves() if s > 1 and d != 0), key=lambda p: p[1])
    for (s0, d0), (s1, d1) in zip(pairs, pairs[1:]):
        if d0 == d1:
            raise LayoutError(f"{what}: a is not injective: two modes have the same stride {d0}")
    return pairs


def extent(a: Layout) -> int:
    """``size*stride`` of the largest-stride mode (ignoring stride-0 and size-1 modes), or 1.

    For a layout whose modes nest this is the length of the smallest interval ``[0, m)`` that
    ``a`` tiles: ``extent(4:2) == 8``.
    """
    pairs = sorted(((s, d) for s, d in a.leaves() if s > 1 and d != 0), key=lambda p: p[1])
    return pairs[-1][0] * pairs[-1][1] if pairs else 1


def complement(a: Layout, m: int | None = None) -> Layout:
    """The layout ``c`` with ``(filter(a), c)`` a bijection onto ``[0, m)`` (see the module docstring).

    ``m`` defaults to ``extent(a)``. Raises when ``a`` is not injective on its non-broadcast
    modes, when its modes do not nest, or when ``m`` is not a multiple of the extent.
    """
    what = f"complement({a}, {m})" if m is not None else f"complement({a})"
    pairs = _sorted_modes(a, what)
    out, cur = [], 1
    for s, d in pairs:
        if d % cur:
            raise LayoutError(f"{what}: the modes of a do not nest: stride {d} is not a multiple of {cur}, "
                              f"the extent (size*stride) of the modes below it")
        out.append((d // cur, cur))
        cur = s * d
    if m is None:
        m = cur
    m = it.normalize(m, "m")
    if not it.is_int(m) or m < 1 or m % cur:
        raise LayoutError(f"{what}: m must be a positive multiple of {cur}, the extent of a")
    out.append((m // cur, cur))
    return _from_leaves(coalesce_leaves(out))


# -- inverses -----------------------------------------------------------------------------------
def right_inverse(a: Layout) -> Layout:
    """The layout ``r`` with ``a(r(i)) == i`` for every ``i < size(r)``, compact domain.

    ``size(r)`` is the length of the longest prefix ``[0, n)`` that ``a`` reaches through modes of
    strides ``1, s0, s0*s1, ...``; for an injective ``a`` that is the longest prefix of its
    image, and for a bijection ``r`` is the inverse.
    """
    pos, acc = [], 1
    for s, _ in a.leaves():
        pos.append(acc)
        acc *= s
    cand = sorted(((s, d, p) for (s, d), p in zip(a.leaves(), pos) if s > 1 and d != 0),
                  key=lambda x: x[1])
    out, cur = [], 1
    for s, d, p in cand:
        if d != cur:
            break
        out.append((s, p))
        cur *= s
    return coalesce(_from_leaves(out))


def left_inverse(a: Layout) -> Layout:
    """The layout ``l`` with ``l(a(i)) == i`` for every ``i < size(a)``; its size is ``extent(a)``.

    Requires ``a`` injective with nesting modes (then ``l`` is the inverse of ``(a, complement(a))``).
    """
    if not is_injective(a):
        raise LayoutError(f"left_inverse({a}): a is not injective, so no function undoes it")
    try:
        c = complement(a)
    except LayoutError as e:
        raise LayoutError(f"left_inverse({a}): a is injective but has no layout inverse: {e}") from None
    return right_inverse(make_layout(a, c))
