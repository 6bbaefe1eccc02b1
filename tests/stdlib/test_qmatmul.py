"""``vmlang.stdlib.qmatmul``: every scheme x width, both paths, edges, inputs, errors, the table placement.

Each case builds a :class:`QuantizedWeight` directly from seeded random codes (finite values only), scales
(f16 / bf16 / f32, or e8m0 codes for mxfp4) and zero points, and random activations (never zero,
``|x|`` in [1/4, 1]), runs ``qmatmul`` on every backend (the ``backend`` fixture of tests/conftest.py: the
NumPy VM, then Triton -- under TRITON_INTERPRET=1 without a GPU) and compares with NumPy in float64::

    ref = x.astype(float64) @ qw.dequantize().astype(float64).T

**Tolerance rule.** ``qmatmul`` decodes each weight exactly as ``dequantize()`` does (f32), multiplies by x
and sums the K products in float32 in some order, then rounds once to x's dtype ``X`` (f16 or bf16); the
dot path first rounds each decoded weight to ``X`` (the products of two ``X`` values are exact in f32).
With ``S = |x| @ |W|.T`` (the sum of the magnitudes of the K terms) and ``u`` the unit roundoff of ``X``
(f16 ``2**-11``, bf16 ``2**-8``)::

    |got - ref| <= float_tolerance(float32, S, terms=K)    # f32 products and sum: (K+2) 2**-24 S + ...
                   + u * (|ref| + S)                        # final rounding + weights rounded to X (dot)
                   + (K + 1) * sub(X)                       # X's subnormal spacing (|x| <= 1)

The f32 part is the project's rule (tests/support.py) applied to the float32 accumulation; the project's
rule applied to the f16 output, ``(K + 2) * 2**-11 * S``, would also hold but is too loose here: it would
not notice one wrong weight among K ~ 100 (an error of about ``S / K``), which this bound does (f16).
"""
from __future__ import annotations

import importlib
import pathlib
import re

import ml_dtypes
import numpy as np
import pytest
from support import float_tolerance
from vmlang.ir import dtypes as D
from vmlang.ir.dtypes import all_dtypes
from vmlang.stdlib.kernels import path as kernel_path
from vmlang.stdlib.quant.weight import QuantizedWeight

import vmlang as vm

torch = pytest.importorskip("torch")
QM = importlib.import_module("vmlang.stdlib.matmul")     # the module behind vmlang.stdlib.qmatmul

UNIT = {D.float16: 2.0 ** -11, D.bfloat16: 2.0 ** -8}
SUBNORMAL = {D.float16: 2.0 ** -24, D.bfloat16: 2.0 ** -133}


# ------------------------------------------------------------------------------------------ building cases
def _cases():
    """(scheme, dtype, group size or None for per-channel): every width of every scheme."""
    out = [("int", vm.dtype(f"int{b}"), 16) for b in range(2, 9)]
    out += [("uint", vm.dtype(f"uint{b}"), 16) for b in range(1, 9)]
    out += [("float", d, 16) for d in all_dtypes()
            if d.is_float and not d.is_codebook and d.nbits <= 8 and d != D.float8_e8m0]
    out += [("float", D.float8_e4m3, None),            # fp8 per-channel: group_size == K
            ("nf4", D.nf4, 64), ("mxfp4", D.float4_e2m1, 32)]
    return out


CASES = _cases()
CASE_IDS = [f"{s}-{d.name}" + ("-perchannel" if g is None else "") for s, d, g in CASES]
# awkward sizes: N, K not multiples of any tile; group sizes that do not divide K (12 and 48 are not
# powers of two either, 96 is more than a slab of the GEMV path's BK = 128 / 4)
SHAPES = [(3, 31), (17, 100), (33, 130)]
GROUPS = [12, 16, 48, 96, 32]


def _finite_codes(dt) -> np.ndarray:
    return np.flatnonzero(np.isfinite(dt.decode(np.arange(2 ** dt.nbits))))


def make_weight(rng, scheme, dt, N, K, group, scale_dt=None) -> QuantizedWeight:
    group = K if group is None else min(group, K)
    G = -(-K // group)
    codes = vm.Tensor.from_codes(rng.choice(_finite_codes(dt), (N, K)), dt)
    zeros = None
    if scheme == "mxfp4":
        scales = vm.Tensor.from_codes(rng.integers(120, 129, (N, G)), D.float8_e8m0)   # 2**-7 .. 2**1
    else:
        # |value * scale| up to about 2: scales of 1/max|value| (f32 where f16 would flush them)
        top = float(np.max(np.abs(dt.decode(_finite_codes(dt)))))
        if scheme == "uint":
            zeros = rng.integers(0, 2 ** dt.nbits, (N, G)).astype(np.uint8)
        s = rng.uniform(0.5, 2.0, (N, G)) * rng.choice([-1.0, 1.0], (N, G)) / top
        scale_dt = scale_dt or ("float32" if top > 2.0 ** 12 else rng.choice(["float16", "bfloat16", "float32"]))
        scales = s.astype(ml_dtypes.bfloat16 if scale_dt == "bfloat16" else scale_dt)
    return QuantizedWeight(codes, scales, zeros, scheme, group)


def make_x(rng, M, K, kind: str):
    """Random activations of ``kind`` ("np-f16", "np-bf16", "torch-f16", "torch-bf16"), never zero."""
    v = rng.uniform(0.25, 1.0, (M, K)) * rng.choice([-1.0, 1.0], (M, K))
    lib, dt = kind.split("-")
    if lib == "np":
        return v.astype(np.float16 if dt == "f16" else ml_dtypes.bfloat16)
    return torch.from_numpy(v).to(torch.float16 if dt == "f16" else torch.bfloat16)


def host64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a).astype(np.float64)


