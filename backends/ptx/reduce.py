"""Reductions (``sum``, ``max``, ``min``) in three levels: within each thread, between the lanes of a warp
(``shfl.sync.bfly``) and between warps (shared memory), planned at compile time on the layout tables.

**The plan** (:func:`plan_reduction`, pure numpy). Input tile ``x`` has TVLayout table ``X`` (threads,
values) of tile indices; ``reduce_map`` sends each input index to its result index; the result layout
(``tvmaps.collapse`` of ``X`` after layout inference) has table ``O``: the same threads, one slot per
distinct result element, the threads along the axis replicated (stride 0).

1. *Within the thread*: result slot ``w`` combines the input slots whose result element is ``O[t, w]``;
   that grouping must be the same for every thread (straight-line code), else no plan.
2. *Lanes*: for each thread-index bit ``j < 5`` along which ``O`` is replicated, thread ``t`` combines its
   partial with that of ``t ^ (1 << j)`` through ``shfl.sync.bfly`` (full mask: every thread runs it).
3. *Warps*: the replicated bits ``j >= 5`` form a mask ``M``; each thread writes its partials to scratch at
   its thread index, and reads and combines the ``2**popcount(M)`` partners ``(t & ~M) | h`` in ascending
   ``h`` (one fixed order: every replica gets the same bits).

Threads ``t >= X.threads`` (and partners beyond the block) contribute the identity (``-0.0`` for float
sums, NaN for maxnum/minnum, 0 / the extreme integer / ``false``/``true`` otherwise), so thread counts that
are not powers of two are fine. The plan is checked by simulating it on sets: per (thread, slot) the axis
coordinates of the input elements combined so far and which result element they belong to; every step
must combine disjoint sets of the same result element and at the end every result holder must hold the
whole preimage of its element. When anything fails (layouts that do not match, non-uniform grouping,
replicated inputs that a step would count twice, ...), the rule falls back to :func:`_reduce_scratch`:
the tile goes to shared scratch and every thread combines its whole axis serially.

Worked example: GEMV ``sum(w * x[None, :], axis=1)`` on f32 ``[16, 256]``, 128 threads. The default
layout gives each thread 4 consecutive columns of 8 rows; 64 threads cover a row, 2 thread groups the rows:

>>> from vmlang.passes.tvmaps import default_layout, collapse, reduce_map
>>> X = default_layout((16, 256), 32, 128)
>>> O = collapse(X, reduce_map((16, 256), 1), (16,))
>>> p = plan_reduction(X.table(), (16, 256), 1, O.table(), 128)
>>> [len(g) for g in p.groups], p.lane_bits, bin(p.shared_mask), p.scope
([4, 4, 4, 4, 4, 4, 4, 4], (0, 1, 2, 3, 4), '0b100000', 'block')

so each thread adds 4 values per row, 5 butterfly steps combine the 32 lanes, and the two warps that share
a row combine through shared memory (``2 * 8`` reads per thread instead of ``256 * 8``).

Semantics (as the VM): float max/min are maxnum/minnum (NaN only if all inputs are NaN); f16 sums add in
f32 and round once at the end, bf16 sums (held in f32) round to bf16 once at the end; integer sums wrap in
the repr width; bool sum/max are ``or``, min is ``and``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.types import BOOL

from . import convert as C
from .core import F16, F32, I1, I8, I16, I32, Tile, const_i32, lower
from .exchange import scratch_of

LANE_BITS = 5
#: above this many (thread, slot, axis position) cells the plan is not simulated (scratch fallback)
MAX_CELLS = 1 << 26


# ----------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ShufflePlan:
    """How a reduction combines: ``groups[w]`` the input slots combined into result slot ``w`` within each
    thread; ``lane_bits`` the thread-index bits (< 5) combined by butterfly shuffles, in order;
    ``shared_mask`` the thread-index bits combined through shared memory (those >= 5, and lane bits that
    only carry partials to threads holding none: a broadcast, as for a scalar result), ``shared_parts`` the
    partners ``h`` (bits of ``shared_mask``) whose partials thread ``t`` reads at ``(t & ~shared_mask) | h``,
    in that order (partners that hold nothing for any thread are left out); ``threads_in`` the input
    layout's thread count (later threads contribute the identity); ``block_threads`` the block's."""
    groups: tuple
    lane_bits: tuple
    shared_mask: int
    shared_parts: tuple
    threads_in: int
    block_threads: int

    @property
    def scope(self) -> str:
        return "block" if self.shared_mask else "warp" if self.lane_bits else "thread"


def plan_reduction(x_tbl, in_shape, axis: int, out_tbl, block_threads: int):
    """The :class:`ShufflePlan` of reducing a tile of ``in_shape`` laid out by table ``x_tbl`` along
    ``axis`` into the result layout table ``out_tbl`` (None: a scalar result, held by every thread of the
    block), or a string saying why there is none (the caller then uses the scratch algorithm)."""
    x_tbl = np.asarray(x_tbl, np.int64)
    in_shape = tuple(int(s) for s in in_shape)
    T = int(block_threads)
    if out_tbl is None:
        out_tbl = np.zeros((T, 1), np.int64)
    out_tbl = np.asarray(out_tbl, np.int64)
    if x_tbl.ndim != 2 or out_tbl.ndim != 2 or x_tbl.size == 0 or out_tbl.size == 0:
        return "empty layout table"
    (Tin, Vin), (Tout, Vout) = x_tbl.shape, out_tbl.shape
    if Tin > Tout or Tout > T:
        return f"input on {Tin} threads, result on {Tout} threads, block of {T}"
    if Vout > 1 and (np.diff(np.sort(out_tbl, axis=1), axis=1) == 0).any():
        return "a thread holds a result element in two slots"
    from vmlang.passes.tvmaps import reduce_map
    g = reduce_map(in_shape, axis)
    n = in_shape[axis]
    r_of = np.unravel_index(np.arange(int(np.prod(in_shape))), in_shape, order="F")[axis]

    # 1. within each thread: the same grouping of input slots into result slots everywhere
    match = g[x_tbl][:, :, None] == out_tbl[:Tin, None, :]           # (Tin, Vin, Vout)
    if not match.any(-1).all():
        return "a thread holds input elements of a result element it does not hold"
    key = match.argmax(-1)
    if not (key == key[0]).all():
        return "threads group their value slots into result slots differently"
    P = 1 << max(0, (Tout - 1).bit_length())
    if P * Vout * n > MAX_CELLS:
        return "too large to plan"
    cnt = np.zeros((P, Vout, n), np.int64)
    np.add.at(cnt, (np.repeat(np.arange(Tin), Vin), key.ravel(), r_of[x_tbl].ravel()), 1)
    if cnt.max() > 1:
        return "a thread holds an input element twice"
    S = cnt > 0                                                      # sets of axis positions
    owner = np.full((P, Vout), -1, np.int64)                         # their result element (-1: none yet)
    owner[:Tout] = out_tbl
    ar = np.arange(P)
    exists = ar < T

    def replicated(b):
        p = ar ^ b
        m = (ar < Tout) & (p < Tout)
        return bool((out_tbl[ar[m]] == out_tbl[p[m]]).all())

    def merge(S, owner, p, ex):
        """Combine each existing thread's sets with partner ``p``'s (disjointness checked by the caller)."""
        pn = S.any(-1)[p] & ex[:, None]
        po = owner[p]
        if (pn & (owner != -1) & (owner != po)).any():
            return None
        owner = np.where((owner == -1) & pn, po, owner)
        return np.where(ex[:, None, None], S | S[p], S), owner

    # 2. lanes: butterfly over the replicated bits where partners both hold something to combine
    lane_bits, mask = [], 0
    for j in range(min(LANE_BITS, P.bit_length() - 1)):
        b = 1 << j
        if not replicated(b):
            continue
        p = ar ^ b
        ex = exists & exists[p]
        if not (S[p] & ~S)[ex].any():
            continue                                                 # already replicated along j
        ne = S.any(-1)
        if not (ne & ne[p])[ex].any():
            mask |= b                          # only a broadcast: left to the shared-memory round
            continue
        if (S & S[p])[ex].any():
            return f"thread-index bit {j}: partners hold overlapping input elements"
        r = merge(S, owner, p, ex)
        if r is None:
            return f"thread-index bit {j}: partners hold different result elements"
        S, owner = r
        lane_bits.append(j)

    # 3. warps: one round through shared memory over the replicated bits >= 5 (and the broadcast bits)
    for j in range(LANE_BITS, P.bit_length() - 1):
        b = 1 << j
        p = ar ^ b
        ex = exists & exists[p]
        if replicated(b) and (S[p] & ~S)[ex].any():
            mask |= b
    parts = []
    if mask:
        U, Uo = np.zeros_like(S), owner.copy()
        total = np.zeros(S.shape[:2], np.int64)
        for h in (h for h in range(P) if h & ~mask == 0):
            q = (ar & ~mask) | h
            ex = exists & (q < T)
            if h and not S[q[ex]].any():
                continue                     # that partner holds nothing for any thread: not read
            parts.append(h)
            total += np.where(ex[:, None], S[q].sum(-1), 0)
            U = np.where(ex[:, None, None], U | S[q], U)
            pn = S.any(-1)[q] & ex[:, None]
            if (pn & (Uo != -1) & (Uo != owner[q])).any():
                return "warps combine partials of different result elements"
            Uo = np.where((Uo == -1) & pn, owner[q], Uo)
        if (total != U.sum(-1))[exists].any():
            return "warps hold overlapping input elements"
        S, owner = U, Uo

    # every result holder has the whole preimage of its element
    if not S[:Tout].all():
        return "the butterfly does not reach every input element"
    groups = tuple(tuple(int(v) for v in np.nonzero(key[0] == w)[0]) for w in range(Vout))
    return ShufflePlan(groups, tuple(lane_bits), mask, tuple(parts), Tin, T)


_PLANS: dict = {}


def _plan_for(lw, i, x: Tile):
    T = lw.kernel.warps * 32
    out_lay = None if i.out.is_scalar else lw.layout_of(i.out)
    key = (str(x.layout), tuple(i.x.shape), i.axis, None if out_lay is None else str(out_lay), T)
    if key not in _PLANS:
        if out_lay is not None and not hasattr(out_lay, "table"):
            _PLANS[key] = "the result layout is not a register layout"
        else:
            _PLANS[key] = plan_reduction(x.layout.table(), i.x.shape, i.axis,
                                         None if out_lay is None else out_lay.table(), T)
    return _PLANS[key], out_lay


# ----------------------------------------------------------------------------------- combining
def _combine(lw, cls, dt, acc, x):
    b = lw.b
    if dt.is_float:
        if cls is N.Sum:
            return b.fadd(acc, x)
        name = "llvm.maxnum.f32" if cls is N.ReduceMax else "llvm.minnum.f32"
        return b.call(lw.intrinsic(name, ir.FunctionType(F32, [F32, F32])), [acc, x])
    if dt == BOOL:
        return b.or_(acc, x) if cls in (N.Sum, N.ReduceMax) else b.and_(acc, x)
    if cls is N.Sum:
        return b.add(acc, x)
    lt = b.icmp_signed("<", x, acc) if dt.is_signed else b.icmp_unsigned("<", x, acc)
    return b.select(lt, x, acc) if cls is N.ReduceMin else b.select(lt, acc, x)


def _acc_dtype(dt):
    """The dtype partials are combined in (f16 in f32; bf16 is held in f32 anyway)."""
    return D.float32 if dt == D.float16 else dt


def _identity(cls, dt, ty) -> ir.Constant:
    """x op identity == x for every x (maxnum(x, NaN) = x; x + -0.0 = x, also for x = -0.0)."""
    if dt.is_float:
        return ir.Constant(F32, -0.0 if cls is N.Sum else float("nan"))
    if dt == BOOL:
        return ir.Constant(I1, 1 if cls is N.ReduceMin else 0)
    w = ty.width
    if cls is N.Sum:
        v = 0
    elif cls is N.ReduceMax:
        v = -(1 << (w - 1)) if dt.is_signed else 0
    else:
        v = (1 << (w - 1)) - 1 if dt.is_signed else -1
    return ir.Constant(ty, v)


def _tree(lw, cls, dt, vals):
    """Combine ``vals`` pairwise (a balanced tree, fixed by position)."""
    while len(vals) > 1:
        vals = [_combine(lw, cls, dt, vals[k], vals[k + 1]) if k + 1 < len(vals) else vals[k]
                for k in range(0, len(vals), 2)]
    return vals[0]


def _product_factors(lw, i, x: Tile):
    """For ``sum(a * b)`` over float32 whose input is the product itself (no conversion between): per slot
    the two f32 factors, so the partial sums contract into ``fma`` -- each product is not rounded on its
    own. The VM's sum is the exact sum rounded once; compiled backends approximate it within f32
    rounding, and this keeps them closer to it (one rounding per term fewer), not further."""
    if i.x.dtype != D.float32:
        return None
    mul = lw.definitions.get(i.x.id)
    if type(mul) is not N.Mul or mul.a.dtype != D.float32 or mul.b.dtype != D.float32:
        return None
    n = len(x.slots)
    try:
        return list(zip(lw.slots(mul.a, n), lw.slots(mul.b, n)))
    except Exception:         # an operand in shared memory or another layout: plain sums
        return None


#: at most this many independent fma chains per partial sum, each of at least FMA_CHAIN_MIN terms
#: (latency hiding: a chain waits 4 cycles per step; other rows' chains interleave too)
FMA_CHAINS, FMA_CHAIN_MIN = 4, 4


def _fma_chains(lw, products, factors, grp):
    """sum of ``products[v]`` for ``v`` in ``grp``: ``FMA_CHAINS`` interleaved chains, each starting from
    its first product and adding the others as ``fma(a, b, acc)``, then added pairwise: ``n`` terms take
    ``k`` multiplies, ``n - k`` fmas and ``k - 1`` adds instead of ``n`` multiplies and ``n - 1`` adds."""
    b = lw.b
    fma = lw.intrinsic("llvm.fma.f32", ir.FunctionType(F32, [F32, F32, F32]))
    k = max(1, min(FMA_CHAINS, len(grp) // FMA_CHAIN_MIN))
    chains = []
    for j in range(k):
        vs = grp[j::k]
        acc = products[vs[0]]
        for v in vs[1:]:
            acc = b.call(fma, [factors[v][0], factors[v][1], acc])
        chains.append(acc)
    return _tree(lw, N.Sum, D.float32, chains)


def _to_i32(b, v):
    t = v.type
    if t == F32:
        return b.bitcast(v, I32)
    if t == F16:
        return b.zext(b.bitcast(v, I16), I32)
    return v if t.width == 32 else b.zext(v, I32)


def _from_i32(b, a, t):
    if t == F32:
        return b.bitcast(a, F32)
    if t == F16:
        return b.bitcast(b.trunc(a, I16), F16)
    return a if t.width == 32 else b.trunc(a, t)


def shfl_bfly(lw, v, lanemask: int):
    """``shfl.sync.bfly.b32`` of any repr (full warp mask: all threads run the same straight-line code)."""
    b = lw.b
    fn = lw.intrinsic("llvm.nvvm.shfl.sync.bfly.i32", ir.FunctionType(I32, [I32, I32, I32, I32]))
    r = b.call(fn, [const_i32(-1), _to_i32(b, v), const_i32(lanemask), const_i32(0x1F)])
    return _from_i32(b, r, v.type)


def _bytes(t) -> int:
    return 4 if t in (F32, I32) else 2 if t in (F16, I16) else 1


# ----------------------------------------------------------------------------------- the rule
@lower(N.Sum, N.ReduceMax, N.ReduceMin)
def _reduce(lw, i):
    """Within threads, between lanes (shuffles), between warps (shared memory) when the layouts allow
    it (:func:`plan_reduction`); otherwise through scratch (:func:`_reduce_scratch`)."""
    x = lw.get(i.x)
    if isinstance(x, Tile):
        plan, out_lay = _plan_for(lw, i, x)
        if isinstance(plan, ShufflePlan):
            _reduce_shuffle(lw, i, x, plan, out_lay)
            return
    _reduce_scratch(lw, i)


def _finish(lw, i, acc):
    b, dt = lw.b, i.x.dtype
    if dt == D.float16:
        return b.fptrunc(acc, F16)
    if dt == D.bfloat16 and type(i) is N.Sum:
        return C.from_f32(b, D.bfloat16, acc, False)
    return acc


def _reduce_shuffle(lw, i, x: Tile, plan: ShufflePlan, out_lay):
    b = lw.b
    cls, dt = type(i), i.x.dtype
    adt = _acc_dtype(dt)
    ty = F32 if dt.is_float else C.repr_type(dt)
    ident = _identity(cls, dt, ty)
    T = plan.block_threads

    # 1. within the thread
    def prep(v):
        return b.fpext(v, F32) if dt == D.float16 else v
    factors = _product_factors(lw, i, x) if cls is N.Sum else None
    if factors is not None:
        accs = [_fma_chains(lw, x.slots, factors, grp) if grp else ident for grp in plan.groups]
    else:
        accs = [_tree(lw, cls, adt, [prep(x.slots[v]) for v in grp]) if grp else ident for grp in plan.groups]
    if plan.threads_in < T and plan.scope != "thread":    # threads holding nothing add the identity
        _, valid, _ = lw.thread_part(x.layout)
        accs = [b.select(valid, a, ident) for a in accs]

    # 2. lanes: t computes op(mine, partner's), its partner op(partner's, mine): the same value, as every
    # combine commutes (fadd exactly; LLVM treats maxnum/minnum as commutative too)
    tid = lw.tid() if plan.shared_mask else None
    for j in plan.lane_bits:
        accs = [_combine(lw, cls, adt, a, shfl_bfly(lw, a, 1 << j)) for a in accs]

    # 3. warps: partials to scratch at [slot][thread]; partners read in ascending order
    if plan.shared_mask:
        M = plan.shared_mask
        eb = _bytes(ty)
        st = I8 if ty == I1 else ir.IntType(8 * eb)
        off = lw.alloc_shared(len(accs) * T * eb, transient=True)
        lw.barrier()                         # earlier readers of this scratch (a previous iteration) are done
        mine = b.add(const_i32(off), b.mul(tid, const_i32(eb)))
        for w, a in enumerate(accs):
            v = b.zext(a, I8) if ty == I1 else (b.bitcast(a, st) if ty in (F32, F16) else a)
            b.store(v, lw.shared_ptr(b.add(mine, const_i32(w * T * eb))), align=eb)
        lw.barrier()
        base = b.and_(tid, const_i32(~M))
        P = 1 << max(0, (T - 1).bit_length())
        nxt = []
        for w in range(len(accs)):
            vals = []
            for h in plan.shared_parts:
                q = b.or_(base, const_i32(h)) if h else base
                inside = None
                if P > T and h:          # a partner beyond the block (warps not a power of two)
                    inside = b.icmp_unsigned("<", q, const_i32(T))
                    q = b.select(inside, q, tid)
                p = lw.shared_ptr(b.add(const_i32(off + w * T * eb), b.mul(q, const_i32(eb))))
                raw = b.load(p, typ=st, align=eb)
                v = b.trunc(raw, I1) if ty == I1 else (b.bitcast(raw, ty) if ty in (F32, F16) else raw)
                vals.append(b.select(inside, v, ident) if inside is not None else v)
            nxt.append(_tree(lw, cls, adt, vals))
        accs = nxt

    outs = [_finish(lw, i, a) for a in accs]
    if i.out.is_scalar:
        lw.set(i.out, outs[0])
    else:
        lw.set(i.out, Tile(outs, out_lay, i.out.dtype))


def _reduce_scratch(lw, i):
    """The fallback: each result element is combined by the threads holding it, in order along the
    axis, from a scratch copy of the tile (f16/bf16 sums accumulate in f32 and round once)."""
    b = lw.b
    dt = i.x.dtype
    cls = type(i)
    src = scratch_of(lw, i.x)
    ax = i.axis
    n = i.x.shape[ax]

    def one(c):
        def elem(r):
            x = src.at(c[:ax] + [const_i32(r)] + c[ax:])
            return b.fpext(x, F32) if dt == D.float16 else x
        acc = elem(0)
        for r in range(1, n):
            acc = _combine(lw, cls, _acc_dtype(dt), acc, elem(r))
        return _finish(lw, i, acc)
    if i.out.is_scalar:
        lw.set(i.out, one([]))
        return
    lay = lw.layout_of(i.out)
    lw.set(i.out, Tile([one(c) for c in lw.coords(lay, i.out.shape)], lay, i.out.dtype))


__all__ = ["ShufflePlan", "plan_reduction", "shfl_bfly"]
