"""bitsandbytes NF4 (``Linear4bit``, ``quant_type="nf4"``) <-> :class:`QuantizedWeight`, exactly.

The format, for a weight of shape ``[N, K]`` (``nn.Linear.weight``, out x in) flattened row-major into
``N * K`` elements, element ``f = n * K + k``:

* ``packed``: uint8 ``[ceil(N * K / 2), 1]``, two 4-bit codes per byte with the *first* element in the
  *high* nibble: byte ``i`` is ``code[2i] << 4 | code[2i + 1]`` (for odd ``N * K`` the last low nibble
  is padding and must be 0). This is the opposite nibble order of vmlang's LSB-first stream.
* ``absmax``: float32 ``[ceil(N * K / blocksize)]``, one scale per block of ``blocksize`` consecutive
  elements of the flattened tensor (the double-quantized uint8 absmax of ``compress_statistics=True``
  is not accepted: dequantize it first).

and element ``f`` is ``NF4[code[f]] * absmax[f // blocksize]``, with the 16-entry NormalFloat table of
:data:`vmlang.ir.dtypes.nf4` (code 0 = -1.0, code 7 = 0.0, code 15 = 1.0): scheme ``"nf4"``.

Blocks run over the flattened tensor, so they line up with the rows only when ``blocksize`` divides ``K``.
:func:`from_bnb_nf4` is exact for every shape: it uses ``group_size = gcd(K, blocksize)`` (every such
group of a row lies inside one block) and repeats a block's absmax for each of its groups; when
``blocksize`` divides ``K`` that is simply ``group_size = blocksize``. :func:`to_bnb_nf4` accepts any
group size as long as all the groups that meet in a block have the same scale, and refuses otherwise.

Worked example, a ``[1, 3]`` weight with codes 15, 0, 7 and absmax 2.0: bytes ``0xF0`` (15 high, 0 low)
and ``0x70`` (7 high, padding low); since 64 does not divide K = 3 the groups have size gcd(3, 64) = 1:

>>> import numpy as np
>>> qw = from_bnb_nf4(np.array([[0xF0], [0x70]], np.uint8), np.array([2.0], np.float32), (1, 3))
>>> qw, qw.codes.codes().tolist(), qw.scales.tolist()
(QuantizedWeight(nf4[1, 3], scheme=nf4, group_size=1), [[15, 0, 7]], [[2.0, 2.0, 2.0]])
>>> qw.dequantize().tolist()
[[2.0, -2.0, 0.0]]
>>> to_bnb_nf4(qw)["packed"].ravel().tolist()
[240, 112]

:func:`to_bnb_nf4` returns a dict with :func:`from_bnb_nf4`'s parameter names (``packed``, ``absmax`` as
NumPy arrays, ``shape``, ``blocksize``), so ``from_bnb_nf4(**to_bnb_nf4(qw))`` is the inverse. Inputs
may be NumPy arrays or CPU torch tensors.
"""
from __future__ import annotations

import math

import numpy as np
from vmlang.ir.dtypes import nf4
from vmlang.ir.errors import ArgumentError
from vmlang.stdlib.convert._common import expect_shape, float_scales, host
from vmlang.stdlib.quant.weight import QuantizedWeight

from vmlang.runtime.tensor import Tensor


