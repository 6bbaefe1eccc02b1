"""vmlang.stdlib.quantize: every scheme x every width, at awkward shapes, against rules computed here.

What each test knows independently of the code under test:

* the dtype list comes from the type table and the brief (signed ints 2..8, unsigned 1..8, every signed
  float format of at most 8 bits, nf4, mxfp4);
* the grid: a dtype's decoded code table (``dtype.values``), shifted by the zero point for uint;
* optimality: each code is a *nearest* grid point of ``y = w / s`` (+ z), so dequantize() is the best
  representation given the stored scale; and ``y`` lies inside the grid (scales are rounded up, so nothing
  saturates), except mxfp4 where the OCP rule puts ``amax / 2^e`` in [4, 8);
* the error bound: half the gap between the two grid values around ``y``, times ``s`` (s / 2 for ints),
  plus the float32 rounding of ``value * s``;
* the scale rule: the stored scale is the ideal one (absmax / dtype.max, range / (2^b - 1), or 2^e with
  the OCP exponent computed here with frexp) rounded *up* into the scale dtype (checked with numpy's
  nextafter);
* ml_dtypes as an independent oracle of float rounding for the formats it has.
"""
from __future__ import annotations

import doctest
import math
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vmlang.ir.dtypes import FloatType, all_dtypes, dtype
from vmlang.ir.errors import ArgumentError
from vmlang.stdlib import quantize
from vmlang.stdlib.quant import schemes

import vmlang as vm

INTS = [f"int{b}" for b in range(2, 9)]
UINTS = [f"uint{b}" for b in range(1, 9)]
FLOATS = [d.name for d in all_dtypes() if isinstance(d, FloatType) and d.is_signed and d.nbits <= 8]
ALL = INTS + UINTS + FLOATS + ["nf4", "mxfp4"]
SHAPES = [(3, 100), (17, 130), (1, 33)]
ML_DTYPES = {"float8_e4m3": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2,
             "float6_e3m2": ml_dtypes.float6_e3m2fn, "float6_e2m3": ml_dtypes.float6_e2m3fn,
             "float4_e2m1": ml_dtypes.float4_e2m1fn}
NP_SCALE = {"float16": np.float16, "float32": np.float32}


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def random_weight(rng, N, K, dt=np.float32) -> np.ndarray:
    """Gaussian rows of different magnitudes with a few outliers (never all zeros)."""
    w = rng.standard_normal((N, K)) * np.exp(rng.uniform(-3, 1, size=(N, 1)))
    w[rng.random((N, K)) < 0.02] *= 8
    return w.astype(dt)


def element_dtype(name):
    return dtype("float4_e2m1") if name == "mxfp4" else dtype(name)


def table(dt) -> np.ndarray:
    """The sorted finite values of a dtype (the grid, before scaling)."""
    v = dt.values
    return np.unique(v[np.isfinite(v)])


def groups(K, gs):
    return [slice(g, min(g + gs, K)) for g in range(0, K, gs)]


