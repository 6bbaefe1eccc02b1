"""Small pieces of LLVM IR building shared by the ptx backend's conversion modules (:mod:`.convert`,
:mod:`.floatfmt`): typed constants, bit casts, integer min/max, float clamping, ``llvm.roundeven``, and
module-level helper functions made once per module and called by name."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32 = ir.HalfType(), ir.FloatType()

#: name prefix of the helper functions (:func:`helper`) in a module
PREFIX = "vm.cvt."


def const(t, v) -> ir.Constant:
    """An integer constant of type ``t`` from the low ``t.width`` bits of ``v`` (written signed)."""
    v = int(v) & ((1 << t.width) - 1)
    if t.width > 1 and v >= 1 << (t.width - 1):
        v -= 1 << t.width
    return ir.Constant(t, v)


def i32(v) -> ir.Constant:
    return const(I32, v)


def f32(v) -> ir.Constant:
    v = float(v)
    if float(np.float32(v)) != v and not np.isnan(v):
        raise AssertionError(f"{v!r} is not a float32 value")
    return ir.Constant(F32, v)


def f32_bits(b, f):
    return b.bitcast(f, I32)


def bits_f32(b, i):
    return b.bitcast(i, F32)


def smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def ident(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def helper(b: ir.IRBuilder, name: str, ret: ir.Type, arg_types: list, body, args: list):
    """Call the module's helper function ``name`` (made by ``body(builder, *params)`` the first time it
    is asked for in a module: internal linkage, always inlined)."""
    module = b.module
    full = PREFIX + name
    fn = module.globals.get(full)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, arg_types), name=full)
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline")
        fn.attributes.add("nounwind")
        hb = ir.IRBuilder(fn.append_basic_block("entry"))
        hb.ret(body(hb, *fn.args))
    return b.call(fn, args)


def roundeven(b, f):
    module = b.module
    fn = module.globals.get("llvm.roundeven.f32")
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(F32, [F32]), name="llvm.roundeven.f32")
    return b.call(fn, [f])


def clamp_f(b, f, lo: float, hi: float):
    """Clamp a float to [lo, hi]; NaN stays NaN (ordered compares are false for NaN)."""
    f = b.select(b.fcmp_ordered(">", f, f32(hi)), f32(hi), f)
    return b.select(b.fcmp_ordered("<", f, f32(lo)), f32(lo), f)
