"""Software pipelining of ``cp.async`` tile loads in ``for`` loops: S stage buffers (S = 3, else 2).

Without it every iteration of a GEMM loop waits for its own loads (:mod:`.async_copy`: barrier, copies,
``wait_group 0``, barrier, then the math), so memory latency and tensor-core work never overlap. With it
the copies of iteration ``i + S - 1`` are in flight while iteration ``i`` computes.

**Schedule** (:func:`schedule` spells it out; ``n`` iterations, ``buf(j) = j % S``)::

    prologue:   bar.sync                                    (an outer loop's readers of the buffers are done)
                for j in 0 .. S-2:  @(j < n) copies of iteration j -> buf(j);  commit_group
    iteration i: wait_group S-2; bar.sync                   (iteration i's group is done, for every thread;
                                                             every thread finished iteration i-1)
                @(i+S-1 < n) copies of iteration i+S-1 -> buf(i+S-1) = buf(i-1);  commit_group
                the body, reading buf(i)
    after:      wait_group 0                                (only empty groups can be left: a no-op)

Worked example, S = 3, n = 4 (``k0`` = 0, 32, 64, 96 in matmul_f16 with BK = 32): the prologue commits
groups g0 (iteration 0 -> buf 0) and g1 (iteration 1 -> buf 1). Iteration 0: ``wait_group 1`` leaves at
most g1 pending, so g0 is done; bar.sync; issue g2 (iteration 2 -> buf 2); compute on buf 0. Iteration 1:
wait 1 -> g1 done; bar.sync (everyone finished reading buf 0 in iteration 0); issue g3 (iteration 3 ->
buf 0); compute on buf 1. Iteration 2: wait 1 -> g2 done; issue nothing (iteration 4 does not exist) but
commit an empty group g4, so that "all but the newest 1" still means g3 at iteration 3; compute on buf 2.
Iteration 3: wait 1 -> g3 done; empty g5; compute on buf 0. Each iteration issues before it computes: the
barrier after the wait already proves buf(i-1) is free, and the copies get the whole body to land.

The copies issued for iteration ``i + S - 1`` use that iteration's addresses: the body's scalar
instructions that the load's index depends on (:func:`index_slice`) are lowered again with the loop
variable bound to ``i + (S-1) * step``, and every copy is predicated on ``i + (S-1) * step < stop``
(computed in 64 bits): a copy past the end is never issued (its ``@p cp.async`` does not execute), so
nothing out of bounds is read whatever its address (the slice itself is integer arithmetic: no trap).
Predication rather than a branch keeps each iteration one basic block, so ptxas interleaves the copies
with the ldmatrix/mma of the body. The stage buffer of a tile is a run-time byte offset
(:class:`StagedTile`; :func:`.exchange.shared_offset` adds it), carried as loop phis: ``rd`` (read
stage: 0, SB, 2 SB, 0, ...) and ``wr`` (write stage: the previous ``rd``).

S comes from :data:`STAGES` or the ``pipeline_stages`` option of :func:`.launch.lower_program` (1 or 0:
no pipelining; :attr:`vmlang.runtime.options.CompileOptions.pipeline_stages` per compilation). Measured on an
H100 (matmul_f16 4096^3, 128x128x32, 4 warps): S = 3 and S = 4 run at the same speed, S = 2 about 3 %
slower; the int2 GEMV's staged codes: S = 2 28.5-28.9 µs, S = 3 29.6-30.3, S = 4 31.7 (session 15).

**Conditions** (all decided at compile time from the IR; otherwise the loop is lowered as before):

* a load qualifies when it is an instruction at the top level of the loop body (runs once per iteration),
  reads a global tensor into a shared tile, :func:`.async_copy.copy_plan` accepts it (cp.async applies:
  vector plan, code-0 fill, chunks contiguous in shared memory) -- or into a register tile that
  :func:`.staging.private_plan` stages (the ``stage_loads`` option names its tensor; each thread copies its
  own chunks into its own slots, so these loads need no barrier, and a loop of one or only such loads has
  none: neither in the prologue nor per iteration; a loop known to run once is not staged) --, its index
  depends on the loop variable,
  and everything its index and fill depend on inside the body is a side-effect-free scalar instruction
  (constants, arithmetic, comparisons, casts, ``where``) of the loop variable and values from outside the
  loop (not of loop-carried values);
* its tile is not yielded to the next iteration (SSA scoping then keeps every reader inside the iteration);
* the body writes no global memory (no ``store``, ``atomic_add``, anywhere in it): loads move up to S-1
  iterations earlier, which is only the same program when nothing they could read changes meanwhile;
* the S stage buffers of all qualifying loads fit the architecture's dynamic shared memory
  (:data:`SHARED_LIMIT`) on top of what is allocated already: S = :data:`STAGES`, else 2, else no
  pipelining. :func:`.launch.lower_program` lowers again without pipelining if the kernel's peak ends
  above the limit anyway.

The decision is recorded in ``lw.pipeline_notes`` (the compiled kernel's report shows it under
``pipeline:``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from vmlang.ir import nodes as N

from . import staging
from .core import I32, I64, GlobalArg, SharedTile, const_i32

#: stage buffers per pipelined tile (2 when 3 do not fit)
STAGES = 3

#: bytes of dynamic shared memory one block may use (after the launcher's opt-in) per architecture
SHARED_LIMIT = {"sm_80": 166912, "sm_86": 101376, "sm_87": 166912, "sm_89": 101376, "sm_90": 232448}
DEFAULT_SHARED_LIMIT = 48 * 1024

#: scalar instructions the index of a pipelined load may be computed by inside the body
_PURE = (N.Const, N.SizeOf, N.BlockIdx, N.Unary, N.Binary, N.Where, N.Cast)


@dataclass
class StagedTile(SharedTile):
    """A shared tile in one stage buffer: its bytes start at ``offset + stage_base`` (an i32 value)."""
    stage_base: object = None


# ------------------------------------------------------------------------------------------ schedule
def prologue_iterations(stages: int) -> list[int]:
    """The iterations whose copies the prologue issues: ``0 .. S-2`` (iteration ``j`` into buffer ``j``)."""
    return list(range(stages - 1))


def wait_count(stages: int) -> int:
    """``cp.async.wait_group`` operand at the top of each iteration: S-2 groups may stay in flight."""
    return stages - 2


def issued_at(i: int, stages: int) -> tuple[int, int]:
    """(iteration, buffer) whose copies iteration ``i`` issues: ``i + S - 1`` into ``(i + S - 1) % S``."""
    j = i + stages - 1
    return j, j % stages


def schedule(n: int, stages: int) -> list[tuple]:
    """The events of a pipelined loop of ``n`` iterations in program order, from the same rules the lowering
    emits: ``("issue", j, buf)`` (copies of iteration j into buffer buf, only for j < n), ``("commit",)``,
    ``("wait", k)``, ``("barrier",)``, ``("compute", i, buf)``.

    >>> [e for e in schedule(2, 3) if e[0] != "barrier"]   # doctest: +NORMALIZE_WHITESPACE
    [('issue', 0, 0), ('commit',), ('issue', 1, 1), ('commit',), ('wait', 1), ('commit',), ('compute', 0, 0),
     ('wait', 1), ('commit',), ('compute', 1, 1)]
    """
    ev: list[tuple] = [("barrier",)]
    for j in prologue_iterations(stages):
        if j < n:
            ev.append(("issue", j, j % stages))
        ev.append(("commit",))
    for i in range(n):
        ev += [("wait", wait_count(stages)), ("barrier",)]
        j, buf = issued_at(i, stages)
        if j < n:
            ev.append(("issue", j, buf))
        ev.append(("commit",))
        ev.append(("compute", i, i % stages))
    ev.append(("wait", 0))
    return ev


# ------------------------------------------------------------------------------------------ analysis
@dataclass(frozen=True)
class LoopPlan:
    """What :func:`plan_loop` decided: ``loads`` (Load, CopyPlan, byte offset in a stage), the body
    instructions their indices depend on (in body order), the bytes of one stage, the stage count, and
    the register loads staged through each thread's own slots (:mod:`.staging`)."""
    loads: tuple
    slice: tuple
    stage_bytes: int
    stages: int
    #: (Load, staging.PrivatePlan, byte offset in a stage): register loads staged ahead in private slots
    private: tuple = ()


