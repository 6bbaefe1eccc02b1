"""Vectorization: one :class:`VectorPlan` per memory access (``Load``/``Store``/``AtomicAdd`` on a
global tensor, ``Load`` from a shared tile), stored in ``program.facts`` under the instruction.

Each thread's register bits are laid out in memory by its register layout (for a load into shared
memory: the default layout of the copying threads). An access of ``w`` bits (128, 64, 32, 16, 8)
is legal when every chunk of ``w`` consecutive register bits of every thread is contiguous in
memory and starts at a multiple of ``w`` bits. Within a row of the tile that is decided exactly on
the bit addresses (:func:`vmlang.ir.layout.analysis.vector_bits`' test); what is only known at run
time is decided on divisibility facts:

* the tensor base is ``base_align_bytes`` (16) aligned (the launcher checks it);
* global tensors are row-major with a packed last axis: the row pitch of ``w: int4[K, N]`` is
  ``N * 4`` bits, a multiple of 128 bits when ``N % 32 == 0`` is known (``assume(N % 32 == 0)``, or
  the runtime's ``n % 16 == 0`` specialisation for 64 bits);
* slice starts: ``block.x * 128`` is a multiple of 128, a loop variable of ``range(0, K, 64)`` of 64;
* a slice that may cross the declared shape is **masked**; when its last axis may be cut, a vector
  must lie wholly inside or outside, so the row length must be a multiple of the vector too.
  :meth:`~vmlang.passes.scalars.ScalarFacts.fits` proves a slice inside (grid sizes, loop bounds,
  ``assume``), which drops the mask.

Sub-byte types vectorize over whole granules: 8 int3 = 3 bytes, so a thread holding 128 int3 reads
3 x 128 bits. A thread whose values are not whole bytes reads bytes (``bits_per_access = 8``,
``accesses_per_thread`` = bytes touched) and extracts bits; a store of partial bytes needs a
read-modify-write (``bits_per_access = 0``).

>>> import vmlang as vm
>>> from vmlang.passes import pipeline
>>> p = pipeline(vm.compile_source('''
... kernel t(w: int4[K, N] global, y: int4[K, N] global) grid(cdiv(N, 128), K) {
...     assume(N % 128 == 0);
...     store(y[block.y, block.x * 128 : +128], load(w[block.y, block.x * 128 : +128]));
... }'''))
>>> [(f.bits_per_access, f.accesses_per_thread, f.masked) for f in p.facts.of_type(VectorPlan).values()]
[(128, 1, False), (128, 1, False)]
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from vmlang.ir import nodes as N
from vmlang.ir.layout import MemLayout, TVLayout
from vmlang.ir.layout.analysis import _width_problem
from vmlang.ir.types import SHARED

from .program import Note, Program, option
from .scalars import CAP, ScalarFacts
from .tvmaps import default_layout

PASS = "vectorize"
WIDTHS = (128, 64, 32, 16, 8)


@dataclass(frozen=True)
class VectorPlan:
    """How one thread performs an access.

    ``bits_per_access``: 128, 64, 32, 16 or 8 (one ``ld/st .v4.b32``, ``.v2.b32``, ``.b32``, ``.b16``,
    ``.b8``); 0 for a store that must read-modify-write partial bytes. ``accesses_per_thread``: how
    many of them each thread holding values issues. ``masked``: whether a run-time bounds check is
    needed (positions outside the declared shape read the fill / are not written). ``reason``: why.
    """
    bits_per_access: int
    accesses_per_thread: int
    masked: bool
    reason: str

    @property
    def instruction(self) -> str:
        """The PTX type suffix of one access, e.g. ``v4.b32``."""
        return {128: "v4.b32", 64: "v2.b32", 32: "b32", 16: "b16", 8: "b8"}.get(self.bits_per_access, "rmw")


def _val(n: int) -> int:
    """Largest power of two dividing ``n`` (capped)."""
    return CAP if n == 0 or n >= CAP else n & -n


def _where(ins) -> str:
    loc = getattr(ins, "loc", None)
    return f"{os.path.basename(loc.file)}:{loc.line}:{loc.column}" if loc else ""


def register_bits(index, L: TVLayout, b: int) -> np.ndarray:
    """``[thread, register bit]``: the bit address of every register bit of an access ``index`` with layout ``L``
    of ``b``-bit values, in a model where every run-time term is 0 and rows lie far apart: two bits that
    are neighbours here (one row) are neighbours in memory whatever the run-time terms."""
    kept = [i for i, it in enumerate(index) if isinstance(it, N.Range)]
    shape = tuple(index[i].length for i in kept)
    tbl = L.table()
    coords = np.unravel_index(tbl, shape, order="F")
    addr = np.zeros(tbl.shape, dtype=np.int64)
    last_kept = isinstance(index[-1], N.Range)
    big = 1 << 12
    span = (index[-1].length * b if last_kept else b) + 1024
    stride = -(-span // big) * big
    for pos in reversed(range(len(kept))):
        ax = kept[pos]
        if ax == len(index) - 1:
            addr += coords[pos] * b
        else:
            addr += coords[pos] * stride
            stride *= index[ax].length + 1
    T, V = tbl.shape
    return (addr[:, :, None] + np.arange(b)).reshape(T, V * b)


class _Plan:
    def __init__(self, kernel, options):
        self.k = kernel
        self.f = ScalarFacts(kernel)
        self.threads = kernel.warps * 32
        self.base = option(options, "base_align_bytes") * 8

    # -- global accesses -------------------------------------------------------------------------
    def global_access(self, ins, g: N.Value, tile: N.Value | None, kind: str) -> VectorPlan:
        b = g.dtype.nbits
        dims = g.type.dims
        r = len(dims)
        f = self.f
        region = f"{g.name}[{', '.join(self._item(it) for it in ins.index)}]"
        # -- which axes may cross the declared shape
        unmasked = not getattr(ins, "masked", True)
        outside = []
        for ax, (it, d) in enumerate(zip(ins.index, dims)):
            start, length = (it.index, 1) if isinstance(it, N.At) else (it.start, it.length)
            if not unmasked and not f.fits(start, length, d):
                outside.append(ax)
        masked = bool(outside)
        # -- divisibility of the row pitch (bits) and of the pitches of the outer axes
        dl = f.sym_divisor(dims[-1])
        row = b * dl if (b * dl) % 8 == 0 else 8
        pitch = [0] * r
        acc = row
        for ax in range(r - 2, -1, -1):
            pitch[ax] = acc
            acc = min(CAP, acc * f.sym_divisor(dims[ax]))
        # -- run-time terms of every address: (known power-of-two alignment in bits, text if enough, if not)
        terms = [(self.base, "", f"the tensor base is only known to be {self.base // 8}-byte aligned")]
        last = ins.index[-1]
        s_last = last.index if isinstance(last, N.At) else last.start
        if f.const(s_last) != 0:
            m = f.divisor(s_last)
            terms.append((_val(m * b), f"the start {f.text(s_last)} is a multiple of {m} elements",
                          f"the start {f.text(s_last)} is only known to be a multiple of {m} elements"))
        for ax in range(r - 1):
            it = ins.index[ax]
            s = it.index if isinstance(it, N.At) else it.start
            ext = 1 if isinstance(it, N.At) else it.length
            if ext == 1 and f.const(s) == 0:
                continue
            mult = f.divisor(s) if ext == 1 else 1
            terms.append(self._pitch_term(g, ax, _val(min(CAP, pitch[ax] * mult))))
        if r and (r - 1) in outside and not isinstance(last, N.At):
            row_text = f"{dims[-1]} * {b} bits"
            terms.append((_val(row), f"a row ({row_text}) is a multiple of {_val(row)} bits, so no vector "
                                     f"straddles the edge at {dims[-1]}",
                          f"the edge at {dims[-1]} may cut a vector (a row, {row_text}, is only known to be a "
                          f"multiple of {_val(row)} bits){self._hint(dims[-1], b)}"))
        if tile is None:                                            # a single element into a scalar
            w = max(8, 1 << (b - 1).bit_length()) if b >= 8 else 8
            return VectorPlan(w, 1, masked, f"{kind} {region}: one element (block-uniform scalar)"
                              + self._mask_text(masked, outside, ins, dims))
        L = tile.type.layout if isinstance(tile.type.layout, TVLayout) else \
            default_layout(tile.shape, b, self.threads)
        B = register_bits(ins.index, L, b)
        return self._choose(B, terms, b, masked, kind, region, L, tile, outside, ins, dims)

    def _pitch_term(self, g, ax, align):
        dims = g.type.dims[ax + 1:]
        rest = " * ".join(str(d) for d in dims)
        facts = sorted({self.f.assumed[s] for d in dims for s in d.symbols() if s in self.f.assumed})
        why = f" ({', '.join(facts)} assumed)" if facts else ""
        hint = self._hint(dims[0], g.dtype.nbits) if len(dims) == 1 else ""
        return (align, f"rows are {rest} * {g.dtype.nbits} bits apart, a multiple of {align} bits{why}",
                f"the row pitch {rest} * {g.dtype.nbits} bits is only known to be a multiple of {align} "
                f"bits{why}{hint}")

    def _hint(self, dim, b) -> str:
        from vmlang.ir.symexpr import SymVar
        if isinstance(dim, SymVar):
            return f"; assume({dim} % {128 // math.gcd(128, b)} == 0) would allow 128 bits"
        return ""

    def _item(self, it) -> str:
        if isinstance(it, N.At):
            return self.f.text(it.index)
        return f"{self.f.text(it.start)} : +{it.length}"

    def _choose(self, B, terms, b, masked, kind, region, L, tile, outside, ins, dims) -> VectorPlan:
        R = B.shape[1]
        problems = {}
        for w in WIDTHS:
            if R < w:
                problems[w] = f"{w}-bit: a thread holds only {R} bits"
                continue
            prob = _width_problem(B, w)
            if prob is None:
                bad = next((t for t in terms if t[0] % w), None)
                prob = f"{w}-bit: {bad[2]}" if bad else None
            problems[w] = prob
        for w in WIDTHS:
            if problems[w] is None:
                return self._plan(w, R // w, masked, kind, region, L, tile, problems.get(2 * w, ""), terms,
                                  outside, ins, dims)
        why_not = problems[8]
        nbytes = int(max(len(np.unique(row // 8)) for row in B)) if B.size else 0
        if kind == "load":
            return VectorPlan(8, nbytes, masked, f"{kind} {region}: ld.{self._space(ins)}.b8 x {nbytes} per thread "
                              f"and bit extraction: the values of a thread are not whole aligned bytes ({why_not})"
                              + self._mask_text(masked, outside, ins, dims))
        return VectorPlan(0, L.values, masked, f"{kind} {region}: partial bytes per thread: read-modify-write "
                          f"of each byte ({why_not})" + self._mask_text(masked, outside, ins, dims))

    def _space(self, ins) -> str:
        return "global" if ins.__class__ is not N.Load or ins.src.is_global else "shared"

    def _plan(self, w, n, masked, kind, region, L, tile, why_not, terms, outside, ins, dims) -> VectorPlan:
        op = {"load": "ld", "store": "st", "atomic_add": "red"}[kind]
        if kind == "load" and tile.type.space == SHARED:
            op = "cp.async" if w >= 32 else "ld"
        suffix = {128: "v4.b32", 64: "v2.b32", 32: "b32", 16: "b16", 8: "b8"}[w]
        instr = f"cp.async.shared.global ({w // 8} bytes)" if op == "cp.async" else f"{op}.{self._space(ins)}.{suffix}"
        per = w // tile.dtype.nbits if w % tile.dtype.nbits == 0 else None
        what = f"{per} {tile.dtype.name}" if per else f"{w // 8} bytes"
        text = f"{kind} {region}: {instr} x {n} per thread ({what} each)"
        used = [t[1] for t in terms[1:] if t[0] % w == 0]
        if used and w > tile.dtype.nbits:
            text += "; " + "; ".join(used)
        if why_not and w < 128:
            text += f"; not wider: {why_not}"
        rep = (L.threads * L.values) // max(1, len(np.unique(L.table())))
        if kind != "load" and rep > 1:
            text += f"; each element is held by {rep} threads: one of them writes it"
        return VectorPlan(w, n, masked, text + self._mask_text(masked, outside, ins, dims))

    def _mask_text(self, masked, outside, ins, dims) -> str:
        if isinstance(ins, N.Load) and ins.src.is_tile:
            return ""
        if not getattr(ins, "masked", True):
            return "; unmasked (masked=false)"
        if not masked:
            return "; unmasked: the slice is inside the shape"
        axes = ", ".join(f"axis {a} ({self._item(ins.index[a])} within {dims[a]} not proven)" for a in outside)
        return f"; masked: {axes}"

    # -- shared tiles ----------------------------------------------------------------------------
    def shared_load(self, ins: N.Load) -> VectorPlan:
        src, out = ins.src, ins.out
        region = f"{src.name or 'tile'}[{', '.join(self._item(it) for it in ins.index)}]"
        b = src.dtype.nbits
        mem = src.type.layout
        starts = [self.f.const(it.index if isinstance(it, N.At) else it.start) for it in ins.index]
        if not isinstance(mem, MemLayout) or not out.is_tile or any(s is None for s in starts):
            n = out.type.layout.values if out.is_tile else 1
            return VectorPlan(max(8, b) if b % 8 == 0 else 8, n, False,
                              f"load {region} from shared memory: one element at a time (run-time offsets)")
        L = out.type.layout
        kept = [i for i, it in enumerate(ins.index) if isinstance(it, N.Range)]
        coords = np.unravel_index(L.table(), out.shape, order="F")
        full = [np.full(L.table().shape, s) for s in starts]
        for pos, ax in enumerate(kept):
            full[ax] = full[ax] + coords[pos]
        idx = np.ravel_multi_index(tuple(full), src.shape, order="F")
        bt = mem.bit_table()[idx]                                    # (T, V, b)
        B = bt.reshape(bt.shape[0], -1)
        terms = [(128 * 8, "", "shared tiles are only 128-byte aligned")]
        return self._choose(B, terms, b, False, "load", region, L, out, [], ins, src.shape)


def run(program: Program, options=None) -> Program:
    k = program.kernel
    pl = _Plan(k, options)
    facts, notes = {}, []
    for ins in N.walk(k.body):
        plan = None
        if isinstance(ins, N.Load) and ins.src.is_global:
            plan = pl.global_access(ins, ins.src, ins.out if ins.out.is_tile else None, "load")
        elif isinstance(ins, N.Load) and ins.src.type.space == SHARED:
            plan = pl.shared_load(ins)
        elif isinstance(ins, N.Store):
            plan = pl.global_access(ins, ins.dst, ins.value if ins.value.is_tile else None, "store")
        elif isinstance(ins, N.AtomicAdd):
            p = pl.global_access(ins, ins.dst, ins.value if ins.value.is_tile else None, "atomic_add")
            n = ins.value.type.layout.values if ins.value.is_tile else 1
            b = ins.dst.dtype.nbits
            tail = p.reason[p.reason.find(";"):] if ";" in p.reason else ""
            plan = VectorPlan(b, n, p.masked, f"atomic_add {ins.dst.name}: red.global.add, one per element{tail}")
        if plan is not None:
            facts[ins] = plan
            notes.append(Note(PASS, ins.loc, plan.reason))
    n = sum(1 for p in facts.values() if p.bits_per_access >= 64)
    notes.append(Note(PASS, None, f"{len(facts)} memory accesses, {n} of them 64 or 128 bits wide"))
    return program.with_(facts=facts, notes=notes)
