"""Shape instructions without data movement: when every thread already holds, in its own registers,
each source element its result slots need, the result is the same LLVM values in another order.

Decided at compile time on layout tables (``TVLayout.table()``: thread x value -> colexicographic tile
index). For result slot ``u``, :func:`free_slots` looks for a source slot ``v`` such that for every
thread ``t`` holding result values, source slot ``(t, v)`` is the element result slot ``(t, u)`` reads;
the choice must not depend on ``t`` (slots are compile-time registers). Otherwise the instruction goes
through shared memory (:mod:`.exchange`).

Worked example: ``x[:, None]`` of ``f32[16]`` held as 16 threads x 1 value (thread ``t`` holds
``x[t]``), result ``[16, 1]`` in the carried layout (thread ``t`` holds ``(t, 0)``): result slot 0 of
thread ``t`` reads ``x[t]``, which is source slot 0 of thread ``t`` -- ``[0]``, free. The same result
in a layout where thread ``t`` holds ``(t // 2, 0)`` is not free: thread 1 would need ``x[0]``.

The element maps (result tile index -> source tile index, both colexicographic) are numpy versions of
the coordinate maps the exchange rules use.
"""
from __future__ import annotations

import numpy as np


def free_slots(src_layout, out_layout, src_of) -> list[int] | None:
    """Per result slot, the source slot holding its element in the same thread, or None.

    ``src_of``: numpy function from an array of result tile indices to source tile indices."""
    To = out_layout.table()
    Ti = src_layout.table()
    if To.shape[0] > Ti.shape[0]:
        return None
    want = np.asarray(src_of(To))                         # (T_out, V_out) source indices
    have = Ti[:To.shape[0]]                               # (T_out, V_in)
    first: dict[int, list[int]] = {}
    for v, e in enumerate(have[0].tolist()):              # candidates from thread 0, checked on all threads
        first.setdefault(e, []).append(v)
    out = []
    for u in range(want.shape[1]):
        v = next((v for v in first.get(int(want[0, u]), ()) if np.array_equal(have[:, v], want[:, u])), None)
        if v is None:
            return None
        out.append(v)
    return out


def _unravel(idx, shape):
    return list(np.unravel_index(idx, shape, order="F")) if shape else []


def _ravel(coords, shape):
    if not shape:
        return np.zeros_like(coords[0]) if coords else 0
    return np.ravel_multi_index(tuple(coords), tuple(shape), order="F")


def identity_map(shape):
    return lambda idx: idx


def broadcast_map(x_shape, out_shape):
    """Result ``c`` reads ``x[c]`` with the broadcast axes (size 1 in x) at 0."""
    def f(idx):
        c = _unravel(idx, out_shape)
        return _ravel([np.zeros_like(a) if s == 1 else a for a, s in zip(c, x_shape)], x_shape)
    return f


def expand_dims_map(x_shape, out_shape, axis: int):
    def f(idx):
        c = _unravel(idx, out_shape)
        return _ravel(c[:axis] + c[axis + 1:], x_shape)
    return f


def reshape_map(x_shape, out_shape):
    """Row-major order is kept: result element at row-major position ``p`` is x's at ``p``."""
    def f(idx):
        c = _unravel(idx, out_shape)
        lin = np.ravel_multi_index(tuple(c), tuple(out_shape), order="C") if out_shape else idx
        return _ravel(list(np.unravel_index(lin, tuple(x_shape), order="C")), x_shape)
    return f


def permute_map(x_shape, out_shape, perm):
    """Result coordinate ``c`` reads x at ``s`` with ``s[perm[k]] = c[k]``."""
    def f(idx):
        c = _unravel(idx, out_shape)
        s = [None] * len(perm)
        for k, p in enumerate(perm):
            s[p] = c[k]
        return _ravel(s, x_shape)
    return f


__all__ = ["free_slots", "identity_map", "broadcast_map", "expand_dims_map", "reshape_map", "permute_map"]
