"""GPTQ (AutoGPTQ / GPTQModel checkpoints) <-> :class:`QuantizedWeight`, exactly.

The format, for a linear layer with ``K`` inputs, ``N`` outputs, ``bits`` in {2, 3, 4, 8} and ``G`` groups:

* ``qweight``: int32 ``[K * bits / 32, N]``; column ``n`` is the LSB-first bit stream of the codes
  ``q[0, n], q[1, n], ...`` along K (the *input* dim, so the layout is in x out, the transpose of
  ``nn.Linear.weight``): code ``k`` occupies stream bits ``[k * bits, (k + 1) * bits)``, bit ``i`` of the
  stream is bit ``i % 32`` of word ``i // 32``. For 2, 4 and 8 bits a word holds ``32 / bits`` whole codes;
  for 3 bits the stream runs on across words, 32 codes per 3 words (code 10 has its two low bits in
  bits 30-31 of word 0 and its high bit in bit 0 of word 1; code 21 straddles words 1 and 2).
* ``qzeros``: int32 ``[G, N * bits / 32]``, the zero points packed the same way but along N.
  Version 1 (AutoGPTQ) stores ``zero - 1``; version 2 (GPTQModel's internal form) stores ``zero``.
* ``scales``: float16 ``[G, N]``.
* ``g_idx``: int ``[K]``, the group of each input channel (optional: by default ``k // group_size``).

and element ``(k, n)`` is ``(q[k, n] - zero[g_idx[k], n]) * scales[g_idx[k], n]``: scheme ``"uint"``.

Worked example, 4 bits, K = 8 inputs, N = 8 outputs, one group. Word ``0x76543210`` holds the codes
0, 1, ..., 7 (code 0 in the low nibble), ``0x77777777`` the stored zero 7 of all eight columns, which
version 1 reads as zero point 8:

>>> import numpy as np
>>> qweight = np.full((1, 8), 0x76543210, np.int32)
>>> qzeros = np.array([[0x77777777]], np.int32)
>>> scales = np.full((1, 8), 0.5, np.float16)
>>> qw, perm = from_gptq(qweight, qzeros, scales, bits=4, version=1)
>>> qw, perm
(QuantizedWeight(uint4[8, 8], scheme=uint, group_size=8, zeros), None)
>>> qw.codes.codes()[0].tolist(), qw.zeros[0].tolist()
([0, 1, 2, 3, 4, 5, 6, 7], [8])
>>> qw.dequantize()[0].tolist()
[-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5]
>>> hex(int(to_gptq(qw)["qweight"][0, 0]))
'0x76543210'

**Act-order** (``desc_act=True``): ``g_idx`` is an arbitrary map of input channels to groups, while a
:class:`QuantizedWeight` has contiguous groups along K. :func:`from_gptq` therefore reorders K: it returns
``(qw, perm)`` with ``perm = argsort(g_idx, stable)``, so that ``qw`` is the weight with its input channels
taken in the order ``perm`` (``W_perm = W[:, perm]``) and::

    x @ W.T == x[:, perm] @ W_perm.T        (W = the GPTQ weight transposed to [N, K])

Each group must hold exactly ``group_size`` channels (the last one possibly fewer), as GPTQ's
``g_idx[perm[i]] = i // group_size`` always does; any other g_idx is refused. ``perm`` is ``None`` when
``g_idx`` is absent or is the trivial ``k // group_size``. :func:`to_gptq` takes ``perm`` back.
The format does not record the order of channels inside a group, so ``from_gptq(**to_gptq(qw, perm=p))``
gives back ``qw`` and ``p`` bit for bit when ``p`` lists each group's channels in increasing order (as the
``perm`` returned by :func:`from_gptq` does); any other ``p`` gives an equivalent pair (same ``x @ W.T``).

Version 1 can store zero points 1..2**bits only (``zero - 1`` must fit in ``bits`` bits: a zero point of 0
is refused, use version 2), and for 8 bits a stored 255 (zero point 256) does not fit the uint8 zeros of
:class:`QuantizedWeight` and is refused. Scales must be exactly representable in float16.
Everything else round-trips bit for bit. Inputs may be NumPy arrays or CPU torch tensors; outputs are
NumPy arrays.
"""
from __future__ import annotations

