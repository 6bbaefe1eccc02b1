"""IR nodes: values, instructions and kernels.

The IR is in SSA form with structured control flow: a :class:`Kernel` owns a :class:`Block` of
instructions; :class:`For` and :class:`If` own nested blocks and pass values in and out explicitly
(loop-carried values and branch results), like MLIR's ``scf`` dialect. Every node is a frozen,
slotted dataclass with structural equality (source locations do not take part) and a validating
constructor that raises :class:`VMTypeError` naming the problem.

The nodes live in :mod:`.node_base`, :mod:`.node_memory`, :mod:`.node_compute` and
:mod:`.node_shape` (this module holds control flow and the kernel, and re-exports them all). Each
instruction's docstring states its semantics; the NumPy VM (:mod:`vmlang.backends.numpy`)
implements exactly that text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .errors import SourceLoc
from .types import BOOL, INDEX, ScalarType
from .node_base import Value, Instr, Block, Const, BlockIdx, SizeOf, IndexItem, At, Range, _need
from .node_memory import Load, Store, AtomicAdd, Insert, Full, Arange, Codebook
from .node_compute import (Unary, Binary, Neg, Abs, Invert, Exp, Exp2, Log, Sqrt, Rsqrt, Add, Sub, Mul, Div,
                           Mod, Minimum, Maximum, And, Or, Xor, Shl, Shr, Eq, Ne, Lt, Le, Gt, Ge, Where,
                           Cast, View, Lookup)
from .node_shape import (Broadcast, ExpandDims, Reshape, Permute, ConvertLayout, Reduce, Sum, ReduceMax,
                         ReduceMin, Dot)


# ------------------------------------------------------------------------------------------ control
@dataclass(frozen=True, slots=True)
class Assume(Instr):
    """A fact the compiler may rely on (``assume(K % 128 == 0)``); the VM checks it and reports a
    violation as an error."""
    cond: Value

    def __post_init__(self):
        _need(self.cond.is_scalar and self.cond.dtype == BOOL, self.loc, "assume needs a bool scalar")


@dataclass(frozen=True, slots=True)
class Barrier(Instr):
    """Synchronise the threads of the block (orders shared-memory accesses; no value semantics)."""


@dataclass(frozen=True, slots=True)
class For(Instr):
    """``for var in range(start, stop, step)``: ``inits`` seed the loop-carried ``carried`` values;
    each iteration runs ``body`` and its ``yields`` become the next ``carried``; after the loop,
    ``outs`` hold the last values (the inits when the loop runs zero times). ``step`` must be > 0."""
    var: Value
    start: Value
    stop: Value
    step: Value
    inits: tuple[Value, ...]
    carried: tuple[Value, ...]
    body: Block
    yields: tuple[Value, ...]
    outs: tuple[Value, ...]

    def __post_init__(self):
        for v in (self.start, self.stop, self.step):
            _need(v.is_scalar and v.dtype == INDEX, self.loc, "range bounds are int32 scalars")
        _need(self.var.type == ScalarType(INDEX), self.loc, "loop variable is int32")
        _need(len(self.inits) == len(self.carried) == len(self.yields) == len(self.outs), self.loc,
              "loop-carried value counts differ")
        for i, c, y, o in zip(self.inits, self.carried, self.yields, self.outs):
            _need(i.type == c.type == o.type, self.loc, f"loop-carried {c.name or c.id} has inconsistent types")
            _need(y.type == c.type, self.loc,
                  f"loop-carried variable {c.name or c.id} changes type from {c.type} to {y.type} in the loop body")

    @property
    def results(self):
        return self.outs

    @property
    def operands(self):
        return (self.start, self.stop, self.step) + self.inits

    def blocks(self):
        return (self.body,)


@dataclass(frozen=True, slots=True)
class If(Instr):
    """``if cond { then } else { orelse }`` on a bool scalar; ``outs[i]`` is ``then_yields[i]`` or
    ``else_yields[i]`` depending on the branch taken."""
    cond: Value
    then: Block
    orelse: Block
    then_yields: tuple[Value, ...]
    else_yields: tuple[Value, ...]
    outs: tuple[Value, ...]

    def __post_init__(self):
        _need(self.cond.is_scalar and self.cond.dtype == BOOL, self.loc,
              "if needs a bool scalar condition (for tiles use where)")
        _need(len(self.then_yields) == len(self.else_yields) == len(self.outs), self.loc, "branch result counts differ")
        for a, b, o in zip(self.then_yields, self.else_yields, self.outs):
            _need(a.type == b.type == o.type, self.loc,
                  f"variable {o.name or o.id} has type {a.type} in one branch and {b.type} in the other")

    @property
    def results(self):
        return self.outs

    @property
    def operands(self):
        return (self.cond,)

    def blocks(self):
        return (self.then, self.orelse)


# ------------------------------------------------------------------------------------------ kernel
@dataclass(frozen=True, slots=True)
class Kernel:
    """A program for one thread block of ``warps * 32`` threads, launched on ``grid`` blocks.

    ``params`` are the arguments in call order (global tensors and scalars); ``consts`` the
    compile-time parameters with the values this IR was built for; ``grid`` holds 1-3 symbolic
    sizes (over the size symbols and scalar parameters); ``symbols`` names each size symbol's first
    binding as (param index, axis).
    """
    name: str
    params: tuple[Value, ...]
    consts: tuple[tuple[str, object], ...]
    grid: tuple[object, ...]
    warps: int
    body: Block
    symbols: tuple[tuple[str, int, int], ...] = ()
    loc: Optional[SourceLoc] = field(default=None, compare=False)

    def param(self, name: str) -> Value:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def walk(block: Block):
    """Yield every instruction of ``block`` and its nested blocks, in program order."""
    for ins in block.instrs:
        yield ins
        for b in ins.blocks():
            yield from walk(b)


__all__ = ["Value", "Instr", "Block", "Const", "BlockIdx", "SizeOf", "IndexItem", "At", "Range", "Load",
           "Store", "AtomicAdd", "Insert", "Full", "Arange", "Codebook", "Unary", "Binary", "Neg", "Abs",
           "Invert", "Exp", "Exp2", "Log", "Sqrt", "Rsqrt", "Add", "Sub", "Mul", "Div", "Mod", "Minimum",
           "Maximum", "And", "Or", "Xor", "Shl", "Shr", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Where", "Cast",
           "View", "Lookup", "Broadcast", "ExpandDims", "Reshape", "Permute", "ConvertLayout", "Reduce",
           "Sum", "ReduceMax", "ReduceMin", "Dot", "Assume", "Barrier", "For", "If", "Kernel", "walk"]
