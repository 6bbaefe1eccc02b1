"""The kernels in examples/*.vm, run on the NumPy reference VM against independent NumPy references.

Every reference below is written from the kernel's header comment, in float64, without vmlang's
codecs: sub-byte inputs are packed by this file's own LSB-first packer, and NF4 / e2m1 / e8m0 /
int3 values are decoded from their definitions here.

Tolerance rule (one rule for every f16 output): the kernels compute in f32 and round once to f16, so an
output may differ from the float64 reference by at most

    |out - ref| <= 2 * 2**-11 * scale + 2**-24

where ``2**-11`` is the f16 unit roundoff, ``scale`` is the sum of the magnitudes of the terms that make
up the value (``|x| @ |W|`` for a dot product; ``|ref|`` for an elementwise result) and ``2**-24`` the
smallest f16 subnormal. That is the final f16 rounding (at most 1 unit roundoff of the value) plus a
second unit for the f32 work before it (a few 2**-24 per term, far below 2**-11). Kernels whose result is
one correctly rounded operation (vector_add, dequant_int3) are compared bit for bit.

Inputs are seeded random data (never all zeros), with awkward sizes (1, 3, 17, 100, 300, ...) that leave
partial edge tiles, and one power-of-two case each.

Every test runs once per backend (the ``backend`` fixture of tests/conftest.py). On a compiled backend the
kernel also runs on the NumPy VM and must agree with it by the rule of tests/support.py (bit for bit for
vector_add and dequant_int3; within the float tolerance, relative to the same ``scale``, for the kernels
that sum), and its own output is then checked against the reference by the rule above.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir.printer import print_kernel
from vmlang.ir.verify import verify

from support import run_kernel

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
NP = vm.backend("numpy")
BACKEND = "numpy"      # set per test by the autouse fixture below


@pytest.fixture(autouse=True)
def _on_backend(backend):
    global BACKEND
    BACKEND = backend
    yield
    BACKEND = "numpy"


def launch(kernel, *args, scale=None):
    """Run on the current backend (on a compiled one, also compared with the VM)."""
    run_kernel(BACKEND, kernel, *args, scale=scale, keep="backend")

U16 = 2.0 ** -11          # f16 unit roundoff
F16_TINY = 2.0 ** -24     # smallest f16 subnormal


# ------------------------------------------------------------------------------------------ helpers
def compile_example(name: str, **consts):
    return vm.compile_file(EXAMPLES / f"{name}.vm", consts)


def assert_close_f16(out, ref, scale):
    """The tolerance rule of the module docstring."""
    out = np.asarray(out)
    assert out.dtype == np.float16
    assert out.shape == ref.shape
    assert np.isfinite(out).all(), "non-finite output"
    err = np.abs(out.astype(np.float64) - ref)
    tol = 2 * U16 * scale + F16_TINY
    bad = err > tol
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} of {bad.size} elements off, first at {i}: got {out[i]!r}, "
                             f"want {ref[i]!r} (tolerance {tol[i]:.3g})")


def pack_lsb(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned codes (last axis) into a dense LSB-first bit stream, each row padded to whole bytes.

    Written independently of vmlang.ir.packing: element i occupies bits [i*bits, (i+1)*bits).
    """
    codes = np.asarray(codes, dtype=np.uint64)
    assert (codes < (1 << bits)).all()
    n = codes.shape[-1]
    nbytes = (n * bits + 7) // 8
    bitstream = np.zeros(codes.shape[:-1] + (nbytes * 8,), np.uint8)
    for b in range(bits):
        bitstream[..., b:n * bits:bits] = (codes >> np.uint64(b)) & np.uint64(1)
    weights = (1 << np.arange(8)).astype(np.uint16)
    return (bitstream.reshape(codes.shape[:-1] + (nbytes, 8)) * weights).sum(-1).astype(np.uint8)


def packed_tensor(codes, dtype) -> vm.Tensor:
    codes = np.asarray(codes)
    return vm.Tensor(pack_lsb(codes, dtype.nbits), dtype, codes.shape)


def f16(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float16)