def expanded(a, K, gs):
    return np.asarray(a, np.float64)[:, np.arange(K) // gs]


def ideal_scales(w, name, gs):
    """The scale each group should get before rounding to the scale dtype (0 for an all-zero group)."""
    dt = element_dtype(name)
    w = np.asarray(w, np.float64)
    cols = []
    for sl in groups(w.shape[1], gs):
        g = w[:, sl]
        if dt.is_int and not dt.is_signed:
            lo, hi = np.minimum(g.min(1), 0), np.maximum(g.max(1), 0)
            const = g.min(1) == g.max(1)
            cols.append(np.where(const, hi - lo, (hi - lo) / (2 ** dt.nbits - 1)))
        else:
            cols.append(np.abs(g).max(1) / dt.max)
    return np.stack(cols, 1)


def mx_exponents(w, K):
    """OCP MX: shared exponent floor(log2(amax)) - emax(e2m1) = frexp exponent - 1 - 2, clamped to e8m0."""
    e = np.empty((w.shape[0], len(groups(K, 32))), np.int64)
    for n in range(w.shape[0]):
        for g, sl in enumerate(groups(K, 32)):
            amax = float(np.abs(np.asarray(w[n, sl], np.float64)).max())
            e[n, g] = -127 if amax == 0 else min(max(math.frexp(amax)[1] - 1 - 2, -127), 127)
    return e


def check(w, qw, name, gs, scale_dtype=None):
    """Every property of a quantized weight that the module docstring promises (see the file docstring)."""
    dt = element_dtype(name)
    w = np.asarray(w, np.float64)
    N, K = w.shape
    assert qw.shape == (N, K) and qw.group_size == gs and qw.dtype == dt
    assert qw.scheme == ("mxfp4" if name == "mxfp4" else "int" if dt.is_int and dt.is_signed else
                         "uint" if dt.is_int else "nf4" if name == "nf4" else "float")
    codes = qw.codes.codes().astype(np.int64)
    assert codes.min() >= 0 and codes.max() < 2 ** dt.nbits
    s = qw.scale_values().astype(np.float64)
    assert s.shape == (N, -(-K // gs)) and np.all(np.isfinite(s)) and np.all(s > 0)
    v = dt.decode(codes)
    assert np.all(np.isfinite(v)), "a NaN/Inf code was produced"
    y = w / expanded(s, K, gs)
    if qw.scheme == "uint":
        z = np.asarray(qw.zeros)
        assert z.dtype == np.uint8 and z.shape == s.shape and z.max() <= dt.max
        y = y + expanded(z, K, gs)
    t = table(dt)
    # nearest grid point of y
    i = np.clip(np.searchsorted(t, y), 1, len(t) - 1)
    best = np.minimum(np.abs(t[i - 1] - y), np.abs(t[i] - y))
    assert np.all(np.abs(v - y) <= best + 1e-12 * np.maximum(1, np.abs(y))), "a code is not a nearest grid point"
    # inside the grid: floats and ints never saturate (the scale is rounded up); uint's ends may lie up to half a
    # step outside it (z is rounded); mxfp4's amax / 2^e lies in [4, 8) by the OCP rule
    over = np.maximum(np.maximum(y - t[-1], t[0] - y), 0)
    if qw.scheme == "mxfp4":
        assert np.all(np.abs(y) < 2.0 ** (math.floor(math.log2(t[-1])) + 1))  # 8 = 2^(emax(e2m1) + 1)
    else:
        assert np.all(over <= (0.5 if qw.scheme == "uint" else 0) + 1e-12 * t[-1]), "a value saturated"
    gap = np.where(np.isin(y, t), 0, (t[i] - t[i - 1]) / 2)
    deq = qw.dequantize()
    bound = (np.maximum(gap, over) * expanded(s, K, gs) + 2.0 ** -24 * np.abs(deq)
             + np.finfo(np.float32).smallest_subnormal)
    assert np.all(np.abs(deq - w) <= bound), f"error {np.max(np.abs(deq - w) - bound)} above the half-step bound"
    if qw.scheme in ("int", "uint"):
        assert np.all(np.abs(deq - w) <= expanded(s, K, gs) / 2 * (1 + 1e-6) + 1e-30)
    # the scale rule
    if qw.scheme == "mxfp4":
        assert isinstance(qw.scales, vm.Tensor) and qw.scales.dtype == dtype("float8_e8m0")
        e = mx_exponents(w, K)
        assert np.array_equal(s, np.ldexp(1.0, e))
        assert np.array_equal(qw.scales.codes(), e + 127)  # e8m0: bias 127
        return
    sdt = scale_dtype or default_scale_dtype(name)
    if sdt == "bfloat16":
        import torch
        assert qw.scales.dtype == torch.bfloat16
        below = (qw.scales.view(torch.int16) - 1).view(torch.bfloat16).float().numpy().astype(np.float64)
    else:
        assert qw.scales.dtype == NP_SCALE[sdt]
        below = np.nextafter(qw.scales, NP_SCALE[sdt](0)).astype(np.float64)
    ideal = ideal_scales(w, name, gs)
    nz = ideal > 0
    assert np.all(s[~nz] == 1), "an all-zero group must get scale 1"
    assert np.all(s[nz] >= ideal[nz]) and np.all(below[nz] < ideal[nz]), "scale is not the ideal rounded up"


def default_scale_dtype(name):
    """float16, except float32 for nf4 and for formats whose unit-absmax scale 1 / max is not a normal float16."""
    wide = 1 / element_dtype(name).max < np.finfo(np.float16).tiny
    return "float32" if name == "nf4" or wide else "float16"


def requantize(qw, name, scale_dtype=None):
    return quantize(qw.dequantize(), name, qw.group_size, scale_dtype=scale_dtype)


def fixed_point(qw, name, scale_dtype=None):
    """quantize(dequantize(qw)) == qw exactly where dequantize's float32 products value * scale are exact (float16
    or bfloat16 scales, nf4, mxfp4); with float32 scales a product may round, so the scale may move by one ulp
    and the values by that much, while the codes stay."""
    again = requantize(qw, name, scale_dtype)
    sdt = scale_dtype or default_scale_dtype(name)
    if sdt != "float32" or name in ("nf4", "mxfp4"):
        same(again, qw)
        return
    assert np.array_equal(again.codes.codes(), qw.codes.codes())
    s, s2 = qw.scale_values(), again.scale_values()
    assert np.all(np.abs(s2 - s) <= np.spacing(s))
    assert np.all(np.abs(again.dequantize() - qw.dequantize()) <= 2.0 ** -22 * np.abs(qw.dequantize()))


def same(a, b):
    assert np.array_equal(a.codes.codes(), b.codes.codes())
    assert np.array_equal(a.scale_values(), b.scale_values())
    assert (a.zeros is None) == (b.zeros is None)
    if a.zeros is not None:
        assert np.array_equal(a.zeros, b.zeros)
    assert np.array_equal(a.dequantize(), b.dequantize())


# ------------------------------------------------------------------------------------------------- per dtype
def test_the_supported_list_is_the_type_table():
    assert sorted(schemes.supported_dtypes()) == sorted(ALL)
    assert len(FLOATS) == 23 and "float8_e4m3" in FLOATS and "float8_e5m2" in FLOATS  # 21 finite + 2 named


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ALL)
def test_every_scheme_and_width(name, shape):
    w = random_weight(rng_for(name, shape), *shape)
    qw = quantize(w, name)
    default = {"nf4": 64, "mxfp4": 32}.get(name, 128)
    gs = min(default, shape[1])
    check(w, qw, name, gs)
    if name.startswith("uint"):
        assert np.array_equal(quantize(w, name, gs).dequantize(), qw.dequantize())
    else:  # requantizing the dequantized weight is a fixed point
        fixed_point(qw, name)


@pytest.mark.parametrize("gs", [1, 7, 32, 64, None])
@pytest.mark.parametrize("name", ["int4", "int8", "uint4", "uint2", "float8_e4m3", "float4_e2m1", "float5_e3m1",
                                  "nf4"])
def test_group_sizes(name, gs):
    w = random_weight(rng_for(name, gs), 5, 97)
    qw = quantize(w, name, gs)
    check(w, qw, name, gs or 97)
    if not name.startswith("uint"):
        fixed_point(qw, name)


def test_float8_e4m3_per_channel():
    w = random_weight(rng_for("pc"), 17, 130)
    qw = quantize(w, "float8_e4m3", group_size=None)
    assert qw.group_size == 130 and qw.scale_values().shape == (17, 1)
    check(w, qw, "float8_e4m3", 130)
    # one scale per row: the row's absmax maps onto e4m3's max (448), to float16 rounding of the scale
    row_max = np.abs(qw.dequantize()).max(1)
    assert np.all(np.abs(row_max - np.abs(w).max(1)) <= np.abs(w).max(1) * 2.0 ** -10)
    same(requantize(qw, "float8_e4m3"), qw)


@pytest.mark.parametrize("sdt", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("name", ["int3", "uint5", "float6_e2m3", "nf4"])
def test_scale_dtypes(name, sdt):
    if sdt == "bfloat16":
        pytest.importorskip("torch")  # NumPy has no bfloat16: bf16 scales are a torch tensor
    w = random_weight(rng_for(name, sdt), 3, 100)
    qw = quantize(w, name, 33, scale_dtype=sdt)
    check(w, qw, name, 33, scale_dtype=sdt)


# ------------------------------------------------------------------------------------------------ oracles
@pytest.mark.parametrize("name", sorted(ML_DTYPES))
def test_float_rounding_matches_ml_dtypes(name):
    w = random_weight(rng_for("ml", name), 17, 130)
    qw = quantize(w, name, 16)
    y = w.astype(np.float64) / expanded(qw.scale_values(), 130, 16)
    assert np.abs(y).max() <= dtype(name).max
    want = y.astype(ML_DTYPES[name]).astype(np.float64)
    assert np.array_equal(qw.codes.values(), want)


def test_mxfp4_elements_match_ml_dtypes_after_saturation():
    w = random_weight(rng_for("mx-ml"), 9, 100)
    w[0, :2] = [7.5, 1.0]  # amax 7.5 -> e = 0: 7.5 saturates to 6
    qw = quantize(w, "mxfp4")
    y = w.astype(np.float64) / np.ldexp(1.0, mx_exponents(w, 100))[:, np.arange(100) // 32]
    want = np.clip(y, -6, 6).astype(ml_dtypes.float4_e2m1fn).astype(np.float64)
    assert np.array_equal(qw.codes.values(), want)
    assert y[0, 0] == 7.5 and qw.codes.values()[0, 0] == 6.0


def test_mxfp4_scale_rule_at_the_edges():
    # blocks: all zero, tiny (exponent clamps at -127), exact powers of two, just below a power of two, huge
    w = np.zeros((5, 40), np.float32)
    w[1, :3] = [1e-39, -3e-40, 0]
    w[2, 5] = 4.0
    w[3, 7] = np.nextafter(np.float32(8), np.float32(0))
    w[4, 1] = -3.0e38
    w[:, 32:] = random_weight(rng_for("mx-edges"), 5, 8)
    qw = quantize(w, "mxfp4")
    check(w, qw, "mxfp4", 32)
    e = qw.scales.codes().astype(int) - 127
    assert e[0, 0] == -127 and e[1, 0] == -127 and e[2, 0] == 0 and e[3, 0] == 0 and e[4, 0] == 125
    assert qw.codes.values()[3, 7] == 6.0  # 7.99.. / 2^0 saturates to e2m1's max
    same(requantize(qw, "mxfp4"), qw)


def test_nf4_is_the_nearest_table_entry_of_w_over_absmax():
    w = random_weight(rng_for("nf4"), 4, 200)
    qw = quantize(w, "nf4")
    s = np.stack([np.abs(w[:, sl]).max(1) for sl in groups(200, 64)], 1)
    assert np.array_equal(qw.scale_values(), s.astype(np.float32))  # float32 input: absmax is exact
    y = w.astype(np.float64) / expanded(s, 200, 64)
    nf4 = np.asarray(dtype("nf4").values)
    assert np.array_equal(qw.codes.codes(), np.abs(y[..., None] - nf4).argmin(-1))


# --------------------------------------------------------------------------------------- special groups
@pytest.mark.parametrize("name", ALL)
def test_all_zero_groups(name):
    w = random_weight(rng_for("zero", name), 3, 70)
    w[1] = 0
    w[2, :32] = 0
    qw = quantize(w, name, 32)
    check(w, qw, name, 32)
    assert np.all(qw.dequantize()[1] == 0) and np.all(qw.dequantize()[2, :32] == 0)


@pytest.mark.parametrize("b", range(1, 9))
def test_uint_constant_groups_are_exact(b):
    w = np.array([[0.375] * 8 + [-1.25] * 8 + [3.0e-3] * 8], np.float32)
    qw = quantize(w, f"uint{b}", 8)
    check(w, qw, f"uint{b}", 8)
    assert np.array_equal(qw.dequantize()[0, :16], w[0, :16])  # 0.375, -1.25 are float16 values
    assert np.abs(qw.dequantize()[0, 16:] - w[0, 16:]).max() <= 3.0e-3 * 2.0 ** -11


@pytest.mark.parametrize("b", range(1, 9))
def test_uint_representable_weight_is_a_fixed_point(b):
    rng = rng_for("uint-fp", b)
    n, N, K, gs = 2 ** b - 1, 6, 45, 9
    q = rng.integers(0, n + 1, size=(N, K))
    for sl in groups(K, gs):  # every group uses both ends of the code range
        q[:, sl.start], q[:, sl.start + 1] = 0, n
    z = rng.integers(0, n + 1, size=(N, K // gs))
    s = rng.uniform(0.01, 2, size=(N, K // gs)).astype(np.float16).astype(np.float64)
    w = ((q - expanded(z, K, gs)) * expanded(s, K, gs)).astype(np.float32)
    qw = quantize(w, f"uint{b}", gs)
    assert np.array_equal(qw.codes.codes(), q) and np.array_equal(qw.zeros, z)
    assert np.array_equal(qw.scale_values(), s.astype(np.float32)) and np.array_equal(qw.dequantize(), w)


@pytest.mark.parametrize("name", ["int4", "uint3", "float8_e4m3", "float4_e2m1", "nf4"])
def test_tiny_weights_use_subnormal_float16_scales_correctly(name):
    w = random_weight(rng_for("tiny", name), 3, 50).astype(np.float64)
    target = np.array([[3e-6], [1e-5], [5e-5]])  # wanted scales: float16 subnormals (< 6.1e-5)
    w = (w / np.abs(w).max(1, keepdims=True) * target * element_dtype(name).max).astype(np.float32)
    qw = quantize(w, name, 25, scale_dtype="float16")
    assert np.any(qw.scale_values() < np.finfo(np.float16).tiny), "no scale is a float16 subnormal"
    check(w, qw, name, 25, scale_dtype="float16")
    fixed_point(qw, name, "float16")


@pytest.mark.parametrize("name", ["int4", "uint4", "float8_e4m3", "float4_e2m1"])
def test_scales_that_would_underflow_or_overflow_float16_are_refused(name):
    small = random_weight(rng_for("u", name), 2, 20) * np.float32(1e-12)
    big = random_weight(rng_for("o", name), 2, 20) * np.float32(1e9)
    for w in (small, big):
        with pytest.raises(ArgumentError, match=r'row \d+, group \d+.*scale_dtype="float32"'):
            quantize(w, name, 10)
        check(w, quantize(w, name, 10, scale_dtype="float32"), name, 10, scale_dtype="float32")


# ----------------------------------------------------------------------------------------------- inputs
def test_torch_and_numpy_inputs_of_any_float_dtype_agree():
    torch = pytest.importorskip("torch")
    w = random_weight(rng_for("torch"), 7, 45)
    want = quantize(torch.from_numpy(w).to(torch.bfloat16).float().numpy(), "int4", 16)
    got = quantize(torch.from_numpy(w).to(torch.bfloat16), "int4", 16)
    same(got, want)
    for a in (w.astype(np.float16), w.astype(np.float64), torch.from_numpy(w.astype(np.float16))):
        check(np.asarray(a, np.float64) if isinstance(a, np.ndarray) else a.float().numpy(),
              quantize(a, "float6_e3m2", 16), "float6_e3m2", 16)


def test_dtype_objects_and_aliases_are_accepted():
    w = random_weight(rng_for("alias"), 2, 40)
    same(quantize(w, vm.int4), quantize(w, "int4"))
    same(quantize(w, "float8_e4m3fn"), quantize(w, dtype("float8_e4m3")))


def test_default_group_size_shrinks_to_K_but_an_explicit_one_does_not():
    w = random_weight(rng_for("gs"), 2, 50)
    assert quantize(w, "int4").group_size == 50
    assert quantize(w, "nf4").group_size == 50
    assert quantize(w[:, :20], "mxfp4").group_size == 20
    with pytest.raises(ArgumentError, match="group_size must be in 1..K=50"):
        quantize(w, "int4", 128)


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", ["float16", "bfloat16", "int1", "int16", "uint32", "float8_e8m0", "bool", "nf5", 3])
def test_unsupported_dtypes_are_refused_with_the_supported_list(bad):
    with pytest.raises(ArgumentError, match=r"supported dtypes: int2, .*nf4, mxfp4"):
        quantize(np.ones((2, 4), np.float32), bad)


@pytest.mark.parametrize("w, msg", [
    (np.ones(8, np.float32), r"2-d \[N, K\]"),
    (np.ones((2, 3, 4), np.float32), r"2-d \[N, K\]"),
    (np.ones((3, 4), np.int32), "floating-point"),
    (np.ones((0, 4), np.float32), "empty"),
    (vm.Tensor.from_values([[1, 2]], vm.int4), "not a vm.Tensor"),
    ("weights", "floating-point"),
])
def test_bad_weights(w, msg):
    with pytest.raises(ArgumentError, match=msg):
        quantize(w, "int4")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_name_the_first_bad_position(bad):
    torch = pytest.importorskip("torch")
    w = random_weight(rng_for("nan"), 3, 17)
    w[1, 5] = bad
    w[2, 0] = bad
    with pytest.raises(ArgumentError, match=r"w\[1, 5\] = .* not finite"):
        quantize(torch.from_numpy(w), "float8_e5m2")


@pytest.mark.parametrize("gs", [0, -3, 18, 2.5, True, "8", np.float32(4)])
def test_bad_group_sizes(gs):
    with pytest.raises(ArgumentError, match="group_size"):
        quantize(np.ones((2, 17), np.float32), "int4", gs)


@pytest.mark.parametrize("gs", [16, 64, None])
def test_mxfp4_blocks_are_32(gs):
    with pytest.raises(ArgumentError, match="mxfp4 uses blocks of 32"):
        quantize(np.ones((2, 64), np.float32), "mxfp4", gs)


@pytest.mark.parametrize("name, sdt", [("int4", "float8_e4m3"), ("nf4", "int8"), ("uint4", "nope"),
                                       ("mxfp4", "float16"), ("float4_e2m1", "float8_e8m0")])
def test_bad_scale_dtypes(name, sdt):
    with pytest.raises(ArgumentError, match="scale"):
        quantize(np.ones((2, 64), np.float32), name, scale_dtype=sdt)


# ----------------------------------------------------------------------------------------------- properties
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(ALL), N=st.integers(1, 4), K=st.integers(1, 70),
       magnitude=st.integers(-6, 6), seed=st.integers(0, 2 ** 32 - 1))
def test_property_random_shapes_groups_and_magnitudes(data, name, N, K, magnitude, seed):
    gs = min(32, K) if name == "mxfp4" else data.draw(st.one_of(st.none(), st.integers(1, K)), label="gs")
    rng = np.random.default_rng(seed)
    w = (random_weight(rng, N, K) * np.float32(10.0 ** magnitude)).astype(np.float32)
    w[rng.random((N, K)) < 0.1] = 0
    qw = quantize(w, name, gs, scale_dtype=None if name in ("mxfp4", "nf4") else "float32")
    check(w, qw, name, gs or K, scale_dtype=None if name in ("mxfp4", "nf4") else "float32")
    if not name.startswith("uint"):
        fixed_point(qw, name, None if name in ("mxfp4", "nf4") else "float32")


def test_docstring_examples():
    assert doctest.testmod(schemes).failed == 0
