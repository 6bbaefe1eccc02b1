"""The IR verifier: run after the front end and after every pass (tests do).

Checks, for a whole kernel:
* every operand is defined before use, in an enclosing scope (SSA dominance for structured blocks);
* every value is defined once (unique ids);
* every instruction still satisfies its constructor's checks (types and shapes);
* global tensors appear only as kernel parameters; tiles only in register/shared/auto memory;
* layouts, where present, are layouts of the tile's size (register layouts map (thread, value) onto
  the tile; memory layouts map tile coordinates to offsets);
* control flow: loop-carried and branch values agree in type (their constructors check it).
"""
from __future__ import annotations

from . import nodes as N
from .errors import VerifyError, VMError
from .types import GlobalType, TileType


def verify(kernel: N.Kernel) -> N.Kernel:
    """Raise :class:`VerifyError` describing the first problem; return the kernel unchanged."""
    seen: set[int] = set()
    scope: set[int] = set()
    for p in kernel.params:
        _define(p, seen, scope, None)
    if not 1 <= len(kernel.grid) <= 3:
        raise VerifyError(f"kernel {kernel.name}: grid has {len(kernel.grid)} sizes")
    if not 1 <= kernel.warps <= 32:
        raise VerifyError(f"kernel {kernel.name}: warps = {kernel.warps}")
    _block(kernel, kernel.body, seen, scope)
    return kernel


def _define(v: N.Value, seen: set, scope: set, ins):
    if v.id in seen:
        raise VerifyError(f"value %{v.id} ({v.name}) is defined twice", getattr(ins, "loc", None))
    seen.add(v.id)
    scope.add(v.id)


def _check_value_type(kernel, v: N.Value, ins):
    t = v.type
    if isinstance(t, GlobalType) and ins is not None:
        raise VerifyError(f"instruction {type(ins).__name__} defines a global tensor", ins.loc)
    if isinstance(t, TileType) and t.layout is not None:
        from .layout import Layout, MemLayout, TVLayout
        lay = t.layout
        if not isinstance(lay, (Layout, MemLayout, TVLayout)):
            raise VerifyError(f"tile %{v.id} has a layout that is not a layout: {lay!r}", ins.loc if ins else None)
        if isinstance(lay, TVLayout) and tuple(lay.tile) != tuple(t.shape):
            raise VerifyError(f"tile %{v.id} of shape {list(t.shape)} has a register layout of tile {lay.tile}",
                              ins.loc if ins else None)


def _use(v: N.Value, scope: set, ins):
    if v.id not in scope:
        raise VerifyError(f"{type(ins).__name__} uses %{v.id} ({v.name or 'unnamed'}) before it is defined "
                          f"or outside its scope", ins.loc)


def _block(kernel, block: N.Block, seen: set, scope: set):
    for ins in block.instrs:
        try:
            post = getattr(type(ins), "__post_init__", None)
            if post is not None:
                post(ins)
        except VMError as e:
            raise VerifyError(f"malformed {type(ins).__name__}: {e.message}", ins.loc) from None
        for v in ins.operands:
            _use(v, scope, ins)
        if isinstance(ins, N.For):
            inner = set(scope)
            _define(ins.var, seen, inner, ins)
            for c in ins.carried:
                _define(c, seen, inner, ins)
            _block(kernel, ins.body, seen, inner)
            for y in ins.yields:
                _use(y, inner, ins)
        elif isinstance(ins, N.If):
            for blk, ys in ((ins.then, ins.then_yields), (ins.orelse, ins.else_yields)):
                inner = set(scope)
                _block(kernel, blk, seen, inner)
                for y in ys:
                    _use(y, inner, ins)
        for r in ins.results:
            _check_value_type(kernel, r, ins)
            _define(r, seen, scope, ins)
