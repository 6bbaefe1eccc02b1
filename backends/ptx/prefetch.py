"""L2 prefetch of a ``for`` loop's next iteration (``prefetch.global.L2``): the memory latency of a loop
whose loads go straight into registers, without the registers that loading one step ahead costs.

A GEMV's step loads its codes and then waits for them before it can decode: DRAM latency every
iteration. Loading the next step's codes into registers hides it but holds twice the codes' registers
(fewer warps per SM); staging them through shared memory (``cp.async``) costs shared-memory traffic and
barriers. A ``prefetch.global.L2`` asks the L2 for a line and returns at once: no register, no wait. At
the start of iteration ``i`` every thread issues prefetches of the lines that iteration ``i + step``'s
loads will read, so by then they come from the L2.

**Which loads** (all decided at compile time from the IR; the ``l2_prefetch`` option turns it on,
:class:`vmlang.runtime.options.CompileOptions`): loads of a global tensor at the top level of the loop
body whose index depends on the loop variable through side-effect-free scalar instructions only (the
condition of :func:`.pipeline.index_slice`), in a loop that writes no global memory and that the
``cp.async`` pipeline (:mod:`.pipeline`) did not take.

**Which lines.** A load of ``src[a0 : +R0, ..., c0 : +L]`` reads, per row (one position of the leading
axes), the bytes ``[lo, hi)`` from ``c0 * bits / 8`` to ``(c0 + L) * bits / 8``, rounded out. Where
``c0 * bits / 8`` is known to be a multiple of 128 (:class:`~vmlang.passes.scalars.ScalarFacts`), those are
``ceil(L * bits / 1024)`` whole lines, reached at ``lo + 128 s`` (each predicated on lying below ``hi``);
otherwise at most ``n = ceil(L * bits / 8) + 1`` bytes on ``ceil(n / 128) + 1`` lines, reached at
``lo + min(128 s, hi - lo - 1)``. Every address lies in ``[lo, hi)``, the row's bytes of the slice (valid
memory). The rows times lines are dealt to the block's threads in turn: line ``j`` by thread ``j % T``.
Each prefetch is predicated on the next iteration existing, its row lying inside the shape and
``[c0, c0 + L)`` meeting the last axis (clipped to it): nothing outside the tensor is ever addressed. A load
the vectorize pass proved inside the shape (its plan unmasked) is inside in every iteration, so its
prefetches need only the next iteration's existence, and each line's offset in the row is a constant (the
int2 GEMV's loop grows by 14 PTX instructions for its codes' and scales' prefetches).

Which tensors: the ``l2_prefetch`` option names them (``"w,s"``; ``"*"`` for every global tensor) -- a
tensor every block reads (a GEMV's x) is in the L2 anyway, and each prefetch costs a few instructions.

Worked example: the int2 GEMV's codes ``w[n0 : +16, k0 : +1024]``, ``k0`` a multiple of 1024 (256 bytes per
row: 2 lines), 64 threads: 32 prefetches, one by each thread ``t < 32`` (line ``t % 2`` of row ``t // 2``);
its scales ``s[n0 : +16, k0 / 128 : +8]`` (16 bytes, not known to be line-aligned): 2 addresses per row,
32 in all.
"""
from __future__ import annotations

from llvmlite import ir

from vmlang.ir import nodes as N

from . import memory as M
from .core import GPTR, I32, I64, GlobalArg, const_i32, names_tensor
from .vector import vector_plan

#: bytes of a cache line
LINE = 128


def plan(lw, loop: N.For) -> list:
    """``[(load, slice instructions)]`` whose next iteration's lines are prefetched (empty: none)."""
    from .pipeline import index_slice, writes_global
    names = getattr(lw, "l2_prefetch", frozenset())     # launch.lower_program: the option, parsed
    if not names or writes_global(loop.body):
        return []
    out = []
    for ins in loop.body.instrs:
        if not (isinstance(ins, N.Load) and ins.out.is_tile and isinstance(lw.env.get(ins.src.id), GlobalArg)
                and names_tensor(names, ins.src)):
            continue
        sl = index_slice(loop, ins)
        if sl is not None and sl[1]:
            out.append((ins, sl[0]))
    return out


def _prefetch(b, pred, ptr) -> None:
    asm = "{ .reg .pred p; setp.ne.b32 p, $0, 0; @p prefetch.global.L2 [$1]; }"
    fn = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [I32, GPTR]), asm, "r,l", side_effect=True)
    b.call(fn, [b.zext(pred, I32), ptr])


