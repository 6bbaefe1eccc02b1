"""``dot`` on Hopper's warpgroup MMA: ``wgmma.mma_async.sync.aligned.m64nNk16.f32.{f16,bf16}`` (sm_90a).

Layout inference lays such a dot out for it (:mod:`vmlang.passes.wgmma`: the accumulator layout, the
canonical swizzled shared layouts of both operands, recorded in the dot's ``DotPlan.wgmma``); this module
checks those layouts on their tables at compile time and emits the instructions. When any check fails,
:func:`try_lower` returns False having emitted nothing, and :mod:`.mma` (mma.sync, which takes any
arrangement of C fragments) lowers the dot instead.

**Descriptors.** Each operand is read from shared memory through a 64-bit descriptor: bits 0-13 the start
address >> 4, 16-29 the *leading* byte offset >> 4, 32-45 the *stride* byte offset >> 4, 62-63 the
swizzle mode (1: 128-byte, 2: 64-byte, 3: 32-byte atoms). The atoms are 8 rows of ``W`` bytes (see
:mod:`vmlang.passes.wgmma`); with ``U`` the tile's byte offsets *before* the swizzle (the swizzle is its
own inverse) and ``s`` the instruction's first element:

* a, ``[M, K]`` K-major, the instruction's 64 x 16 block at ``(r0, c0)``:
  ``U[r0 + r, c0 + c] = s + (r % 8) W + (r // 8) SBO + 2c``, and the 32 bytes of a row stay inside one
  atom row (``s % W + 32 <= W``); the leading offset is unused (16 bytes, the field's 1);
* b, ``[K, N]`` N-major (``imm-trans-b`` = 1), the 16 x N block at ``(r0, c0)``, ``P = W / 2``:
  ``U[r0 + k, c0 + n] = s + 2 (n % P) + (k % 8) W + (k // 8) SBO + (n // P) LBO`` with ``s % W == 0``.

:func:`operand_plan` checks these equations on every element of every block the instructions read, and
that the layout's swizzle is the one of mode ``W``. The hardware applies the swizzle to the absolute
shared address, so every tile (every stage buffer of a pipelined loop too) starts at a multiple of 1024
bytes: a kernel with a wgmma dot aligns its shared tiles so (``Lowerer.tile_align``).

Worked example (matmul_f16, 128 x 128 x 32, 4 warps): a = f16[128, 32] (64-byte atoms, SBO 512): the
instruction of rows 64..127 at k step 1 starts at byte 64 * 64 + 32 = 4128. b = f16[32, 128] in two
panels of 64 columns (128-byte atoms, SBO 1024, LBO 4096): k step 1 starts at 2048. Per k step the
warpgroup issues 2 instructions m64n128k16; per iteration (BK = 32) 4, then one commit and one wait.

**Order.** ``wgmma.fence`` before the first instruction (the accumulators were written by ordinary
instructions), the instructions (consecutive ones may chain on the same accumulators), one
``wgmma.commit_group``, and ``wgmma.wait_group 0``, whose inline asm takes and returns every accumulator
register so that no use of a result can be scheduled before the wait. Operands written to shared memory
by ``cp.async`` or ``st.shared`` are read by the tensor cores through the *async proxy*: the barrier
that publishes them is preceded by ``fence.proxy.async.shared::cta`` in a kernel with a wgmma dot
(:meth:`.core.Lowerer.barrier`). The wait at the end of the dot also means the next barrier finds every
read of the operands done, so the stage buffers are reused as for mma.sync.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.passes.conversions import DotPlan
from vmlang.passes.wgmma import MODES

from .core import F32, I64, SharedTile, Tile, const_i32
from .mma import _c_groups_cover, fragment_slots


@dataclass(frozen=True)
class Operand:
    """How the instructions read one operand: swizzle mode (atom row bytes), the descriptor's leading
    and stride byte offsets, and the start byte (before the tile's base) of block ``(i, j)``."""
    mode: int
    lbo: int
    sbo: int
    starts: dict        # (row block, col block) -> byte offset in the tile


def _unswizzled(st: SharedTile, rows: int, cols: int):
    """``[r, c] -> byte`` of the tile before its swizzle, and the swizzle's atom row bytes; None when the
    layout has no table or its swizzle is not one of wgmma's modes."""
    from .exchange import shared_byte_table
    sw = getattr(st.layout, "swizzle", None)
    if st.ebytes != 2 or sw is None or sw.base != 4 or sw.shift != 3 or (16 << sw.bits) not in MODES:
        return None
    byte = shared_byte_table(st.layout, 2, rows * cols)
    if byte is None:
        return None
    return np.asarray(sw(byte), dtype=np.int64).reshape(cols, rows).T, 16 << sw.bits


def operand_plan(st: SharedTile, role: str, blocks: list) -> Operand | None:
    """Check the canonical layout of operand ``role`` ("a": K-major blocks of 64 x 16, "b": N-major
    blocks of 16 x N) at every block origin in ``blocks`` (``(r0, c0, rows, cols)``); None if it fails."""
    R, C = st.shape
    got = _unswizzled(st, R, C)
    if got is None:
        return None
    U, W = got
    P = W // 2
    lbo = sbo = None
    starts = {}
    for r0, c0, nr, nc in blocks:
        if r0 + nr > R or c0 + nc > C or nr % 8:
            return None
        s = int(U[r0, c0])
        r, c = np.arange(nr)[:, None], np.arange(nc)[None, :]
        g_sbo = int(U[r0 + 8, c0] - s) if nr > 8 else (sbo or 0)
        if role == "a":
            g_lbo = 16                           # unused for swizzled K-major: "assumed 1" (16 bytes)
            want = s + (r % 8) * W + (r // 8) * g_sbo + 2 * c
            ok = s % W + 2 * nc <= W
        else:
            g_lbo = int(U[r0, c0 + P] - s) if nc > P else (lbo or 16)     # one atom along N: unused
            want = s + 2 * (c % P) + (r % 8) * W + (r // 8) * g_sbo + (c // P) * g_lbo
            ok = s % W == 0
        if not ok or not np.array_equal(U[r0:r0 + nr, c0:c0 + nc], want):
            return None
        if (lbo is not None and g_lbo != lbo) or (sbo is not None and g_sbo != sbo):
            return None                          # one descriptor shape for every block
        lbo, sbo = g_lbo, g_sbo
        if s % 16 or sbo % 16 or not 0 <= sbo < 1 << 18 or (role == "b" and (lbo % 16 or not 0 < lbo < 1 << 18)):
            return None
        starts[(r0, c0)] = s
    return Operand(W, lbo, sbo, starts)


@dataclass(frozen=True)
class Plan:
    gm: int
    gn: int
    mb: int
    n: int
    regs: dict          # (warpgroup-relative m block i) -> accumulator slots in instruction register order
    a: Operand
    b: Operand


def plan(lw, i) -> Plan | None:
    """The warpgroup-MMA plan of ``Dot`` ``i`` when the kernel is lowered for wgmma (``lw.wgmma``: the
    architecture has it, and the tiles are 1024-byte aligned and fenced for the async proxy), its DotPlan
    asks for one and every layout checks out."""
    dp = lw.facts.get(i)
    if not lw.wgmma or not (isinstance(dp, DotPlan) and dp.wgmma):
        return None
    dt = i.a.dtype
    if dt not in (D.float16, D.bfloat16):      # then acc and out are f32 (ir Dot's constructor)
        return None
    gm, gn, mb, n = dp.wgmma
    (M, K), N = i.a.shape, i.b.shape[1]
    W = lw.kernel.warps
    if W != 4 * gm * gn or M != 64 * mb * gm or N != n * gn or n % 8 or K % 16:
        return None
    acc, A, B = lw.get(i.acc), lw.get(i.a), lw.get(i.b)
    lay = lw.layout_of(i.out)
    if not isinstance(acc, Tile) or str(acc.layout) != str(lay) or not isinstance(A, SharedTile) \
            or not isinstance(B, SharedTile):
        return None
    if A.offset % 1024 or B.offset % 1024:
        return None                  # the swizzle is on absolute addresses (a kernel's tile_align gives 1024)
    cmap = fragment_slots(lay, "c", (M, N))
    if cmap is None or not _c_groups_cover(cmap, lay.values):
        return None
    regs = {}
    for blk in range(mb):
        out = []
        for j in range(n // 8):
            key = []
            for w in range(W):
                g, q = divmod(w, 4)
                gi, gj = g % gm, g // gm
                key.append(((gi * mb + blk) * 4 + q, gj * (n // 8) + j))
            sl = cmap.get(tuple(key))
            if sl is None:
                return None
            out += list(sl)
        regs[blk] = out
    if sum(len(v) for v in regs.values()) != lay.values:
        return None
    a_blocks = [((gi * mb + blk) * 64, 16 * kt, 64, 16) for gi in range(gm) for blk in range(mb) for kt in range(K // 16)]
    b_blocks = [(16 * kt, gj * n, 16, n) for gj in range(gn) for kt in range(K // 16)]
    pa, pb = operand_plan(A, "a", a_blocks), operand_plan(B, "b", b_blocks)
    if pa is None or pb is None:
        return None
    return Plan(gm, gn, mb, n, regs, pa, pb)


# ------------------------------------------------------------------------------------------ emitting
def _asm(lw, text: str, outs: int = 0, ins: list | None = None, cons: str = ""):
    """A warpgroup-collective inline-asm call returning ``outs`` f32 registers (none: void; one: an f32;
    more: a struct of them)."""
    ins = ins or []
    rt = ir.VoidType() if not outs else (F32 if outs == 1 else ir.LiteralStructType([F32] * outs))
    fn = ir.InlineAsm(ir.FunctionType(rt, [x.type for x in ins]), text, cons, side_effect=True)
    return lw.b.call(fn, ins, attrs=("convergent",))     # warpgroup-collective: never control-dependent


def _descriptor(lw, st: SharedTile, op: Operand):
    """The i64 descriptor of the tile's first byte (the instruction adds its start >> 4 to bits 0-13)."""
    from .exchange import shared_addr32, tile_start
    b = lw.b
    addr = b.lshr(shared_addr32(lw, tile_start(lw, st)), const_i32(4))
    hi = (op.sbo >> 4) | (MODES[op.mode] << 30)
    const = (hi << 32) | ((op.lbo >> 4) << 16)
    return b.or_(b.zext(b.and_(addr, const_i32(0x3FFF)), I64), ir.Constant(I64, const))


def _select(lw, warpgroup, values: list):
    """``values[g]`` for this thread's warpgroup ``g`` (an i32), folded when all are equal."""
    b = lw.b
    x = const_i32(values[0])
    for g in range(1, len(values)):
        if values[g] != values[0]:
            x = b.select(b.icmp_unsigned("==", warpgroup, const_i32(g)), const_i32(values[g]), x)
    return x


def _mma(lw, dt, n: int, da, db, acc: list) -> list:
    kind = "bf16" if dt == D.bfloat16 else "f16"
    R = len(acc)
    outs = ",".join(f"${j}" for j in range(R))
    text = ("{ .reg .pred p; setp.ne.b32 p, $" + str(R + 2) + ", 0; "
            f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{kind}.{kind} {{{outs}}}, ${R}, ${R + 1}, p, 1, 1, 0, 1; }}")
    cons = ",".join(["=f"] * R + ["l", "l", "r"] + [str(j) for j in range(R)]) + ",~{memory}"
    r = _asm(lw, text, R, [da, db, const_i32(1)] + list(acc), cons)
    return [lw.b.extract_value(r, j) for j in range(R)]


def try_lower(lw, i) -> bool:
    """Lower ``Dot`` ``i`` on wgmma when :func:`plan` allows; returns whether it did."""
    p = plan(lw, i)
    if p is None:
        return False
    b = lw.b
    A, B = lw.get(i.a), lw.get(i.b)
    acc = lw.tile(i.acc)
    K = i.a.shape[1]
    wg = b.udiv(lw.tid(), const_i32(128))
    da0, db0 = _descriptor(lw, A, p.a), _descriptor(lw, B, p.b)
    slots = list(acc.slots)
    _asm(lw, "wgmma.fence.sync.aligned;", cons="~{memory}")
    for kt in range(K // 16):
        for blk in range(p.mb):
            sa = _select(lw, wg, [p.a.starts[((g % p.gm * p.mb + blk) * 64, 16 * kt)] >> 4
                                  for g in range(p.gm * p.gn)])
            sb = _select(lw, wg, [p.b.starts[(16 * kt, g // p.gm * p.n)] >> 4 for g in range(p.gm * p.gn)])
            da, db = b.add(da0, b.zext(sa, I64)), b.add(db0, b.zext(sb, I64))
            sl = p.regs[blk]
            out = _mma(lw, i.a.dtype, p.n, da, db, [slots[s] for s in sl])
            for s, x in zip(sl, out):
                slots[s] = x
    _asm(lw, "wgmma.commit_group.sync.aligned;", cons="~{memory}")
    R = len(slots)
    cons = ",".join(["=f"] * R + [str(j) for j in range(R)]) + ",~{memory}"
    r = _asm(lw, "wgmma.wait_group.sync.aligned 0;", R, slots, cons)
    slots = [b.extract_value(r, j) for j in range(R)] if R > 1 else [r]
    lw.set(i.out, Tile(slots, acc.layout, i.out.dtype))
    lw.wgmma_dots += 1
    return True


__all__ = ["try_lower", "plan", "operand_plan", "Operand", "Plan"]