# Independent decoders (from the format definitions).
NF4_TABLE = np.array([  # bitsandbytes NormalFloat4 (QLoRA paper, appendix E)
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0])
E2M1_MAGNITUDE = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def e2m1_decode(codes):
    codes = np.asarray(codes)
    return np.where(codes & 8, -1.0, 1.0) * E2M1_MAGNITUDE[codes & 7]


def e8m0_decode(codes):
    return np.ldexp(1.0, np.asarray(codes, np.int64) - 127)


# ------------------------------------------------------------------------------------------ runners
# Each runner builds seeded inputs for one example and size, runs ``kernel`` and returns
# (output array, float64 reference, scale) -- scale is None where the comparison is exact.

def run_vector_add(kernel, rng, n):
    x, y = f16(rng, n, 4.0), f16(rng, n, 4.0)
    z = np.full(n, np.nan, np.float16)
    launch(kernel, x, y, z)
    return z, x.astype(np.float64) + y.astype(np.float64), None


def run_dequant_int3(kernel, rng, r, c, g):
    q = rng.integers(-4, 4, (r, c))
    s = (rng.uniform(0.25, 2.0, (r, -(-c // g))) * rng.choice([-1, 1], (r, -(-c // g)))).astype(np.float16)
    qbytes = pack_lsb(q & 7, 3)                       # two's complement codes, 3 bits each
    assert qbytes.shape == (r, -(-3 * c // 8))
    y = np.full((r, c), np.nan, np.float16)
    launch(kernel, y, qbytes, s)
    ref = q * np.repeat(s.astype(np.float64), g, axis=1)[:, :c]
    return y, ref, None


def _gemv_ref(x, wdeq_kn):
    x64 = x.astype(np.float64)
    return x64 @ wdeq_kn, np.abs(x64) @ np.abs(wdeq_kn)


def run_gemv_w4a16(kernel, rng, m, n, k):
    g = dict(kernel.consts)["G"]
    x = f16(rng, (m, k))
    w = rng.integers(-8, 8, (k, n))
    s = rng.uniform(0.005, 0.05, (-(-k // g), n)).astype(np.float16)
    y = np.full((m, n), np.nan, np.float16)
    ref, scale = _gemv_ref(x, w * np.repeat(s.astype(np.float64), g, axis=0)[:k])
    launch(kernel, x, packed_tensor(w & 15, vm.int4), s, y, scale=scale)
    return y, ref, scale


def run_gemv_nf4(kernel, rng, m, n, k):
    x = f16(rng, (m, k))
    codes = rng.integers(0, 16, (n, k))
    absmax = rng.uniform(0.01, 0.1, (n, -(-k // 64))).astype(np.float32)
    y = np.full((m, n), np.nan, np.float16)
    w = NF4_TABLE[codes] * np.repeat(absmax.astype(np.float64), 64, axis=1)[:, :k]
    ref, scale = _gemv_ref(x, w.T)
    launch(kernel, x, packed_tensor(codes, vm.nf4), absmax, y, scale=scale)
    return y, ref, scale


def run_mxfp4_gemv(kernel, rng, m, n, k):
    x = f16(rng, (m, k))
    codes = rng.integers(0, 16, (n, k))
    ecodes = rng.integers(127 - 8, 127 + 2, (n, -(-k // 32))).astype(np.uint8)   # 2^-8 .. 2^1
    y = np.full((m, n), np.nan, np.float16)
    w = e2m1_decode(codes) * np.repeat(e8m0_decode(ecodes), 32, axis=1)[:, :k]
    ref, scale = _gemv_ref(x, w.T)
    launch(kernel, x, packed_tensor(codes, vm.float4_e2m1), vm.Tensor(ecodes, vm.float8_e8m0), y, scale=scale)
    return y, ref, scale


def run_matmul_f16(kernel, rng, m, n, k):
    a, b = f16(rng, (m, k)), f16(rng, (k, n))
    c = np.full((m, n), np.nan, np.float16)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    launch(kernel, a, b, c, scale=np.abs(a64) @ np.abs(b64))
    return c, a64 @ b64, np.abs(a64) @ np.abs(b64)


def softmax_ref(x):
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_softmax(kernel, rng, m, n, x=None):
    if x is None:
        x = f16(rng, (m, n), 3.0)
    y = np.full(x.shape, np.nan, np.float16)
    ref = softmax_ref(x)
    launch(kernel, x, y, scale=ref)
    return y, ref, ref


RUNNERS = {
    "vector_add": run_vector_add, "dequant_int3": run_dequant_int3, "gemv_w4a16": run_gemv_w4a16,
    "gemv_nf4": run_gemv_nf4, "mxfp4_gemv": run_mxfp4_gemv, "matmul_f16": run_matmul_f16,
    "softmax": run_softmax,
}


def check(out, ref, scale):
    if scale is None:
        np.testing.assert_array_equal(out, ref.astype(np.float16))
    else:
        assert_close_f16(out, ref, scale)


def rng_for(*key):
    return np.random.default_rng([sum(ord(ch) * (i + 1) for i, ch in enumerate(repr(key)))])


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.numpy_only("no kernel runs")
def test_every_example_has_a_runner():
    assert sorted(p.stem for p in EXAMPLES.glob("*.vm")) == sorted(RUNNERS)


@pytest.mark.parametrize("n", [1, 3, 17, 100, 255, 257, 1000, 1024])
def test_vector_add(n):
    check(*run_vector_add(compile_example("vector_add"), rng_for("va", n), n))


def test_vector_add_small_block():
    check(*run_vector_add(compile_example("vector_add", BLOCK=32), rng_for("va32"), 100))


@pytest.mark.parametrize("r, c, consts", [
    (1, 1, {}),
    (3, 17, {"G": 8}),
    (5, 100, {}),
    (17, 300, {"G": 64, "BR": 8}),
    (2, 7, {"BC": 8, "G": 8}),
    (4, 256, {}),                       # powers of two: no edge tiles
    (3, 100, {"G": 128, "BC": 128}),    # one (partial) group per row
])
def test_dequant_int3(r, c, consts):
    k = compile_example("dequant_int3", **consts)
    check(*run_dequant_int3(k, rng_for("dq", r, c, consts), r, c, dict(k.consts)["G"]))


GEMV_SHAPES = [(1, 1, 1), (3, 100, 300), (2, 17, 129), (1, 3, 64), (4, 256, 512)]   # (M, N, K)


@pytest.mark.parametrize("m, n, k", GEMV_SHAPES)
def test_gemv_w4a16(m, n, k):
    check(*run_gemv_w4a16(compile_example("gemv_w4a16"), rng_for("w4", m, n, k), m, n, k))


def test_gemv_w4a16_small_groups():
    k = compile_example("gemv_w4a16", BN=32, G=32)
    check(*run_gemv_w4a16(k, rng_for("w4g32"), 2, 100, 300))


@pytest.mark.parametrize("m, n, k", GEMV_SHAPES)
def test_gemv_nf4(m, n, k):
    check(*run_gemv_nf4(compile_example("gemv_nf4"), rng_for("nf4", m, n, k), m, n, k))


def test_gemv_nf4_block_sizes():
    k = compile_example("gemv_nf4", BN=16, BK=64)
    check(*run_gemv_nf4(k, rng_for("nf4b"), 3, 40, 200))


@pytest.mark.parametrize("m, n, k", GEMV_SHAPES)
def test_mxfp4_gemv(m, n, k):
    check(*run_mxfp4_gemv(compile_example("mxfp4_gemv"), rng_for("mx", m, n, k), m, n, k))


def test_mxfp4_gemv_block_sizes():
    k = compile_example("mxfp4_gemv", BN=16, BK=32)
    check(*run_mxfp4_gemv(k, rng_for("mxb"), 2, 50, 100))


@pytest.mark.parametrize("m, n, k, consts", [
    (1, 1, 1, {}),
    (3, 100, 300, {}),
    (17, 33, 65, {"BM": 16, "BN": 16, "BK": 16}),
    (100, 3, 17, {"BM": 32, "BN": 8, "BK": 8}),
    (64, 128, 64, {}),                                 # powers of two
])
def test_matmul_f16(m, n, k, consts):
    kern = compile_example("matmul_f16", **consts)
    check(*run_matmul_f16(kern, rng_for("mm", m, n, k, consts), m, n, k))


@pytest.mark.parametrize("m, n", [(1, 1), (3, 100), (2, 300), (17, 5), (4, 128), (2, 256)])
def test_softmax(m, n):
    check(*run_softmax(compile_example("softmax"), rng_for("sm", m, n), m, n))


def test_softmax_extreme_rows():
    """Rows a naive exp would overflow on, a row of the most negative f16 (equal to the padding
    fill), a row with -inf entries, and rows whose max sits in the last, partial chunk."""
    n = 150
    rng = rng_for("sm-extreme")
    x = f16(rng, (6, n), 3.0)
    x[0] += np.float16(60000.0)                 # exp(x) overflows without the max subtraction
    x[1] = np.float16(-65504.0)                 # all equal to the fill value: uniform 1/n
    x[2, ::7] = -np.inf                          # exp(-inf) = 0
    x[3, n - 1] = np.float16(20.0)               # max in the partial chunk
    x[4, :] = np.linspace(-30, 30, n).astype(np.float16)   # the max grows in every chunk
    x[5, 0] = np.float16(11.0)                   # max in the first chunk, rescaling never needed
    y, ref, scale = run_softmax(compile_example("softmax", BN=64), rng, 6, n, x=x)
    check(y, ref, scale)
    np.testing.assert_allclose(y[1].astype(np.float64), 1.0 / n, rtol=2 * U16)
    assert (y[2, ::7] == 0).all()


def test_softmax_rows_sum_to_one():
    y, _, _ = run_softmax(compile_example("softmax"), rng_for("sm-sum"), 5, 300)
    np.testing.assert_allclose(y.astype(np.float64).sum(axis=1), 1.0, atol=300 * U16)


def test_empty_sizes():
    """Zero-length axes: no blocks, or loops that run zero times (C = A @ B with K = 0 is all zeros)."""
    z = np.zeros(0, np.float16)
    launch(compile_example("vector_add"), np.zeros(0, np.float16), np.zeros(0, np.float16), z)
    c = np.full((3, 5), np.nan, np.float16)
    launch(compile_example("matmul_f16"), np.zeros((3, 0), np.float16), np.zeros((0, 5), np.float16), c)
    np.testing.assert_array_equal(c, 0.0)
    launch(compile_example("softmax"), np.zeros((2, 0), np.float16), np.zeros((2, 0), np.float16))


@pytest.mark.numpy_only("compile-time checks: no kernel runs")
def test_requirements_checked_at_compile_time():
    """The assume() lines of the examples reject bad tile sizes when compiling, with the location."""
    with pytest.raises(vm.VMTypeError, match="assumption is false") as e:
        compile_example("dequant_int3", BC=100)
    assert "dequant_int3.vm" in str(e.value)
    with pytest.raises(vm.VMTypeError, match="assumption is false"):
        compile_example("gemv_nf4", BK=96)
    with pytest.raises(vm.VMTypeError, match="assumption is false"):
        compile_example("mxfp4_gemv", BK=48)


# ------------------------------------------------------------------------------------------ printing
ROUND_TRIP = {   # a small case per example, for running the printed kernel too
    "vector_add": (100,), "dequant_int3": (3, 100, 32), "gemv_w4a16": (2, 17, 129),
    "gemv_nf4": (2, 17, 129), "mxfp4_gemv": (2, 17, 129), "matmul_f16": (3, 33, 40), "softmax": (3, 130),
}


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_print_parse_fixed_point(name):
    """print -> parse/lower -> print gives the same text, the re-lowered IR verifies, and the
    printed kernel computes the same bits as the original."""
    k = compile_example(name)
    verify(k)
    text = print_kernel(k)
    k2 = vm.compile_source(text, f"<printed {name}>")
    verify(k2)
    assert print_kernel(k2) == text
    args = ROUND_TRIP[name]
    out1, _, _ = RUNNERS[name](k, rng_for("rt", name), *args)
    out2, _, _ = RUNNERS[name](k2, rng_for("rt", name), *args)
    np.testing.assert_array_equal(out1.view(np.uint16), out2.view(np.uint16))
