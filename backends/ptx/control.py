"""Rules for structured control flow: ``for`` loops and ``if`` branches with phi nodes.

Conditions and bounds are block-uniform scalars, so every thread takes the same path and barriers inside
loops and branches are safe. Loop-carried register tiles become one phi per value slot; a loop-carried
shared tile keeps one region, and a yielded tile that lives elsewhere is copied into it.
"""
from __future__ import annotations

from llvmlite import ir

from vmlang.ir import nodes as N

from .core import I1, I32, SharedTile, Tile, lower


def _flat(x) -> list:
    if isinstance(x, Tile):
        return list(x.slots)
    if isinstance(x, SharedTile):
        return []
    return [x]


def _rebuild(like, values: list):
    if isinstance(like, Tile):
        return Tile(values[:len(like.slots)], like.layout, like.dtype), values[len(like.slots):]
    if isinstance(like, SharedTile):
        return like, values
    return values[0], values[1:]


def _copy_shared(lw, src: SharedTile, dst: SharedTile, shape):
    """Copy a shared tile into another region (same shape and dtype), through the default layout."""
    if src.offset == dst.offset:
        return
    from .exchange import SharedReader, shared_offset
    tmp = lw.default_layout_for(shape, src.dtype)
    rd = SharedReader(lw, src)
    b = lw.b
    lw.barrier()
    _, valid, _ = lw.thread_part(tmp)
    for c in lw.coords(tmp, shape):
        x = rd.at(c)
        off = shared_offset(lw, dst, c)
        with b.if_then(valid):
            from .core import to_code
            v = to_code(b, dst.dtype, x)
            t = ir.IntType(8 * dst.ebytes)
            b.store(b.trunc(v, t) if t.width < 32 else v, lw.shared_ptr(off), align=dst.ebytes)
    lw.barrier()


@lower(N.For)
def _for(lw, i):
    from .pipeline import try_pipeline
    if try_pipeline(lw, i):        # cp.async loads of the body in S stage buffers (pipeline.py)
        return
    emit_for(lw, i)


def emit_for(lw, i, body: N.Block | None = None, state=(), advance=None, enter=None):
    """Emit loop ``i``: a header with the loop variable, one phi per carried value slot and per extra
    i32 ``state`` value, the body, and the latch. ``enter(var, state_phis)`` runs at the start of the body
    (before ``body``, by default ``i.body``); ``advance(state_phis)`` gives the state's next values at the
    latch (emitted after the body). The pipeline (:mod:`.pipeline`) passes its stage offsets as state."""
    b = lw.b
    start, stop, step = lw.get(i.start), lw.get(i.stop), lw.get(i.step)
    inits = [lw.get(v) for v in i.inits]
    pre = b.block
    header = lw.fn.append_basic_block("for_head")
    body_bb = lw.fn.append_basic_block("for_body")
    done = lw.fn.append_basic_block("for_end")
    b.branch(header)
    b.position_at_end(header)
    var = b.phi(I32, name="i")
    var.add_incoming(start, pre)
    sphis = []
    for s0 in state:
        p = b.phi(s0.type)
        p.add_incoming(s0, pre)
        sphis.append(p)
    phis = []
    carried = []
    for x in inits:
        vals = _flat(x)
        ps = [b.phi(v.type) for v in vals]
        for p, v in zip(ps, vals):
            p.add_incoming(v, pre)
        phis.append(ps)
        carried.append(_rebuild(x, ps)[0])
    b.cbranch(b.icmp_signed("<", var, stop), body_bb, done)
    b.position_at_end(body_bb)
    lw.set(i.var, var)
    for c, x in zip(i.carried, carried):
        lw.set(c, x)
    if enter is not None:
        enter(var, sphis)
    lw.run_block(i.body if body is None else body)
    for y, x, ps in zip(i.yields, carried, phis):
        yv = lw.get(y)
        if isinstance(x, SharedTile):
            _copy_shared(lw, yv, x, y.shape)
            continue
        vals = _flat(yv)
        if len(vals) != len(ps):
            raise ValueError(f"loop-carried {y.name or y.id}: the yield's layout differs from the carried value's")
    nstate = list(advance(sphis)) if advance is not None else []
    latch = b.block
    nxt = b.add(var, step)
    var.add_incoming(nxt, latch)
    for p, v in zip(sphis, nstate):
        p.add_incoming(v, latch)
    for y, x, ps in zip(i.yields, carried, phis):
        for p, v in zip(ps, _flat(lw.get(y))):
            p.add_incoming(v, latch)
    b.branch(header)
    b.position_at_end(done)
    for o, x in zip(i.outs, carried):
        lw.set(o, x)


@lower(N.If)
def _if(lw, i):
    b = lw.b
    cond = lw.get(i.cond)
    then_bb = lw.fn.append_basic_block("if_then")
    else_bb = lw.fn.append_basic_block("if_else")
    merge = lw.fn.append_basic_block("if_end")
    b.cbranch(cond, then_bb, else_bb)
    ends = []
    shared_out = {}
    for blk, ys, bb in ((i.then, i.then_yields, then_bb), (i.orelse, i.else_yields, else_bb)):
        b.position_at_end(bb)
        lw.run_block(blk)
        vals = []
        for k, y in enumerate(ys):
            yv = lw.get(y)
            if isinstance(yv, SharedTile):
                dst = shared_out.setdefault(k, yv)
                _copy_shared(lw, yv, dst, y.shape)
            vals.append(yv)
        ends.append((b.block, vals))
        b.branch(merge)
    b.position_at_end(merge)
    for k, o in enumerate(i.outs):
        a, c = ends[0][1][k], ends[1][1][k]
        if isinstance(a, SharedTile):
            lw.set(o, shared_out[k])
            continue
        fa, fc = _flat(a), _flat(c)
        if len(fa) != len(fc):
            raise ValueError(f"branch result {o.name or o.id}: the branches' layouts differ")
        merged = []
        for va, vc in zip(fa, fc):
            p = b.phi(va.type)
            p.add_incoming(va, ends[0][0])
            p.add_incoming(vc, ends[1][0])
            merged.append(p)
        lw.set(o, _rebuild(a, merged)[0])


__all__ = ["I1", "emit_for"]
