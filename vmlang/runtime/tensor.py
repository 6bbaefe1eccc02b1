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
from vmlang.ir.errors import ArgumentError
from vmlang.ir.packing import pack, packed_length, unpack


class Tensor:
    """A typed tensor over packed bytes or codes.

    ``data`` is a NumPy array, or a torch tensor (CPU or CUDA) for dtypes stored as uint8 (below 8 bits:
    packed bytes; 8-bit formats: codes), so packed weights can live on the GPU. ``shape`` is in elements.
    """

    def __init__(self, data, dtype, shape=None):
        dt = _dtype(dtype)
        torch_data = type(data).__module__.startswith("torch")
        if not torch_data:
            data = np.asarray(data)
        dname = str(data.dtype).removeprefix("torch.")
        if dt.nbits < 8:
            if dname != "uint8":
                raise ArgumentError(f"packed {dt} data must be uint8 bytes, got {dname}")
            if data.ndim == 0:
                raise ArgumentError(f"packed {dt} data needs at least one axis")
            if shape is None:
                if (data.shape[-1] * 8) % dt.nbits:
                    raise ArgumentError(f"{data.shape[-1]} bytes do not hold a whole number of {dt} elements: "
                                        f"give shape=")
                shape = tuple(data.shape[:-1]) + (data.shape[-1] * 8 // dt.nbits,)
            shape = tuple(int(s) for s in shape)
            want = shape[:-1] + (packed_length(shape[-1], dt.nbits),)
            if tuple(data.shape) != want:
                raise ArgumentError(f"{dt}{list(shape)} packs into {list(want)} bytes, but data has shape "
                                    f"{list(data.shape)}")
        else:
            want = np.dtype(dt.code_dtype).name
            if dname != want:
                raise ArgumentError(f"{dt} codes are {want}, got {dname}")
            if torch_data and want != "uint8":
                raise ArgumentError(f"vm.Tensor holds torch data only for uint8-stored dtypes; pass a torch "
                                    f"tensor of {dt} directly")
            if shape is not None and tuple(shape) != tuple(data.shape):
                raise ArgumentError(f"shape {tuple(shape)} does not match data shape {tuple(data.shape)}")
            shape = tuple(data.shape)
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

    @property
    def device(self) -> str:
        return str(self.data.device) if self.is_torch else "cpu"

    @property
    def is_torch(self) -> bool:
        return type(self.data).__module__.startswith("torch")

    def host_data(self) -> np.ndarray:
        return self.data.detach().cpu().numpy() if self.is_torch else self.data

    def codes(self) -> np.ndarray:
        if self.dtype.nbits < 8:
            return unpack(self.host_data(), self.dtype.nbits, self.shape[-1])
        return self.host_data()

    def set_codes(self, codes) -> None:
        """Overwrite the contents in place (same shape)."""
        codes = np.asarray(codes)
        new = pack(codes, self.dtype.nbits) if self.dtype.nbits < 8 else codes.astype(self.dtype.code_dtype)
        if self.is_torch:
            import torch
            self.data.copy_(torch.from_numpy(np.ascontiguousarray(new)).to(self.data.device))
        else:
            np.copyto(self.data, new)

    def to(self, device) -> "Tensor":
        """The same tensor with its data on ``device`` (a torch device; ``"numpy"`` for a NumPy copy)."""
        if device == "numpy":
            return Tensor(np.array(self.host_data()), self.dtype, self.shape)
        import torch
        data = self.data if self.is_torch else torch.from_numpy(np.ascontiguousarray(self.data))
        return Tensor(data.to(device), self.dtype, self.shape)

    def values(self) -> np.ndarray:
        return self.dtype.decode(self.codes())

    def __repr__(self):
        return f"vm.Tensor({self.dtype.name}{list(self.shape)})"