def index_slice(loop: N.For, load: N.Load):
    """``(instructions, depends_on_var)``: the body instructions that ``load``'s index and fill are computed
    by (body order), and whether the loop variable is among their inputs; None when one of them is not a
    pure scalar instruction or a loop-carried value is involved."""
    defs = {r.id: ins for ins in loop.body.instrs for r in ins.results}
    carried = {c.id for c in loop.carried}
    need, on_var, todo = set(), False, [v for it in load.index for v in it.values()]
    if load.fill is not None:
        todo.append(load.fill)
    while todo:
        v = todo.pop()
        if v.id == loop.var.id:
            on_var = True
            continue
        if v.id in carried:
            return None
        ins = defs.get(v.id)
        if ins is None or id(ins) in need:
            continue                         # defined outside the loop, or seen
        if not isinstance(ins, _PURE) or not all(x.is_scalar for x in (*ins.operands, *ins.results)):
            return None
        need.add(id(ins))
        todo.extend(ins.operands)
    return tuple(ins for ins in loop.body.instrs if id(ins) in need), on_var


def writes_global(block: N.Block) -> bool:
    """Whether ``block`` (nested blocks included) stores to global memory (``store``, ``atomic_add``)."""
    return any(isinstance(ins, (N.Store, N.AtomicAdd)) for ins in N.walk(block))


