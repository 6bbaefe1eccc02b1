"""``vm check``, ``vm run`` and ``vm compile``: the .vm language from the command line."""
from __future__ import annotations

import argparse
import time

import numpy as np

from vmlang.cli import command
from vmlang.ir.errors import ArgumentError, VMError
from vmlang.ir.types import GlobalType


def _defines(p: argparse.ArgumentParser):
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                   help="a compile-time parameter, size symbol or scalar argument (repeatable)")
    p.add_argument("--kernel", help="the kernel to use when the file defines several")


def _parse_defines(items: list[str]) -> dict[str, int | float]:
    out = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise VMError(f"-D expects NAME=VALUE, got {item!r}")
        try:
            out[name] = int(text, 0)
        except ValueError:
            try:
                out[name] = float(text)
            except ValueError:
                raise VMError(f"-D {name}: {text!r} is not a number") from None
    return out


def _source_of(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _with_source(e: VMError, path: str) -> VMError:
    if e.loc is not None and e.source is None and e.loc.file == path:
        e.source = _source_of(path)
    return e


def _compile(args):
    import vmlang.api as api
    from vmlang.lang.parser import parse
    defines = _parse_defines(args.defines)
    _, source = api.read_source(args.file)
    module = parse(source, args.file)
    names = [k.name for k in module.kernels]
    kname = args.kernel or (names[0] if len(names) == 1 else None)
    if kname is None:
        raise VMError(f"{args.file} defines several kernels ({', '.join(names)}): choose one with --kernel")
    ast_k = next((k for k in module.kernels if k.name == kname), None)
    if ast_k is None:
        raise VMError(f"{args.file} has no kernel named {kname} (it has {', '.join(names)})")
    consts = {n: v for n, v in defines.items() if n in {c.name for c in ast_k.consts}}
    kernel = api.compile_source(source, args.file, consts, kname)
    rest = {n: v for n, v in defines.items() if n not in consts}
    return kernel, rest


@command("check", "parse and type-check a .vm file; print diagnostics",
         lambda p: (p.add_argument("file"), _defines(p)))
def _check(args) -> int:
    import vmlang.api as api
    from vmlang.ir import nodes as N
    from vmlang.lang.parser import parse
    try:
        _, source = api.read_source(args.file)
        module = parse(source, args.file)
        defines = _parse_defines(args.defines)
        for k in module.kernels:
            if args.kernel and k.name != args.kernel:
                continue
            consts = {n: v for n, v in defines.items() if n in {c.name for c in k.consts}}
            ir = api.compile_source(source, args.file, consts, k.name)
            n = sum(1 for _ in N.walk(ir.body))
            print(f"{args.file}: kernel {k.name}: ok ({n} instructions)")
    except VMError as e:
        raise _with_source(e, args.file)
    return 0


@command("compile", "compile a .vm file and print the result (--target ir|triton|ptx)",
         lambda p: (p.add_argument("file"), _defines(p),
                    p.add_argument("--target", default="ir", choices=("ir", "triton", "ptx"))))
def _compile_cmd(args) -> int:
    from vmlang.ir.printer import print_kernel
    try:
        kernel, _ = _compile(args)
    except VMError as e:
        raise _with_source(e, args.file)
    if args.target == "ir":
        print(print_kernel(kernel), end="")
        return 0
    import vmlang.api as api
    be = api.backend(args.target)
    print(be.generate_source(kernel), end="")
    return 0


def random_argument(dtype, shape, rng):
    """Random data of a dtype (never all zeros): normal floats, uniform ints, random finite codes."""
    import vmlang as vm
    from vmlang.ir.types import COMPUTE
    if dtype in (vm.float16, vm.float32):
        return rng.standard_normal(shape).astype(np.float16 if dtype == vm.float16 else np.float32)
    if dtype in COMPUTE and not dtype.is_float:
        lo, hi = max(dtype.min, -100), min(dtype.max, 100)
        return rng.integers(lo, hi + 1, size=shape).astype(
            {8: np.int8, 16: np.int16, 32: np.int32}[dtype.nbits] if dtype.is_signed
            else {8: np.uint8, 16: np.uint16, 32: np.uint32}[dtype.nbits])
    if dtype == vm.uint1:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.nbits <= 8:
        vals = dtype.values
        ok = np.flatnonzero(np.isfinite(vals))
        if dtype == vm.float8_e8m0:  # scales: keep them near 1
            ok = ok[(ok >= 120) & (ok <= 134)]
        return vm.Tensor.from_codes(rng.choice(ok, size=shape), dtype)
    return vm.Tensor.from_values(rng.standard_normal(shape), dtype)


def _summary(name, dtype, arr) -> str:
    vals = arr.values() if hasattr(arr, "values") and not isinstance(arr, np.ndarray) else \
        np.asarray(arr, dtype=np.float64)
    finite = vals[np.isfinite(vals)]
    stats = (f"min {finite.min():.6g} max {finite.max():.6g} mean {finite.mean():.6g}" if finite.size
             else "no finite values")
    nonfinite = vals.size - finite.size
    return (f"  {name}: {dtype}{list(vals.shape)}  {stats}" + (f"  ({nonfinite} non-finite)" if nonfinite else ""))


@command("run", "run a .vm kernel on random inputs and print a summary of its outputs",
         lambda p: (p.add_argument("file"), _defines(p),
                    p.add_argument("--backend", default=None,
                                   help="numpy, triton or ptx (default: triton where a CUDA GPU is present, "
                                        "else numpy; VMLANG_BACKEND overrides)"),
                    p.add_argument("--seed", type=int, default=0),
                    p.add_argument("--save", metavar="OUT.npz", help="save inputs and outputs")))
def _run(args) -> int:
    import vmlang.api as api
    from vmlang.runtime.args import written_params
    try:
        kernel, sizes = _compile(args)
        rng = np.random.default_rng(args.seed)
        call_args = []
        for p in kernel.params:
            if isinstance(p.type, GlobalType):
                try:
                    shape = tuple(d.evaluate(sizes) for d in p.type.dims)
                except VMError:
                    missing = sorted(set().union(*(d.symbols() for d in p.type.dims)) - set(sizes))
                    raise ArgumentError(f"size {', '.join(missing)} of parameter {p.name} is not given: "
                                        f"pass -D {missing[0]}=...") from None
                call_args.append(random_argument(p.dtype, shape, rng))
            else:
                if p.name not in sizes:
                    raise ArgumentError(f"scalar parameter {p.name} is not given: pass -D {p.name}=...")
                v = sizes[p.name]
                call_args.append(float(v) if p.dtype.is_float else v)
        name = args.backend or api.default_backend()
        be = api.backend(name)
        ck = be.compile(kernel)
        written = written_params(kernel)
        t0 = time.perf_counter()
        ck(*call_args)
        dt = time.perf_counter() - t0
    except VMError as e:
        raise _with_source(e, args.file)
    print(f"{kernel.name} on {name}: {dt * 1e3:.1f} ms")
    for p, a in zip(kernel.params, call_args):
        if p.id in written:
            print(_summary(p.name, p.dtype, a))
    if args.save:
        arrays = {p.name: (a.values() if hasattr(a, "codes") else np.asarray(a)) for p, a in zip(kernel.params, call_args)}
        np.savez(args.save, **arrays)
        print(f"saved {', '.join(arrays)} to {args.save}")
    return 0