import numpy as np
from vmlang.ir.dtypes import dtype
from vmlang.ir.errors import ArgumentError
from vmlang.ir.packing import pack, unpack
from vmlang.stdlib.convert._common import (
    bytes_to_words,
    check_int,
    expect_shape,
    float_scales,
    group_size_of,
    host_int,
    uint_codes,
    word_packed_inputs,
    words_to_bytes,
    zero_points,
)
from vmlang.stdlib.quant.weight import QuantizedWeight

from vmlang.runtime.tensor import Tensor

BITS = (2, 3, 4, 8)


def _groups_from_g_idx(g_idx: np.ndarray, K: int, G: int, group_size) -> tuple[int, np.ndarray | None]:
    """``(group_size, perm or None)`` for a g_idx (see the module docstring)."""
    if g_idx.size and (g_idx.min() < 0 or g_idx.max() >= G):
        bad = int(g_idx[(g_idx < 0) | (g_idx >= G)][0])
        raise ArgumentError(f"GPTQ: g_idx holds group {bad}, but the scales have {G} groups (0..{G - 1})")
    counts = np.bincount(g_idx, minlength=G)
    if group_size is not None:
        gs = group_size_of(K, G, group_size, "GPTQ")
    else:
        gs = int(counts[0])
        if gs < 1 or -(-K // gs) != G:
            raise ArgumentError(f"GPTQ: g_idx puts {gs} input channels in group 0, so the group size would be "
                                f"{gs}, but K={K} then splits into {-(-K // gs) if gs else 'no'} groups, not the "
                                f"{G} of the scales: a group size mismatch")
    want = np.full(G, gs)
    want[-1] = K - (G - 1) * gs
    if not np.array_equal(counts, want):
        g = int(np.argmax(counts != want))
        raise ArgumentError(f"GPTQ: g_idx puts {int(counts[g])} input channels in group {g}, but {G} contiguous "
                            f"groups of group_size={gs} over K={K} need {int(want[g])}: a group size mismatch "
                            f"(a QuantizedWeight has equal groups, the last one possibly shorter)")
    if np.array_equal(g_idx, np.arange(K) // gs):
        return gs, None
    return gs, np.argsort(g_idx, kind="stable")


def from_gptq(qweight, qzeros, scales, g_idx=None, bits: int = 4, version: int = 1,
              group_size: int | None = None) -> tuple[QuantizedWeight, np.ndarray | None]:
    """The :class:`QuantizedWeight` ``[N, K]`` of a GPTQ layer, and the K permutation (or ``None``).

    ``group_size`` is needed only when neither ``g_idx`` nor ``K / G`` determines it (a short last group
    without ``g_idx``). Returns ``(qw, perm)``; see the module docstring for ``perm`` (act-order).
    """
    bits = check_int(bits, "GPTQ bits", BITS)
    version = check_int(version, "GPTQ version", (1, 2))
    qweight, qzeros, scales = word_packed_inputs("GPTQ", qweight, qzeros, scales)
    rows, N = qweight.shape
    if (rows * 32) % bits:
        raise ArgumentError(f"GPTQ qweight has {rows} rows of 32-bit words, which do not hold a whole number of "
                            f"{bits}-bit codes (3-bit GPTQ packs 32 codes in 3 words): is bits={bits} right?")
    K = rows * 32 // bits
    G = scales.shape[0]
    expect_shape(scales, "GPTQ scales", (G, N), f"groups x N, with N={N} the columns of qweight")
    if (N * bits) % 32:
        raise ArgumentError(f"GPTQ: N={N} zero points of {bits} bits do not fill whole 32-bit words of qzeros "
                            f"(N * bits must be a multiple of 32)")
    expect_shape(qzeros, "GPTQ qzeros", (G, N * bits // 32),
                 f"groups x N*bits/32 for N={N}, bits={bits}: is bits={bits} right?")
    if g_idx is None:
        gs, perm = group_size_of(K, G, group_size, "GPTQ"), None
    else:
        g_idx = host_int(g_idx, "GPTQ g_idx")
        expect_shape(g_idx, "GPTQ g_idx", (K,), f"one group per input channel, K={K} from qweight and bits={bits}")
        gs, perm = _groups_from_g_idx(g_idx, K, G, group_size)

    dt = dtype(f"uint{bits}")
    codes = Tensor(words_to_bytes(qweight.T), dt, (N, K))
    if perm is not None:
        codes = Tensor.from_codes(codes.codes()[:, perm], dt)
    zeros = unpack(words_to_bytes(qzeros), bits, N).astype(np.int64) + (1 if version == 1 else 0)
    if zeros.max(initial=0) > 255:
        raise ArgumentError("GPTQ version 1: a stored zero of 255 means zero point 256, which does not fit the "
                            "uint8 zeros of a QuantizedWeight")
    qw = QuantizedWeight(codes, np.ascontiguousarray(scales.T), np.ascontiguousarray(zeros.T.astype(np.uint8)),
                         "uint", gs)
    return qw, perm


def to_gptq(qw: QuantizedWeight, version: int = 1, perm=None) -> dict:
    """GPTQ tensors of ``qw`` (scheme ``"uint"``, uint2/3/4/8): a dict keyed by :func:`from_gptq`'s parameters.

    The arrays are named as in the checkpoints, as NumPy arrays: ``qweight`` int32 ``[K * bits / 32, N]``,
    ``qzeros`` int32 ``[G, N * bits / 32]``, ``scales`` float16 ``[G, N]``, ``g_idx`` int32 ``[K]``; plus
    ``bits`` and ``version``, so ``from_gptq(**to_gptq(qw))`` is the inverse. ``perm`` (act-order)
    says that ``qw`` holds the input channels in the order ``perm``; see the module docstring.
    """
    version = check_int(version, "GPTQ version", (1, 2))
    if not isinstance(qw, QuantizedWeight):
        raise ArgumentError(f"to_gptq expects a QuantizedWeight, got {type(qw).__name__}")
    bits, packed = uint_codes(qw, "GPTQ", BITS)
    N, K = qw.shape
    if (K * bits) % 32 or (N * bits) % 32:
        raise ArgumentError(f"GPTQ packs K and N into 32-bit words: K * bits and N * bits must be multiples of 32, "
                            f"got K={K}, N={N}, bits={bits}")
    gs = qw.group_size
    g_idx = np.arange(K) // gs
    if perm is not None:
        perm = host_int(perm, "perm")
        expect_shape(perm, "perm", (K,), f"a permutation of the K={K} input channels")
        if not np.array_equal(np.sort(perm), np.arange(K)):
            raise ArgumentError(f"perm must be a permutation of 0..{K - 1}")
        inv = np.argsort(perm)
        packed = pack(qw.codes.codes()[:, inv], bits)
        g_idx = g_idx[inv]
    z = zero_points(qw)
    lo, hi = (1, 1 << bits) if version == 1 else (0, (1 << bits) - 1)
    if z.size and (z.min() < lo or z.max() > hi):
        bad = tuple(int(i) for i in np.argwhere((z < lo) | (z > hi))[0])
        why = " (use version=2 for a zero point of 0)" if version == 1 and z[bad] == 0 else ""
        raise ArgumentError(f"GPTQ version {version} stores {'zero - 1' if version == 1 else 'zero'} in {bits} "
                            f"bits, so zero points must lie in {lo}..{hi}; got {int(z[bad])} at {list(bad)}{why}")
    stored = (z - (1 if version == 1 else 0)).T                                     # [G, N]
    return {
        "qweight": np.ascontiguousarray(bytes_to_words(packed).T),
        "qzeros": bytes_to_words(pack(stored, bits)),
        "scales": np.ascontiguousarray(float_scales(qw, "GPTQ", "float16").T),
        "g_idx": g_idx.astype(np.int32),
        "bits": bits,
        "version": version,
    }
