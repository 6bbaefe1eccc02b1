"""``vm.Tensor``: a typed host array for dtypes NumPy does not have (sub-byte, fp8, bf16, nf4, ...).

The data are the packed bytes in the LSB-first stream along the last axis for types below 8 bits
(``ceil(n * bits / 8)`` bytes per row), and one unsigned code per element otherwise. ``shape`` is
always in elements.

>>> import vmlang as vm
>>> t = vm.Tensor.from_values([[1, -2, 3]], vm.int3)
>>> t.shape, t.data.shape, t.values().tolist()
((1, 3), (1, 2), [[1.0, -2.0, 3.0]])
"""
from __future__ import annotations

import numpy as np

from vmlang.ir.dtypes import DType, dtype as _dtype
from vmlang.ir.packing import pack, packed_length, unpack


class Tensor:
    def __init__(self, data, dtype, shape=None):
        dt = _dtype(dtype)
        data = np.asarray(data)
        if dt.nbits < 8:
            if data.dtype != np.uint8:
                raise ValueError(f"packed {dt} data must be uint8 bytes, got {data.dtype}")
            if shape is None:
                if (data.shape[-1] * 8) % dt.nbits:
                    raise ValueError(f"{data.shape[-1]} bytes do not hold a whole number of {dt} elements: "
                                     f"give shape=")
                shape = data.shape[:-1] + (data.shape[-1] * 8 // dt.nbits,)
            shape = tuple(int(s) for s in shape)
            if tuple(data.shape) != shape[:-1] + (packed_length(shape[-1], dt.nbits),):
                raise ValueError(f"{dt}{list(shape)} packs into {shape[:-1] + (packed_length(shape[-1], dt.nbits),)} "
                                 f"bytes, but data has shape {data.shape}")
        else:
            want = dt.code_dtype
            if data.dtype != want:
                raise ValueError(f"{dt} codes are {want}, got {data.dtype}")
            if shape is not None and tuple(shape) != data.shape:
                raise ValueError(f"shape {tuple(shape)} does not match data shape {data.shape}")
            shape = data.shape
        self.data = data
        self.dtype: DType = dt
        self.shape = tuple(shape)

    @classmethod
    def from_codes(cls, codes, dtype) -> "Tensor":
        dt = _dtype(dtype)
        codes = np.asarray(codes)
        if dt.nbits < 8:
            return cls(pack(codes, dt.nbits), dt, codes.shape)
        return cls(codes.astype(dt.code_dtype), dt)

    @classmethod
    def from_values(cls, values, dtype, saturate: bool = False) -> "Tensor":
        dt = _dtype(dtype)
        return cls.from_codes(dt.encode(np.asarray(values, dtype=np.float64), saturate=saturate), dt)

    def codes(self) -> np.ndarray:
        if self.dtype.nbits < 8:
            return unpack(self.data, self.dtype.nbits, self.shape[-1])
        return self.data

    def set_codes(self, codes) -> None:
        """Overwrite the contents in place (same shape)."""
        codes = np.asarray(codes)
        new = pack(codes, self.dtype.nbits) if self.dtype.nbits < 8 else codes.astype(self.data.dtype)
        np.copyto(self.data, new)

    def values(self) -> np.ndarray:
        return self.dtype.decode(self.codes())

    def __repr__(self):
        return f"vm.Tensor({self.dtype.name}{list(self.shape)})"
