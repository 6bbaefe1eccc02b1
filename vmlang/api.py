"""Public entry points: build IR from .vm text and run it on a backend.

>>> import numpy as np, vmlang as vm
>>> k = vm.compile_source('''
... kernel double(x: f32[N] global, y: f32[N] global) grid(cdiv(N, 64)) {
...     i = block.x * 64;
...     store(y[i : +64], load(x[i : +64]) * 2.0);
... }''')
>>> x = np.arange(3, dtype=np.float32); y = np.zeros(3, np.float32)
>>> vm.backend("numpy").compile(k)(x, y); y.tolist()
[0.0, 2.0, 4.0]
"""
from __future__ import annotations

import importlib
import importlib.util
import os

from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError, VMError

BACKENDS = ("numpy", "triton", "ptx")


def parse_source(source: str, filename: str = "<string>"):
    from vmlang.lang.parser import parse
    return parse(source, filename)


def kernel_names(source: str, filename: str = "<string>") -> list[str]:
    return [k.name for k in parse_source(source, filename).kernels]


def compile_source(source: str, filename: str = "<string>", consts: dict | None = None,
                   kernel: str | None = None) -> N.Kernel:
    """Parse and lower one kernel of a .vm source (the only one, or the one named ``kernel``).

    ``consts`` gives compile-time parameter values; unknown names raise a VMError.
    """
    from vmlang.lang.lower import lower_kernel
    module = parse_source(source, filename)
    if kernel is None:
        if len(module.kernels) != 1:
            names = ", ".join(k.name for k in module.kernels)
            raise VMError(f"{filename} defines {len(module.kernels)} kernels ({names}): choose one")
        ast_k = module.kernels[0]
    else:
        found = [k for k in module.kernels if k.name == kernel]
        if not found:
            raise VMError(f"{filename} has no kernel named {kernel}")
        ast_k = found[0]
    consts = dict(consts or {})
    declared = {c.name for c in ast_k.consts}
    unknown = set(consts) - declared
    if unknown:
        raise VMError(f"kernel {ast_k.name} has no compile-time parameter {', '.join(sorted(unknown))} "
                      f"(it has {', '.join(sorted(declared)) or 'none'})")
    return lower_kernel(ast_k, consts, source, filename)


def read_source(path: str | os.PathLike) -> tuple[str, str]:
    """-> (path as a string, the file's text); unreadable or non-UTF-8 files raise a VMError."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return path, f.read()
    except OSError as e:
        raise VMError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise VMError(f"{path} is not UTF-8 text") from None


def compile_file(path: str | os.PathLike, consts: dict | None = None, kernel: str | None = None) -> N.Kernel:
    path, source = read_source(path)
    return compile_source(source, path, consts, kernel)


def backend(name: str):
    """The backend module ``vmlang.backends.<name>`` (its ``compile(kernel)`` returns a callable)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r} (one of {', '.join(BACKENDS)})")
    try:
        return importlib.import_module(f"vmlang.backends.{name}")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("vmlang.backends"):
            raise BackendError(f"the {name} backend is not implemented yet") from None
        raise BackendError(f"the {name} backend needs {e.name}, which is not installed") from None


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU (False when torch is missing)."""
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken driver counts as no GPU
        return False


def default_backend() -> str:
    """The backend used when none is named: ``VMLANG_BACKEND`` if set, else triton when a CUDA GPU and
    triton are present, else numpy."""
    env = os.environ.get("VMLANG_BACKEND")
    if env:
        if env not in BACKENDS:
            raise BackendError(f"VMLANG_BACKEND={env!r} is not a backend (one of {', '.join(BACKENDS)})")
        return env
    if cuda_available() and importlib.util.find_spec("triton") is not None:
        return "triton"
    return "numpy"


# ----------------------------------------------------------------------------------- launchable kernels
def load(path: str | os.PathLike, kernel: str | None = None):
    """Load a .vm file as launchable kernel(s): the one kernel it defines (or the one named ``kernel``);
    a file with several kernels gives a :class:`KernelModule` (``mod.name`` / ``mod["name"]``).

    Inside a ``@vm.jit`` kernel body, ``vm.load(x[...])`` is the tile load instead: the body is never run,
    and the front end reads that call as the ``load`` instruction.
    """
    from vmlang.runtime.kernel import Kernel, KernelSource
    path, source = read_source(path)
    module = parse_source(source, path)
    kernels = {k.name: Kernel(KernelSource(k, source, path, source, "vm")) for k in module.kernels}
    if kernel is not None:
        if kernel not in kernels:
            raise VMError(f"{path} has no kernel named {kernel} (it has {', '.join(kernels)})")
        return kernels[kernel]
    if len(kernels) == 1:
        return next(iter(kernels.values()))
    return KernelModule(path, kernels)


load.__vm_builtin__ = "load"


class KernelModule:
    """The kernels of a .vm file that defines several: ``mod.gemv`` or ``mod["gemv"]``."""

    def __init__(self, path: str, kernels: dict):
        self.path = path
        self.kernels = kernels

    def __getattr__(self, name):
        try:
            return self.__dict__["kernels"][name]
        except KeyError:
            raise AttributeError(f"{self.__dict__.get('path')} has no kernel {name}") from None

    def __getitem__(self, name):
        return self.kernels[name]

    def __iter__(self):
        return iter(self.kernels.values())

    def __repr__(self):
        return f"<vm module {self.path}: {', '.join(self.kernels)}>"


def jit(fn=None, *, grid=None, warps=None, options=None):
    """Turn a Python function into a launchable vmlang kernel (see docs/jit.md).

    >>> import vmlang as vm
    >>> @vm.jit(grid=lambda N, BN: (vm.cdiv(N, BN),))
    ... def double(x: vm.f32["N"], y: vm.f32["N"], BN: vm.constexpr = 64):
    ...     i = vm.block.x * BN
    ...     vm.store(y[i : +BN], vm.load(x[i : +BN]) * 2.0)

    The body is read with ``ast`` and never executed; errors point into the function's file.
    """
    def wrap(f):
        from vmlang.lang.pyfront import parse_function
        from vmlang.runtime.kernel import Kernel
        k = Kernel(parse_function(f, grid=grid, warps=warps), options)
        k.fn = f
        k.__doc__ = f.__doc__
        k.__wrapped__ = f
        return k
    return wrap if fn is None else wrap(fn)
