"""Layout inference: a ``TVLayout`` for every register tile, a ``MemLayout`` for every shared tile.

The contract (docs/ptx.md, "Layout contract"): a register tile's layout maps (thread, value) onto
exactly its shape; elementwise instructions (unary, binary, compare, where, cast; lookup's codes)
see register operands with their result's layout; ``ConvertLayout`` is inserted where that would
not hold, each with a note saying where and why.

How layouts are chosen, in one walk in program order:

* **anchors** get a layout of their own: a load gets :func:`default_layout` (a load feeding a
  ``view`` gets whole granules per thread, so the view is free), ``dot`` gets the mma C layout when
  ``M % 16 == N % 8 == K % 16 == 0`` (f16/bf16), a reduction keeps its operand's threads (the reduced
  axis' threads replicate the result), ``expand_dims``/``reshape``/``permute``/``view`` carry their
  operand's layout along when each thread can keep its values ("free");
* **flexible** values are computable in any layout (``zeros``/``full``/``arange``/``codebook``,
  loop-carried values, broadcasts, and elementwise results of those) and take the layout of their
  first consumer that has one: ``acc = zeros(...)`` before a loop becomes the layout the loop body
  computes ``acc`` in, ``x[:, None]`` broadcast against a loaded tile takes that tile's layout (the
  small operand is converted so the broadcast is free);
* an elementwise instruction takes the layout of its first operand that has one; other operands
  that disagree are converted;
* a loop's init, carried value, yield and result share one layout (converts on inits and yields).

What is left flexible at the end gets its default. Facts: :class:`ShapePlan` (shape instructions
and converts: free or through shared memory), :class:`ReducePlan`, :class:`DotPlan`.

>>> import vmlang as vm
>>> from vmlang.passes import pipeline
>>> p = pipeline(vm.compile_file("examples/gemv_w4a16.vm"))
>>> from vmlang.ir import nodes as N
>>> wt = next(i.out for i in N.walk(p.kernel.body) if isinstance(i, N.Load) and i.out.name == "wt")
>>> wt.type.layout.threads, wt.type.layout.values, wt.type.layout.coord(1, 0)
(128, 128, (0, 32))
"""
from __future__ import annotations

import dataclasses

from vmlang.ir import nodes as N
from vmlang.ir.errors import VMTypeError
from vmlang.ir.layout import Layout, MemLayout, TVLayout, row_major
from vmlang.ir.types import SHARED

from . import tvmaps as TM
from .conversions import ReducePlan, ShapePlan, rewrite
from .layout_dot import DotRules
from .layout_shapes import ShapeRules
from .program import Program, uses, value_label
from .program import op_name as _op
from .program import where as _where
from .tvmaps import default_layout  # noqa: F401  (re-exported: the backends' default layout)

PASS = "layout"

ELEMENTWISE = (N.Unary, N.Binary, N.Where, N.Cast)
SHAPES = (N.ExpandDims, N.Reshape, N.Permute, N.View)




def _tile_slots(ins):
    for f in dataclasses.fields(ins):
        x = getattr(ins, f.name)
        if f.name != "out" and isinstance(x, N.Value) and x.is_tile:
            yield f.name, x


