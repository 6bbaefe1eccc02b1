"""OCP MX FP4 (MXFP4, as stored by e.g. the gpt-oss checkpoints) <-> :class:`QuantizedWeight`, exactly.

The format, for a weight of shape ``[N, K]`` (out x in) cut along K into ``nb = ceil(K / 32)`` blocks of
32 elements:

* ``blocks``: uint8 ``[N, nb, 16]``, the 32 float4_e2m1 codes of a block in 16 bytes, element ``2i`` in
  the *low* nibble of byte ``i`` and element ``2i + 1`` in the high nibble (the LSB-first stream of
  vmlang, so a row of blocks is exactly the packed row of a ``float4_e2m1`` :class:`vmlang.Tensor`).
  An e2m1 code is ``s ee m``: ``(-1)^s * 2^(e - 1) * (1 + m / 2)``, or ``(-1)^s * m / 2`` when ``e = 0``
  (values 0, 0.5, 1, 1.5, 2, 3, 4, 6).
* ``scales``: uint8 ``[N, nb]``, one E8M0 biased exponent per block: ``2^(scale - 127)`` (255 = NaN).

and element ``(n, k)`` is ``fp4(code) * 2^(scales[n, k // 32] - 127)``: scheme ``"mxfp4"``, codes
``float4_e2m1``, scales a ``float8_e8m0`` :class:`vmlang.Tensor`, group size 32.

Worked example, one row of one block: byte 0 = ``0x21`` holds element 0 = code 1 (0.5) and element 1 =
code 2 (1.0), byte 1 = ``0x0F`` element 2 = code 15 (-6.0) and element 3 = code 0; scale 128 is 2.0:

>>> import numpy as np
>>> blocks = np.zeros((1, 1, 16), np.uint8); blocks[0, 0, :2] = [0x21, 0x0F]
>>> qw = from_mxfp4(blocks, np.array([[128]], np.uint8), (1, 32))
>>> qw, qw.scales
(QuantizedWeight(float4_e2m1[1, 32], scheme=mxfp4, group_size=32), vm.Tensor(float8_e8m0[1, 1]))
>>> qw.dequantize()[0, :4].tolist()
[1.0, 2.0, -12.0, 0.0]
>>> to_mxfp4(qw)["blocks"][0, 0, :2].tolist()
[33, 15]

``K`` need not be a multiple of 32: ``shape`` gives the true K, the last block's codes past K are padding,
which :func:`from_mxfp4` requires to be 0 (so nothing is lost) and :func:`to_mxfp4` writes as 0. A stack
of experts ``[E, N, nb, 16]`` converts one expert at a time. :func:`to_mxfp4` returns a dict with
:func:`from_mxfp4`'s parameter names (``blocks``, ``scales`` as NumPy arrays, ``shape``), so
``from_mxfp4(**to_mxfp4(qw))`` is the inverse. Inputs may be NumPy arrays or CPU torch tensors.
"""
from __future__ import annotations

import numpy as np
from vmlang.ir.dtypes import dtype
from vmlang.ir.errors import ArgumentError
from vmlang.ir.packing import pack, unpack
from vmlang.stdlib.convert._common import expect_shape, host
from vmlang.stdlib.quant.weight import QuantizedWeight

from vmlang.runtime.tensor import Tensor

FP4 = dtype("float4_e2m1")
E8M0 = dtype("float8_e8m0")
BLOCK = 32


def _shape(shape) -> tuple[int, int]:
    try:
        dims = tuple(int(d) if not isinstance(d, bool) and int(d) == d else None for d in shape)
    except (TypeError, ValueError):
        dims = None
    if dims is None or len(dims) != 2 or None in dims or min(dims) < 1:
        raise ArgumentError(f"MXFP4: shape must be the 2-d weight shape (N, K) of positive integers, got {shape!r}")
    return dims


