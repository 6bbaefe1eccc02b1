"""Layout inference's rules for ``dot`` (a mixin of :class:`vmlang.passes.layout._Infer`): the mma.sync
fragments of a tiled dot, the transposed few-row product of a GEMV (:mod:`.mma_rows`), and the shared
layout (padding or swizzle, ldmatrix phases) of a dot operand staged in shared memory.

The methods use the inference state of ``_Infer`` (``set``, ``want``, ``note``, ``natural``, ``default``,
``show``, ``is_reg``, ``source_dtype``, ``uses_of``; ``lay``, ``flex``, ``plans``, ``rows_out``, ``k``, ``threads``).

>>> import vmlang as vm
>>> from vmlang.passes import DotPlan, pipeline
>>> p = pipeline(vm.compile_file("examples/matmul_f16.vm"))
>>> [(d.mma, d.rows) for d in p.facts.of_type(DotPlan).values()]
[(True, False)]
"""
from __future__ import annotations

import functools

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import TVLayout, choose_shared_layout

from . import mma_rows as MR
from . import wgmma as WG
from . import tvmaps as TM
from .conversions import DotPlan
from .program import value_label
from .tvmaps import default_layout


@functools.lru_cache(maxsize=128)
def _choose_shared(writer: TVLayout, reader: TVLayout, bits: int):
    """``choose_shared_layout`` (cached: it scores every padding and swizzle), or None."""
    try:
        return choose_shared_layout(writer, reader, bits)
    except LayoutError:
        return None


@functools.lru_cache(maxsize=128)
def _choose_ldmatrix(choice, writer: TVLayout, shape: tuple, bits: int):
    """:func:`.ldmatrix.choose_for_ldmatrix` (cached), or None."""
    from .ldmatrix import choose_for_ldmatrix
    try:
        return choose_for_ldmatrix(choice, writer, shape, bits)
    except LayoutError:
        return None


