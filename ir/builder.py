"""A builder for IR blocks: fresh value ids, a stack of open blocks, and one method that appends an
instruction (whose constructor validates it).

>>> from vmlang.ir import dtypes as D
>>> from vmlang.ir.types import ScalarType
>>> b = Builder()
>>> one = b.const(1, D.int32)
>>> two = b.emit(lambda out: Add(out, one, one), ScalarType(D.int32))
>>> [type(i).__name__ for i in b.finish().instrs]
['Const', 'Add']
"""
from __future__ import annotations

from typing import Callable

from .nodes import Add, Block, Const, Instr, Value  # noqa: F401  (Add: doctest)
from .types import ScalarType, Type


class Builder:
    def __init__(self):
        self._next = 0
        self._blocks: list[list[Instr]] = [[]]
        self.name_hint = ""
        self.loc = None

    def value(self, type_: Type, name: str | None = None) -> Value:
        v = Value(self._next, type_, self.name_hint if name is None else name)
        self._next += 1
        return v

    def append(self, ins: Instr) -> Instr:
        self._blocks[-1].append(ins)
        return ins

    def emit(self, make: Callable[[Value], Instr], type_: Type) -> Value:
        """Create a result value of ``type_``, build ``make(out)`` and append it; returns the value."""
        out = self.value(type_)
        ins = make(out)
        self.append(ins)
        return out

    def const(self, value, dtype) -> Value:
        out = self.value(ScalarType(dtype))
        self.append(Const(out, value, loc=self.loc))
        return out

    def open_block(self) -> None:
        self._blocks.append([])

    def close_block(self) -> Block:
        return Block(tuple(self._blocks.pop()))

    def finish(self) -> Block:
        assert len(self._blocks) == 1, "unbalanced blocks"
        return Block(tuple(self._blocks[0]))
