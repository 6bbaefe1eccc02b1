"""The PTX backend: IR -> passes -> LLVM IR (llvmlite) -> NVPTX -> PTX -> CUDA driver (docs/ptx.md).

``compile(kernel, options)`` returns a :class:`CompiledKernel` holding the PTX; calling it launches on a
CUDA GPU through ``cuda.bindings.driver``. Without a GPU, ``generate_source`` still gives the PTX and
:func:`.toolchain.ptxas_check` assembles it.
"""
from __future__ import annotations

from .core import RULES  # noqa: F401
from .launch import CompiledKernel, compile, load, lower_program  # noqa: F401
from . import rules  # noqa: F401

name = "ptx"


def generate_source(kernel, options=None) -> str:
    """The PTX of ``kernel`` (what ``vm compile --target ptx`` prints)."""
    from .toolchain import default_arch, to_ptx
    arch = getattr(options, "arch", None) or default_arch()
    _, module, _ = lower_program(kernel, options, arch)
    return to_ptx(str(module), arch)


from . import toolchain as _toolchain_module  # noqa: E402,F401  (loaded first: the name below stays the function)


#: the lowering's revision, part of every cached kernel's key (:func:`toolchain`): raised when generated code
#: changes in a way an older cache entry must not survive -- 2: barriers are ``convergent`` (an entry from
#: before could hold PTX that hangs the GPU, under the same vmlang version); 3: on sm_90 a dot of shared
#: operands runs on warpgroup MMA (an entry from before holds the slower mma.sync code)
LOWERING_REVISION = 3


def toolchain() -> dict[str, str]:
    import llvmlite
    return {"llvmlite": llvmlite.__version__, "lowering": str(LOWERING_REVISION)}
