"""What the current machine is, as far as compiled code cares (part of every cache key)."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def _cuda_props(index: int) -> dict:
    import torch
    p = torch.cuda.get_device_properties(index)
    return {"name": p.name, "arch": f"sm_{p.major}{p.minor}", "memory": int(p.total_memory)}


def describe(backend: str, device: str = "cpu") -> dict:
    """``{"kind": "cpu"}`` or ``{"kind": "cuda", "name": ..., "arch": "sm_90"}`` for the device a backend
    runs on. The NumPy VM runs on the CPU whatever the arguments' device."""
    if backend == "numpy":
        return {"kind": "cpu"}
    from vmlang.api import cuda_available
    if not cuda_available():
        return {"kind": "cpu"}
    index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    return {"kind": "cuda", **_cuda_props(index)}


def label(info: dict) -> str:
    """A short name for a device description: ``cpu`` or ``NVIDIA H100 80GB HBM3 (sm_90)``."""
    return "cpu" if info.get("kind") == "cpu" else f"{info['name']} ({info['arch']})"
