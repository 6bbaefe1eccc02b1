"""How each dtype is stored in memory, on the host (NumPy) and on devices (torch).

Every backend sees a tensor argument in its **canonical storage**, which depends on the dtype only:

======================================  ===========================  ==================================
dtype                                   NumPy storage                torch storage
======================================  ===========================  ==================================
below 8 bits (int3, uint1, nf4, e2m1…)  uint8, packed LSB-first      torch.uint8, packed LSB-first
                                        along the last axis, each
                                        row padded to whole bytes
8-bit formats (e4m3, e5m2, e8m0)        uint8 codes                  torch.uint8 codes
int8/16/32, uint8/16/32, f16, f32       the native NumPy dtype       the native torch dtype
bfloat16                                uint16 codes                 torch.bfloat16
======================================  ===========================  ==================================

>>> import numpy as np
>>> from vmlang.ir import dtypes as D
>>> storage_shape(D.int3, (2, 17))        # 17 * 3 bits = 51 bits -> 7 bytes per row
(2, 7)
>>> np.dtype(host_dtype(D.bfloat16)).name, torch_dtype_name(D.bfloat16)
('uint16', 'bfloat16')
"""
from __future__ import annotations

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir.packing import pack, packed_length, unpack

#: dtypes whose canonical storage is the native array dtype of the same name
NATIVE_HOST = {D.float16: np.float16, D.float32: np.float32, D.int8: np.int8, D.int16: np.int16,
               D.int32: np.int32, D.uint8: np.uint8, D.uint16: np.uint16, D.uint32: np.uint32}
_TORCH_NATIVE = {D.float16: "float16", D.float32: "float32", D.int8: "int8", D.int16: "int16",
                 D.int32: "int32", D.uint8: "uint8", D.uint16: "uint16", D.uint32: "uint32",
                 D.bfloat16: "bfloat16"}
#: torch / ml_dtypes dtypes accepted as the element type of our 8- and 16-bit float formats
FOREIGN_FLOATS = {"bfloat16": D.bfloat16, "float8_e4m3fn": D.float8_e4m3, "float8_e5m2": D.float8_e5m2,
                  "float8_e8m0fnu": D.float8_e8m0}


def is_packed(dt: D.DType) -> bool:
    """Stored as a packed bit stream (fewer than 8 bits per element)."""
    return dt.nbits < 8


def storage_shape(dt: D.DType, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the canonical storage of a ``dt`` tensor of logical ``shape``."""
    shape = tuple(int(s) for s in shape)
    if is_packed(dt):
        return shape[:-1] + (packed_length(shape[-1], dt.nbits),)
    return shape


def host_dtype(dt: D.DType):
    """The NumPy dtype of the canonical host storage."""
    if is_packed(dt):
        return np.uint8
    return NATIVE_HOST.get(dt, dt.code_dtype)


def torch_dtype_name(dt: D.DType) -> str:
    """The name of the torch dtype of the canonical device storage (``torch.<name>``)."""
    if is_packed(dt):
        return "uint8"
    return _TORCH_NATIVE.get(dt, "uint8")


def codes_to_storage(dt: D.DType, codes: np.ndarray) -> np.ndarray:
    """Unsigned element codes (logical shape) -> canonical host storage."""
    codes = np.asarray(codes)
    if is_packed(dt):
        return pack(codes, dt.nbits)
    return codes.astype(dt.code_dtype, copy=False).view(host_dtype(dt))


def storage_to_codes(dt: D.DType, storage: np.ndarray, n_last: int) -> np.ndarray:
    """Canonical host storage -> unsigned element codes (``n_last`` elements along the last axis)."""
    storage = np.ascontiguousarray(storage)
    if is_packed(dt):
        return unpack(storage, dt.nbits, n_last)
    return storage.view(dt.code_dtype).copy()
