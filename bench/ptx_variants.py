"""Run a bench script with the ptx backend's module loading and launching changed, to measure what the
driver does with the PTX vmlang generates (GPU machine). The changes, each off unless asked for:

* ``--cubin``: assemble the PTX with the machine's ``ptxas -arch=sm_XY -O3`` and load the cubin, instead of
  the driver's JIT compiling the PTX (does the JIT do worse than the toolkit's assembler?);
* ``--constants``: write every 32-bit launch parameter (sizes, strides, scalars) into the PTX as a constant
  before loading it, one module per distinct set of values (what would exact-size specialisation buy?);
* ``--max-registers N``: add ``.minnctapersm`` after each kernel's ``.maxntid`` so that blocks of that
  size fit an SM at N registers per thread (``65536 // (N * threads)`` blocks): occupancy bought with
  registers, the compiler's choice overridden.

At exit, every loaded kernel's ``NUM_REGS`` (``REGS name n``, on stderr). The script runs as ``__main__``
with the remaining arguments, e.g. (session 14, H100: int2 123 registers either way, the same times)::

    python bench/ptx_variants.py --cubin bench/gemv_paths.py --formats int2,int3 --paths default
    python bench/ptx_variants.py --max-registers 72 bench/gemv_paths.py --formats int2 --paths mma:8:128:1:1:4
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import re
import runpy
import subprocess
import sys
import tempfile

_PARAM = re.compile(r"ld\.param\.b32 \t(%r\d+), \[(\w+)_param_(\d+)\];")
_MAXNTID = re.compile(r"^(\s*\.maxntid (\d+)[^\n]*)$", re.M)


def with_min_blocks(ptx: str, max_registers: int) -> str:
    """``ptx`` with ``.minnctapersm B`` after each ``.maxntid T`` line, ``B = max(1, 65536 // (max_registers * T))``
    (65536 registers per SM).

    >>> print(with_min_blocks(".entry k()\\n.maxntid 64\\n{", 128))
    .entry k()
    .maxntid 64
    .minnctapersm 8
    {
    """
    def one(m):
        blocks = max(1, 65536 // (max_registers * int(m.group(2))))
        return f"{m.group(1)}\n.minnctapersm {blocks}"
    return _MAXNTID.sub(one, ptx)


def with_constants(ptx: str, values: dict[int, int]) -> str:
    """``ptx`` with each ``ld.param.b32 %rN, [kernel_param_i]`` of a parameter in ``values`` (index -> the
    32-bit value) replaced by ``mov.b32 %rN, value``.

    >>> with_constants("ld.param.b32 \\t%r7, [k_param_5];", {5: 8192})
    'mov.b32 \\t%r7, 8192;'
    """
    def one(m):
        i = int(m.group(3))
        return f"mov.b32 \t{m.group(1)}, {values[i] & 0xFFFFFFFF};" if i in values else m.group(0)
    return _PARAM.sub(one, ptx)


def _assemble(ptx: str, arch: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/k.ptx", "w") as f:
            f.write(ptx)
        subprocess.run(["ptxas", f"-arch={arch}", "-O3", f"{d}/k.ptx", "-o", f"{d}/k.cubin"], check=True)
        with open(f"{d}/k.cubin", "rb") as f:
            return f.read()


def install(cubin: bool = False, constants: bool = False, max_registers: int = 0) -> None:
    """Patch ``vmlang.backends.ptx.driver``'s ``load_module`` and ``launch`` as the options say."""
    from vmlang.backends.ptx import driver as D
    original_load, original_launch, sources, specialised = D.load_module, D.launch, {}, {}

    def load_module(ptx, device=None):
        if max_registers:
            ptx = with_min_blocks(ptx, max_registers)
        if not cubin:
            mod = original_load(ptx, device)
        else:
            dev = D._device_index(device)
            key = (dev, hashlib.sha256(ptx.encode()).hexdigest())
            mod = D._modules.get(key)
            if mod is None:
                import torch
                drv = D._driver()
                D._make_current(dev)
                major, minor = torch.cuda.get_device_capability(dev)
                handle = D._call(drv, "cuModuleLoadData", _assemble(ptx, f"sm_{major}{minor}"))
                mod = D._modules[key] = D.Module(handle, dev, key[1], "")
        sources[mod.digest] = ptx
        return mod

    def launch(fn, grid, block, shared_bytes=0, args=(), stream=None):
        if constants:
            values = {i: int(v) for i, (kind, v) in enumerate(args) if kind == "i32"}
            key = (fn.module.digest, fn.name, tuple(sorted(values.items())))
            if key not in specialised:
                specialised[key] = load_module(with_constants(sources[fn.module.digest], values),
                                               fn.module.device).function(fn.name)
            fn = specialised[key]
        return original_launch(fn, grid, block, shared_bytes, args, stream)

    D.load_module, D.launch = load_module, launch

    @atexit.register
    def _registers():
        for mod in list(D._modules.values()):
            for name, f in mod._functions.items():
                print(f"REGS {name} {f.attribute('NUM_REGS')}", file=sys.stderr)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s [options] SCRIPT [ARGS...]")
    p.add_argument("--cubin", action="store_true", help="ptxas -O3 cubin instead of the driver's JIT")
    p.add_argument("--constants", action="store_true", help="32-bit launch parameters written into the PTX")
    p.add_argument("--max-registers", type=int, default=0, help=".minnctapersm for this many registers")
    p.add_argument("script")
    args, rest = p.parse_known_args(argv)
    install(args.cubin, args.constants, args.max_registers)
    sys.argv = [args.script, *rest]
    runpy.run_path(args.script, run_name="__main__")


if __name__ == "__main__":
    main()
