"""``QuantizedWeight``: a weight matrix in a low-precision format, in the logical layout.

The logical layout is what :func:`vmlang.stdlib.quantize`, :meth:`QuantizedWeight.dequantize` and every
converter speak; kernels may keep private re-layouts of it, never the other way round.

For a float weight ``W`` of shape ``[N, K]`` (out x in, as ``torch.nn.Linear.weight``) and groups of
``group_size`` consecutive elements along K (the last group may be short; ``group_size == K`` is one
group per output row, "per-channel"), with ``G = cdiv(K, group_size)`` groups per row:

* ``codes``: a :class:`vmlang.Tensor` of ``dtype`` with shape ``[N, K]``; below 8 bits each row is the
  packed LSB-first stream (``ceil(K * bits / 8)`` bytes, element ``2j`` of a 4-bit row in the low
  nibble of byte ``j``).
* ``scales``: ``[N, G]``; a NumPy/torch float array (float16, bfloat16 or float32), or a
  :class:`vmlang.Tensor` of ``float8_e8m0`` codes for ``mxfp4``.
* ``zeros``: ``None``, or ``[N, G]`` uint8 integer zero points (only the unsigned ``uintB`` scheme).

The represented value of element ``(n, k)`` with ``g = k // group_size`` is::

    value(codes[n, k]) * scale[n, g]                  (signed ints, floats, nf4, mxfp4)
    (value(codes[n, k]) - zeros[n, g]) * scale[n, g]  (unsigned ints with zero points)

where ``value`` decodes a code of ``dtype`` (an integer, a float of the format, or the nf4 table entry),
and both products are computed in float32 (the kernels do the same), so :meth:`dequantize` is the
exact reference that a matmul is compared with.

>>> import numpy as np, vmlang as vm
>>> from vmlang.stdlib.quant.weight import QuantizedWeight
>>> qw = QuantizedWeight(codes=vm.Tensor.from_values([[1, -2, 3]], vm.int3), scales=np.array([[0.5]], np.float32),
...                      zeros=None, scheme="int", group_size=3)
>>> qw.dequantize().tolist()
[[0.5, -1.0, 1.5]]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlang.ir.dtypes import DType
from vmlang.ir.errors import ArgumentError
from vmlang.runtime.args import is_torch
from vmlang.runtime.tensor import Tensor

#: the schemes: how codes, scales and zeros combine (see the module docstring)
SCHEMES = ("int", "uint", "float", "nf4", "mxfp4")


def _host(a) -> np.ndarray:
    """NumPy view of a NumPy array or a torch tensor (bfloat16 goes through float32, exactly)."""
    if is_torch(a):
        import torch
        a = a.detach().cpu()
        if a.dtype == torch.bfloat16:
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def _shape(a) -> tuple[int, ...]:
    return tuple(int(s) for s in a.shape)


@dataclass(eq=False)
class QuantizedWeight:
    """A quantized ``[N, K]`` weight: codes, per-group scales, optional zero points (see module doc)."""

    codes: Tensor
    scales: object
    zeros: object
    scheme: str
    group_size: int

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ArgumentError(f"unknown quantization scheme {self.scheme!r}; expected one of {SCHEMES}")
        if not isinstance(self.codes, Tensor) or len(self.codes.shape) != 2:
            raise ArgumentError("QuantizedWeight.codes must be a 2-d vm.Tensor [N, K]")
        N, K = self.codes.shape
        if not isinstance(self.group_size, (int, np.integer)) or not 1 <= self.group_size <= max(K, 1):
            raise ArgumentError(f"group_size must be an integer in 1..K={K}, got {self.group_size!r}")
        want = (N, self.groups)
        if _shape(self.scales) != want:
            raise ArgumentError(f"scales must have shape {list(want)} (N, cdiv(K, group_size)), "
                                f"got {list(_shape(self.scales))}")
        if (self.zeros is None) != (self.scheme != "uint"):
            raise ArgumentError(f"scheme {self.scheme!r} " + ("needs" if self.scheme == "uint" else "has no")
                                + " zero points")
        if self.zeros is not None and _shape(self.zeros) != want:
            raise ArgumentError(f"zeros must have shape {list(want)}, got {list(_shape(self.zeros))}")

    # ----------------------------------------------------------------------------- shape facts
    @property
    def dtype(self) -> DType:
        return self.codes.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """The logical ``(N, K)``."""
        return tuple(self.codes.shape)

    @property
    def groups(self) -> int:
        K = self.codes.shape[1]
        return -(-K // self.group_size)

    def scale_values(self) -> np.ndarray:
        """The scales as float32 ``[N, G]`` (e8m0 codes decoded)."""
        s = self.scales
        if isinstance(s, Tensor):
            return s.values().astype(np.float32)
        return _host(s).astype(np.float32)

    def dequantize(self) -> np.ndarray:
        """The float32 ``[N, K]`` matrix these codes represent (module docstring formula)."""
        N, K = self.shape
        v = self.codes.values().astype(np.float32)
        idx = np.arange(K) // self.group_size
        s = self.scale_values()[:, idx]
        if self.zeros is not None:
            v = v - _host(self.zeros).astype(np.float32)[:, idx]
        return (v * s).astype(np.float32)

    def nbytes(self) -> int:
        """Bytes moved by a kernel that reads this weight: packed codes + scales + zeros."""
        def size(a):
            if isinstance(a, Tensor):
                a = a.data
            return 0 if a is None else int(a.numel() * a.element_size()) if hasattr(a, "numel") else int(a.nbytes)
        return size(self.codes) + size(self.scales) + size(self.zeros)

    def to(self, device) -> "QuantizedWeight":
        """The same weight with every array on ``device`` (a torch device, or ``"numpy"``)."""
        def move(a):
            if a is None:
                return None
            if isinstance(a, Tensor):
                return a.to(device)
            if device == "numpy":
                return np.array(_host(a))
            import torch
            if is_torch(a):
                return a.to(device)
            a = np.ascontiguousarray(a)
            if a.dtype.name == "bfloat16":   # ml_dtypes: torch.from_numpy does not know it; same bits
                return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16).to(device)
            return torch.from_numpy(a).to(device)
        return QuantizedWeight(move(self.codes), move(self.scales), move(self.zeros), self.scheme, self.group_size)

    def __repr__(self):
        N, K = self.shape
        z = ", zeros" if self.zeros is not None else ""
        return f"QuantizedWeight({self.dtype.name}[{N}, {K}], scheme={self.scheme}, group_size={self.group_size}{z})"
