"""vmlang.stdlib: kernels written in vmlang, format converters and torch layers.

Names are imported on first use, so ``import vmlang.stdlib`` stays cheap and does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "QuantizedWeight": "quant.weight",
    "quantize": "quant.schemes",
    "qmatmul": "matmul",
    "QuantizedLinear": "nn",
    "quantize_model": "nn",
    "from_gptq": "convert.gptq", "to_gptq": "convert.gptq",
    "from_awq": "convert.awq", "to_awq": "convert.awq",
    "from_bnb_nf4": "convert.bnb", "to_bnb_nf4": "convert.bnb",
    "from_mxfp4": "convert.mxfp4", "to_mxfp4": "convert.mxfp4",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'vmlang.stdlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