def plan_loop(lw, loop: N.For):
    """``(LoopPlan or None, reason)`` for ``loop`` (see the module docstring for the conditions)."""
    from .async_copy import copy_plan
    if getattr(lw, "pipeline_off", False):
        return None, "pipelining is off"
    if writes_global(loop.body):
        return None, "the loop body writes global memory"
    for ins in loop.body.instrs:            # the fill constants copy_plan asks about (the Const rule's fact)
        if isinstance(ins, N.Const):
            lw.consts.setdefault(ins.out.id, ins.value)
    yielded = {y.id for y in loop.yields}
    loads, private, slice_ids, off = [], [], set(), 0
    align = stage_align(lw)
    for ins in loop.body.instrs:
        if not (isinstance(ins, N.Load) and ins.out.is_tile and ins.out.type.space in ("shared", "register")
                and isinstance(lw.env.get(ins.src.id), GlobalArg)) or ins.out.id in yielded:
            continue
        sl = index_slice(loop, ins)
        if sl is None or not sl[1]:
            continue                          # not a function of the loop variable (or not recomputable)
        if ins.out.type.space == "shared":
            cp = copy_plan(lw, ins)
            if cp is None:
                continue
            loads.append((ins, cp, off))
            size = cp.size_bytes
        else:
            # staged register loads (option stage_loads); a loop that runs at most once gains nothing
            pp = staging.private_plan(lw, ins)
            if pp is None or (trip_count(lw, loop) or 2) < 2:
                continue
            private.append((ins, pp, off))
            size = pp.size_bytes
        off += (size + align - 1) // align * align
        slice_ids |= {id(x) for x in sl[0]}
    if not loads and not private:
        return None, "no cp.async load of a global slice that moves with the loop variable"
    limit = SHARED_LIMIT.get(lw.arch, DEFAULT_SHARED_LIMIT)
    base = (lw.shared_top + align - 1) // align * align
    want = max(2, int(getattr(lw, "pipeline_stages", STAGES)))
    for s in sorted({want, 2}, reverse=True):
        if base + s * off <= limit:
            sl = tuple(x for x in loop.body.instrs if id(x) in slice_ids)
            return LoopPlan(tuple(loads), sl, off, s, tuple(private)), ""
    return None, f"2 stages of {off} bytes do not fit the {limit} bytes of shared memory of {lw.arch}"


def stage_align(lw) -> int:
    """Bytes every stage buffer of every pipelined tile is aligned to: 128, or the kernel's tile alignment
    when larger (1024 with a wgmma dot, whose swizzle is on absolute addresses)."""
    return max(128, lw.tile_align)


