"""AWQ (AutoAWQ "GEMM" checkpoints) <-> :class:`QuantizedWeight`, exactly.

The format, for a linear layer with ``K`` inputs, ``N`` outputs (``N`` a multiple of 8), 4-bit codes and
``G`` groups along K (AWQ defines no other width):

* ``qweight``: int32 ``[K, N / 8]``, packed along N (the *output* dim); word ``j`` of row ``k`` holds the
  codes of columns ``8j .. 8j + 7`` in the interleaved nibble order ``0, 2, 4, 6, 1, 3, 5, 7``: bits
  ``4i .. 4i + 3`` hold the code of column ``8j + ORDER[i]``.
* ``qzeros``: int32 ``[G, N / 8]``, the zero points packed the same way (stored as they are, 0..15).
* ``scales``: float16 ``[G, N]``.

and element ``(k, n)`` is ``(q[k, n] - zero[g, n]) * scales[g, n]`` with ``g = k // group_size``:
scheme ``"uint"`` with uint4 codes, transposed to vmlang's ``[N, K]``.

Worked example: one input row whose eight columns hold the codes 0, 1, ..., 7 is the word
``0x75316420`` (nibble 0 = column 0, nibble 1 = column 2, nibble 2 = column 4, ..., nibble 4 = column 1);
``0x44444444`` gives every column zero point 4:

>>> import numpy as np
>>> qw = from_awq(np.array([[0x75316420]], np.int32), np.array([[0x44444444]], np.int32),
...               np.full((1, 8), 0.25, np.float16))
>>> qw
QuantizedWeight(uint4[8, 1], scheme=uint, group_size=1, zeros)
>>> qw.codes.codes()[:, 0].tolist()
[0, 1, 2, 3, 4, 5, 6, 7]
>>> qw.dequantize()[:, 0].tolist()
[-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75]
>>> hex(int(to_awq(qw)["qweight"][0, 0]))
'0x75316420'

AWQ does not store the group size: ``K / G`` is used, and ``group_size=`` must be given when ``G`` does not
divide ``K`` (a short last group). Scales must be exactly representable in float16. Inputs may be NumPy
arrays or CPU torch tensors; outputs are NumPy arrays. Both directions are bit-exact.
"""
from __future__ import annotations

import numpy as np
from vmlang.ir.dtypes import dtype
from vmlang.ir.errors import ArgumentError
from vmlang.ir.packing import pack, unpack
from vmlang.stdlib.convert._common import (
    bytes_to_words,
    expect_shape,
    float_scales,
    group_size_of,
    uint_codes,
    word_packed_inputs,
    words_to_bytes,
    zero_points,
)
from vmlang.stdlib.quant.weight import QuantizedWeight

from vmlang.runtime.tensor import Tensor

#: nibble ``i`` of a word holds column ``8j + ORDER[i]``
ORDER = np.array([0, 2, 4, 6, 1, 3, 5, 7])
_INVERSE = np.argsort(ORDER)


def _unpack_cols(words: np.ndarray, N: int) -> np.ndarray:
    """``[R, N / 8]`` AWQ words -> ``[R, N]`` codes in column order."""
    nib = unpack(words_to_bytes(words), 4, N)
    return nib.reshape(words.shape[0], N // 8, 8)[..., _INVERSE].reshape(words.shape[0], N)


def _pack_cols(codes: np.ndarray) -> np.ndarray:
    """``[R, N]`` codes in column order -> ``[R, N / 8]`` AWQ words."""
    R, N = codes.shape
    return bytes_to_words(pack(codes.reshape(R, N // 8, 8)[..., ORDER].reshape(R, N), 4))


def from_awq(qweight, qzeros, scales, bits: int = 4, group_size: int | None = None) -> QuantizedWeight:
    """The :class:`QuantizedWeight` ``[N, K]`` (uint4 codes, zero points) of an AWQ GEMM layer."""
    if isinstance(bits, bool) or bits != 4:
        raise ArgumentError(f"AWQ defines only 4-bit weights (bits=4), got bits={bits!r}")
    qweight, qzeros, scales = word_packed_inputs("AWQ", qweight, qzeros, scales)
    K, N = qweight.shape[0], qweight.shape[1] * 8
    G = scales.shape[0]
    expect_shape(scales, "AWQ scales", (G, N), f"groups x N, with N={N} = 8 x the columns of qweight")
    expect_shape(qzeros, "AWQ qzeros", (G, N // 8), f"groups x N/8 for N={N}")
    gs = group_size_of(K, G, group_size, "AWQ")
    codes = Tensor.from_codes(np.ascontiguousarray(_unpack_cols(qweight, N).T), dtype("uint4"))
    zeros = np.ascontiguousarray(_unpack_cols(qzeros, N).T)
    return QuantizedWeight(codes, np.ascontiguousarray(scales.T), zeros, "uint", gs)


def to_awq(qw: QuantizedWeight) -> dict:
    """AWQ tensors of ``qw`` (scheme ``"uint"``, uint4), a dict keyed by :func:`from_awq`'s parameters.

    ``qweight`` int32 ``[K, N / 8]``, ``qzeros`` int32 ``[G, N / 8]``, ``scales`` float16 ``[G, N]`` as NumPy
    arrays, and ``group_size`` (not part of the checkpoint tensors), so ``from_awq(**to_awq(qw))`` is the
    inverse."""
    if not isinstance(qw, QuantizedWeight):
        raise ArgumentError(f"to_awq expects a QuantizedWeight, got {type(qw).__name__}")
    uint_codes(qw, "AWQ", (4,))
    N = qw.shape[0]
    if N % 8:
        raise ArgumentError(f"AWQ packs 8 output channels per 32-bit word: N must be a multiple of 8, got N={N}")
    z = zero_points(qw)
    if z.size and (z.min() < 0 or z.max() > 15):
        bad = tuple(int(i) for i in np.argwhere((z < 0) | (z > 15))[0])
        raise ArgumentError(f"AWQ stores 4-bit zero points 0..15; got {int(z[bad])} at {list(bad)}")
    return {
        "qweight": _pack_cols(np.ascontiguousarray(qw.codes.codes().T)),
        "qzeros": _pack_cols(np.ascontiguousarray(z.T)),
        "scales": np.ascontiguousarray(float_scales(qw, "AWQ", "float16").T),
        "group_size": qw.group_size,
    }
