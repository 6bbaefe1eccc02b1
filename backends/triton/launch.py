"""Loading generated Triton modules and launching them on bound arguments.

The generated source is written to a file (Triton reads a kernel's source with ``inspect``) in a
temporary folder named by its hash, and imported from there. Where there is
no CUDA GPU, kernels run under the Triton interpreter on CPU torch tensors (see :mod:`.env`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError
from vmlang.runtime.args import Binding, bind_args, storage_strides, word_aligned_copy, written_params

from . import reprs as R
from .codegen import safe, signature
from .env import cuda_present as _cuda, interpreting

SOURCE_FILE = "kernel_triton.py"


def _module_dir(source: str) -> str:
    """A folder holding ``source`` as kernel_triton.py (content-addressed, written atomically). The disk
    cache of the runtime keeps its own copy in ``CompiledKernel.files``; this one is only for importing."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    d = os.path.join(tempfile.gettempdir(), f"vmlang-triton-{uid}", digest)
    try:
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, SOURCE_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if f.read() == source:
                    return d
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, path)
    except OSError as e:
        raise BackendError(f"cannot write the generated Triton source to {d}: {e}") from None
    return d


def load_module(source: str):
    """Import generated source as a module (cached per source text)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    modname = f"vmlang_triton_{digest}"
    mod = sys.modules.get(modname)
    if mod is not None:
        return mod
    path = os.path.join(_module_dir(source), SOURCE_FILE)
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[modname] = mod
    return mod


class CompiledKernel:
    backend = "triton"

    def __init__(self, kernel: N.Kernel, source: str, options=None):
        self.kernel = kernel
        self.source = source
        self.options = options
        self.files = {SOURCE_FILE: source}
        self.sig = signature(kernel)
        self.written = written_params(kernel)
        self._fn = None

    def __call__(self, *args, **kwargs):
        self.launch(bind_args(self.kernel, args, kwargs))

    @property
    def fn(self):
        if self._fn is None:
            mod = load_module(self.source)
            self._fn = getattr(mod, safe(self.kernel.name))
        return self._fn

    def device(self, b: Binding) -> str:
        if interpreting():
            return "cpu"
        if not _cuda():
            raise BackendError("the triton backend needs a CUDA GPU, or the Triton interpreter: set "
                               "TRITON_INTERPRET=1 before triton is imported")
        return b.device if b.device.startswith("cuda") else "cuda:0"

    def arguments(self, b: Binding, device: str):
        """The kernel's argument list and, per written packed tensor, (aligned copy, original)."""
        import torch
        ptrs, ints, fixups = [], [], []
        for p, _, _, _ in self.sig.tensors:
            arg = b.tensors[p.id]
            t = arg.torch_storage(device)
            dt = p.dtype
            if dt == D.bfloat16 or dt in (D.uint16, D.uint32):
                t = t.view(torch.int16 if dt.nbits == 16 else torch.int32)
            if R.is_packed(dt) and p.id in self.written and t.numel() and t.data_ptr() % 4:
                # sub-byte stores use 32-bit atomics: give them a 4-byte aligned buffer
                al = word_aligned_copy(t)
                fixups.append((al, t))
                t = al
            ptrs.append(t)
            shape = arg.shape
            ints += [int(s) for s in shape] + storage_strides(shape, t.shape[-1] if shape else 0)
        for sym, _ in self.sig.sizes:
            ints.append(int(b.sizes[sym]))
        for p, _ in self.sig.scalars:
            ints.append(R.scalar_bits(p.dtype, b.scalars[p.id]))
        return ptrs + ints, fixups

    def launch(self, b: Binding) -> None:
        grid = tuple(int(g) for g in b.grid)
        if min(grid) == 0:
            return
        device = self.device(b)
        args, fixups = self.arguments(b, device)
        if device.startswith("cuda"):
            import torch
            with torch.cuda.device(torch.device(device)):   # Triton launches on the current device
                self.fn[grid](*args, num_warps=self.kernel.warps, enable_fp_fusion=False)
        else:
            with np.errstate(all="ignore"):   # the interpreter computes with NumPy; a GPU does not warn
                self.fn[grid](*args, num_warps=self.kernel.warps, enable_fp_fusion=False)
        for al, t in fixups:
            t.copy_(al)
        b.commit(self.written)


def compile(kernel: N.Kernel, options=None) -> CompiledKernel:  # noqa: A001 - backend contract
    from .codegen import generate
    return CompiledKernel(kernel, generate(kernel), options)


def load(kernel: N.Kernel, files: dict, options=None) -> CompiledKernel:
    """Rebuild a CompiledKernel from cached files (the generated source) without regenerating it."""
    src = files.get(SOURCE_FILE)
    if not isinstance(src, str) or f"def {safe(kernel.name)}(" not in src:
        raise BackendError(f"cached files do not hold the Triton source of {kernel.name}")
    return CompiledKernel(kernel, src, options)
