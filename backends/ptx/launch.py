"""Compiling a kernel to PTX and launching it with the CUDA driver.

``compile`` runs the passes (:func:`vmlang.passes.pipeline`), lowers to LLVM IR (:class:`.core.Lowerer`
and the rules), and emits PTX for the target architecture (:mod:`.toolchain`). The compiled kernel keeps
``kernel.ptx`` and ``kernel.ll`` in ``files`` (the disk cache stores them); calling it binds the
arguments, loads the module on the tensors' device and launches ``warps * 32`` threads per block with the
dynamic shared memory the lowering counted.
"""
from __future__ import annotations

from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError
from vmlang.runtime.args import (Binding, bind_args, scalar_bits, storage_strides, word_aligned_copy,
                                 written_params)

from .core import Lowerer, _symbol, signature, tensor_names

PTX_FILE, LL_FILE, META_FILE = "kernel.ptx", "kernel.ll", "kernel.json"


def is_packed(dt) -> bool:
    return dt.nbits < 8


class CompiledKernel:
    backend = "ptx"

    def __init__(self, kernel: N.Kernel, ptx: str, llvm_ir: str, shared_bytes: int, report: str = "",
                 options=None):
        self.kernel = kernel
        self.ptx = ptx
        self.llvm_ir = llvm_ir
        self.shared_bytes = int(shared_bytes)
        self.report = report
        self.options = options
        import json
        self.files = {PTX_FILE: ptx, LL_FILE: llvm_ir,
                      META_FILE: json.dumps({"shared_bytes": self.shared_bytes, "report": report})}
        self.sig = signature(kernel)
        self.written = written_params(kernel)
        from vmlang.passes.program import option
        # the vectorize pass relied on tensor bases this many bytes aligned: the launch guarantees it
        self.base_align = int(option(options, "base_align_bytes"))
        self._fns = {}

    def __call__(self, *args, **kwargs):
        self.launch(bind_args(self.kernel, args, kwargs))

    def explain(self) -> str:
        return self.report

    def _function(self, device: str):
        fn = self._fns.get(device)
        if fn is None:
            from . import driver
            fn = driver.load_module(self.ptx).function(_symbol(self.kernel.name))
            self._fns[device] = fn
        return fn

    def launch(self, b: Binding) -> None:
        import torch
        grid = tuple(int(g) for g in b.grid)
        if min(grid) == 0:
            return
        if not torch.cuda.is_available():
            raise BackendError("the ptx backend runs kernels on a CUDA GPU; none is present "
                               "(vm compile --target ptx still prints the PTX)")
        device = b.device if b.device.startswith("cuda") else "cuda:0"
        tensors, fixups, ints = [], [], []
        for p, ns, nt in self.sig.tensors:
            arg = b.tensors[p.id]
            t = arg.torch_storage(device)
            if is_packed(p.dtype) and p.id in self.written and t.numel():
                # sub-byte stores merge 32-bit words past the end too: always an aligned buffer with slack
                al = word_aligned_copy(t)
                fixups.append((al, t))
                t = al
            elif t.numel() and t.data_ptr() % self.base_align:
                al = t.clone()                        # a view at an odd offset: an aligned copy
                if p.id in self.written:
                    fixups.append((al, t))
                t = al
            tensors.append(t)
            shape = arg.shape
            ints += [int(s) for s in shape] + storage_strides(shape, t.shape[-1] if shape else 0)
        for sym in self.sig.sizes:
            ints.append(int(b.sizes[sym]))
        for p in self.sig.scalars:
            ints.append(scalar_bits(p.dtype, b.scalars[p.id]))
        from . import driver
        with torch.cuda.device(torch.device(device)):
            fn = self._function(device)
            args = [("ptr", t.data_ptr()) for t in tensors] + [("i32", v) for v in ints]
            driver.launch(fn, grid + (1,) * (3 - len(grid)), (self.kernel.warps * 32, 1, 1),
                          self.shared_bytes, args)
        for al, t in fixups:
            t.copy_(al)
        b.commit(self.written)