class DotRules:
    """The dot rules of layout inference (see the module docstring)."""

    def shared_layout(self, ins: N.Load):
        """Row-major; for a dot operand, the padding/swizzle with the fewest bank conflicts."""
        v = ins.out
        base = self.default(v)
        for use, f in self.uses_of(v):
            if isinstance(use, N.Dot) and f in ("a", "b") and v.type.layout is None:
                wl = self.wgmma(use)
                if wl is not None:
                    block = wl.n if f == "b" else None
                    mem = WG.canonical_shared(tuple(v.shape), v.dtype.nbits, block)
                    self.note(ins, f"{value_label(v)}: shared layout for the wgmma {f} operand: {mem} "
                                   f"({WG.swizzle_bytes(tuple(v.shape), v.dtype.nbits, block)}-byte swizzle "
                                   f"atoms, read by descriptor)")
                    return mem
                m = self.mma(use)
                if m is None:
                    break
                writer = default_layout(v.shape, v.dtype.nbits, self.threads)
                reader = m.a if f == "a" else m.b
                ch = _choose_shared(writer, reader, v.dtype.nbits)
                if ch is None:
                    break
                lm = _choose_ldmatrix(ch, writer, tuple(v.shape), v.dtype.nbits)
                if lm is not None:       # 16-bit operands are read by ldmatrix: rank by its 8-row phases
                    mem, wc, lx = lm
                    self.note(ins, f"{value_label(v)}: shared layout for the copy in and the mma {f} "
                                   f"fragments: {mem}: write {ch.write.bits}-bit, {wc} conflicts; read by "
                                   f"ldmatrix, {lx} conflicts")
                    return mem
                self.note(ins, f"{value_label(v)}: shared layout for the copy in and the mma {f} "
                               f"fragments: {ch}")
                return ch.mem
        return base

    def mma(self, ins: N.Dot):
        if ins.a.dtype not in (D.float16, D.bfloat16):
            return None
        (m, k), n = ins.a.shape, ins.b.shape[1]
        return TM.mma_layouts(m, n, k, self.k.warps)

    def wgmma(self, ins: N.Dot):
        """The warpgroup-MMA layouts (:mod:`.wgmma`) when the target has wgmma (``arch`` sm_90/sm_90a and
        the ``wgmma`` option on) and the dot fits it: f16/bf16 operands that are global loads placed in
        shared memory without a user layout (their layout is then the canonical one), an f32 accumulator,
        and a shape and warp count :func:`.wgmma.wgmma_layouts` accepts; else None."""
        from .program import option
        if option(self.options, "arch") not in WG.ARCHS or not option(self.options, "wgmma"):
            return None
        if ins.a.dtype not in (D.float16, D.bfloat16):     # then acc and out are f32 (ir Dot's constructor)
            return None
        for x in (ins.a, ins.b):
            if self.is_reg(x) or x.type.layout is not None or not isinstance(self.defs.get(x.id), N.Load):
                return None
        (m, k), n = ins.a.shape, ins.b.shape[1]
        wl = WG.wgmma_layouts(m, n, k, self.k.warps)
        if wl is None or WG.canonical_shared((m, k), ins.a.dtype.nbits) is None or \
                WG.canonical_shared((k, n), ins.b.dtype.nbits, wl.n) is None:
            return None
        return wl

    def rows(self, ins: N.Dot):
        """The few-row layouts (:mod:`.mma_rows`) when they apply: f16/bf16 in registers, f32 out."""
        if ins.a.dtype not in (D.float16, D.bfloat16) or ins.out.dtype != D.float32:
            return None
        if not (self.is_reg(ins.a) and self.is_reg(ins.b)):
            return None
        (m, k), n = ins.a.shape, ins.b.shape[1]
        return MR.rows_layouts(m, n, k, self.k.warps)

    def dot(self, ins: N.Dot):
        (m, k), n = ins.a.shape, ins.b.shape[1]
        wg = self.wgmma(ins)
        mm = self.mma(ins) if wg is None else None
        rl = self.rows(ins) if mm is None and wg is None else None
        if wg is not None:
            self.set(ins.out, wg.c)
            self.want(ins, "acc", ins.acc, wg.c, "the accumulator of dot is in the wgmma accumulator layout")
            why = (f"wgmma.mma_async m64n{wg.n}k16 over {wg.gm} x {wg.gn} warpgroups, {wg.mb} per warpgroup "
                   f"and k step of 16, both operands read from shared memory by descriptor")
            self.plans[id(ins)] = DotPlan(True, (wg.gm, wg.gn), why, wgmma=(wg.gm, wg.gn, wg.mb, wg.n))
        elif rl is not None:
            self.set(ins.out, rl.c)
            self.rows_out.add(ins.out.id)
            self.want(ins, "acc", ins.acc, rl.c, "the accumulator of dot is in the mma C layout (transposed)")
            for slot, x, F, role in (("a", ins.a, rl.a, "B"), ("b", ins.b, rl.b, "A")):
                self.want(ins, slot, x, F, f"operand {slot} of dot in the mma {role} fragments of the "
                                           f"transposed product, k in runs of {rl.Q} per lane", loose=True)
            src = self.source_dtype(ins.b)
            pairs = MR.run_order(src, k, ins.a.dtype.man)       # decoded into lanes of a's format
            bits, pair = src.nbits, MR.pair_distance(src.nbits, k)
            how = (f", {bits}-bit codes {pair} apart paired in each mma register" if pair > 1 else
                   f", {bits}-bit codes paired as windows of their words decode them" if pairs != MR.distance_pairs(k, 1)
                   else "")
            why = (f"{m} row{'s' if m > 1 else ''}: the transposed product b^T a^T on mma.sync.m16n8k16 "
                   f"({n // 16} tiles of 16 x 16 over {rl.wn} warps, {rl.R} per warp), each lane's k run in "
                   f"memory order" + how)
            self.plans[id(ins)] = DotPlan(True, (1, rl.wn), why, rows=True, pairs=pairs)
        elif mm is not None:
            self.set(ins.out, mm.c)
            self.want(ins, "acc", ins.acc, mm.c, "the accumulator of dot is in the mma C layout")
            for slot, x, F in (("a", ins.a, mm.a), ("b", ins.b, mm.b)):
                if self.is_reg(x):
                    self.want(ins, slot, x, F, f"operand {slot} of dot in the mma {slot.upper()} fragments")
            why = (f"mma.sync.m16n8k16 over {mm.wm} x {mm.wn} warps, {m // (16 * mm.wm)} x {n // (8 * mm.wn)} "
                   f"tiles of 16 x 8 per warp")
            self.plans[id(ins)] = DotPlan(True, (mm.wm, mm.wn), why)
        else:
            L = self.default(ins.out)
            self.set(ins.out, L)
            self.want(ins, "acc", ins.acc, L, "the accumulator of dot shares the result's layout")
            for x in (ins.a, ins.b):
                if x.id in self.flex:
                    self.natural(x)
            why = (f"{m} x {n} x {k} is not a multiple of 16 x 8 x 16" if ins.a.dtype in (D.float16, D.bfloat16)
                   else f"no m16n8k16 fragments for {ins.a.dtype} operands") + ": FMA dot, default layout"
            self.plans[id(ins)] = DotPlan(False, (1, 1), why)
        self.note(ins, f"{value_label(ins.out)} = dot: {self.plans[id(ins)].reason}: "
                       f"{self.show(ins.out, self.lay[ins.out.id])}")
