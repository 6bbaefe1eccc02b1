"""Rules for leaves, creation and structured control flow."""
from __future__ import annotations

from vmlang.ir import nodes as N

from . import reprs as R
from .codegen import rule, shape_text


@rule(N.Const)
def _const(cg, i):
    cg.consts[i.out.id] = i.value
    cg.define(i.out, R.const(i.out.dtype, i.value))


@rule(N.BlockIdx)
def _block_idx(cg, i):
    cg.define(i.out, f"tl.program_id({i.axis})")


@rule(N.SizeOf)
def _size_of(cg, i):
    for sym, arg in cg.sig.sizes:
        if sym == i.symbol:
            cg.names[i.out.id] = arg
            return
    for p, arg in cg.sig.scalars:      # a scalar parameter used as a size
        if p.name == i.symbol:
            cg.define(i.out, f"{arg}.to(tl.int32)")
            return
    raise AssertionError(i.symbol)


@rule(N.Full)
def _full(cg, i):
    t = i.out.type
    P = shape_text(cg.pshape(i.out))
    if i.value is None:   # empty(): uninitialised (the VM tracks it as poison); zeros here
        cg.define(i.out, f"tl.zeros({P}, {R.tl_type(t.dtype)})")
    else:
        cg.define(i.out, f"tl.full({P}, {cg.name(i.value)}, {R.tl_type(t.dtype)})")


@rule(N.Arange)
def _arange(cg, i):
    cg.define(i.out, f"tl.arange(0, {cg.pshape(i.out)[0]})")


@rule(N.Assume)
def _assume(cg, i):
    cg.comment(f"assume({cg.name(i.cond)}): a fact for the compiler; not checked here")


@rule(N.Barrier)
def _barrier(cg, i):
    cg.emit("tl.debug_barrier()")


@rule(N.For)
def _for(cg, i):
    carried = []
    for init, c, o in zip(i.inits, i.carried, i.outs):
        n = cg.define(c, cg.name(init))
        cg.names[o.id] = n
        carried.append(n)
    var = cg.define(i.var)
    cg.loop_vars[i.var.id] = (i.start, i.step)
    cg.emit(f"for {var}_ in range({cg.name(i.start)}, {cg.name(i.stop)}, {cg.name(i.step)}):")
    cg.indent += 1
    cg.emit(f"{var} = {var}_ + tl.zeros((), tl.int32)   # an int32 tensor (the interpreter iterates Python ints)")
    cg.block(i.body)
    for n, y in zip(carried, i.yields):
        if cg.name(y) != n:
            cg.emit(f"{n} = {cg.name(y)}")
    cg.indent -= 1


@rule(N.If)
def _if(cg, i):
    names = [cg.fresh(o.name or "v") for o in i.outs]
    cg.emit(f"if {cg.name(i.cond)}:")
    for blk, ys, head in ((i.then, i.then_yields, None), (i.orelse, i.else_yields, "else:")):
        if head:
            cg.emit(head)
        cg.indent += 1
        start = len(cg.lines)
        cg.block(blk)
        if len(cg.lines) == start + 1 and cg.lines[-1].strip() == "pass" and ys:
            cg.lines.pop()
        for n, y in zip(names, ys):
            cg.emit(f"{n} = {cg.name(y)}")
        cg.indent -= 1
    for n, o in zip(names, i.outs):
        cg.names[o.id] = n