def lower_program(kernel: N.Kernel, options=None, arch: str | None = None):
    """(program, llvmlite module, lowerer) for ``kernel``.

    ``options`` may set ``pipeline_stages`` (2 or more; 0 or 1: no software pipelining of cp.async loads,
    see :mod:`.pipeline`), ``l2_prefetch`` (the tensors whose loads in a loop are prefetched to L2 one
    iteration ahead, :mod:`.prefetch`) and ``stage_loads`` (the tensors whose register loads in a loop are
    copied ahead into each thread's own shared-memory slots by the pipeline, :mod:`.staging`). When a pipelined kernel needs more dynamic shared memory than the
    architecture has, it is lowered again without pipelining (the loads then stage one buffer per tile)."""
    from vmlang.passes import pipeline
    from vmlang.passes.program import with_arch
    from . import rules  # noqa: F401  (registers every rule)
    from .pipeline import DEFAULT_SHARED_LIMIT, SHARED_LIMIT, STAGES
    program = pipeline(kernel, with_arch(options, arch or "sm_90"))
    stages = _option(options, "pipeline_stages", STAGES)
    prefetch = tensor_names(_option(options, "l2_prefetch", "", str))
    staged = tensor_names(_option(options, "stage_loads", "", str))

    def lower(wgmma: bool = True, pipeline_off: bool = stages < 2):
        lw = Lowerer(program, arch or "sm_90", wgmma=wgmma)
        lw.pipeline_stages, lw.pipeline_off = stages, pipeline_off
        lw.l2_prefetch, lw.stage_loads = prefetch, staged
        return lw, lw.finish()

    lw, module = lower()
    if lw.wgmma and not lw.wgmma_dots:
        # the layouts were made for wgmma but no dot could take it: lowered again without its shared
        # alignment and proxy fences (mma.sync takes the same layouts)
        lw, module = lower(wgmma=False)
    limit = SHARED_LIMIT.get(lw.arch, DEFAULT_SHARED_LIMIT)
    if lw.shared_max > limit and any("for loop pipelined:" in t for _, t in getattr(lw, "pipeline_notes", ())):
        lw, module = lower(wgmma=lw.wgmma, pipeline_off=True)
        lw.pipeline_notes = [(None, f"not pipelined: with pipelining the kernel needs more than the {limit} "
                                    f"bytes of shared memory of {lw.arch}")] + getattr(lw, "pipeline_notes", [])
    return program, module, lw


def _option(options, name: str, default, kind=int):
    """Option ``name`` of a dict or an options object, as ``kind`` (``default`` when absent or None)."""
    if options is None:
        return default
    v = options.get(name) if isinstance(options, dict) else getattr(options, name, None)
    return default if v is None else kind(v)


def lowering_report(program, lw) -> str:
    """The passes' report plus the lowering's own decisions (software pipelining, ``pipeline:``)."""
    from vmlang.passes.program import Note, format_report
    notes = [Note("pipeline", loc, text) for loc, text in getattr(lw, "pipeline_notes", ())]
    return format_report(program.with_(notes=notes) if notes else program)


def compile(kernel: N.Kernel, options=None) -> CompiledKernel:  # noqa: A001 - backend contract
    from .toolchain import default_arch, to_ptx
    arch = getattr(options, "arch", None) or default_arch()
    program, module, lw = lower_program(kernel, options, arch)
    text = str(module)
    ptx = to_ptx(text, arch)
    return CompiledKernel(kernel, ptx, text, lw.shared_max, lowering_report(program, lw), options)


def load(kernel: N.Kernel, files: dict, options=None) -> CompiledKernel:
    """Rebuild a CompiledKernel from cached files without compiling again."""
    import json
    ptx, ll, meta = files.get(PTX_FILE), files.get(LL_FILE), files.get(META_FILE)
    if not isinstance(ptx, str) or f".entry {_symbol(kernel.name)}" not in ptx or not isinstance(meta, str):
        raise BackendError(f"cached files do not hold the PTX of {kernel.name}")
    try:
        m = json.loads(meta)
        return CompiledKernel(kernel, ptx, ll or "", int(m["shared_bytes"]), m.get("report", ""), options)
    except (ValueError, KeyError, TypeError) as e:
        raise BackendError(f"cached PTX metadata of {kernel.name} is corrupt: {e}") from None
