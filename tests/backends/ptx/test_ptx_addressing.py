"""backends/ptx/memory.chunk_ptr: the byte address of a vector or cp.async chunk, cut into a per-thread part
(hoisted out of loops) and a block-uniform part, JIT-compiled for this CPU and compared with the plain
formula ``(8 * row * pitch + (start + coord) * bits + within) / 8`` (packed dtypes; rows in bytes) or
``((row * pitch + start + coord) * bits + within) / 8`` (whole-byte dtypes; rows in elements) on random
positions -- both the cut last axis (a start known to be whole bytes) and the uncut one, slices and
single positions (``At``), negative coordinates included (a masked-off chunk's address is computed too)."""
from __future__ import annotations

import ctypes
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("llvmlite.binding")
from llvmlite import ir

from vmlang.backends.ptx import memory as M
from vmlang.ir import nodes as N
from host_jit import Engine

I32, I64, PTR = ir.IntType(32), ir.IntType(64), ir.PointerType()


def _jit(bits: int, within: int, at_row: bool, start_div: int):
    """``i64 f(i32 s0, i32 s1, i32 c0, i32 c1, i32 pitch)``: chunk_ptr's address less the base."""
    mod = ir.Module(name="addressing")
    fn = ir.Function(mod, ir.FunctionType(I64, [I32] * 5), name="f")
    s0, s1, c0, c1, pitch = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    base = ir.Constant(PTR, None)
    keys = {"s0": s0, "s1": s1}
    lw = SimpleNamespace(b=b, get=lambda v: keys[v],
                         scalar_facts=SimpleNamespace(divisor=lambda v: start_div if v == "s1" else 1))
    g = SimpleNamespace(ptr=base, strides=[pitch])
    index = (N.At("s0") if at_row else N.Range("s0", 4), N.Range("s1", 64))
    coords = [c1] if at_row else [c0, c1]
    p = M.chunk_ptr(lw, g, index, coords, within, bits)
    b.ret(b.sub(b.ptrtoint(p, I64), b.ptrtoint(base, I64)))
    eng = Engine(mod)
    addr = eng.engine.get_function_address("f")
    return ctypes.CFUNCTYPE(ctypes.c_int64, *[ctypes.c_int32] * 5)(addr), eng


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8, 16, 32])
@pytest.mark.parametrize("at_row", [False, True], ids=["range", "at"])
@pytest.mark.parametrize("cut", [True, False], ids=["cut", "uncut"])
def test_chunk_address_is_the_formula(bits, at_row, cut):
    rng = np.random.default_rng(bits * 10 + at_row + 2 * cut)
    # a start divisor that makes start * bits whole bytes (the cut), or one that does not (odd widths)
    div = 8 if cut else 1
    within = (bits * 3) % 8 if bits % 8 else 8 * (bits // 16)          # a bit offset inside a slot
    f, _eng = _jit(bits, within, at_row, div)
    for _ in range(300):
        s0 = int(rng.integers(0, 5000))
        s1 = int(rng.integers(0, 1 << 20)) * div
        c0 = 0 if at_row else int(rng.integers(-4, 64))
        c1 = int(rng.integers(-16, 256))
        pitch = int(rng.integers(1, 1 << 16 if bits % 8 == 0 else 1 << 14))   # elements / bytes per row

        def bit_address(c1):
            if bits % 8 == 0:
                return ((s0 + c0) * pitch + s1 + c1) * bits + within
            return 8 * (s0 + c0) * pitch + (s1 + c1) * bits + within

        while bit_address(c1) % 8:                  # a chunk starts on a whole byte
            c1 += 1
        got = f(s0, s1, c0, c1, pitch)
        assert got == bit_address(c1) // 8, (bits, s0, s1, c0, c1, pitch, within, got)
