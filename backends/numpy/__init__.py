"""The NumPy reference VM: the bit-exact oracle every compiled backend is tested against.

``compile(kernel)`` returns a :class:`CompiledKernel`; calling it with arrays runs the kernel block
by block (see :mod:`.machine`) on private copies of the global tensors, and writes the results back
into the caller's arrays only when the whole launch succeeded.
"""
from __future__ import annotations

import itertools

import numpy as np

from vmlang.ir import nodes as N
from vmlang.ir.types import GlobalType
from vmlang.runtime.args import Binding, bind_args, written_params

from . import arith as AR
from .machine import Frame, RULES  # noqa: F401

name = "numpy"


class CompiledKernel:
    backend = "numpy"

    def __init__(self, kernel: N.Kernel):
        self.kernel = kernel
        self.written = written_params(kernel)

    def __call__(self, *args, **kwargs):
        self.launch(bind_args(self.kernel, args, kwargs))

    @property
    def files(self) -> dict[str, str]:
        """What the disk cache keeps: the IR as .vm text (the VM interprets it directly)."""
        from vmlang.ir.printer import print_kernel
        return {"kernel.vm": print_kernel(self.kernel)}

    def launch(self, b: Binding) -> None:
        k = self.kernel
        arrays = {vid: AR.from_codes(h.dtype, h.codes()).copy() for vid, h in b.tensors.items()}
        scalars = {}
        for p in k.params:
            if not isinstance(p.type, GlobalType):
                scalars[p.id] = AR.fill_value(p.dtype, b.scalars[p.id])
        gx, gy, gz = b.grid
        for bz, by, bx in itertools.product(range(gz), range(gy), range(gx)):
            Frame(k, arrays, scalars, b.sizes, (bx, by, bz)).run(k.body)
        for vid in self.written:
            b.tensors[vid].write_codes(AR.to_codes(b.tensors[vid].dtype, arrays[vid]))


def compile(kernel: N.Kernel, options=None) -> CompiledKernel:  # noqa: A001 - backend contract
    return CompiledKernel(kernel)


def load(kernel: N.Kernel, files: dict, options=None) -> CompiledKernel:
    """Rebuild from cached files. The VM interprets the IR the caller already has; the cached text must be
    that IR (anything else means the entry is not what its key says, and the caller recompiles)."""
    from vmlang.ir.errors import BackendError
    from vmlang.ir.printer import print_kernel
    if files.get("kernel.vm") != print_kernel(kernel):
        raise BackendError("cached kernel.vm is not this kernel's IR")
    return CompiledKernel(kernel)


def generate_source(kernel: N.Kernel, options=None) -> str:
    from vmlang.ir.printer import print_kernel
    return print_kernel(kernel)


def toolchain() -> dict[str, str]:
    return {"numpy": np.__version__}
