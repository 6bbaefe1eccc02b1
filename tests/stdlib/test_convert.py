"""The format converters (GPTQ, AWQ, bitsandbytes NF4, MXFP4) against independent reference packers.

Each reference packer below is written from the published format description with plain loops over
elements and bits; it never calls vmlang's packing. Raw tensors are built from random codes, scales and
zeros; the converters must read back exactly the weight the test's own formula dequantizes, and both
round trips (raw -> QuantizedWeight -> raw and QuantizedWeight -> raw -> QuantizedWeight) must be
bit-exact.
"""
from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from vmlang.ir.errors import ArgumentError
from vmlang.stdlib import (
    from_awq,
    from_bnb_nf4,
    from_gptq,
    from_mxfp4,
    to_awq,
    to_bnb_nf4,
    to_gptq,
    to_mxfp4,
)
from vmlang.stdlib.quant.weight import QuantizedWeight

import vmlang as vm


# ------------------------------------------------------------------------------ reference packers
def ref_words(codes, bits):
    """Codes packed LSB-first into a continuous stream of 32-bit words (GPTQ, any bits), as int32."""
    codes = [int(c) for c in codes]
    assert len(codes) * bits % 32 == 0
    words = [0] * (len(codes) * bits // 32)
    for i, c in enumerate(codes):
        for b in range(bits):
            if (c >> b) & 1:
                pos = i * bits + b
                words[pos // 32] |= 1 << (pos % 32)
    return [w - (1 << 32) if w >= 1 << 31 else w for w in words]


def ref_gptq_pack(q_kn, stored_gn, bits):
    """GPTQ qweight [K*bits/32, N] (packed along K per column) and qzeros [G, N*bits/32] (along N)."""
    K, N = q_kn.shape
    qweight = np.zeros((K * bits // 32, N), np.int32)
    for n in range(N):
        qweight[:, n] = ref_words(q_kn[:, n], bits)
    qzeros = np.array([ref_words(row, bits) for row in stored_gn], np.int32)
    return qweight, qzeros


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]     # nibble i of word j holds column 8j + AWQ_ORDER[i]


def ref_awq_pack(rows):
    """AWQ: [R, N] 4-bit codes -> [R, N/8] int32 words in the interleaved nibble order."""
    R, N = rows.shape
    out = np.zeros((R, N // 8), np.int32)
    for r in range(R):
        for j in range(N // 8):
            w = 0
            for i in range(8):
                w |= int(rows[r, 8 * j + AWQ_ORDER[i]]) << (4 * i)
            out[r, j] = w - (1 << 32) if w >= 1 << 31 else w
    return out


def ref_bnb_pack(codes_nk):
    """bitsandbytes: flattened row-major codes, first element of each pair in the HIGH nibble; [m, 1]."""
    flat = [int(c) for c in codes_nk.reshape(-1)]
    out = np.zeros(((len(flat) + 1) // 2, 1), np.uint8)
    for i, c in enumerate(flat):
        out[i // 2, 0] |= (c << 4) if i % 2 == 0 else c
    return out


def ref_mx_pack(codes_nk):
    """OCP MX: [N, K] fp4 codes -> [N, ceil(K/32), 16] bytes, element 2i in the LOW nibble of byte i."""
    N, K = codes_nk.shape
    nb = -(-K // 32)
    out = np.zeros((N, nb, 16), np.uint8)
    for n in range(N):
        for k in range(K):
            b, i = divmod(k, 32)
            out[n, b, i // 2] |= int(codes_nk[n, k]) << (4 * (i % 2))
    return out


# the published NormalFloat-4 table (QLoRA / bitsandbytes), code 0..15
NF4_TABLE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], np.float32)


def ref_fp4(code):
    """OCP e2m1: sign bit 3, exponent bits 2..1 (bias 1), mantissa bit 0; exponent 0 is subnormal."""
    s, e, m = code >> 3, (code >> 1) & 3, code & 1
    mag = m * 0.5 if e == 0 else 2.0 ** (e - 1) * (1 + m / 2)
    return -mag if s else mag


def rand_scales(rng, shape, dtype):
    return (rng.standard_normal(shape) * 0.05 + 0.01).astype(dtype)


def same_qw(a: QuantizedWeight, b: QuantizedWeight):
    """Bit-for-bit equality of two QuantizedWeights (codes bytes, scales, zeros, scheme, group size)."""
    assert (a.scheme, a.group_size, a.dtype, a.shape) == (b.scheme, b.group_size, b.dtype, b.shape)
    assert np.array_equal(np.asarray(a.codes.host_data()), np.asarray(b.codes.host_data()))
    sa, sb = a.scales, b.scales
    if isinstance(sa, vm.Tensor):
        assert isinstance(sb, vm.Tensor) and sa.dtype == sb.dtype
        assert np.array_equal(sa.codes(), sb.codes())
    else:
        sa, sb = np.asarray(sa), np.asarray(sb)
        assert sa.dtype == sb.dtype and sa.tobytes() == sb.tobytes()
    if a.zeros is None:
        assert b.zeros is None
    else:
        assert np.array_equal(np.asarray(a.zeros), np.asarray(b.zeros))
        assert np.asarray(a.zeros).dtype == np.asarray(b.zeros).dtype == np.uint8


# ------------------------------------------------------------------------------------------ GPTQ
# (bits, K, N, group_size): K*bits and N*bits multiples of 32; every group_size leaves a short last group
GPTQ_CASES = [(2, 80, 48, 24), (3, 96, 32, 40), (4, 72, 24, 32), (8, 44, 12, 12)]


def make_gptq(rng, bits, K, N, gs, version, mode):
    G = -(-K // gs)
    q = rng.integers(0, 1 << bits, (K, N))
    lo, hi = (1, min(1 << bits, 255)) if version == 1 else (0, (1 << bits) - 1)
    zeros = rng.integers(lo, hi + 1, (G, N))
    scales = rand_scales(rng, (G, N), np.float16)
    if mode == "actorder":                       # GPTQ act-order: channels visited in a random order
        order = rng.permutation(K)
        g_idx = np.empty(K, np.int64)
        g_idx[order] = np.arange(K) // gs
    else:
        g_idx = np.arange(K) // gs
    qweight, qzeros = ref_gptq_pack(q, zeros - (1 if version == 1 else 0), bits)
    # the test's own dequantization of GPTQ: (q - z[g_idx[k]]) * s[g_idx[k]], float32, transposed to [N, K]
    w = ((q.astype(np.float32) - zeros[g_idx].astype(np.float32)) * scales[g_idx].astype(np.float32)).T
    return qweight, qzeros, scales, g_idx.astype(np.int32), w


@pytest.mark.parametrize("mode", ["g_idx", "none", "actorder"])
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("bits,K,N,gs", GPTQ_CASES)
def test_gptq_matches_reference_and_round_trips(bits, K, N, gs, version, mode):
    rng = np.random.default_rng(1000 * bits + 10 * version + len(mode))
    qweight, qzeros, scales, g_idx, w = make_gptq(rng, bits, K, N, gs, version, mode)
    kw = {"bits": bits, "version": version}
    if mode == "none":
        qw, perm = from_gptq(qweight, qzeros, scales, None, group_size=gs, **kw)
    else:
        qw, perm = from_gptq(qweight, qzeros, scales, g_idx, **kw)
    assert qw.scheme == "uint" and qw.dtype == vm.dtype(f"uint{bits}") and qw.group_size == gs
    assert qw.shape == (N, K)
    if mode == "actorder":
        assert perm is not None and sorted(perm.tolist()) == list(range(K))
        assert np.all(np.diff(g_idx[perm]) >= 0)                  # groups contiguous after reordering
        assert np.array_equal(qw.dequantize(), w[:, perm])
        x = rng.standard_normal((3, K)).astype(np.float32)
        assert np.allclose(x[:, perm] @ qw.dequantize().T, x @ w.T, rtol=1e-5, atol=1e-5)
    else:
        assert perm is None
        assert np.array_equal(qw.dequantize(), w)

    raw = to_gptq(qw, version=version, perm=perm)
    assert raw["qweight"].dtype == raw["qzeros"].dtype == raw["g_idx"].dtype == np.int32
    assert np.array_equal(raw["qweight"], qweight) and np.array_equal(raw["qzeros"], qzeros)
    assert raw["scales"].dtype == np.float16 and raw["scales"].tobytes() == scales.tobytes()
    assert np.array_equal(raw["g_idx"], g_idx)
    assert (raw["bits"], raw["version"]) == (bits, version)

    qw2, perm2 = from_gptq(**raw)
    same_qw(qw2, qw)
    assert (perm2 is None) == (perm is None)
    if perm is not None:
        assert np.array_equal(perm2, perm)


def test_gptq_group_size_inferred_from_k_over_g():
    rng = np.random.default_rng(5)
    qweight, qzeros, scales, _, w = make_gptq(rng, 4, 96, 16, 32, 1, "none")
    qw, perm = from_gptq(qweight, qzeros, scales)
    assert qw.group_size == 32 and perm is None and np.array_equal(qw.dequantize(), w)


def test_gptq_three_bit_codes_straddle_words():
    # 32 3-bit codes per 3 words: code 10 has its low two bits at bits 30-31 of word 0, its high bit at bit 0
    # of word 1 (from the format description, not from the converter)
    N = 32
    qweight = np.zeros((3, N), np.int32)
    qweight[0, 5] = np.int32(-(1 << 31) + (1 << 30))   # bits 30 and 31 set
    qweight[1, 5] = 1
    qw, _ = from_gptq(qweight, np.zeros((1, 3), np.int32), np.ones((1, N), np.float16), bits=3, version=2)
    codes = qw.codes.codes()
    assert codes[5, 10] == 7 and codes.sum() == 7


def test_gptq_accepts_torch_and_round_trips_torch_weights():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    qweight, qzeros, scales, g_idx, w = make_gptq(rng, 4, 72, 24, 32, 1, "actorder")
    qw, perm = from_gptq(torch.from_numpy(qweight), torch.from_numpy(qzeros), torch.from_numpy(scales),
                         torch.from_numpy(g_idx.astype(np.int64)))
    assert np.array_equal(qw.dequantize(), w[:, perm])
    raw = to_gptq(qw.to("cpu"), perm=torch.from_numpy(perm))   # torch-backed QuantizedWeight
    assert np.array_equal(raw["qweight"], qweight) and np.array_equal(raw["g_idx"], g_idx)


def test_to_gptq_of_a_built_weight_matches_reference_packer():
    rng = np.random.default_rng(3)
    N, K, gs, bits = 32, 64, 24, 3
    G = -(-K // gs)
    codes = rng.integers(0, 8, (N, K))
    zeros = rng.integers(0, 8, (N, G)).astype(np.uint8)
    scales = rand_scales(rng, (N, G), np.float32)
    scales = scales.astype(np.float16).astype(np.float32)     # float32 scales that float16 holds exactly
    qw = QuantizedWeight(vm.Tensor.from_codes(codes, vm.dtype("uint3")), scales, zeros, "uint", gs)
    raw = to_gptq(qw, version=2)
    qweight, qzeros = ref_gptq_pack(codes.T, zeros.T, bits)
    assert np.array_equal(raw["qweight"], qweight) and np.array_equal(raw["qzeros"], qzeros)
    assert np.array_equal(raw["scales"].astype(np.float32), scales.T)
    # a permutation that is not increasing inside each group still gives the same x @ W.T
    perm = rng.permutation(K)
    raw = to_gptq(qw, version=2, perm=perm)
    back, perm2 = from_gptq(**raw)
    w_orig = np.empty((N, K), np.float32)
    w_orig[:, perm] = qw.dequantize()
    w_back = np.empty((N, K), np.float32)
    w_back[:, perm2] = back.dequantize()
    assert np.array_equal(w_back, w_orig)


def _gptq_raw(bits=4, K=72, N=24, gs=32, version=1, mode="g_idx", seed=0):
    return make_gptq(np.random.default_rng(seed), bits, K, N, gs, version, mode)[:4]


def test_gptq_errors_name_the_problem():
    qweight, qzeros, scales, g_idx = _gptq_raw()
    with pytest.raises(ArgumentError, match="qweight must have dtype int32, got int64"):
        from_gptq(qweight.astype(np.int64), qzeros, scales, g_idx)
    with pytest.raises(ArgumentError, match="qzeros must have dtype int32"):
        from_gptq(qweight, qzeros.view(np.uint32), scales, g_idx)
    with pytest.raises(ArgumentError, match="scales must have dtype float16, got float32"):
        from_gptq(qweight, qzeros, scales.astype(np.float32), g_idx)
    with pytest.raises(ArgumentError, match="qzeros must have shape"):
        from_gptq(qweight, qzeros[:, :2], scales, g_idx)
    with pytest.raises(ArgumentError, match="scales must have shape"):
        from_gptq(qweight, qzeros, scales[:, :8], g_idx)
    with pytest.raises(ArgumentError, match=r"is bits=8 right\?"):                   # packed with 4 bits
        from_gptq(qweight, qzeros, scales, None, bits=8)
    with pytest.raises(ArgumentError, match="bits must be one of"):
        from_gptq(qweight, qzeros, scales, g_idx, bits=5)
    with pytest.raises(ArgumentError, match="version must be one of"):
        from_gptq(qweight, qzeros, scales, g_idx, version=3)
    with pytest.raises(ArgumentError, match=r"g_idx must have shape \[72\]"):
        from_gptq(qweight, qzeros, scales, g_idx[:-1])
    bad = g_idx.copy()
    bad[0] = 3
    with pytest.raises(ArgumentError, match="g_idx holds group 3, but the scales have 3 groups"):
        from_gptq(qweight, qzeros, scales, bad)
    uneven = g_idx.copy()
    uneven[0] = 1                                # groups of 31, 33 and 8 channels
    with pytest.raises(ArgumentError, match="puts 33 input channels in group 1.*need 31: a group size mismatch"):
        from_gptq(qweight, qzeros, scales, uneven)
    uneven[1:31] = 1                             # group 0 of 1 channel would mean 72 groups
    with pytest.raises(ArgumentError, match="group size would be 1.*not the 3 of the scales: a group size mismatch"):
        from_gptq(qweight, qzeros, scales, uneven)
    with pytest.raises(ArgumentError, match="group_size=16 gives 5 groups for K=72, but the scales hold 3"):
        from_gptq(qweight, qzeros, scales, None, group_size=16)
    with pytest.raises(ArgumentError, match="group size is ambiguous"):
        from_gptq(*_gptq_raw(K=80, gs=32)[:3])          # 3 groups do not split 80 evenly
    with pytest.raises(ArgumentError, match="do not hold a whole number of 3-bit codes"):
        from_gptq(np.zeros((4, 32), np.int32), np.zeros((1, 3), np.int32), np.ones((1, 32), np.float16), bits=3)


def test_gptq_version1_zero_limits():
    # 8 bits, version 1: a stored 255 would be zero point 256, beyond the uint8 zeros
    qweight, qzeros, scales, g_idx = _gptq_raw(bits=8, K=44, N=12, gs=12, version=2)
    with pytest.raises(ArgumentError, match="zero point 256"):
        from_gptq(qweight, np.full_like(qzeros, -1), scales, g_idx, bits=8, version=1)
    qw, _ = from_gptq(qweight, qzeros, scales, g_idx, bits=8, version=2)
    if not (qw.zeros == 0).any():
        qw.zeros[0, 0] = 0
    with pytest.raises(ArgumentError, match=r"zero points must lie in 1\.\.256.*use version=2"):
        to_gptq(qw, version=1)


def test_to_gptq_errors_name_the_problem():
    rng = np.random.default_rng(2)
    codes = vm.Tensor.from_codes(rng.integers(0, 16, (8, 32)), vm.dtype("uint4"))
    z = rng.integers(1, 16, (8, 1)).astype(np.uint8)
    s = rand_scales(rng, (8, 1), np.float16)
    with pytest.raises(ArgumentError, match="stores codes of uint2, uint3, uint4, uint8, got uint5"):
        to_gptq(QuantizedWeight(vm.Tensor.from_codes(np.ones((8, 32), int), vm.dtype("uint5")), s, z, "uint", 32))
    with pytest.raises(ArgumentError, match="scheme 'uint'"):
        to_gptq(QuantizedWeight(codes, s, None, "float", 32))
    with pytest.raises(ArgumentError, match="not exactly representable in float16"):
        to_gptq(QuantizedWeight(codes, np.full((8, 1), 0.1, np.float32), z, "uint", 32))
    with pytest.raises(ArgumentError, match="multiples of 32"):
        to_gptq(QuantizedWeight(vm.Tensor.from_codes(rng.integers(0, 16, (6, 32)), vm.dtype("uint4")),
                                s[:6], z[:6], "uint", 32))
    with pytest.raises(ArgumentError, match="perm must be a permutation"):
        to_gptq(QuantizedWeight(codes, s, z, "uint", 32), perm=np.zeros(32, np.int64))
    with pytest.raises(ArgumentError, match=r"zero points must lie in 1\.\.16; got 17"):
        to_gptq(QuantizedWeight(codes, s, np.full((8, 1), 17, np.uint8), "uint", 32))


# ------------------------------------------------------------------------------------------- AWQ
def make_awq(rng, K, N, gs):
    G = -(-K // gs)
    q = rng.integers(0, 16, (K, N))
    zeros = rng.integers(0, 16, (G, N))
    scales = rand_scales(rng, (G, N), np.float16)
    g = np.arange(K) // gs
    w = ((q.astype(np.float32) - zeros[g].astype(np.float32)) * scales[g].astype(np.float32)).T
    return ref_awq_pack(q), ref_awq_pack(zeros), scales, w


@pytest.mark.parametrize("K,N,gs,pass_gs", [(37, 24, 16, True), (96, 40, 32, False), (50, 8, 50, False)])
def test_awq_matches_reference_and_round_trips(K, N, gs, pass_gs):
    rng = np.random.default_rng(K * N)
    qweight, qzeros, scales, w = make_awq(rng, K, N, gs)
    qw = from_awq(qweight, qzeros, scales, group_size=gs if pass_gs else None)
    assert qw.scheme == "uint" and qw.dtype == vm.dtype("uint4") and qw.group_size == gs
    assert np.array_equal(qw.dequantize(), w)
    raw = to_awq(qw)
    assert np.array_equal(raw["qweight"], qweight) and np.array_equal(raw["qzeros"], qzeros)
    assert raw["scales"].tobytes() == scales.tobytes() and raw["group_size"] == gs
    same_qw(from_awq(**raw), qw)


def test_awq_errors_name_the_problem():
    rng = np.random.default_rng(4)
    qweight, qzeros, scales, _ = make_awq(rng, 37, 24, 16)
    with pytest.raises(ArgumentError, match="AWQ defines only 4-bit weights"):
        from_awq(qweight, qzeros, scales, bits=3)
    with pytest.raises(ArgumentError, match="qweight must have dtype int32, got uint8"):
        from_awq(qweight.view(np.uint8), qzeros, scales, group_size=16)
    with pytest.raises(ArgumentError, match="qzeros must have shape"):
        from_awq(qweight, qzeros[:2], scales, group_size=16)
    with pytest.raises(ArgumentError, match="group size is ambiguous"):
        from_awq(qweight, qzeros, scales)
    with pytest.raises(ArgumentError, match="group_size=8 gives 5 groups"):
        from_awq(qweight, qzeros, scales, group_size=8)
    qw = QuantizedWeight(vm.Tensor.from_codes(rng.integers(0, 16, (12, 16)), vm.dtype("uint4")),
                         rand_scales(rng, (12, 1), np.float16), rng.integers(0, 16, (12, 1)).astype(np.uint8),
                         "uint", 16)
    with pytest.raises(ArgumentError, match="N must be a multiple of 8, got N=12"):
        to_awq(qw)
    qw = QuantizedWeight(vm.Tensor.from_codes(rng.integers(0, 8, (8, 16)), vm.dtype("uint3")),
                         rand_scales(rng, (8, 1), np.float16), np.ones((8, 1), np.uint8), "uint", 16)
    with pytest.raises(ArgumentError, match="AWQ stores codes of uint4, got uint3"):
        to_awq(qw)


# ------------------------------------------------------------------------------ bitsandbytes NF4
@pytest.mark.parametrize("N,K,B,gs", [(5, 128, 64, 64), (7, 45, 64, 1), (3, 100, 32, 4), (4, 96, 128, 32)])
def test_bnb_nf4_matches_reference_and_round_trips(N, K, B, gs):
    rng = np.random.default_rng(N * K + B)
    codes = rng.integers(0, 16, (N, K))
    nblocks = -(-N * K // B)
    absmax = (rng.random(nblocks) + 0.05).astype(np.float32)
    packed = ref_bnb_pack(codes)
    qw = from_bnb_nf4(packed, absmax, (N, K), blocksize=B)
    assert qw.scheme == "nf4" and qw.dtype == vm.dtype("nf4") and qw.group_size == gs
    f = np.arange(N * K).reshape(N, K)
    assert np.array_equal(qw.dequantize(), NF4_TABLE[codes] * absmax[f // B])
    raw = to_bnb_nf4(qw, blocksize=B)
    assert raw["packed"].dtype == np.uint8 and np.array_equal(raw["packed"], packed)
    assert raw["absmax"].tobytes() == absmax.tobytes()
    assert (raw["shape"], raw["blocksize"]) == ((N, K), B)
    same_qw(from_bnb_nf4(**raw), qw)


def test_vmlang_nf4_table_is_the_bitsandbytes_table():
    assert np.array_equal(vm.dtype("nf4").decode(np.arange(16)).astype(np.float32), NF4_TABLE)


def test_to_bnb_nf4_of_a_built_weight():
    rng = np.random.default_rng(8)
    N, K, gs, B = 3, 96, 32, 64        # a block of 64 covers two groups of a row, or a row's end and the next start
    codes = rng.integers(0, 16, (N, K))
    absmax = (rng.random(-(-N * K // B)) + 0.1).astype(np.float32)
    starts = np.arange(N)[:, None] * K + np.arange(0, K, gs)[None, :]
    qw = QuantizedWeight(vm.Tensor.from_codes(codes, vm.dtype("nf4")), absmax[starts // B], None, "nf4", gs)
    raw = to_bnb_nf4(qw, blocksize=B)
    assert np.array_equal(raw["packed"], ref_bnb_pack(codes)) and np.array_equal(raw["absmax"], absmax)
    scales = np.array(qw.scales)
    scales[0, 1] *= 2                                   # row 0's groups 0 and 1 share block 0
    with pytest.raises(ArgumentError, match="block 0 meets groups with different scales"):
        to_bnb_nf4(QuantizedWeight(qw.codes, scales, None, "nf4", gs), blocksize=B)


def test_bnb_nf4_errors_name_the_problem():
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 16, (7, 45))
    packed, absmax = ref_bnb_pack(codes), (rng.random(5) + 0.1).astype(np.float32)
    with pytest.raises(ArgumentError, match="double-quantized"):
        from_bnb_nf4(packed, absmax.view(np.uint8)[:5], (7, 45))
    with pytest.raises(ArgumentError, match="packed must have dtype uint8, got int8"):
        from_bnb_nf4(packed.view(np.int8), absmax, (7, 45))
    with pytest.raises(ArgumentError, match=r"packed must have shape \[158, 1\]"):
        from_bnb_nf4(packed[:-1], absmax, (7, 45))
    with pytest.raises(ArgumentError, match=r"absmax must have shape \[10\]"):
        from_bnb_nf4(packed, absmax, (7, 45), blocksize=32)
    padded = packed.copy()
    padded[-1, 0] |= 0x3
    with pytest.raises(ArgumentError, match="low nibble of the last byte is padding"):
        from_bnb_nf4(padded, absmax, (7, 45))
    with pytest.raises(ArgumentError, match="shape must be the 2-d weight shape"):
        from_bnb_nf4(packed, absmax, (315,))
    with pytest.raises(ArgumentError, match="blocksize must be a positive integer"):
        from_bnb_nf4(packed, absmax, (7, 45), blocksize=0)
    qw = from_bnb_nf4(packed, absmax, (7, 45))
    with pytest.raises(ArgumentError, match="stores nf4 codes"):
        to_bnb_nf4(QuantizedWeight(vm.Tensor.from_codes(codes, vm.dtype("uint4")), qw.scales,
                                   np.zeros(qw.scales.shape, np.uint8), "uint", 1))


# ----------------------------------------------------------------------------------------- MXFP4
@pytest.mark.parametrize("N,K", [(6, 96), (5, 70), (3, 7)])
def test_mxfp4_matches_reference_and_round_trips(N, K):
    rng = np.random.default_rng(N + K)
    codes = rng.integers(0, 16, (N, K))
    nb = -(-K // 32)
    e8 = rng.integers(110, 140, (N, nb)).astype(np.uint8)
    blocks = ref_mx_pack(codes)
    qw = from_mxfp4(blocks, e8, (N, K))
    assert qw.scheme == "mxfp4" and qw.dtype == vm.dtype("float4_e2m1") and qw.group_size == min(32, K)
    assert isinstance(qw.scales, vm.Tensor) and qw.scales.dtype == vm.dtype("float8_e8m0")
    ref = np.array([[ref_fp4(int(c)) for c in row] for row in codes], np.float32)
    scale = np.exp2(e8.astype(np.float64) - 127).astype(np.float32)
    assert np.array_equal(qw.dequantize(), ref * scale[:, np.arange(K) // 32])
    raw = to_mxfp4(qw)
    assert np.array_equal(raw["blocks"], blocks) and np.array_equal(raw["scales"], e8)
    assert raw["blocks"].dtype == raw["scales"].dtype == np.uint8 and raw["shape"] == (N, K)
    same_qw(from_mxfp4(**raw), qw)


def test_mxfp4_accepts_torch_and_float_power_of_two_scales():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    codes = rng.integers(0, 16, (4, 64))
    e8 = rng.integers(100, 150, (4, 2)).astype(np.uint8)
    qw = from_mxfp4(torch.from_numpy(ref_mx_pack(codes)), torch.from_numpy(e8), torch.Size([4, 64]))
    floats = QuantizedWeight(qw.codes, np.exp2(e8.astype(np.float64) - 127).astype(np.float32), None, "mxfp4", 32)
    assert np.array_equal(to_mxfp4(floats)["scales"], e8)


def test_mxfp4_errors_name_the_problem():
    rng = np.random.default_rng(22)
    codes = rng.integers(0, 16, (5, 70))
    blocks, e8 = ref_mx_pack(codes), rng.integers(110, 140, (5, 3)).astype(np.uint8)
    with pytest.raises(ArgumentError, match=r"blocks must have shape \[5, 2, 16\]"):
        from_mxfp4(blocks, e8, (5, 64))
    with pytest.raises(ArgumentError, match=r"scales must have shape \[5, 3\]"):
        from_mxfp4(blocks, e8[:, :2], (5, 70))
    with pytest.raises(ArgumentError, match="scales must have dtype uint8, got float32"):
        from_mxfp4(blocks, e8.astype(np.float32), (5, 70))
    padded = blocks.copy()
    padded[2, 2, 15] = 0x10                                   # element 95 of row 2, past K = 70
    with pytest.raises(ArgumentError, match="row 2 holds code 1 at element 95"):
        from_mxfp4(padded, e8, (5, 70))
    qw = from_mxfp4(blocks, e8, (5, 70))
    with pytest.raises(ArgumentError, match="group_size=16"):
        to_mxfp4(QuantizedWeight(qw.codes, vm.Tensor(np.ones((5, 5), np.uint8), "float8_e8m0"), None, "mxfp4", 16))
    with pytest.raises(ArgumentError, match="scale 3.0 at"):
        to_mxfp4(QuantizedWeight(qw.codes, np.full((5, 3), 3.0, np.float32), None, "mxfp4", 32))
    with pytest.raises(ArgumentError, match="MXFP4 stores float4_e2m1 codes"):
        to_mxfp4(QuantizedWeight(vm.Tensor.from_codes(codes, "nf4"), np.ones((5, 3), np.float32), None, "nf4", 32))


# ------------------------------------------------------------------------------------------- docs
@pytest.mark.parametrize("name", ["_common", "gptq", "awq", "bnb", "mxfp4"])
def test_worked_examples_of_the_docstrings(name):
    mod = importlib.import_module(f"vmlang.stdlib.convert.{name}")
    res = doctest.testmod(mod)
    assert res.failed == 0 and res.attempted > 0


def test_worked_examples_of_docs_stdlib_converters():
    import pathlib
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "stdlib.md").read_text()
    section = text.split("\n## Converters\n", 1)[1].split("\n## ", 1)[0]      # only this section
    test = doctest.DocTestParser().get_doctest(section, {}, "docs/stdlib.md#converters", None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10
