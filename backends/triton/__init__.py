"""The Triton backend: every IR instruction lowered to readable Triton source.

``compile(kernel, options)`` generates the source (:mod:`.codegen` and one rule per instruction in the
``rules_*`` modules, with the helper functions of :mod:`.lib`) and returns a :class:`CompiledKernel`
whose ``files`` hold it (``kernel_triton.py``); calling it binds the arguments
(:func:`vmlang.runtime.args.bind_args`) and launches on the kernel's grid with ``num_warps=kernel.warps``.
On a machine without a CUDA GPU the kernel runs under the Triton interpreter on CPU tensors.

What maps to what, and what Triton cannot express, is written down in docs/backends.md.
"""
from __future__ import annotations

from .env import prepare_environment

prepare_environment()

from vmlang.ir import nodes as N  # noqa: E402

from .codegen import RULES, generate  # noqa: E402,F401
from .env import interpreting  # noqa: E402,F401
from .launch import CompiledKernel, compile, load  # noqa: E402,F401
from . import rules_cast, rules_compute, rules_control, rules_memory, rules_shape  # noqa: E402,F401

name = "triton"


def generate_source(kernel: N.Kernel, options=None) -> str:
    """The Triton source of ``kernel`` (what ``vm compile --target triton`` prints)."""
    return generate(kernel)


def toolchain() -> dict[str, str]:
    import torch
    import triton
    return {"triton": triton.__version__, "torch": torch.__version__,
            "mode": "interpreter" if interpreting() else "cuda"}
