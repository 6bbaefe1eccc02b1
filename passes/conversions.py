"""Decisions of layout inference that the lowering reads (facts), and the rewrite that materialises
them: every operand whose layout differs from what its instruction needs gets a ``ConvertLayout``,
placed right after the value it converts (so one conversion serves every use, and a loop's init is
converted once before the loop), with a note saying where and why.

>>> import vmlang as vm
>>> from vmlang.passes import pipeline
>>> from vmlang.ir import nodes as N
>>> src = '''kernel scaled(x: f32[128] global, w: f16[16, 128] global, y: f32[16] global) grid(1) warps(4) {
...     xs = load(x[0 : +128]) * 2.0;      // computed: not a load, so converted for the broadcast
...     store(y[0 : +16], sum(cast(load(w[0 : +16, 0 : +128]), f32) * xs[None, :], axis=1));
... }'''
>>> p = pipeline(vm.compile_source(src, "scaled.vm"))
>>> [p.facts[c].free for c in N.walk(p.kernel.body) if isinstance(c, N.ConvertLayout)]
[False]
>>> print(next(n.text for n in p.report if n.text.startswith("convert"))[:79])
convert v%14 to v%18 for x of broadcast at scaled.vm:3:27: so that broadcast at
>>> from vmlang.passes import default_layout
>>> a, b = default_layout((128,), 16, 128), default_layout((128,), 32, 128)   # 16 x 8 vs 32 x 4 per thread
>>> convert_plan(a, a).reason, convert_plan(a, b).reason
('free: every thread already holds its values', 'register -> register through shared memory')
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vmlang.ir import nodes as N
from vmlang.ir.layout import MemLayout, TVLayout
from vmlang.ir.types import REGISTER, SHARED

from . import tvmaps as TM
from .program import Ids, Note, Program, map_instr, value_label
from .program import op_name as _op
from .program import where as _where

PASS = "layout"


@dataclass(frozen=True)
class ShapePlan:
    """For a shape instruction or a ConvertLayout: ``free`` when every thread keeps its own values
    (no data moves), else the move goes through shared memory."""
    free: bool
    reason: str


@dataclass(frozen=True)
class ReducePlan:
    """``scope``: "thread" (each thread reduces its own values), "warp" (shuffles between lanes) or
    "block" (warps combine through shared memory)."""
    scope: str
    reason: str


@dataclass(frozen=True)
class DotPlan:
    """``mma``: the mma.sync m16n8k16 layouts over ``warps = (wm, wn)`` (or, with ``wgmma``, the warpgroup
    MMA layouts over ``(gm, gn)`` warpgroups); otherwise an FMA dot.
    ``rows``: the few-row dot on mma (:mod:`.mma_rows`: the transposed product, ``wm`` = 1), whose k
    order feeds the pairs ``pairs`` of offsets of a lane's run to its mma registers in turn
    (:func:`.mma_rows.run_order`, :func:`.mma_rows.k_order`)."""
    mma: bool
    warps: tuple
    reason: str
    rows: bool = False
    pairs: tuple = ()
    wgmma: tuple = ()       # (gm, gn, mb, n) of the warpgroup-MMA layouts (:mod:`.wgmma`), else empty


def convert_plan(src, dst) -> ShapePlan:
    """How a ConvertLayout from ``src`` to ``dst`` moves data."""
    if isinstance(src, TVLayout) and isinstance(dst, TVLayout):
        if TM.holds_all(src, dst):
            return ShapePlan(True, "free: every thread already holds its values")
        return ShapePlan(False, "register -> register through shared memory")
    if isinstance(src, TVLayout):
        return ShapePlan(False, "register -> shared")
    if isinstance(dst, TVLayout):
        return ShapePlan(False, "shared -> register")
    return ShapePlan(TM.same_layout(src, dst), "shared -> shared")


def _key(L) -> str:
    return f"{type(L).__name__}:{L}"


def rewrite(program: Program, inf) -> Program:
    """The kernel with the inferred layouts, conversions inserted, facts re-keyed by the new instructions."""
    k = program.kernel
    ids = Ids(k)
    conv: dict[tuple, N.Value] = {}
    cplan: dict[tuple, ShapePlan] = {}
    after: dict[int, list] = {}
    facts: dict = {}
    cnotes: dict[int, list] = {}

    def retyped(v: N.Value) -> N.Value:
        if not v.is_tile:
            return v
        L = inf.lay[v.id]
        space = SHARED if isinstance(L, MemLayout) else REGISTER
        return N.Value(v.id, v.type.with_(layout=L, space=space), v.name)

    newv: dict[int, N.Value] = {}

    def nv(v):
        if v.id not in newv:
            newv[v.id] = retyped(v)
        return newv[v.id]

    for (iid, slot), (ins, v, L, why) in inf.req.items():
        if TM.same_layout(inf.lay[v.id], L):
            continue
        key = (v.id, _key(L))
        if key not in conv:
            space = SHARED if isinstance(L, MemLayout) else REGISTER
            out = ids.value(v.type.with_(layout=L, space=space), v.name)
            cv = N.ConvertLayout(out, nv(v), loc=ins.loc)
            conv[key] = out
            after.setdefault(v.id, []).append(cv)
            facts[cv] = cplan[key] = convert_plan(inf.lay[v.id], L)
        cnotes.setdefault(iid, []).append(
            f"convert {value_label(v)} to {value_label(conv[key])} for {slot} of {_op(ins)}{_where(ins)}: {why} "
            f"({cplan[key].reason}; to {inf.show(v, L)})")

    order: list = []

    def block(blk: N.Block, prefix=()) -> N.Block:
        out = list(prefix)
        for ins in blk.instrs:
            order.append(ins)

            def val(v, f, ins=ins):
                r = inf.req.get((id(ins), f))
                if r is not None:
                    c = conv.get((v.id, _key(r[2])))
                    if c is not None:
                        return c
                return nv(v)
            pre = ()
            if isinstance(ins, N.For):
                pre = tuple(c for x in ins.carried for c in after.get(x.id, []))
            new = map_instr(ins, val, lambda b: block(b, pre))
            if id(ins) in inf.plans:
                facts[new] = inf.plans[id(ins)]
            elif isinstance(ins, N.ConvertLayout):
                facts[new] = convert_plan(inf.lay[ins.x.id], inf.lay[ins.out.id])
            out.append(new)
            for r in ins.results:
                out.extend(after.get(r.id, []))
        return N.Block(tuple(out))

    body = block(k.body)
    kernel = dataclasses.replace(k, body=body)
    notes = []
    for ins in order:
        for t in inf.notes.get(id(ins), []) + cnotes.get(id(ins), []):
            notes.append(Note(PASS, ins.loc, t))
    n = len(conv)
    notes.append(Note(PASS, None, f"{n} layout conversion{'s' if n != 1 else ''} inserted"))
    return program.with_(kernel=kernel, facts=facts, notes=notes)