def trip_count(lw, loop: N.For) -> int | None:
    """The iterations of ``loop`` when its bounds are compile-time constants, else None."""
    vals = [lw.consts.get(v.id) for v in (loop.start, loop.stop, loop.step)]
    if any(not isinstance(v, int) for v in vals) or vals[2] <= 0:
        return None
    return max(0, -(-(vals[1] - vals[0]) // vals[2]))


# ------------------------------------------------------------------------------------------ lowering
@contextmanager
def at_iteration(lw, loop: N.For, slice_: tuple, it):
    """Within the block: the loop variable bound to ``it`` (an i64) and the index slice ``slice_``
    (:func:`index_slice`'s instructions) lowered again for it, so that the loads' index values are that
    iteration's; afterwards the bindings of the iteration being lowered, as before."""
    saved = {v.id: lw.env.get(v.id) for v in [loop.var] + [r for x in slice_ for r in x.results]}
    lw.env[loop.var.id] = lw.b.trunc(it, I32)
    lw.run_block(N.Block(tuple(slice_)))
    try:
        yield
    finally:
        for k, v in saved.items():               # the body binds its own values again
            if v is None:
                lw.env.pop(k, None)
            else:
                lw.env[k] = v


def _issue(lw, loop: N.For, plan: LoopPlan, region: int, it, stop, stage_base) -> None:
    """The copies of iteration ``it`` (an i64) into the stage at byte ``stage_base`` of the region, with
    the index slice lowered again for ``it``; every copy is predicated on ``it < stop`` (past the end:
    nothing is read or written, whatever the addresses). Predication rather than a branch keeps the
    iteration one basic block, so ptxas may interleave these copies with the body's ldmatrix and mma."""
    from .async_copy import issue_copies
    exists = lw.b.icmp_signed("<", it, lw.b.sext(stop, I64))
    with at_iteration(lw, loop, plan.slice, it):
        for ins, cp, off in plan.loads:
            st = StagedTile(region + off, cp.mem, cp.dtype, cp.shape, cp.ebytes, stage_base)
            issue_copies(lw, ins, lw.env[ins.src.id], cp, st, pred=exists)
        for ins, pp, off in plan.private:
            staging.issue(lw, ins, lw.env[ins.src.id], pp, lw.b.add(const_i32(region + off), stage_base), exists)


def try_pipeline(lw, loop: N.For) -> bool:
    """Lower ``loop`` with its qualifying cp.async loads pipelined over S stages; False (nothing emitted)
    when :func:`plan_loop` declines."""
    from .async_copy import commit, wait_group
    from .control import emit_for
    plan, why = plan_loop(lw, loop)
    notes = lw.__dict__.setdefault("pipeline_notes", [])
    if plan is None:
        if "no cp.async load" not in why:
            notes.append((loop.loc, f"for loop not pipelined: {why}"))
        return False
    S, SB = plan.stages, plan.stage_bytes
    b = lw.b
    region = lw.alloc_shared(S * SB, align=stage_align(lw))
    start, stop, step = lw.get(loop.start), lw.get(loop.stop), lw.get(loop.step)
    start64, step64 = b.sext(start, I64), b.sext(step, I64)
    shared = bool(plan.loads)                # private slots need no barrier: each thread reads what it copied
    if shared:
        lw.barrier()                         # readers of the buffers (an outer loop's last iteration) are done
    for j in prologue_iterations(S):
        it = b.add(start64, b.mul(step64, ir.Constant(I64, j))) if j else start64
        _issue(lw, loop, plan, region, it, stop, const_i32(j * SB))
        commit(lw)
    skip = {id(ins) for ins, _, _ in plan.loads}
    staged = lw.__dict__.setdefault("staged_loads", {})     # read by vector.vector_load (staging.staged_of)
    body = N.Block(tuple(x for x in loop.body.instrs if id(x) not in skip))

    def enter(var, state):
        rd, wr = state
        wait_group(lw, wait_count(S))
        if shared:
            lw.barrier()
        nxt = b.add(b.sext(var, I64), b.mul(step64, ir.Constant(I64, S - 1)))
        _issue(lw, loop, plan, region, nxt, stop, wr)
        commit(lw)
        for ins, cp, off in plan.loads:
            lw.set(ins.out, StagedTile(region + off, cp.mem, cp.dtype, cp.shape, cp.ebytes, rd))
        for ins, pp, off in plan.private:       # the body's load reads them back (vector.vector_load)
            staged[ins.out.id] = staging.Staged(pp, region + off, rd)

    def advance(state):
        rd, _ = state
        up = b.add(rd, const_i32(SB))
        return [b.select(b.icmp_unsigned("==", up, const_i32(S * SB)), const_i32(0), up), rd]

    emit_for(lw, loop, body, state=[const_i32(0), const_i32((S - 1) * SB)], advance=advance, enter=enter)
    wait_group(lw, 0)
    for ins, _, _ in plan.private:
        staged.pop(ins.out.id, None)
    names = ", ".join([ins.out.name or f"%{ins.out.id}" for ins, _, _ in plan.loads]
                      + [f"the load of {ins.src.name} (registers, staged in each thread's own slots)"
                         for ins, _, _ in plan.private])
    notes.append((loop.loc, f"for loop pipelined: {S} stages of {SB} bytes ({names}; {S * SB} bytes of shared "
                            f"memory), cp.async.wait_group {wait_count(S)} per iteration, copies of iteration "
                            f"i+{S - 1} issued before iteration i computes"))
    return True


__all__ = ["try_pipeline", "plan_loop", "index_slice", "at_iteration", "writes_global", "schedule", "StagedTile", "STAGES", "SHARED_LIMIT",
           "wait_count", "issued_at", "prologue_iterations"]
