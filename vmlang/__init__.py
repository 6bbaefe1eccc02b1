"""vmlang: a kernel compiler and virtual machine for GPU computation in arbitrary low-precision types.

>>> import vmlang as vm
>>> vm.int3.min, vm.int3.max, vm.float4_e2m1.max
(-4, 3, 6.0)
"""
from __future__ import annotations

import os as _os

# In a source checkout that was not installed, vmlang.ir / .passes / .backends / .stdlib live in the
# top-level folders beside this package (pyproject.toml maps them on install); make them importable.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "ir")) and \
        _os.path.isfile(_os.path.join(_root, "ir", "dtypes.py")):
    __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821

from ._version import __version__  # noqa: E402
from .ir import errors as _errors  # noqa: E402
from .ir.errors import (ArgumentError, BackendError, DTypeError, LayoutError, VerifyError,  # noqa: E402
                        VMError, VMRuntimeError, VMSyntaxError, VMTypeError)
from .ir.dtypes import DType, IntType, FloatType, CodebookType, dtype, all_dtypes  # noqa: E402
from .ir.dtypes import _REGISTRY as _DTYPES, aliases as _aliases  # noqa: E402
from .ir.packing import pack, unpack, packed_length  # noqa: E402

globals().update(_DTYPES)
globals().update({a: _DTYPES[n] for a, n in _aliases().items() if a.isidentifier()})
from .runtime.tensor import Tensor  # noqa: E402
from .api import backend, compile_file, compile_source, jit, load  # noqa: E402
from .runtime.options import CompileOptions  # noqa: E402
from .runtime.autotune import Config, autotune  # noqa: E402
from .show import show  # noqa: E402

# @vm.jit front end: vm.constexpr, vm.f16["M", "K"] annotations and the builtin stubs (vm.cast, vm.store, vm.block, ...)
from .ir.dtypes import TensorSpec  # noqa: E402
from .lang.stubs import STUBS as _STUBS, constexpr  # noqa: E402
globals().update({_n: _s for _n, _s in _STUBS.items() if _n not in globals()})

# `from vmlang import *` exports the API and the dtypes, but not the kernel builtins whose names shadow
# Python's (sum, max, min, abs, ...): write vm.sum inside kernels.
__all__ = sorted(
    {"ArgumentError", "BackendError", "DTypeError", "LayoutError", "VerifyError", "VMError", "VMRuntimeError",
     "VMSyntaxError", "VMTypeError", "DType", "IntType", "FloatType", "CodebookType", "dtype", "all_dtypes",
     "pack", "unpack", "packed_length", "Tensor", "backend", "compile_file", "compile_source", "jit", "load",
     "CompileOptions", "Config", "autotune", "show", "TensorSpec", "constexpr", "__version__"}
    | {n for n in _DTYPES} | {a for a in _aliases() if a.isidentifier()})