def _positive(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ArgumentError(f"bitsandbytes NF4: {name} must be a positive integer, got {v!r}")
    return int(v)


def _shape(shape) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or len(dims) != 2:
        raise ArgumentError(f"bitsandbytes NF4: shape must be the 2-d weight shape (N, K), got {shape!r}")
    return _positive(dims[0], "shape[0] (N)"), _positive(dims[1], "shape[1] (K)")


def from_bnb_nf4(packed, absmax, shape, blocksize: int = 64) -> QuantizedWeight:
    """The :class:`QuantizedWeight` (scheme ``"nf4"``, float32 scales) of a bitsandbytes NF4 weight."""
    N, K = _shape(shape)
    B = _positive(blocksize, "blocksize")
    packed = host(packed, "bitsandbytes NF4 packed", ("uint8",))
    if str(getattr(absmax, "dtype", "")).removeprefix("torch.") == "uint8":
        raise ArgumentError("bitsandbytes NF4: absmax is uint8, i.e. double-quantized (compress_statistics=True); "
                            "dequantize it to float32 first")
    absmax = host(absmax, "bitsandbytes NF4 absmax", ("float32",))
    n = N * K
    m, nblocks = -(-n // 2), -(-n // B)
    if packed.shape not in ((m,), (m, 1)):
        raise ArgumentError(f"bitsandbytes NF4 packed must have shape [{m}, 1] or [{m}] (ceil(N*K/2) bytes for "
                            f"shape {[N, K]}), got {list(packed.shape)}")
    expect_shape(absmax, "bitsandbytes NF4 absmax", (nblocks,),
                 f"ceil(N*K/blocksize) blocks for shape {[N, K]} and blocksize={B}")
    b = packed.reshape(m)
    flat = np.empty(2 * m, np.uint8)
    flat[0::2], flat[1::2] = b >> 4, b & 0xF
    if n % 2 and flat[-1]:
        raise ArgumentError(f"bitsandbytes NF4: N*K={n} is odd, so the low nibble of the last byte is padding, "
                            f"but it holds {int(flat[-1])}, which would be lost")
    gs = math.gcd(K, B)
    starts = np.arange(N)[:, None] * K + np.arange(0, K, gs)[None, :]         # first element of each group
    scales = np.ascontiguousarray(absmax[starts // B])
    codes = Tensor.from_codes(flat[:n].reshape(N, K), nf4)
    return QuantizedWeight(codes, scales, None, "nf4", gs)


def to_bnb_nf4(qw: QuantizedWeight, blocksize: int = 64) -> dict:
    """bitsandbytes NF4 tensors of ``qw``: ``{"packed", "absmax", "shape", "blocksize"}`` (module docstring)."""
    if not isinstance(qw, QuantizedWeight):
        raise ArgumentError(f"to_bnb_nf4 expects a QuantizedWeight, got {type(qw).__name__}")
    if qw.scheme != "nf4" or qw.dtype != nf4:
        raise ArgumentError(f"bitsandbytes NF4 stores nf4 codes (scheme 'nf4'), got {qw.dtype.name} codes with "
                            f"scheme {qw.scheme!r}")
    B = _positive(blocksize, "blocksize")
    N, K = qw.shape
    gs = qw.group_size
    scales = float_scales(qw, "bitsandbytes NF4", "float32")
    # chunks of u elements lie inside one group and one block each
    u = math.gcd(math.gcd(gs, B), K)
    cols = np.arange(0, K, u)
    chunk_scale = scales[:, cols // gs].reshape(-1)
    chunk_block = (np.arange(N)[:, None] * K + cols[None, :]).reshape(-1) // B
    absmax = np.zeros(-(-N * K // B), np.float32)
    absmax[chunk_block] = chunk_scale
    same = absmax[chunk_block].view(np.uint32) == chunk_scale.view(np.uint32)
    if not same.all():
        i = int(np.argmin(same))
        n, k = i // len(cols), int(cols[i % len(cols)])
        raise ArgumentError(f"bitsandbytes NF4 has one absmax per block of {B} elements of the flattened weight, "
                            f"but block {int(chunk_block[i])} meets groups with different scales (e.g. "
                            f"{float(chunk_scale[i])!r} at row {n}, column {k}, and {float(absmax[chunk_block[i]])!r}):"
                            f" group_size={gs} with K={K} does not fit blocksize={B}")
    flat = qw.codes.codes().reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    packed = ((flat[0::2] << 4) | flat[1::2]).astype(np.uint8).reshape(-1, 1)
    return {"packed": packed, "absmax": absmax, "shape": (N, K), "blocksize": B}
