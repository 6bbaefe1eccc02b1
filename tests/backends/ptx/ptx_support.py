"""What the ptx backend's tests share: the toolchain and launch modules, the skip markers for a machine
without llvmlite's NVPTX target or ptxas, the repository root, and small NVPTX kernels built by hand (thread
``t`` reads its words from ``in`` and writes its results to ``out``) with the PTX instruction counts of their
bodies."""
from __future__ import annotations

import importlib
import pathlib
import re

import pytest
from llvmlite import ir

# by module name: the package's ``toolchain()`` (the backend contract) may shadow the submodule attribute
toolchain = importlib.import_module("vmlang.backends.ptx.toolchain")
launch = importlib.import_module("vmlang.backends.ptx.launch")

ROOT = pathlib.Path(__file__).resolve().parents[3]

# the PTX scan for barriers only some threads reach (the backend runs it on every kernel it compiles)
thread_dependent = importlib.import_module("vmlang.backends.ptx.ptx_check").thread_dependent
barriers_under_thread_branches = importlib.import_module("vmlang.backends.ptx.ptx_check").barriers_under_thread_branches

needs_nvptx = pytest.mark.skipif(not toolchain.nvptx_available(), reason="this llvmlite has no NVPTX target")
needs_ptxas = pytest.mark.skipif(not (toolchain.nvptx_available() and toolchain.ptxas_available()),
                                 reason="needs llvmlite's NVPTX target and ptxas (CUDA toolkit)")

I32, I64 = ir.IntType(32), ir.IntType(64)

#: PTX instructions that move data or compute addresses, not the work a decoding test counts
ADDRESS_OPS = ("ld.", "st.", "mov.", "ret", "cvta", "mul.wide", "add.s64", "shl.b64", "mad.wide", "cvt.u64")


def thread_kernel(mod: ir.Module, name: str):
    """A kernel ``name(ptr addrspace(1) in, ptr addrspace(1) out)`` of up to 128 threads in ``mod``:
    ``(builder at its entry, in, out, t)`` with ``t`` the thread index as an i64."""
    gptr = ir.PointerType(addrspace=1)
    tid = mod.globals.get("llvm.nvvm.read.ptx.sreg.tid.x") or ir.Function(
        mod, ir.FunctionType(I32, []), name="llvm.nvvm.read.ptx.sreg.tid.x")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [gptr, gptr]), name=name)
    toolchain.mark_kernel(fn, max_threads=128)
    pin, pout = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    return b, pin, pout, b.zext(b.call(tid, []), I64)


def entry_instructions(ptx: str, name: str) -> list[str]:
    """The instructions of kernel ``name``'s body in ``ptx`` (no directives, comments, labels, braces)."""
    m = re.search(r"\.entry " + re.escape(name) + r"\(.*?\n\{\n(.*?)\n\}", ptx, re.S)
    assert m, name
    lines = (s.strip() for s in m.group(1).splitlines())
    return [s for s in lines if s and not s.startswith((".", "//", "$", "{", "}"))]

