"""Choosing between the GPU and the Triton interpreter (imported before triton itself).

Where no CUDA GPU is present the kernels run under the Triton interpreter on CPU torch tensors. The
interpreter must be chosen before ``triton`` is first imported (``triton.language``'s own functions
are wrapped at import), so importing this backend on a machine without a GPU sets
``TRITON_INTERPRET=1`` when triton is not imported yet. FMA contraction is off by default
(``TRITON_DEFAULT_FP_FUSION=0``; launches also pass ``enable_fp_fusion=False``) so that ``a * b + c``
rounds twice, as the VM does.
"""
from __future__ import annotations

import os
import sys


def cuda_present() -> bool:
    from vmlang.api import cuda_available
    return cuda_available()


def prepare_environment() -> None:
    if "triton" not in sys.modules and not os.environ.get("TRITON_INTERPRET") and not cuda_present():
        os.environ["TRITON_INTERPRET"] = "1"
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "0")


def interpreting() -> bool:
    """True when Triton kernels run in the interpreter (decided when triton was imported)."""
    import triton.language as tl
    return type(tl.standard.sum).__name__ == "InterpretedFunction"
