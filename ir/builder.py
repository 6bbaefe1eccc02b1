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

    def mark(self) -> tuple:
        """A position in the open block, for :meth:`made_since`."""
        return len(self._blocks), len(self._blocks[-1])

    def made_since(self, mark: tuple, v: Value) -> bool:
        """Whether ``v`` is the result of the open block's last instruction and that instruction was appended
        after ``mark`` (in the same block): nothing before it can have used ``v``, and no name bound
        earlier refers to it."""
        depth, n = mark
        blk = self._blocks[-1]
        return depth == len(self._blocks) and len(blk) > n and getattr(blk[-1], "out", None) is v

    def last(self) -> Instr | None:
        """The last instruction of the open block (None when it is empty)."""
        blk = self._blocks[-1]
        return blk[-1] if blk else None

    def retype_last(self, v: Value, type_: Type) -> Value | None:
        """Give ``v`` the type ``type_`` where it is the result of the last instruction of the open block
        (nothing can have used it yet): that instruction is rebuilt with the new result, whose constructor
        validates it again. Returns the new value, or None (nothing changed) when ``v`` is not that result.

        >>> from vmlang.ir import dtypes as D
        >>> b = Builder()
        >>> one = b.const(1, D.int32)
        >>> str(b.retype_last(one, ScalarType(D.int16)).type), b.retype_last(one, ScalarType(D.int16))
        ('int16', None)
        """
        import dataclasses
        blk = self._blocks[-1]
        if not blk or getattr(blk[-1], "out", None) is not v:
            return None
        new = Value(v.id, type_, v.name)
        blk[-1] = dataclasses.replace(blk[-1], out=new)
        return new

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
