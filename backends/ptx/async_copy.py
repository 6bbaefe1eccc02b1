"""Global -> shared tile loads with ``cp.async`` (sm_80+), from the vectorize pass's plan.

``try_async_load(lw, i, src)`` returns False (the caller then loads into registers and writes shared
memory) unless all of this holds, checked at compile time:

* the load has a :class:`vmlang.passes.vectorize.VectorPlan` of 128, 64 or 32 bits per access (the plan
  proved each chunk contiguous and aligned in global memory, for the default layout of the copying
  threads); elements are 8, 16 or 32 bits (bf16 is staged as its 16-bit code, ``ebytes = 2``);
* a masked-off position reads code 0 (no fill, or a fill of code 0: ``fill_is_code_zero``), which is what
  ``src-size = 0`` zero-fills;
* every chunk is also contiguous and aligned in **shared** memory, through the tile's memory layout and
  swizzle (:func:`chunk_ok`, on the layout tables).

Emitted code: a barrier (earlier readers of the tile, e.g. the previous loop iteration, are done), per
chunk ``@p cp.async.cg.shared.global [dst], [src], 16, n`` (``.ca`` and 8 / 4 bytes for narrower plans)
with ``n = 16`` inside the shape and ``n = 0`` outside (zero fill, nothing read), then
``cp.async.commit_group; cp.async.wait_group 0;`` and a barrier. Inside a ``for`` loop the load may
instead be software-pipelined over several stage buffers (:mod:`.pipeline`), which uses
:func:`copy_plan` and :func:`issue_copies` of this module with its own commit groups and waits.

Worked example: ``at = load(a[m0 : +64, k0 : +32])`` (f16, ``Sw<2,4,3> o (64,32):(32,1)``), 128 threads,
default layout 8 halves per chunk, 2 chunks per thread: thread 0 copies a[m0, k0 .. k0+7] to bytes
0..15 and a[m0+32, k0 .. k0+7] to bytes 2048..2063 (row 32 = byte 2048, whose swizzle bits 7..8 are 0);
thread 4 copies a[m0+1, k0 .. k0+7]: row 1 starts at byte 64, bits 7..8 of 64 are 0, so no XOR: bytes
64..79. Thread 8 (row 2, byte 128) lands at 128 ^ (1 << 4) = 144.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from vmlang.ir.layout import TVLayout

from . import memory as M
from .core import GPTR, I1, I32, SharedTile, const_i32


def chunk_ok(copy_layout: TVLayout, shape, mem_layout, ebytes: int, per: int, nbytes: int) -> bool:
    """Whether each run of ``per`` value slots of every thread is ``per`` consecutive elements along the
    last axis (global contiguity) and ``nbytes`` contiguous, ``nbytes``-aligned bytes in shared memory."""
    T, V = copy_layout.threads, copy_layout.values
    if V % per:
        return False
    n = int(np.prod(shape))
    tbl = np.asarray(copy_layout.table(), dtype=np.int64).reshape(T, V // per, per)
    last_stride = n // shape[-1]                          # colex index step of the last axis
    first = tbl[:, :, :1]
    if not np.all(tbl == first + last_stride * np.arange(per)):
        return False
    if np.any((first[:, :, 0] // last_stride) % per):     # chunks start at multiples of per along the row
        return False
    from .exchange import shared_byte_table
    byte = shared_byte_table(mem_layout, ebytes, n)
    if byte is None:
        return False
    bt = byte[tbl]
    return bool(np.all(bt[:, :, 0] % nbytes == 0) and np.all(bt == bt[:, :, :1] + ebytes * np.arange(per)))


def _cp_async(lw, pred, dst_off, src_ptr, nbytes: int, src_size, imm: int = 0):
    """``cp.async`` of ``nbytes`` (16: ``.cg``, L2 only; 8 or 4: ``.ca``) from ``src_ptr + imm`` to byte
    ``dst_off`` of the dynamic shared memory where ``pred`` holds, reading ``src_size`` bytes (0: zero fill)."""
    b = lw.b
    from .exchange import shared_addr32
    dst = shared_addr32(lw, dst_off if isinstance(dst_off, ir.Value) else const_i32(dst_off))
    kind = "cg" if nbytes == 16 else "ca"
    src = f"[$2+{imm}]" if imm else "[$2]"
    asm = (f"{{ .reg .pred p; setp.ne.b32 p, $0, 0; @p cp.async.{kind}.shared.global [$1], {src}, {nbytes}, $3; }}")
    fn = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [I32, I32, GPTR, I32]), asm, "r,r,l,r,~{memory}",
                      side_effect=True)
    b.call(fn, [b.zext(pred, I32), dst, src_ptr, src_size])


def _wait_all(lw):
    asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "cp.async.commit_group; cp.async.wait_group 0;",
                       "~{memory}", side_effect=True)
    lw.b.call(asm, [])


@dataclass(frozen=True)
class CopyPlan:
    """How one global -> shared tile load is copied (decided at compile time by :func:`copy_plan`):
    ``lay`` is the copying threads' register layout, each thread copies ``lay.values // per`` chunks of
    ``per`` elements = ``nbytes`` bytes; the shared tile needs ``size_bytes`` bytes (its memory layout's
    cosize) laid out by ``mem``; ``masked``: chunks are bounds-checked (the load is masked and its vector
    plan did not prove the slice inside the shape)."""
    lay: object
    shape: tuple
    mem: object
    dtype: object
    ebytes: int
    nbytes: int
    per: int
    size_bytes: int
    masked: bool = True       # bounds checks needed (False: the vectorize pass proved the slice inside)


def copy_plan(lw, i) -> CopyPlan | None:
    """The :class:`CopyPlan` of load ``i`` (a global slice into a shared tile), or None where cp.async does
    not apply (the conditions of the module docstring). Emits nothing."""
    if not i.out.is_tile or i.out.type.space != "shared":
        return None
    dt = i.out.dtype
    if dt.nbits not in (8, 16, 32):          # whole bytes (bool is 1 bit); bf16 staged as its 16-bit code
        return None
    from .rules_memory import fill_is_code_zero
    from .vector import plan_of
    plan = plan_of(lw, i)
    if plan is None or plan.bits_per_access not in (128, 64, 32) or not fill_is_code_zero(lw, i, dt):
        return None
    mem = i.out.type.layout
    if mem is None or hasattr(mem, "threads"):
        return None
    eb = dt.nbits // 8
    nbytes = plan.bits_per_access // 8
    per = nbytes // eb
    shape = tuple(i.out.shape)
    lay = lw.default_layout(i.out)
    if plan.accesses_per_thread * per != lay.values:
        return None
    if not chunk_ok(lay, shape, mem, eb, per, nbytes):
        return None
    f = getattr(mem, "layout", mem)
    size = max(int(f.cosize) if hasattr(f, "cosize") else 0, int(np.prod(shape)))
    return CopyPlan(lay, shape, mem, dt, eb, nbytes, per, size * eb, bool(i.masked and plan.masked))


def issue_copies(lw, i, src, cp: CopyPlan, st: SharedTile, pred=None) -> None:
    """This thread's ``cp.async`` of load ``i`` into shared tile ``st`` (no barrier, no commit): the index
    values are read from ``lw`` as they are bound now (the pipeline binds a later iteration's); ``pred``
    (i1, optional) turns every copy off when false (nothing is read or written)."""
    from .exchange import shared_offset
    from .rules_memory import first_holders, positions
    b = lw.b
    go, _ = first_holders(lw, cp.lay)        # each chunk copied once (chunks are whole: no repeated slot)
    if pred is not None:
        go = b.and_(go, pred)
    coords = lw.coords(cp.lay, cp.shape)
    for j in range(cp.lay.values // cp.per):
        c = coords[j * cp.per]
        ok = M.in_bounds(lw, src, positions(lw, i.index, c)) if cp.masked else ir.Constant(I1, 1)
        ptr = M.chunk_ptr(lw, src, i.index, c, 0, cp.dtype.nbits)
        if cp.masked:
            ptr = b.select(ok, ptr, src.ptr)                  # masked-off chunks read nothing
        size_ = b.select(ok, const_i32(cp.nbytes), const_i32(0))
        _cp_async(lw, go, shared_offset(lw, st, c), ptr, cp.nbytes, size_)


def try_async_load(lw, i, src) -> bool:
    """Copy a global tile into a new shared tile with cp.async; False where that does not apply."""
    cp = copy_plan(lw, i)
    if cp is None:
        return False
    st = SharedTile(lw.alloc_shared(cp.size_bytes), cp.mem, cp.dtype, cp.shape, cp.ebytes)
    if st.offset % 16:
        return False      # pragma: no cover (alloc_shared aligns to 16)
    lw.barrier()                         # earlier readers of shared memory (previous iteration) are done
    issue_copies(lw, i, src, cp, st)
    _wait_all(lw)
    lw.barrier()
    lw.set(i.out, st)
    return True


def commit(lw) -> None:
    """``cp.async.commit_group``: the copies issued since the last commit form one group (possibly empty)."""
    asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "cp.async.commit_group;", "~{memory}", side_effect=True)
    lw.b.call(asm, [])


def wait_group(lw, n: int) -> None:
    """``cp.async.wait_group n``: all but the ``n`` most recently committed groups of this thread are done."""
    asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), f"cp.async.wait_group {int(n)};", "~{memory}",
                       side_effect=True)
    lw.b.call(asm, [])


__all__ = ["try_async_load", "chunk_ok", "copy_plan", "issue_copies", "CopyPlan", "commit", "wait_group"]
