"""Register loads staged ahead through shared memory: ``cp.async`` into a thread's own slots, read back later.

A GEMV's K loop loads its slab of codes into registers and decodes them at once, so each warp has one
slab in flight and then none while it computes: memory latency is hidden only by other warps, and a
kernel that needs many registers has few (the tensor-core GEMV: 16 warps per SM at 123 registers).
Staging keeps S - 1 slabs in flight per thread without holding them in registers: the software pipeline
(:mod:`.pipeline`) issues the copies of iteration ``i + S - 1`` while iteration ``i`` computes, and the
load of iteration ``i`` becomes ``ld.shared`` of what its own thread copied earlier. Which loads: those of
the global tensors that :attr:`vmlang.runtime.options.CompileOptions.stage_loads` names (off by default).

**Private slots.** Each thread copies exactly the chunks its register load would have read -- the load's
vector plan (:mod:`vmlang.passes.vectorize`): ``J`` chunks of ``w`` = 128, 64 or 32 bits, contiguous and
aligned in global memory, masked chunks wholly inside or outside the shape -- into slots only it reads.
Chunk ``j`` of thread ``t`` lies at byte ``stage + (j * T + t) * w/8`` of the load's region (``T`` the
block's threads), so a warp's 32 chunks ``j`` are 32 consecutive slots: one ``cp.async`` wavefront and
one conflict-free ``ld.shared.v4`` per 16 bytes. The words read back are the words the global load would
have returned (a masked-off chunk: ``cp.async`` with source size 0 zero-fills, as the guarded load
clears its registers), so the tile is built from them by the same code (:func:`.vector.vector_load`),
packed words and fills included. The element type does not matter: int2 codes stage like f16.

**No barrier.** A thread reads only slots it wrote, and ``cp.async.wait_group`` makes a thread's own
completed copies visible to it; the slots of a stage are overwritten one whole iteration after they were
read (iteration ``i`` writes the buffer iteration ``i - 1`` read, whose values that iteration consumed).

Worked example: the tensor-core GEMV of int2 at 16 rows x 1024 codes per step with 2 warps (64 threads):
the codes tile is 4 KiB, each thread's vector plan 4 chunks of 128 bits; with S = 3 the region is
3 x 4 KiB, and thread 5's chunk 2 of the stage at byte 4096 is at 4096 + (2 * 64 + 5) * 16 = 6224:

>>> PrivatePlan(None, None, 2, chunks=4, nbytes=16, threads=64).slot_offset(4096, thread=5, j=2)
6224
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from . import memory as M
from .core import I32, const_i32, names_tensor

#: bits per access a staged load may have (one cp.async of 16, 8 or 4 bytes per chunk)
STAGED_WIDTHS = (128, 64, 32)


@dataclass(frozen=True)
class PrivatePlan:
    """How a register load is staged: its layout ``lay`` and vector plan ``plan``, ``chunks`` accesses of
    ``nbytes`` bytes per thread, ``threads`` slots per chunk index (the block's threads), and the bytes of
    one stage (``size_bytes``)."""
    lay: object
    plan: object
    bits: int
    chunks: int
    nbytes: int
    threads: int

    @property
    def size_bytes(self) -> int:
        return self.chunks * self.threads * self.nbytes

    def slot_offset(self, base: int, thread: int, j: int) -> int:
        """Byte of thread ``thread``'s chunk ``j`` in a stage at byte ``base`` (what :func:`_slot` emits)."""
        return base + (j * self.threads + thread) * self.nbytes


def private_plan(lw, i) -> PrivatePlan | None:
    """The :class:`PrivatePlan` of load ``i`` (a global slice into a register tile of a tensor the option
    names), or None where staging does not apply: no vector plan of 128, 64 or 32 bits covering every
    register bit of each thread, or a layout in which several threads hold the same element (each would
    copy it to its own slots: the bytes in flight grow by the replication, not the latency hidden).
    Emits nothing."""
    from .vector import plan_of
    want = getattr(lw, "stage_loads", frozenset())      # launch.lower_program: the option, parsed
    if not want or not (i.out.is_tile and i.out.type.space == "register") or not names_tensor(want, i.src):
        return None
    plan = plan_of(lw, i)
    if plan is None or plan.bits_per_access not in STAGED_WIDTHS:
        return None
    lay = lw.layout_of(i.out)
    bits = i.out.dtype.nbits
    if lay is None or lay.values * bits != plan.bits_per_access * plan.accesses_per_thread or replicated(lay):
        return None
    return PrivatePlan(lay, plan, bits, plan.accesses_per_thread, plan.bits_per_access // 8,
                       lw.kernel.warps * 32)


def replicated(lay) -> bool:
    """Whether some tile element is held by more than one (thread, value) slot of ``lay``."""
    import numpy as np
    tbl = np.asarray(lay.table(), dtype=np.int64).ravel()
    tbl = tbl[tbl >= 0]
    return len(np.unique(tbl)) < tbl.size


@dataclass(frozen=True)
class Staged:
    """Where the current iteration's chunks of a staged load are: byte ``offset`` (constant) plus ``stage``
    (an i32 value) of the dynamic shared memory."""
    plan: PrivatePlan
    offset: int
    stage: object


def _slot(lw, pp: PrivatePlan, base: ir.Value, j: int) -> ir.Value:
    """Byte offset (i32) of this thread's chunk ``j`` in a stage starting at ``base``."""
    b = lw.b
    return b.add(base, b.add(const_i32(j * pp.threads * pp.nbytes), b.mul(lw.tid(), const_i32(pp.nbytes))))


def issue(lw, i, src, pp: PrivatePlan, base: ir.Value, pred) -> None:
    """This thread's copies of load ``i`` (its index bound as it is now: the pipeline binds a later
    iteration's) into the stage at byte ``base``; nothing is read or written where ``pred`` (i1) is false
    (the iteration does not exist); a chunk whose predicate is false -- outside the shape, or a thread
    that holds no values (the predicate includes it) -- is zero-filled without reading memory, so its
    words read back as 0, as the guarded global load's would."""
    from .async_copy import _cp_async
    from .vector import _chunks
    b = lw.b
    for j, (ptr, ok, imm) in enumerate(_chunks(lw, i, src, pp.lay, i.out.shape, pp.plan, pp.bits)):
        if M.always(ok):
            size = const_i32(pp.nbytes)
        else:       # a chunk outside the shape reads nothing (source size 0) from a valid address
            ptr = b.select(ok, M.byte_ptr(lw, ptr, ir.Constant(ir.IntType(64), imm)) if imm else ptr, src.ptr)
            imm, size = 0, b.select(ok, const_i32(pp.nbytes), const_i32(0))
        _cp_async(lw, pred, _slot(lw, pp, base, j), ptr, pp.nbytes, size, imm)


def read(lw, i, src, st: Staged):
    """``(words, preds)``: the i32 words of this thread's chunks of the current iteration (``ld.shared``) and
    each chunk's bounds predicate -- what :func:`.vector.vector_load` would have loaded from global memory."""
    from .vector import _chunks
    b = lw.b
    pp = st.plan
    n = pp.nbytes // 4
    base = b.add(const_i32(st.offset), st.stage)
    words, preds = [], []
    for j, (_, ok, _) in enumerate(_chunks(lw, i, src, pp.lay, i.out.shape, pp.plan, pp.bits)):
        p = lw.shared_ptr(_slot(lw, pp, base, j))
        if n == 1:
            words.append(b.load(p, typ=I32, align=4))
        else:
            v = b.load(p, typ=ir.VectorType(I32, n), align=pp.nbytes)
            words += [b.extract_element(v, const_i32(k)) for k in range(n)]
        preds.append(ok)
    return words, preds


def staged_of(lw, i) -> Staged | None:
    """The :class:`Staged` binding of load ``i`` inside a pipelined loop (None: load it from global)."""
    return getattr(lw, "staged_loads", {}).get(i.out.id)


__all__ = ["PrivatePlan", "Staged", "private_plan", "issue", "read", "staged_of", "replicated",
           "STAGED_WIDTHS"]
