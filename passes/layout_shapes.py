"""Layout inference's rules for shape instructions (a mixin of :class:`vmlang.passes.layout._Infer`):
``expand_dims``, ``reshape``, ``permute``, ``view`` and a tile's ``broadcast`` carry their operand's
register layout along when every thread can keep its own values, else the operand is converted first or
the instruction goes through shared memory (a :class:`~.conversions.ShapePlan` says which).

Each instruction type has a :class:`ShapeMap` in :data:`SHAPE_MAPS` (a type-keyed table): ``forward`` (the
result's layout carried from the operand's), ``backward`` (the operand layout that gives the result a wanted
layout at no cost) and ``gather`` (result index -> operand index, for the "does every thread already hold
what it needs" test; ``view`` compares the carried layout instead).

The methods use the inference state of ``_Infer`` (``fix``, ``natural``, ``refit``, ``feeds_rows``, ``set``,
``user``, ``default``, ``note``; ``lay``, ``flex``, ``plans``, ``req``, ``hints``, ``defs``, ``rows_out``,
``k``, ``threads``).

>>> import vmlang as vm
>>> from vmlang.passes import ShapePlan, pipeline
>>> p = pipeline(vm.compile_source('''
... kernel k(x: f32[4, 32] global, y: f32[128] global) grid(1) {
...     store(y[0 : +128], reshape(load(x[0 : +4, 0 : +32]), [128]));
... }'''))
>>> [plan.reason for plan in p.facts.of_type(ShapePlan).values()]
['reshape: free (each thread keeps its own values)']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from vmlang.ir import nodes as N
from vmlang.ir.layout import TVLayout
from vmlang.ir.types import SHARED

from . import tvmaps as TM
from .conversions import ShapePlan
from .program import op_name, value_label, where
from .tvmaps import default_layout


@dataclass(frozen=True)
class ShapeMap:
    """How one kind of shape instruction moves a register layout (``ins`` gives the shapes and bits)."""
    #: (ins, operand layout) -> the result's layout carried along, or None
    forward: Callable
    #: (ins, wanted result layout) -> the operand layout that gives it at no cost, or None
    backward: Callable
    #: ins -> result index -> operand index (None: compare ``forward``'s layout instead)
    gather: Optional[Callable]


def _reshape_map(ins):
    return TM.reshape_map(ins.x.shape, ins.out.shape)


def _permute_map(ins):
    return TM.permute_map(ins.x.shape, ins.perm)


_RESHAPE = ShapeMap(forward=lambda ins, L: TM.carry(L, _reshape_map(ins), ins.out.shape),
                    backward=lambda ins, L: TM.carry(L, TM.inverse(_reshape_map(ins)), ins.x.shape),
                    gather=lambda ins: TM.inverse(_reshape_map(ins)))

#: the shape instructions' rules, by instruction type
SHAPE_MAPS: dict = {
    N.ExpandDims: _RESHAPE,
    N.Reshape: _RESHAPE,
    N.Permute: ShapeMap(forward=lambda ins, L: TM.carry(L, _permute_map(ins), ins.out.shape),
                        backward=lambda ins, L: TM.carry(L, TM.inverse(_permute_map(ins)), ins.x.shape),
                        gather=lambda ins: TM.inverse(_permute_map(ins))),
    N.View: ShapeMap(forward=lambda ins, L: TM.view_carry(L, ins.x.shape, ins.x.dtype.nbits, ins.out.shape,
                                                          ins.out.dtype.nbits),
                     backward=lambda ins, L: TM.view_carry(L, ins.out.shape, ins.out.dtype.nbits, ins.x.shape,
                                                           ins.x.dtype.nbits),
                     gather=None),
    N.Broadcast: ShapeMap(forward=lambda ins, L: TM.expand(L, ins.x.shape, ins.out.shape),
                          backward=lambda ins, L: TM.collapse(L, TM.broadcast_map(ins.x.shape, ins.out.shape),
                                                              ins.x.shape),
                          gather=lambda ins: TM.broadcast_map(ins.x.shape, ins.out.shape)),
}


class ShapeRules:
    """The shape-instruction half of layout inference (see the module docstring)."""

    def derived(self, ins, Lx):
        """The result layout of shape instruction ``ins`` carried from its operand's ``Lx`` (None: none)."""
        rule = SHAPE_MAPS.get(type(ins))
        return rule.forward(ins, Lx) if rule is not None else None

    def pullback(self, ins, L):
        """The operand layout that gives shape instruction ``ins`` the register layout ``L`` at no cost, or
        None (also where ``L`` is a shared tile's memory layout: a shape instruction of a shared tile
        reads it into registers, in the operand's own layout)."""
        rule = SHAPE_MAPS.get(type(ins))
        if rule is None or not isinstance(L, TVLayout):
            return None
        return rule.backward(ins, L)

    def is_free(self, ins, Lx, L) -> bool:
        """Whether every thread of ``L`` already holds, in ``Lx``, the operand values it needs."""
        rule = SHAPE_MAPS.get(type(ins))
        if rule is None or not isinstance(Lx, TVLayout):
            return False
        if rule.gather is None:
            d = rule.forward(ins, Lx)
            return d is not None and TM.same_layout(d, L)
        return TM.holds_all(Lx, L, rule.gather(ins))

    def shape_check(self, ins, L):
        """The result of shape instruction ``ins`` has layout ``L``: make its operand match if it can."""
        x = ins.x
        if not x.is_tile:                                  # broadcast of a scalar: free
            self.plans[id(ins)] = ShapePlan(True, "a scalar fills the tile in every thread")
            return
        P = self.pullback(ins, L)
        if x.id in self.flex:
            if P is not None:
                self.fix(x, P)
            else:
                self.natural(x)
        Lx = self.lay[x.id]
        op = op_name(ins)
        if self.is_free(ins, Lx, L):
            self.plans[id(ins)] = ShapePlan(True, f"{op}: free (each thread keeps its own values)")
        elif P is not None and self.refit(x, P, ins, self.feeds_rows(ins.out)):
            self.plans[id(ins)] = ShapePlan(True, f"{op}: free (its operand is loaded in the layout it needs)")
        elif P is not None:
            self.req[(id(ins), "x")] = (ins, x, P, f"so that {op}{where(ins)} is free (each thread then "
                                                   f"holds the elements it needs)")
            self.plans[id(ins)] = ShapePlan(True, f"{op}: free after converting its operand")
        else:
            self.plans[id(ins)] = ShapePlan(False, f"{op}: through shared memory (no layout lets every "
                                                   f"thread keep its own values)")
        self.note(ins, f"{value_label(ins.out)} = {op}({value_label(x)}): {self.plans[id(ins)].reason}")

    def _hint_views(self):
        """A register load read only through ``view`` gets whole granules per thread."""
        defs = self.defs
        for ins in N.walk(self.k.body):
            if not isinstance(ins, N.View):
                continue
            d = defs.get(ins.x.id)
            if not (isinstance(d, N.Load) and ins.x.type.space != SHARED and ins.x.type.layout is None):
                continue
            a, b = ins.x.dtype.nbits, ins.out.dtype.nbits
            vec = TM.view_source_vec(ins.x.shape, a, b)
            if vec is None:
                continue
            H = default_layout(ins.x.shape, a, self.threads, vec=vec)
            if TM.view_carry(H, ins.x.shape, a, ins.out.shape, b) is not None:
                self.hints[ins.x.id] = H

    # -- the walk's visitors ---------------------------------------------------------------------
    def shape(self, ins):
        x, v = ins.x, ins.out
        if x.id in self.flex:
            self.flex[v.id] = ("shape", ins, v)
            if self.user(v) is not None:
                self.fix(v, self.user(v))
            return
        Lx = self.lay[x.id]
        L = self.derived(ins, Lx) if isinstance(Lx, TVLayout) else None
        self.set(v, L or self.default(v))
        self.shape_check(ins, self.lay[v.id])
        if L is not None and x.id in self.rows_out:
            self.rows_out.add(v.id)      # a few-row dot's result, reshaped in place: still its layout

    def broadcast(self, ins: N.Broadcast):
        """A scalar's broadcast is created in any layout; a tile's takes its consumer's, its operand
        following (:meth:`shape_check`)."""
        if not ins.x.is_tile:
            self.flexible(ins.out, "create", ins)
            self.plans[id(ins)] = ShapePlan(True, "broadcast of a scalar: free")
            return
        self.flexible(ins.out, "bcast", ins)
        if ins.out.id not in self.flex:
            self.shape_check(ins, self.lay[ins.out.id])


__all__ = ["ShapeMap", "SHAPE_MAPS", "ShapeRules"]