def x_dtype(x):
    return D.bfloat16 if "bfloat16" in str(x.dtype) else D.float16


def check(x, qw, y, what=""):
    """``y`` against the float64 reference by the rule of the module docstring."""
    X = x_dtype(x)
    assert type(y) is type(x) and str(y.dtype) == str(x.dtype), f"{what}: {type(y)} {y.dtype} for {x.dtype}"
    xs, W = host64(x), qw.dequantize().astype(np.float64)
    K = W.shape[1]
    assert tuple(y.shape) == xs.shape[:-1] + (W.shape[0],)
    ref = xs @ W.T
    S = np.abs(xs) @ np.abs(W).T
    tol = float_tolerance(D.float32, S, K) + UNIT[X] * (np.abs(ref) + S) + (K + 1) * SUBNORMAL[X]
    got = host64(y)
    err = np.abs(got - ref)
    bad = ~(err <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} outside the tolerance; first at {list(i)}: "
                             f"got {got[i]!r}, want {ref[i]!r}, tolerance {tol[i]:.3g} (S = {S[i]:.3g})")
    assert np.abs(ref).max() > 0


class Spy:
    """Records the compile-time values of every launch of the qmatmul kernel."""

    def __init__(self, monkeypatch):
        self.calls = []
        real = QM._launch

        def launch(*args, **consts):
            self.calls.append(consts)
            return real(*args, **consts)
        monkeypatch.setattr(QM, "_launch", launch)


# ------------------------------------------------------------------------------------------ every scheme x width
def _path(c) -> str:
    """Which path a launch took: the tiled dot (``BM >= 16``) or a GEMV -- the FMA one (``DOT = 0``) or, on
    ptx, the tensor-core one (the exact dot with 1..8 rows, ``QM.mma_gemv``)."""
    if c["BM"] >= 16:
        assert c["DOT"] == 1
        return "dot"
    assert c["DOT"] == 0 or c["EXACT"] == 1
    return "gemv"


@pytest.mark.parametrize("path", ["gemv", "dot"])
@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_every_scheme_and_width(case, path, backend, monkeypatch):
    scheme, dt, group = CASES[case]
    rng = np.random.default_rng(1000 + 2 * case + (path == "dot"))
    N, K = SHAPES[case % len(SHAPES)]
    if group is not None and scheme not in ("nf4", "mxfp4"):
        group = GROUPS[case % len(GROUPS)]
    qw = make_weight(rng, scheme, dt, N, K, group)
    M = (1, 3)[case % 2] if path == "gemv" else (17, 20)[case % 2]     # the automatic choice of path
    kind = ["np-f16", "torch-bf16", "torch-f16", "np-bf16"][case % 4]
    x = make_x(rng, M, K, kind)
    spy = Spy(monkeypatch)
    y = QM.qmatmul(x, qw, backend=backend)
    assert [_path(c) for c in spy.calls] == [path]
    check(x, qw, y, f"{qw} {kind} M={M} {backend}")


# ------------------------------------------------------------------------------------------ edges and paths
EDGE = [("int", D.int4, 32), ("uint", D.uint3, 48), ("nf4", D.nf4, 64), ("float", D.float8_e5m2, 24)]


@pytest.mark.parametrize("scheme,dt,group", EDGE, ids=[f"{s}-{d.name}-g{g}" for s, d, g in EDGE])
def test_partial_tiles_in_every_dimension(scheme, dt, group, backend, monkeypatch):
    """Sizes just past the tiles: N = 70, K = 130, M = 33 or 20 (tiles of 16 to 256), so every dimension
    ends in a masked partial tile; both paths, forced and automatic."""
    rng = np.random.default_rng(7)
    qw = make_weight(rng, scheme, dt, 70, 130, group)
    spy = Spy(monkeypatch)
    for M, path in [(33, None), (2, None), (3, "dot"), (20, "gemv")]:
        x = make_x(rng, M, 130, "np-f16")
        check(x, qw, QM.qmatmul(x, qw, backend=backend, path=path), f"{qw} M={M} path={path}")
    assert [_path(c) for c in spy.calls] == ["dot", "gemv", "dot", "gemv"]
    for c, M in zip(spy.calls, (33, 2, 3, 20)):       # a partial last tile in N and K, and in M where M > BM
        assert 70 % c["BN"] and 130 % c["BK"] and (M <= c["BM"] or M % c["BM"]), c


