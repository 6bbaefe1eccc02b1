"""vmlang.ir: dtypes, layouts, IR nodes, builder, printer and verifier.

Nothing in this package imports from vmlang.passes, vmlang.backends or the front ends.
"""
from .errors import (ArgumentError, BackendError, DTypeError, LayoutError, SourceLoc, VerifyError,
                     VMError, VMRuntimeError, VMSyntaxError, VMTypeError)
from . import dtypes
from .dtypes import DType, IntType, FloatType, CodebookType, dtype, all_dtypes

__all__ = [
    "ArgumentError", "BackendError", "DTypeError", "LayoutError", "SourceLoc", "VerifyError", "VMError",
    "VMRuntimeError", "VMSyntaxError", "VMTypeError", "dtypes", "DType", "IntType", "FloatType",
    "CodebookType", "dtype", "all_dtypes",
]