class _Infer(DotRules, ShapeRules):
    def __init__(self, kernel: N.Kernel, options=None):
        self.k = kernel
        self.options = options
        self.threads = kernel.warps * 32
        self.lay: dict[int, object] = {}
        self.flex: dict[int, tuple] = {}
        self.req: dict[tuple, tuple] = {}          # (id(ins), slot) -> (ins, value, layout, why)
        self.notes: dict[int, list] = {}           # id(ins) -> [text]
        self.plans: dict[int, object] = {}         # id(ins) -> plan
        self.hints: dict[int, TVLayout] = {}
        self.rows_out: set[int] = set()            # values computed from a few-row dot's result
        self._uses = None
        from .program import definitions
        self.defs = definitions(kernel)
        self._hint_views()

    # -- helpers -----------------------------------------------------------------------------
    def note(self, ins, text: str):
        self.notes.setdefault(id(ins), []).append(text)

    def default(self, v: N.Value):
        if v.type.space == SHARED:
            return MemLayout(row_major(v.shape), v.dtype.nbits)
        return default_layout(v.shape, v.dtype.nbits, self.threads)

    def user(self, v: N.Value):
        """The layout the source gave ``v`` (as a TVLayout/MemLayout of the right kind), or None."""
        L = v.type.layout
        if L is None:
            return None
        if v.type.space == SHARED:
            if isinstance(L, MemLayout):
                return L
            if isinstance(L, Layout):
                return MemLayout(L, v.dtype.nbits)
        else:
            if isinstance(L, Layout):
                L = TM.canonical(TVLayout(L, v.shape) if L.rank == 2 else
                                 TVLayout(Layout((L.shape, 1), (L.stride, 0)), v.shape))
            if isinstance(L, TVLayout):
                if L.threads > self.threads:
                    raise VMTypeError(f"the register layout {L} of {v.name or 'a tile'} uses {L.threads} threads, "
                                      f"but the block has {self.threads} (warps({self.k.warps}))",
                                      getattr(self.defs.get(v.id), "loc", None))
                return L
        raise VMTypeError(f"{v.name or 'a tile'} is a {v.type.space} tile but has the layout {L}",
                          getattr(self.defs.get(v.id), "loc", None))

    def is_reg(self, v) -> bool:
        return v.is_tile and v.type.space != SHARED

    def set(self, v: N.Value, L, ins=None, why: str | None = None):
        u = self.user(v)
        if u is not None:
            L = u
            why = "user layout"
        self.lay[v.id] = L
        self.flex.pop(v.id, None)
        if why and ins is not None:
            self.note(ins, f"{value_label(v)}: {why}: {self.show(v, L)}")
        return L

    def show(self, v, L) -> str:
        if isinstance(L, TVLayout):
            return f"{TM.describe(L, v.dtype.nbits)} [{L}]"
        return str(L)

    def flexible(self, v: N.Value, kind: str, ins):
        if self.user(v) is not None or v.type.space == SHARED:
            self.set(v, self.user(v) or self.default(v), ins, None)
            return
        self.flex[v.id] = (kind, ins, v)

    def want(self, ins, slot: str, v: N.Value, L, why: str, loose: bool = False):
        """Operand ``v`` of ``ins`` must have layout ``L``: fix it if flexible, else convert (``loose``:
        see :meth:`refit`)."""
        if not v.is_tile:
            return
        if v.id in self.flex:
            self.fix(v, L)
            return
        if not TM.same_layout(self.lay[v.id], L):
            if isinstance(L, TVLayout) and self.refit(v, L, ins, loose):
                return
            self.req[(id(ins), slot)] = (ins, v, L, why)

    def refit(self, v: N.Value, L: TVLayout, user, loose: bool = False) -> bool:
        """Give ``v`` the layout ``L`` its user wants, with no conversion, when ``v`` comes from a global load
        through a chain of casts and free shape instructions (expand_dims, reshape, permute, broadcast) --
        with ``loose`` also elementwise ops on it (the other operand then follows, converted where it must
        be) --, each value used once and without a user layout: the load then reads, in every thread, the elements that thread
        needs (replicated elements are read by each holder, from L1). Returns False (nothing changed) when
        the chain is anything else.

        The new layout may be replicated (several threads load each element) and is kept when its loads are
        at least as wide as the old ones (up to 128 bits), or when they are at most 4 per thread, even where
        they replace a 128-bit load (a few narrow L1 reads cost less than a shared-memory round trip with
        two barriers every iteration: the scales of a GEMV slab spanning 8 groups, [16, 8] f16, would load
        in 16 threads x 128 bits and convert; each thread loads its 4 instead), or always with ``loose``:
        the operands of a few-row dot and what is computed with its result (its replicated layout would
        otherwise cost a shared-memory round trip every iteration: int2 codes in runs of 32 per lane are two
        64-bit loads, the scales one or two 16-bit loads per thread).

        Example: ``xt = cast(load(x[r, k0 : +256]), f32)`` used as ``xt[None, :]`` by a broadcast against
        ``f32[16, 256]`` weights: the load takes the weights' column layout (each thread loads the 32
        contiguous x values next to its 32 weights) instead of a shared-memory round trip per iteration."""
        layouts, x, Lx, others = {}, v, L, []
        for _ in range(16):
            if (len(self.uses_of(x)) != 1 or not self.is_reg(x) or self.user(x) is not None
                    or x.id in self.flex):
                return False
            d = self.defs.get(x.id)
            layouts[x.id] = (x, Lx, d)
            if isinstance(d, N.Load):
                if not d.src.is_global:
                    return False
                break
            if isinstance(d, (N.ExpandDims, N.Reshape, N.Permute, N.Broadcast)) and d.x.is_tile:
                Lx = self.pullback(d, Lx)
                if Lx is None:
                    return False
                x = d.x
            elif isinstance(d, N.Cast) and d.x.is_tile:
                x = d.x
            elif loose and isinstance(d, N.Binary) and d.a.is_tile and self.is_reg(d.a):
                others.append((d, "b", d.b, Lx))      # the other operand follows (converted if it must)
                x = d.a
            else:
                return False
        else:
            return False
        bits = x.dtype.nbits
        old_L = self.lay[x.id]
        run = TM.contiguous_run(Lx) * bits
        old = TM.contiguous_run(old_L) * bits if isinstance(old_L, TVLayout) else 0
        if run < min(128, old) and Lx.values * bits > 4 * max(run, 8) and not loose:
            return False          # narrower loads than now (and not a few short ones): convert instead
        load = d
        for x, Lx, d in layouts.values():
            self.lay[x.id] = Lx
            if self.req.pop((id(d), "x"), None) is not None:     # a conversion was asked for: now free
                self.plans[id(d)] = ShapePlan(True, f"{_op(d)}: free (its operand is loaded in the layout it needs)")
                self.note(d, f"{value_label(d.out)} = {_op(d)}: revised: {self.plans[id(d)].reason}")
        for op, slot, y, Ly in others:
            self.req.pop((id(op), slot), None)
            self.want(op, slot, y, Ly, f"operand {slot} of {_op(op)}: elementwise operands share the result's "
                                       f"layout", loose=True)
        self.note(load, f"{value_label(x)}: loaded in the layout {value_label(v)} is used in by "
                     f"{_op(user)}{_where(user)}, so no conversion is needed: {self.show(x, Lx)}")
        return True

    def feeds_rows(self, v: N.Value) -> bool:
        """Whether ``v`` is computed with a few-row dot's result (``dot(...) * sc[None, :, :]``, the
        scales broadcast to the dot's rows): its loads then take the layout asked for whatever their width
        (``refit``'s ``loose``), as the elementwise rule's direct operands do."""
        return any(getattr(u, "out", None) is not None and u.out.id in self.rows_out for u, _ in self.uses_of(v))

    def uses_of(self, v: N.Value) -> list:
        """``(instruction, field)`` pairs using ``v`` (the kernel's uses, found once: inference does not change
        the IR until its rewrite)."""
        if self._uses is None:
            self._uses = uses(self.k)
        return self._uses.get(v.id, [])

    def in_registers(self, ins, slot, v, why) -> object:
        """The register layout operand ``v`` is read in (converting a shared tile to the default)."""
        if not v.is_tile:
            return None
        if v.id in self.flex:
            self.natural(v)
        L = self.lay[v.id]
        if isinstance(L, TVLayout):
            return L
        R = default_layout(v.shape, v.dtype.nbits, self.threads)
        self.req[(id(ins), slot)] = (ins, v, R, why)
        return R

    # -- flexible values -----------------------------------------------------------------------
    def fix(self, v: N.Value, L):
        kind, ins, _ = self.flex.pop(v.id)
        self.lay[v.id] = L
        if kind == "elem":
            for slot, x in _tile_slots(ins):
                self.want(ins, slot, x, L, f"operand {slot} of {_op(ins)}: elementwise operands share "
                                           f"the result's layout")
        elif kind == "lookup":
            self.want(ins, "codes", ins.codes, L, "lookup codes share the result's layout")
        elif kind in ("bcast", "shape"):
            self.shape_check(ins, L)

    def natural(self, v: N.Value):
        """Fix a flexible value to the layout it would have on its own."""
        if v.id not in self.flex:
            return
        kind, ins, _ = self.flex[v.id]
        if kind == "cvt" and self.is_reg(ins.x) and ins.x.id not in self.flex:
            L = self.lay[ins.x.id] if isinstance(self.lay[ins.x.id], TVLayout) else self.default(v)
        elif kind in ("elem", "lookup"):
            ops = [x for _, x in _tile_slots(ins)] if kind == "elem" else [ins.codes]
            fixed = [x for x in ops if x.id not in self.flex and isinstance(self.lay.get(x.id), TVLayout)]
            if not fixed:
                self.natural(ops[0])
                fixed = [ops[0]]
            L = self.lay[fixed[0].id]
        elif kind in ("bcast", "shape"):
            self.natural(ins.x)
            L = self.derived(ins, self.lay[ins.x.id]) if isinstance(self.lay[ins.x.id], TVLayout) else None
            L = L or self.default(v)
        else:
            L = self.default(v)
        self.fix(v, L)

    # -- the walk ------------------------------------------------------------------------------
    def block(self, blk: N.Block):
        for ins in blk.instrs:
            self.visit(ins)

    def visit(self, ins):
        """Dispatch ``ins`` to its rule (:data:`VISIT`, by instruction type; types without one, scalar
        instructions among them, take no layout)."""
        for t in type(ins).__mro__:
            name = VISIT.get(t)
            if name is not None:
                getattr(self, name)(ins)
                return

    def create(self, ins):
        self.flexible(ins.out, "create", ins)

    def write(self, ins):
        self.in_registers(ins, "value", ins.value, f"{_op(ins)} writes from registers")

    def insert(self, ins: N.Insert):
        self.natural(ins.dst)
        self.set(ins.out, self.lay[ins.dst.id])
        if self.is_reg(ins.value):
            self.in_registers(ins, "value", ins.value, "insert writes from registers")

    def load(self, ins: N.Load):
        v = ins.out
        if not v.is_tile:
            return
        if v.type.space == SHARED:
            L = self.shared_layout(ins)
            self.set(v, L, ins, None if id(ins) in self.notes else "shared layout (row-major)")
            return
        if v.id in self.hints:
            self.set(v, self.hints[v.id], ins, "whole granules per thread for the view")
        else:
            self.set(v, self.default(v), ins, "default layout")

    def elementwise(self, ins):
        if not ins.out.is_tile:
            return
        slots = list(_tile_slots(ins))
        eff = {}
        for slot, x in slots:
            if x.id in self.flex:
                continue
            if x.type.space == SHARED:
                eff[slot] = self.in_registers(ins, slot, x, f"{_op(ins)} computes in registers")
            else:
                eff[slot] = self.lay[x.id]
        L = next((eff[s] for s, _ in slots if s in eff), None)
        if L is None:
            self.flex[ins.out.id] = ("elem", ins, ins.out)
            if self.user(ins.out) is not None:
                self.fix(ins.out, self.user(ins.out))
            return
        L = self.set(ins.out, L)
        why = "elementwise operands share the result's layout"
        loose = any(x.id in self.rows_out for _, x in slots)
        if loose:
            self.rows_out.add(ins.out.id)
        for slot, x in slots:
            if x.type.space == SHARED:
                if not TM.same_layout(eff[slot], L):
                    self.req[(id(ins), slot)] = (ins, x, L, f"operand {slot} of {_op(ins)}: {why}")
                continue
            self.want(ins, slot, x, L, f"operand {slot} of {_op(ins)}: {why}", loose=loose)

    def lookup(self, ins: N.Lookup):
        t = ins.table
        if t.id in self.flex:
            self.natural(t)
        if not isinstance(self.lay[t.id], MemLayout):
            M = MemLayout(row_major(t.shape), t.dtype.nbits)
            self.req[(id(ins), "table")] = (ins, t, M, "lookup reads its table by data from shared memory "
                                                       "(ld.shared)")
        if ins.codes.type.space == SHARED:
            L = self.in_registers(ins, "codes", ins.codes, "lookup reads its codes from registers")
            self.set(ins.out, L)
        elif ins.codes.id in self.flex:
            self.flex[ins.out.id] = ("lookup", ins, ins.out)
        else:
            self.set(ins.out, self.lay[ins.codes.id])

    def reduce(self, ins: N.Reduce):
        x = ins.x
        Lx = self.in_registers(ins, "x", x, "reductions read registers")
        scope = TM.reduce_scope(Lx, x.shape, ins.axis)
        how = {"thread": "within each thread", "warp": "within each thread, then shuffles between lanes",
               "block": "within threads and warps, then between warps through shared memory"}[scope]
        self.plans[id(ins)] = ReducePlan(scope, f"{_op(ins)} over axis {ins.axis}: {how}")
        if ins.out.is_tile:
            L = TM.collapse(Lx, TM.reduce_map(x.shape, ins.axis), ins.out.shape)
            if L is None:
                L = self.default(ins.out)
                how += "; the result is moved to its default layout through shared memory"
            self.set(ins.out, L)
            self.note(ins, f"{value_label(ins.out)} = {_op(ins)}({value_label(x)}, axis={ins.axis}): {how}; "
                           f"result {self.show(ins.out, L)}")
        else:
            self.note(ins, f"{value_label(ins.out)} = {_op(ins)}({value_label(x)}): {how}")

    def source_dtype(self, v: N.Value):
        """The dtype of the codes ``v`` is decoded from: its first operand followed back through casts,
        shape instructions and elementwise ops to a load or a loop-carried value (a slab prefetched in the
        previous iteration); ``v``'s own dtype when there is none."""
        x = v
        for _ in range(16):
            d = self.defs.get(x.id)
            if isinstance(d, N.Load) or (isinstance(d, N.For) and any(c.id == x.id for c in d.carried)):
                return x.dtype
            nxt = next((y for _, y in _tile_slots(d)), None) if isinstance(d, ELEMENTWISE + SHAPES) else None
            if nxt is None:
                break
            x = nxt
        return v.dtype

    def convert(self, ins: N.ConvertLayout):
        v = ins.out
        if self.user(v) is not None:
            self.set(v, self.user(v), ins, "user layout")
        elif v.type.space == SHARED:
            self.set(v, self.default(v), ins, "shared layout")
        else:
            self.flex[v.id] = ("cvt", ins, v)

    def loop(self, ins: N.For):
        for c in ins.carried:
            if c.is_tile:
                if c.type.space == SHARED or self.user(c) is not None:
                    init = ins.inits[ins.carried.index(c)]
                    L = self.user(c) or (self.lay.get(init.id) if init.id not in self.flex else None) \
                        or self.default(c)
                    self.set(c, L)
                else:
                    self.flex[c.id] = ("carried", ins, c)
        self.block(ins.body)
        for i, (a, c, y, o) in enumerate(zip(ins.inits, ins.carried, ins.yields, ins.outs)):
            if not c.is_tile:
                continue
            if c.id in self.flex:
                cand = [x for x in (a, y) if x.id not in self.flex and isinstance(self.lay[x.id], TVLayout)]
                if cand:
                    self.fix(c, self.lay[cand[0].id])
                else:
                    self.natural(y)                 # may fix c itself (it is yielded unchanged)
                    if c.id in self.flex:
                        self.fix(c, self.lay[y.id])
            L = self.lay[c.id]
            name = c.name or f"%{c.id}"
            # loose: a load feeding the carried value is refit to its layout whatever its width -- a
            # conversion of the yield would be a shared-memory round trip every iteration (a prefetched
            # slab: codes_next = load(...) yielded for the next iteration's math)
            self.want(ins, f"inits[{i}]", a, L, f"the init of loop-carried {name} takes the carried layout",
                      loose=True)
            self.want(ins, f"yields[{i}]", y, L, f"the value yielded for loop-carried {name} takes the "
                                                 f"carried layout", loose=True)
            self.set(o, L)
            self.note(ins, f"loop-carried {value_label(c)}: {self.show(c, L)}")

    def branch(self, ins: N.If):
        self.block(ins.then)
        self.block(ins.orelse)
        for i, (a, b, o) in enumerate(zip(ins.then_yields, ins.else_yields, ins.outs)):
            if not o.is_tile:
                continue
            cand = [x for x in (a, b) if x.id not in self.flex]
            if self.user(o) is not None:
                L = self.user(o)
            elif cand:
                L = self.lay[cand[0].id]
            else:
                self.natural(a)
                L = self.lay[a.id]
            why = f"both branches yield {o.name or o.id} in one layout"
            self.want(ins, f"then_yields[{i}]", a, L, why)
            self.want(ins, f"else_yields[{i}]", b, L, why)
            self.set(o, L)

    def finish(self):
        for vid in sorted(self.flex):
            if vid in self.flex:
                self.natural(self.flex[vid][2])


#: the walk's rule (an ``_Infer`` method) by instruction type
VISIT = {N.Load: "load", N.Full: "create", N.Arange: "create", N.Codebook: "create", N.Broadcast: "broadcast",
         **{t: "elementwise" for t in ELEMENTWISE}, N.Lookup: "lookup", **{t: "shape" for t in SHAPES},
         N.Reduce: "reduce", N.Dot: "dot", N.Store: "write", N.AtomicAdd: "write", N.Insert: "insert",
         N.ConvertLayout: "convert", N.For: "loop", N.If: "branch"}


def run(program: Program, options=None) -> Program:
    k = program.kernel
    inf = _Infer(k, options)
    inf.block(k.body)
    inf.finish()
    return rewrite(program, inf)