@pytest.mark.parametrize("group,K", [(8, 200), (16, 70), (128, 300), (64, 9)])
def test_gemv_partial_sums_run_inside_groups_and_slabs(group, K, backend, monkeypatch):
    """The GEMV keeps one partial sum per run of C codes (qmatmul.vm's C): a run never spans two groups or
    slabs, so C is capped by the group size and BK (here groups of 8 and 16 below the tables' C, and K = 9
    below it); the sums match the reference whichever C results."""
    rng = np.random.default_rng(11 + group)
    qw = make_weight(rng, "int", D.int4, 37, K, group)
    spy = Spy(monkeypatch)
    for M in (1, 3):
        x = make_x(rng, M, K, "np-f16")
        check(x, qw, QM.qmatmul(x, qw, backend=backend, path="gemv"), f"{qw} M={M} {backend}")
    for c in spy.calls:
        if c["DOT"] == 0:
            assert c["C"] <= min(group, c["BK"]) and c["BK"] % c["C"] == 0 and group % c["C"] == 0, c
    assert any(c["DOT"] == 0 for c in spy.calls)


def test_dispatch_threshold(monkeypatch):
    """GEMV below DOT_MIN_M rows, dot from there on; leading axes of x count as rows."""
    rng = np.random.default_rng(3)
    qw = make_weight(rng, "int", D.int4, 8, 32, 16)
    spy = Spy(monkeypatch)
    M = QM.DOT_MIN_M
    for shape in [(1, 32), (M - 1, 32), (M, 32), (2, M // 2, 32)]:
        x = make_x(rng, shape[0], 32, "np-f16").reshape(shape) if len(shape) == 2 else \
            make_x(rng, M, 32, "np-f16").reshape(shape)
        y = QM.qmatmul(x, qw, backend="numpy")
        assert y.shape == shape[:-1] + (8,)
        check(x, qw, y, f"shape {shape}")
    assert [_path(c) for c in spy.calls] == ["gemv", "gemv", "dot", "dot"]


def test_group_layouts(backend):
    """Per-channel with K not a power of two, odd groups (one scale per code after the re-layout), a group
    of K - 1 (two groups, the second one code), group 1, and a power-of-two group larger than a slab."""
    rng = np.random.default_rng(11)
    for scheme, dt, K, group in [("float", D.float8_e4m3, 100, 100), ("uint", D.uint4, 31, 7),
                                 ("int", D.int8, 100, 99), ("int", D.int3, 40, 1), ("uint", D.uint2, 300, 256)]:
        qw = make_weight(rng, scheme, dt, 5, K, group, scale_dt="float16")
        for M in (2, 16):
            x = make_x(rng, M, K, "np-f16")
            check(x, qw, QM.qmatmul(x, qw, backend=backend), f"{qw} M={M}")


def test_default_backend_and_devices(monkeypatch):
    """backend=None is the runtime's default (VMLANG_BACKEND, else triton on a GPU, else the VM); the
    result lives where x lives, with weights given as NumPy or torch data."""
    from vmlang.api import default_backend
    rng = np.random.default_rng(5)
    qw = make_weight(rng, "nf4", D.nf4, 9, 70, 64, scale_dt="float16")   # (QuantizedWeight.to cannot move
    # ml_dtypes bfloat16 scales to torch yet)
    x = make_x(rng, 4, 70, "torch-f16")
    y = QM.qmatmul(x, qw)
    assert isinstance(y, torch.Tensor) and y.device == x.device and y.dtype == torch.float16
    check(x, qw, y, f"default backend {default_backend()}")
    qt = qw.to("cpu")                                        # torch data inside the weight
    assert isinstance(qt.codes.data, torch.Tensor)
    y2 = QM.qmatmul(x.numpy(), qt, backend="numpy")
    assert isinstance(y2, np.ndarray)
    np.testing.assert_array_equal(y2, y.numpy())
    monkeypatch.setenv("VMLANG_BACKEND", "numpy")
    np.testing.assert_array_equal(QM.qmatmul(x, qw).numpy(), y2)


@pytest.mark.gpu
def test_cuda_tensors_stay_on_the_gpu():
    rng = np.random.default_rng(9)
    qw = make_weight(rng, "mxfp4", D.float4_e2m1, 70, 130, 32).to("cuda")
    for M in (3, 40):
        x = make_x(rng, M, 130, "torch-bf16").cuda()
        y = QM.qmatmul(x, qw)
        assert y.is_cuda and y.dtype == torch.bfloat16
        check(x, qw, y, f"cuda M={M}")


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input():
    rng = np.random.default_rng(2)
    qw = make_weight(rng, "int", D.int4, 8, 32, 16)
    with pytest.raises(vm.ArgumentError, match=r"x has K=31 columns .* the weight has K=32"):
        QM.qmatmul(make_x(rng, 2, 31, "np-f16"), qw)
    with pytest.raises(vm.ArgumentError, match="x must be float16 or bfloat16, got float32"):
        QM.qmatmul(np.ones((2, 32), np.float32), qw)
    with pytest.raises(vm.ArgumentError, match="x must be float16 or bfloat16, got int32"):
        QM.qmatmul(np.ones((2, 32), np.int32), qw)
    with pytest.raises(vm.ArgumentError, match="x must be float16 or bfloat16, got float32"):
        QM.qmatmul(torch.ones((2, 32)), qw)
    with pytest.raises(vm.ArgumentError, match="x must be a NumPy array or a torch tensor, got list"):
        QM.qmatmul([[1.0] * 32], qw)
    with pytest.raises(vm.ArgumentError, match=r"x must be \[M, K\]"):
        QM.qmatmul(np.ones(32, np.float16), qw)
    with pytest.raises(vm.ArgumentError, match="qw must be a QuantizedWeight"):
        QM.qmatmul(np.ones((2, 32), np.float16), qw.dequantize())
    with pytest.raises(vm.ArgumentError, match="path must be"):
        QM.qmatmul(np.ones((2, 32), np.float16), qw, path="mma")
    bad = QuantizedWeight(qw.codes, qw.scales, None, "float", 16)         # int4 codes under "float"
    with pytest.raises(vm.ArgumentError, match="scheme 'float' cannot have codes of int4"):
        QM.qmatmul(np.ones((2, 32), np.float16), bad)


def test_empty_sizes():
    rng = np.random.default_rng(4)
    qw = make_weight(rng, "int", D.int4, 8, 32, 16)
    assert QM.qmatmul(np.ones((0, 32), np.float16), qw).shape == (0, 8)


# ------------------------------------------------------------------------------------------ table placement
def _triton_source(**consts) -> str:
    pytest.importorskip("triton")
    from vmlang.backends.triton import generate_source
    return generate_source(vm.compile_file(kernel_path("qmatmul"), consts))


@pytest.mark.parametrize("dot", [0, 1])
def test_codebook_table_stays_in_registers(dot):
    """Item 5: the nf4 value table is never read from global memory. In the generated Triton code the
    lookup is decoded in registers (a select chain over the 16 entries, as literals); the only loads are
    of x, the packed codes and the scales; the kernel source explains the choice."""
    src = _triton_source(T=D.nf4, LUT=1, G=64, DOT=dot, BM=16 if dot else 1)
    assert "# lookup in codebook(nf4, float32): decoded in registers" in src
    helper = src[src.index("def vm_cb_decode_nf4"):]
    helper = helper[:helper.index("return v")]
    assert "tl.load" not in helper
    for e in D.nf4.entries:
        assert repr(float(np.float32(e))) in helper, e
    loads = re.findall(r"tl\.load\((\w+)_ptr", src)
    assert sorted(loads) == ["s", "w", "x"], loads
    params = re.search(r"def qmatmul\((.*?)\):", src, re.DOTALL).group(1)
    assert re.findall(r"(\w+)_ptr,", params) == ["x", "w", "s", "z", "y"]   # no table argument
    text = pathlib.Path(kernel_path("qmatmul")).read_text()
    assert "lives in registers" in text and "never re-read from global memory" in text


# ------------------------------------------------------------------------------------------ long sweep
@pytest.mark.fuzz_long
@pytest.mark.parametrize("seed", range(4))
def test_random_sweep(seed, backend):
    """Random shapes (M up to 70, N up to 150, K up to 300) and group sizes for every case (--fuzz-long)."""
    rng = np.random.default_rng(seed)
    for scheme, dt, group in CASES:
        N, K, M = int(rng.integers(1, 150)), int(rng.integers(1, 300)), int(rng.integers(1, 70))
        g = None if group is None else int(rng.integers(1, K + 1)) if scheme in ("int", "uint", "float") \
            else group
        qw = make_weight(rng, scheme, dt, N, K, g)
        x = make_x(rng, M, K, ["np-f16", "torch-bf16", "torch-f16", "np-bf16"][int(rng.integers(4))])
        check(x, qw, QM.qmatmul(x, qw, backend=backend), f"{qw} M={M} seed={seed}")


def test_the_package_exports_the_function_whatever_was_imported_first():
    import vmlang.stdlib as stdlib
    importlib.import_module("vmlang.stdlib.matmul")
    from vmlang.stdlib import qmatmul as f
    assert callable(f) and f is QM.qmatmul and stdlib.qmatmul is QM.qmatmul


def test_weight_with_bfloat16_numpy_scales_moves_to_torch_and_back():
    torch = pytest.importorskip("torch")
    qw = QuantizedWeight(vm.Tensor.from_values([[1, -2, 3]], vm.int3),
                         np.array([[0.75]], ml_dtypes.bfloat16), None, "int", 3)
    t = qw.to("cpu")
    assert t.scales.dtype == torch.bfloat16 and float(t.scales[0, 0]) == 0.75
    np.testing.assert_array_equal(t.dequantize(), qw.dequantize())
    np.testing.assert_array_equal(t.to("numpy").dequantize(), qw.dequantize())


# ------------------------------------------------------------------------------------------ backend choice
def test_backend_choice_follows_the_measurements(monkeypatch):
    """backend=None: VMLANG_BACKEND wins; data off a CUDA GPU takes the runtime's default; on a GPU the
    GEMV path takes ptx (every width, 8-bit ints included since session 6's run), the dot path takes the
    default (see choose_backend)."""
    from vmlang.api import cuda_available, default_backend
    x = np.zeros((1, 8), np.float16)
    for T in (D.int4, D.int8, D.nf4):
        for dot in (False, True):
            assert QM.choose_backend(x, T, dot) == default_backend()
    if cuda_available() and QM._ptx_loads():
        xg = torch.zeros((1, 8), dtype=torch.float16, device="cuda")
        monkeypatch.delenv("VMLANG_BACKEND", raising=False)
        assert QM.choose_backend(xg, D.int4, False) == "ptx"
        assert QM.choose_backend(xg, D.nf4, False) == "ptx"
        assert QM.choose_backend(xg, D.int8, False) == "ptx"
        assert QM.choose_backend(xg, D.int4, True) == default_backend()
        monkeypatch.setenv("VMLANG_BACKEND", "numpy")
        assert QM.choose_backend(xg, D.int4, False) == "numpy"


def test_ptx_tensor_core_gemv_route(backend, monkeypatch):
    """A width listed in ``PTX_MMA_GEMV_TILES`` (int 2-6 and 8 bits by default: measured faster than the FMA
    GEMV) runs its M = 1 GEMV on ptx as the exact dot with one row (the few-row mma), and agrees with the
    reference."""
    if backend != "ptx":
        pytest.skip("the tensor-core GEMV is the ptx backend's")
    monkeypatch.setattr(QM, "PTX_MMA_GEMV_TILES", {2: (64, 128, 4), 4: (32, 128, 2, 2), 3: (32, 128, 1, 1, 4),
                                                   5: (64, 128, 2), 7: (16, 128, 1, 2), 6: (16, 128, 2, 1, 8),
                                                   8: (32, 128, 4, 1, 2)})
    rng = np.random.default_rng(77)
    # odd widths: codes paired from windows of their words (passes/lanes.py), straddling codes included
    # U = 2 (int4, int7) and groups as the dot's rows (R = 4, 8, 2: int3, int6, int8; the last step past K)
    for dt, N, K in ((D.int2, 100, 384), (D.int4, 17, 256), (D.int3, 40, 384), (D.int5, 17, 256), (D.int7, 3, 128),
                     (D.int6, 100, 1152), (D.int3, 1, 128), (D.int8, 33, 640)):
        qw = make_weight(rng, "int", dt, N, K, 128)
        x = make_x(rng, 1, K, "torch-f16")
        spy = Spy(monkeypatch)
        y = QM.qmatmul(x, qw, backend="ptx")
        c = spy.calls[-1]
        assert (c["DOT"], c["EXACT"], c["BM"], c["BK"]) == (1, 1, 1, 128), c
        assert c["KS"] == QM._splits(1, N, K, 1, c["BN"], 128 * c["U"] * c["R"])   # U, R: slabs per step
        check(x, qw, y, f"{qw} mma GEMV")


def test_ptx_gemv_with_l2_prefetch(backend, monkeypatch):
    """``VMLANG_L2_PREFETCH=w,s`` (backends/ptx/prefetch.py): the tensor-core GEMV prefetches each step's
    next codes and scales to L2 and still agrees with the reference -- edges in N and K, the last step past
    K, a one-step K."""
    if backend != "ptx":
        pytest.skip("l2_prefetch is the ptx backend's")
    from vmlang.stdlib.kernels import kernel
    monkeypatch.setenv("VMLANG_L2_PREFETCH", "w,s")
    rng = np.random.default_rng(78)
    for dt, N, K in ((D.int2, 100, 1000), (D.int2, 17, 2048), (D.int4, 33, 1152), (D.int3, 5, 128)):
        qw = make_weight(rng, "int", dt, N, K, 128)
        x = make_x(rng, 1, K, "torch-f16")
        check(x, qw, QM.qmatmul(x, qw, backend="ptx"), f"{qw} mma GEMV, L2 prefetch")
    ptxs = [c.ptx for c in kernel("qmatmul")._compiled.values() if hasattr(c, "ptx")]
    assert any("prefetch.global.L2" in t for t in ptxs)


def test_tensor_core_gemv_stages_the_codes_where_the_table_says(monkeypatch):
    """A ``PTX_MMA_GEMV_TILES`` entry's sixth element is the stage count of its codes' staging: the call then
    compiles with ``stage_loads="w"`` and that ``pipeline_stages`` (the default table stages int2 over 2
    buffers, as measured); an entry without it (or 0) passes no options. Decided before the launch, so
    the launch is recorded here, not run."""
    calls = []
    monkeypatch.setattr(QM, "_launch", lambda *a, **kw: calls.append(kw))
    rng = np.random.default_rng(80)
    x = make_x(rng, 1, 1024, "np-f16")
    for dt in (D.int2, D.int3):
        QM.qmatmul(x, make_weight(rng, "int", dt, 64, 1024, 128), backend="ptx")
    assert calls[0]["options"] == {"stage_loads": "w", "pipeline_stages": QM.PTX_MMA_GEMV_TILES[2][5]} == \
        {"stage_loads": "w", "pipeline_stages": 2}
    assert calls[0]["R"] == 8 and "STAGES" not in calls[0] and calls[1]["options"] is None
    monkeypatch.setitem(QM.PTX_MMA_GEMV_TILES, 2, (16, 128, 2, 1, 8, 0))
    monkeypatch.setitem(QM.PTX_MMA_GEMV_TILES, 3, (8, 128, 1, 1, 8, 3))
    for dt in (D.int2, D.int3):
        QM.qmatmul(x, make_weight(rng, "int", dt, 64, 1024, 128), backend="ptx")
    assert calls[2]["options"] is None and calls[3]["options"] == {"stage_loads": "w", "pipeline_stages": 3}
    QM.qmatmul(make_x(rng, 3, 1024, "np-f16"), make_weight(rng, "int", D.int2, 64, 1024, 128), backend="ptx")
    assert calls[4]["options"] is None                  # M = 3: the FMA GEMV, loaded straight to registers


def test_ptx_gemv_with_staged_loads(backend, monkeypatch):
    """``VMLANG_STAGE_LOADS=w`` (backends/ptx/staging.py): the GEMVs' codes are copied ahead into each
    thread's own shared-memory slots and read back from there, and still agree with the reference -- the
    tensor-core GEMV (groups as rows, edges in N and K, the last step past K, a one-step K) and the FMA GEMV
    (its tensor-core table emptied; int8, nf4 and float4_e2m1 codes with masked edges among them)."""
    if backend != "ptx":
        pytest.skip("stage_loads is the ptx backend's")
    from vmlang.stdlib.kernels import kernel
    monkeypatch.setenv("VMLANG_STAGE_LOADS", "w")
    rng = np.random.default_rng(79)
    cases = (("int", D.int2, 100, 1000), ("int", D.int2, 17, 2048), ("int", D.int4, 33, 1152),
             ("int", D.int3, 5, 128), ("int", D.int6, 3, 3000), ("int", D.int8, 33, 1000),
             ("nf4", D.nf4, 17, 1000), ("float", D.float4_e2m1, 5, 3000))
    for mma in (True, False):
        if not mma:
            monkeypatch.setattr(QM, "PTX_MMA_GEMV_TILES", {})
        for scheme, dt, N, K in cases:
            qw = make_weight(rng, scheme, dt, N, K, 128)
            x = make_x(rng, 1, K, "torch-f16")
            check(x, qw, QM.qmatmul(x, qw, backend="ptx"), f"{qw} {'mma' if mma else 'fma'} GEMV, staged codes")
    reports = [c.report for c in kernel("qmatmul")._compiled.values() if hasattr(c, "ptx")]
    assert any("staged in each thread's own slots" in r for r in reports)


@pytest.mark.parametrize("path", ["gemv", "dot"])
def test_split_k_adds_up_the_splits(path, backend, monkeypatch):
    """KS > 1 (split-K): block z sums the slabs z, z + KS, ... into its own f32 partial, the caller adds the
    partials and rounds once. With small integer activations and power-of-two scales every partial sum is
    exact in f32, so the result is the exact product rounded once -- bit for bit on the VM -- whatever the
    split; uneven splits (5 slabs over 3 splits, more splits than slabs) and edges (N = 17, M = 3) included."""
    rng = np.random.default_rng(91)
    N, K, G = 17, 5 * 32, 32
    qw = make_weight(rng, "int", D.int4, N, K, G, scale_dt="float16")
    qw = QuantizedWeight(qw.codes, (2.0 ** rng.integers(-3, 3, (N, K // G))).astype(np.float16), None, "int", G)
    M = 1 if path == "gemv" else 3
    x = rng.integers(-3, 4, (M, K)).astype(np.float16)
    x[x == 0] = 1
    want = (x.astype(np.float64) @ qw.dequantize().astype(np.float64).T).astype(np.float16)
    real = QM._tiles
    # the GEMV path is the FMA GEMV here: on ptx an int4 GEMV otherwise takes the tensor-core route, whose
    # own tiles (and splits) test_groups_as_rows_of_the_gemv_dot covers
    monkeypatch.setattr(QM, "PTX_MMA_GEMV_TILES", {})
    # the exact dot (path "dot": int4 in f16) also reads two slabs per iteration (U = 2; 5 slabs: the last
    # step's second slab is past K and adds 0)
    for ks, u in ((1, 1), (2, 1), (3, 1), (8, 1)) + (((1, 2), (2, 2), (3, 2)) if path == "dot" else ()):
        def tiles(*a, ks=ks, u=u, **kw):
            t = real(*a, **kw)
            t.update(BK=32, KS=ks, U=u)
            return t
        monkeypatch.setattr(QM, "_tiles", tiles)
        spy = Spy(monkeypatch)
        y = QM.qmatmul(x, qw, backend=backend, path=path)
        assert (spy.calls[-1]["KS"], spy.calls[-1].get("U", 1)) == (ks, u)   # KS 8: three splits add 0
        if backend == "numpy":
            np.testing.assert_array_equal(y, want)
        else:
            check(x, qw, y, f"split-K {ks} {path} {backend}")


@pytest.mark.parametrize("fmt,dt", [("int", D.int4), ("uint", D.uint4)])
def test_groups_as_rows_of_the_gemv_dot(fmt, dt, backend, monkeypatch):
    """R > 1 (the exact GEMV, one row of x): R consecutive groups of each weight row are the rows of one dot
    against x's R group slices, the diagonal kept and scaled per group. With small integer activations and
    power-of-two scales every sum is exact in f32, so the result is the exact product rounded once -- bit for
    bit on the VM -- for R = 2, 4, 8, split or not, with a last step reaching past K (5 groups) and N = 17;
    zero points (uint4) are subtracted per group before the dot."""
    rng = np.random.default_rng(92)
    N, K, G = 17, 5 * 32, 32
    qw = make_weight(rng, fmt, dt, N, K, G, scale_dt="float16")
    qw = QuantizedWeight(qw.codes, (2.0 ** rng.integers(-3, 3, (N, K // G))).astype(np.float16), qw.zeros,
                         fmt, G)
    x = rng.integers(-3, 4, (1, K)).astype(np.float16)
    x[x == 0] = 1
    want = (x.astype(np.float64) @ qw.dequantize().astype(np.float64).T).astype(np.float16)
    real = QM._tiles
    for ks, r, bn, w in ((1, 2, 16, 1), (1, 4, 32, 2), (2, 4, 16, 1), (1, 8, 16, 2), (3, 2, 64, 4)):
        def tiles(*a, ks=ks, r=r, bn=bn, w=w, **kw):
            t = real(*a, **kw)
            t.update(BM=1, BN=bn, BK=32, W=w, KS=ks, R=r)
            return t
        monkeypatch.setattr(QM, "_tiles", tiles)
        spy = Spy(monkeypatch)
        y = QM.qmatmul(x, qw, backend=backend, path="dot")
        c = spy.calls[-1]
        assert (c["EXACT"], c["BM"], c["KS"], c["R"]) == (1, 1, ks, r), c
        if backend == "numpy":
            np.testing.assert_array_equal(y, want)
        else:
            check(x, qw, y, f"groups as rows R {r} KS {ks} {backend}")


def test_dummy_zero_points_are_made_once_per_device():
    """A weight without zero points passes a 1 x 1 dummy the kernel never reads: made once per torch device
    (a fill kernel per call would add its time to every GEMV), a fresh array for NumPy."""
    qw = QuantizedWeight(vm.Tensor.from_values(np.ones((4, 8), np.int64), D.int4), np.ones((4, 1), np.float16),
                         None, "int", 8)
    like = torch.zeros((1, 8), dtype=torch.float16)
    (z1, h1), (z2, h2) = QM._zeros(qw, like), QM._zeros(qw, like)
    assert z1 is z2 and (h1, h2) == (0, 0) and z1.dtype == torch.uint8 and tuple(z1.shape) == (1, 1)
    zn, hn = QM._zeros(qw, np.zeros((1, 8), np.float16))
    assert isinstance(zn, np.ndarray) and zn.shape == (1, 1) and hn == 0


def test_split_k_only_where_blocks_are_few():
    """The ptx GEMV splits K until PTX_GEMV_MIN_BLOCKS blocks (powers of two, each split keeping
    PTX_GEMV_MIN_SLABS slabs);
    the other backends and the dot path never split."""
    t = QM._tiles(1, 28672, 8192, False, "ptx", D.int4)
    assert t["KS"] == 1 and -(-28672 // t["BN"]) >= QM.PTX_GEMV_MIN_BLOCKS
    t = QM._tiles(1, 4096, 32768, False, "ptx", D.int4)
    assert t["KS"] > 1 and -(-4096 // t["BN"]) * t["KS"] >= QM.PTX_GEMV_MIN_BLOCKS
    assert QM._tiles(1, 4096, 4096, False, "ptx", D.int4)["KS"] == 1          # 8 slabs: too short to split
    bk = QM.PTX_GEMV_TILES[4][1]
    assert QM._tiles(1, 16, 4 * QM.PTX_GEMV_MIN_SLABS * bk, False, "ptx", D.int4)["KS"] == 4
    assert QM._tiles(1, 16, 100, False, "ptx", D.int4)["KS"] == 1
    for args in ((1, 16, 4096, False, "triton", D.int4), (16, 16, 4096, True, "ptx", D.int4)):
        assert QM._tiles(*args).get("KS", 1) == 1
    for M, N, K, BM, BN, BK in ((1, 1, 1, 1, 16, 16), (3, 100, 1000, 4, 16, 64), (1, 4096, 8192, 1, 64, 128)):
        ks = QM._splits(M, N, K, BM, BN, BK)
        assert ks & (ks - 1) == 0 and (ks == 1 or ks * QM.PTX_GEMV_MIN_SLABS <= -(-K // BK))


def test_ptx_gemv_tiles_by_code_width():
    """The ptx GEMV tiles come from the measured table; other backends and the dot path keep theirs."""
    t = QM._tiles(1, 28672, 8192, False, "ptx", D.int4)
    assert (t["BN"], t["BK"], t["W"], t["C"]) == QM.PTX_GEMV_TILES[4] == (16, 512, 4, 32)
    for T in (D.nf4, D.float4_e2m1):
        t = QM._tiles(1, 4096, 4096, False, "ptx", T)
        assert (t["BN"], t["BK"], t["W"], t["C"]) == QM.PTX_GEMV_TILES_FLOAT
    t = QM._tiles(1, 4096, 4096, False, "ptx", D.float8_e4m3)
    assert (t["BN"], t["BK"], t["W"], t["C"]) == QM.PTX_GEMV_TILES[8]
    assert QM._tiles(1, 70, 130, False, "ptx", D.int3)["BK"] == 256          # no wider than K needs
    assert QM._tiles(1, 4096, 4096, False, "triton", D.int4)["BN"] == 16
    assert QM._tiles(32, 4096, 4096, True, "ptx", D.int4) == QM._tiles(32, 4096, 4096, True, "triton", D.int4)


# ------------------------------------------------------------------------------------------ the exact dot path
def test_exact_in_decides_on_the_values():
    """EXACT = 1 needs every value of T (minus every zero point) to be exact in X, on the values."""
    assert QM.exact_in(D.int4, D.float16) and QM.exact_in(D.int8, D.bfloat16)
    assert QM.exact_in(D.uint8, D.bfloat16, 1)              # -255 .. 255: 8 significant bits
    assert QM.exact_in(D.float8_e4m3, D.float16) and QM.exact_in(D.float6_e3m2, D.bfloat16)
    assert not QM.exact_in(D.nf4, D.float16)                 # the nf4 table is not f16 values
    assert not QM.exact_in(D.float8_e4m3, D.float16, 1)      # 448 - 1 needs more bits than f16 has


@pytest.mark.parametrize("scheme,dt", [("int", D.int4), ("uint", D.uint4), ("float", D.float8_e4m3)])
def test_exact_dot_path_never_rounds_a_weight(scheme, dt, backend, monkeypatch):
    """The dot path with EXACT = 1 multiplies the codes' values and scales each slab's sum: with small
    integer activations and f16 scales every sum is exact in f32, so y is the exact result rounded once to
    f16 -- bit for bit on the VM. The same weights with EXACT = 0 (scaled weights rounded to f16 first)
    give other bits somewhere, so the check tells the two apart."""
    rng = np.random.default_rng(5)
    N, K = 24, 64
    qw = make_weight(rng, scheme, dt, N, K, 32, scale_dt="float16")
    x = rng.integers(-3, 4, (16, K)).astype(np.float16)
    x[x == 0] = 1
    spy = Spy(monkeypatch)
    y = QM.qmatmul(x, qw, backend=backend, path="dot")
    assert spy.calls[0]["EXACT"] == 1 and spy.calls[0]["BK"] <= 32
    want = (x.astype(np.float64) @ qw.dequantize().astype(np.float64).T).astype(np.float16)
    if backend == "numpy":
        np.testing.assert_array_equal(y, want)
    else:
        check(x, qw, y, f"{qw} exact dot {backend}")
    c = dict(spy.calls[0], EXACT=0)
    y0 = np.empty_like(y)
    s, _ = QM._scales(qw)
    z, has_z = QM._zeros(qw, x)
    G, s, z = QM._group_layout(K, 32, s, z, has_z)
    QM._launch(x, qw.codes, s, z, y0, backend, **c)
    check(x, qw, y0, f"{qw} rounded dot {backend}")
    if backend == "numpy":
        assert np.any(y0 != want)