def _lines(lw, ins: N.Load, g: GlobalArg, exists) -> int:
    """Emit this thread's prefetches of the lines ``ins`` reads (index values as bound now); returns how
    many lines the block prefetches."""
    b = lw.b
    bits = ins.src.dtype.nbits
    lead, last = ins.index[:-1], ins.index[-1]
    sizes = [1 if isinstance(it, N.At) else it.length for it in lead]
    rows = 1
    for s in sizes:
        rows *= s
    length = 1 if isinstance(last, N.At) else last.length
    start = last.index if isinstance(last, N.At) else last.start
    aligned = lw.scalar_facts.divisor(start) * bits % (8 * LINE) == 0
    nbytes = (length * bits + 7) // 8 + (0 if aligned else 1)
    per_row = -(-nbytes // LINE) + (0 if aligned else 1)
    total, T = rows * per_row, lw.kernel.warps * 32
    c0 = lw.get(start)
    eight, nb = ir.Constant(I64, 8), ir.Constant(I64, bits)
    lo = b.udiv(b.mul(b.sext(c0, I64), nb), eight)
    # a load the vectorize pass proved inside the shape is inside in every iteration, the next one too:
    # no bounds checks, each line's offset a constant
    vp = vector_plan(lw, ins)
    inside = vp is not None and not vp.masked
    if not inside:
        n_last = g.shape[-1]
        c1 = b.select(b.icmp_signed("<", b.add(c0, const_i32(length)), n_last), b.add(c0, const_i32(length)),
                      n_last)
        cols = b.and_(b.icmp_signed(">=", c0, const_i32(0)), b.icmp_signed("<", c0, n_last))
        hi = b.udiv(b.add(b.mul(b.sext(c1, I64), nb), ir.Constant(I64, 7)), eight)
        span = b.sub(hi, lo)
    last_byte = (length * bits) // 8 - 1                  # the slice has at least this many bytes past lo
    tid = lw.tid()
    for q in range(-(-total // T)):
        j = b.add(tid, const_i32(q * T)) if q else tid
        row, seg = b.udiv(j, const_i32(per_row)), b.urem(j, const_i32(per_row))
        ok = exists if inside else b.and_(exists, cols)
        if (q + 1) * T > total:                      # the last round: only the threads with a line left
            ok = b.and_(ok, b.icmp_unsigned("<", j, const_i32(total)))
        pos, rest = [None] * len(lead), row
        for axis in reversed(range(len(lead))):                   # the last leading axis varies fastest
            it, size = lead[axis], sizes[axis]
            if isinstance(it, N.At):
                p = lw.get(it.index)
            else:
                coord = b.urem(rest, const_i32(size)) if size > 1 else const_i32(0)
                rest = b.udiv(rest, const_i32(size)) if size > 1 else rest
                p = b.add(lw.get(it.start), coord)
            pos[axis] = p
        if not inside:
            ok = b.and_(ok, M.in_bounds(lw, g, pos))            # the leading axes (the last is cols)
        row_off = M.row_offset(lw, g, pos + [c0])
        if bits % 8 == 0:
            row_off = b.mul(row_off, ir.Constant(I64, bits // 8))
        off = b.mul(b.zext(seg, I64), ir.Constant(I64, LINE))
        if inside:                                    # lo + off stays inside the slice's bytes
            off = b.select(b.icmp_unsigned("<", seg, const_i32(-(-(last_byte + 1) // LINE))), off,
                           ir.Constant(I64, max(last_byte, 0)))
        elif aligned:                                 # every line starts inside the row's bytes, or is off
            ok = b.and_(ok, b.icmp_signed("<", off, span))
        else:                                         # the last address is the last byte's: its line
            off = b.select(b.icmp_signed("<", off, span), off, b.sub(span, ir.Constant(I64, 1)))
        base = b.gep(g.ptr, [b.add(row_off, off)], source_etype=ir.IntType(8))   # per thread, then + lo
        _prefetch(b, ok, b.gep(base, [lo], source_etype=ir.IntType(8)))
    return total


def issue(lw, loop: N.For, loads: list, var) -> None:
    """At the top of iteration ``var``: prefetch the lines of iteration ``var + step``'s ``loads``."""
    from .pipeline import at_iteration
    b = lw.b
    nxt = b.add(b.sext(var, I64), b.sext(lw.get(loop.step), I64))
    exists = b.icmp_signed("<", nxt, b.sext(lw.get(loop.stop), I64))
    need = {id(x) for _, sl in loads for x in sl}
    with at_iteration(lw, loop, tuple(x for x in loop.body.instrs if id(x) in need), nxt):
        counts = [(ins, _lines(lw, ins, lw.env[ins.src.id], exists)) for ins, _ in loads]
    notes = lw.__dict__.setdefault("pipeline_notes", [])
    what = ", ".join(f"{ins.src.name or '%' + str(ins.src.id)} ({n} lines)" for ins, n in counts)
    notes.append((loop.loc, f"for loop: the next iteration's lines of {what} prefetched to L2 "
                            f"(prefetch.global.L2 at the top of each iteration)"))


__all__ = ["plan", "issue", "LINE"]
