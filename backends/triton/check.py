"""Compile generated Triton source for a GPU architecture without a GPU (LLVM + ptxas on the CPU).

This catches what the interpreter lets through but the compiler rejects (types, block shapes, ops
without a lowering). It needs a process where triton was imported *without* the interpreter (``TRITON_INTERPRET=0``
keeps the backend from choosing it on a machine without a GPU); the tests run it in a subprocess::

    TRITON_INTERPRET=0 python -m vmlang.backends.triton.check examples/softmax.vm [more.vm ...]
"""
from __future__ import annotations

import sys

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N

from . import reprs as R
from .codegen import signature

_PTR = {D.float16: "*fp16", D.float32: "*fp32", D.bfloat16: "*i16", D.int8: "*i8", D.int16: "*i16",
        D.int32: "*i32", D.uint8: "*u8", D.uint16: "*i16", D.uint32: "*i32"}


def arg_types(kernel: N.Kernel) -> dict[str, str]:
    """The Triton signature of the generated kernel, as the launcher calls it."""
    sig = signature(kernel)
    out = {}
    for p, ptr, shapes, strides in sig.tensors:
        out[ptr] = "*u8" if R.is_packed(p.dtype) else _PTR.get(p.dtype, "*u8")
    for p, ptr, shapes, strides in sig.tensors:
        for a in shapes + strides:
            out[a] = "i32"
    for _, a in sig.sizes:
        out[a] = "i32"
    for _, a in sig.scalars:
        out[a] = "i32"
    return out


def compile_only(kernel: N.Kernel, arch: int = 90):
    """Generate, load and compile ``kernel`` for sm_<arch>; returns Triton's compiled kernel (its
    ``asm`` holds ttir/ttgir/llir/ptx/cubin)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from .codegen import generate, safe
    from .env import interpreting
    from .launch import load_module
    if interpreting():
        raise RuntimeError("compile_only needs triton imported without TRITON_INTERPRET")
    mod = load_module(generate(kernel))
    fn = getattr(mod, safe(kernel.name))
    src = ASTSource(fn, signature=arg_types(kernel), constexprs={})
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"num_warps": kernel.warps, "enable_fp_fusion": False})


def main(argv=None) -> int:
    import vmlang as vm
    bad = 0
    for path in argv if argv is not None else sys.argv[1:]:
        from vmlang.api import kernel_names
        text = open(path, encoding="utf-8").read()
        for name in kernel_names(text, path):
            try:
                compile_only(vm.compile_source(text, path, kernel=name))
                print(f"{path}: {name}: ok")
            except Exception as e:  # noqa: BLE001 - report every failure
                bad += 1
                print(f"{path}: {name}: FAILED: {type(e).__name__}: {str(e)[-2000:]}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
