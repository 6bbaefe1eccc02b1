"""Rules for structured control flow: ``for`` loops and ``if`` branches with phi nodes.

Conditions and bounds are block-uniform scalars, so every thread takes the same path and barriers inside
loops and branches are safe. Loop-carried register tiles become one phi per value slot -- or per 32-bit
word of its codes when it was vector-loaded and its yield is loaded too (a prefetched slab: the words keep
the two-codes-per-operation decoding of :mod:`.unpack`); a loop-carried shared tile keeps one region, and a
yielded tile that lives elsewhere is copied into it.
"""
from __future__ import annotations

from llvmlite import ir

from vmlang.ir import nodes as N

from .core import I1, I32, SharedTile, Tile, lower
from .vector import pack_words, tile_of_words


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


def _has_words(x) -> bool:
    p = x.packed if isinstance(x, Tile) else None
    return p is not None and p.bits == x.dtype.nbits and len(p.words) * 32 == len(x.slots) * p.bits


def _as_words(i, inits) -> list:
    """Which loop-carried register tiles travel as their packed words: those whose init has them (a vector
    load cut its codes from 32-bit words) and whose yield is loaded in the body, or is another such carried
    value (slabs prefetched one or more iterations ahead: ``c0 = c1; c1 = load(...)``), which will have them
    too. Fewer phis (one per word, not per code), and the cast in the next iteration still decodes two
    codes per word operation (:mod:`.unpack`)."""
    loaded = {ins.out.id for ins in i.body.instrs if isinstance(ins, N.Load)}
    pos = {c.id: k for k, c in enumerate(i.carried)}
    words = [_has_words(x) and y.id in loaded for x, y in zip(inits, i.yields)]
    for _ in range(len(words)):
        for k, (x, y) in enumerate(zip(inits, i.yields)):
            if not words[k] and _has_words(x) and y.id in pos and words[pos[y.id]]:
                words[k] = True
    return words


def _words_of(b, tile: Tile) -> list:
    """``tile``'s codes as 32-bit words: the ones it was loaded in (cut by :func:`.vector.split_words`, so in
    stream order), else packed from its slots."""
    return list(tile.packed.words) if _has_words(tile) else pack_words(b, tile.dtype, tile.slots)


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
    from . import prefetch
    from .pipeline import try_pipeline
    if try_pipeline(lw, i):        # cp.async loads of the body in S stage buffers (pipeline.py)
        return
    loads = prefetch.plan(lw, i)   # the next iteration's lines to L2 (option l2_prefetch, prefetch.py)
    emit_for(lw, i, enter=(lambda var, _state: prefetch.issue(lw, i, loads, var)) if loads else None)


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
    words = _as_words(i, inits)
    phis = []
    carried = []
    for x, wd in zip(inits, words):
        vals = list(x.packed.words) if wd else _flat(x)
        ps = [b.phi(v.type) for v in vals]
        for p, v in zip(ps, vals):
            p.add_incoming(v, pre)
        phis.append(ps)
        carried.append(x if wd else _rebuild(x, ps)[0])
    b.cbranch(b.icmp_signed("<", var, stop), body_bb, done)
    b.position_at_end(body_bb)
    lw.set(i.var, var)
    for k, (x, wd, ps) in enumerate(zip(carried, words, phis)):
        if wd:                                   # cut the codes from the carried words, as a load does
            carried[k] = tile_of_words(b, x.dtype, ps, x.layout)
    for c, x in zip(i.carried, carried):
        lw.set(c, x)
    if enter is not None:
        enter(var, sphis)
    lw.run_block(i.body if body is None else body)
    nexts = []
    for y, x, ps, wd in zip(i.yields, carried, phis, words):
        yv = lw.get(y)
        if isinstance(x, SharedTile):
            _copy_shared(lw, yv, x, y.shape)
            nexts.append([])
            continue
        same = not wd or (isinstance(yv, Tile) and len(yv.slots) == len(x.slots))
        vals = (_words_of(b, yv) if wd else _flat(yv)) if same else []
        if not same or len(vals) != len(ps):
            raise ValueError(f"loop-carried {y.name or y.id}: the yield's layout differs from the carried value's")
        nexts.append(vals)
    nstate = list(advance(sphis)) if advance is not None else []
    latch = b.block
    nxt = b.add(var, step)
    var.add_incoming(nxt, latch)
    for p, v in zip(sphis, nstate):
        p.add_incoming(v, latch)
    for ps, vals in zip(phis, nexts):
        for p, v in zip(ps, vals):
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