def from_mxfp4(blocks, scales, shape) -> QuantizedWeight:
    """The :class:`QuantizedWeight` (scheme ``"mxfp4"``) of MXFP4 ``blocks`` and ``scales``."""
    N, K = _shape(shape)
    blocks = host(blocks, "MXFP4 blocks", ("uint8",))
    scales = host(scales, "MXFP4 scales", ("uint8",))
    nb = -(-K // BLOCK)
    expect_shape(blocks, "MXFP4 blocks", (N, nb, 16), f"N x ceil(K/32) blocks x 16 bytes for shape {[N, K]}")
    expect_shape(scales, "MXFP4 scales", (N, nb), f"one E8M0 exponent per block for shape {[N, K]}")
    row = blocks.reshape(N, nb * 16)
    if K == nb * BLOCK:
        codes = Tensor(np.ascontiguousarray(row), FP4, (N, K))
    else:
        full = unpack(row, 4, nb * BLOCK)
        if full[:, K:].any():
            n, k = (int(i) for i in np.argwhere(full[:, K:])[0])
            raise ArgumentError(f"MXFP4: K={K} leaves the last block's elements {K}..{nb * BLOCK - 1} as padding, "
                                f"but row {n} holds code {int(full[n, K + k])} at element {K + k}, which would be lost")
        codes = Tensor(pack(full[:, :K], 4), FP4, (N, K))
    return QuantizedWeight(codes, Tensor(np.ascontiguousarray(scales), E8M0), None, "mxfp4", min(BLOCK, K))


def _e8m0_codes(qw: QuantizedWeight) -> np.ndarray:
    """``qw``'s scales as uint8 E8M0 codes ``[N, G]``; float scales must be exact powers of two."""
    s = qw.scales
    if isinstance(s, Tensor):
        if s.dtype != E8M0:
            raise ArgumentError(f"MXFP4 scales are float8_e8m0, got a vm.Tensor of {s.dtype}")
        return np.asarray(s.codes(), np.uint8)
    v = qw.scale_values().astype(np.float64)
    ok = np.isfinite(v) & (v > 0)
    codes = np.full(v.shape, 255, np.int64)
    codes[ok] = E8M0.encode(np.where(ok, v, 1.0), saturate=True)[ok]
    same = (E8M0.decode(codes) == v) | (np.isnan(v) & (codes == 255))
    if not same.all():
        bad = tuple(int(i) for i in np.argwhere(~same)[0])
        raise ArgumentError(f"MXFP4 scales are powers of two 2^-127..2^127 (E8M0); scale {float(v[bad])!r} at "
                            f"{list(bad)} is not")
    return codes.astype(np.uint8)


def to_mxfp4(qw: QuantizedWeight) -> dict:
    """MXFP4 tensors of ``qw``: ``{"blocks", "scales", "shape"}`` (see the module docstring)."""
    if not isinstance(qw, QuantizedWeight):
        raise ArgumentError(f"to_mxfp4 expects a QuantizedWeight, got {type(qw).__name__}")
    if qw.scheme != "mxfp4" or qw.dtype != FP4:
        raise ArgumentError(f"MXFP4 stores float4_e2m1 codes (scheme 'mxfp4'), got {qw.dtype.name} codes with "
                            f"scheme {qw.scheme!r}")
    N, K = qw.shape
    if qw.group_size != min(BLOCK, K):
        raise ArgumentError(f"MXFP4 has one scale per block of {BLOCK} elements, but the weight has "
                            f"group_size={qw.group_size}")
    nb = -(-K // BLOCK)
    if K == nb * BLOCK:
        row = np.array(qw.codes.host_data(), np.uint8)
    else:
        full = np.zeros((N, nb * BLOCK), np.uint8)
        full[:, :K] = qw.codes.codes()
        row = pack(full, 4)
    return {"blocks": row.reshape(N, nb, 16), "scales": _e8m0_codes(qw), "shape": (N, K)}
