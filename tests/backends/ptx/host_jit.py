"""LLVM IR of the ptx backend's helpers run on the host CPU (MCJIT), for bit-exact tests against the VM.

Shared by test_ptx_convert.py and test_ptx_unpack.py: a counted loop ``void name(ptr in, ptr out, i64 n)``
around a per-step body, and an engine that compiles a module for this machine and calls such functions on
NumPy arrays.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir

I64 = ir.IntType(64)
PTR = ir.PointerType()


@functools.lru_cache(maxsize=None)
def _init_llvm():
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


def host_tm():
    """A new host target machine (an MCJIT engine takes ownership of the one it is given); the host's own
    features, so f16 conversions are instructions (F16C), not runtime library calls."""
    _init_llvm()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(), opt=0)


def counted_loop(mod: ir.Module, name: str, body) -> None:
    """``void name(ptr in, ptr out, i64 n)`` running ``body(builder, i, in, out)`` for ``i < n``."""
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64]), name=name)
    pin, pout, n = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), entry)
    body(b, i, pin, pout)
    i2 = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(i2, loop)
    b.cbranch(b.icmp_signed("<", i2, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


class Engine:
    """``mod`` compiled for the host; :meth:`call` runs one of its counted loops."""

    def __init__(self, mod: ir.Module):
        tm = host_tm()
        mod.triple = tm.triple
        ref = llvm.parse_assembly(str(mod))
        ref.verify()
        self.engine = llvm.create_mcjit_compiler(ref, tm)
        self.engine.finalize_object()
        self._fns = {}

    def call(self, name: str, x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
        """``name(x, out, n)``; returns ``out``."""
        f = self._fns.get(name)
        if f is None:
            addr = self.engine.get_function_address(name)
            assert addr, name
            f = self._fns[name] = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(addr)
        x = np.ascontiguousarray(x)
        f(x.ctypes.data, out.ctypes.data, n)
        return out
