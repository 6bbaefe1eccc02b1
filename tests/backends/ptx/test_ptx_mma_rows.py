"""The few-row dot on tensor cores (``vmlang.passes.mma_rows``, ``backends/ptx/mma_rows.py``).

On a CPU machine: the layouts and the k order are checked on their tables, and the whole schedule (slot
pairs -> mma registers -> accumulator slots) is emulated in NumPy with the PTX ISA's m16n8k16 fragment
definitions written out here, on random operands, for every row count and several shapes and pair
distances -- a wrong slot, k order or replicated column shows up without a GPU. The qmatmul GEMV in its
tensor-core form compiles to PTX with ``mma.sync``, 128-bit weight loads, no shared memory and no
barrier, accepted by ptxas for sm_90 and sm_80. On a GPU (``-m gpu``, ``--backend ptx``): a few-row
dot kernel against the NumPy VM at awkward sizes, f16 and bf16.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.passes import DotPlan, pipeline
from vmlang.passes.mma_rows import ROWS, distance_pairs, k_order, pair_distance, rows_layouts, run_order
from ptx_support import ROOT, launch, needs_ptxas, toolchain

rows = importlib.import_module("vmlang.backends.ptx.mma_rows")


SHAPES = [(16, 16, 4), (64, 128, 4), (48, 32, 4), (128, 64, 4), (256, 256, 8), (32, 48, 2)]


def _isa(role, lane, e):
    """mma.m16n8k16 fragments as the PTX ISA tabulates them (row, col) for .f16/.bf16 A, B and .f32 C."""
    g, t = lane >> 2, lane & 3
    if role == "a":
        return g + (8 if e in (2, 3, 6, 7) else 0), 2 * t + (e & 1) + (8 if e >= 4 else 0)
    if role == "b":
        return 2 * t + (e & 1) + (8 if e >= 2 else 0), g
    return g + (8 if e >= 2 else 0), 2 * t + (e & 1)


@pytest.mark.parametrize("k", [16, 32, 48, 64, 128, 256, 512])
@pytest.mark.parametrize("pair", [1, 2, 4, 8, 16])
def test_k_order_is_a_permutation(k, pair):
    off = k_order(k, distance_pairs(k, pair)) if (k // 8) % pair == 0 or pair == 1 else None
    if off is None:
        assert pair_distance(16 // pair, k) == 1          # the pass falls back to neighbours
        return
    assert off.shape == (k // 16, 2, 2)
    assert sorted(off.ravel().tolist()) == list(range(k // 4))
    assert np.all(off[:, :, 1] - off[:, :, 0] == pair)


@pytest.mark.parametrize("k", [16, 64, 128, 256, 512])
@pytest.mark.parametrize("T", ["int3", "uint3", "int5", "int6", "int7", "int4", "int2", "int8", "float6_e3m2"])
@pytest.mark.parametrize("man", [10, 7])
def test_run_order_pairs_what_the_decode_pairs(k, T, man):
    """run_order is a permutation of the run; odd-width ints in runs of whole blocks take
    passes.lanes.run_pairs (the windows' pairs first, each inside one window's two lanes), other widths
    their codes 16 / bits apart, everything else neighbours."""
    from vmlang.passes import lanes
    dt = D.dtype(T)
    pairs = run_order(dt, k, man)
    assert sorted(o for p in pairs for o in p) == list(range(k // 4))
    assert k_order(k, pairs).shape == (k // 16, 2, 2)
    bits = dt.nbits
    if 16 % bits == 0:
        assert pairs == distance_pairs(k, pair_distance(bits, k))
    elif dt.is_int and (k // 4) % lanes.BLOCK == 0 and lanes.block_pairs(bits, man):
        windowed = len(lanes.block_pairs(bits, man))
        for blk in range(k // 4 // lanes.BLOCK):
            for lo, hi in pairs[blk * lanes.BLOCK // 2:][:windowed]:
                assert lanes.window(lo * bits, hi * bits, bits, man) is not None
    else:
        assert pairs == distance_pairs(k, 1)


def test_pair_distance():
    assert [pair_distance(b, 128) for b in (1, 2, 3, 4, 5, 6, 7, 8, 16)] == [16, 8, 1, 4, 1, 1, 1, 2, 1]
    assert pair_distance(2, 32) == 1 and pair_distance(4, 32) == 4 and pair_distance(4, 16) == 1


@pytest.mark.parametrize("m", ROWS)
@pytest.mark.parametrize("n,k,warps", SHAPES)
def test_layouts_cover_their_tiles(m, n, k, warps):
    L = rows_layouts(m, n, k, warps)
    for lay, shape in ((L.a, (m, k)), (L.b, (k, n)), (L.c, (m, n))):
        tbl = lay.table()
        assert lay.tile == shape and np.array_equal(np.unique(tbl), np.arange(int(np.prod(shape))))
    assert L.wn * L.R == n // 16 and L.Q == k // 4 and L.wn <= warps
    assert rows_layouts(3, n, k, warps) is None and rows_layouts(16, n, k, warps) is None
    assert rows_layouts(m, n + 8, k, warps) is None and rows_layouts(m, n, k + 8, warps) is None


def emulate(m, n, k, warps, pairs, a, b, acc):
    """Run the schedule on the lanes' slots with the ISA's fragments; returns out per (thread, slot)."""
    L = rows_layouts(m, n, k, warps)
    steps, chains = rows.schedule(m, n, k, warps, pairs)
    ta, tb, tc = L.a.table(), L.b.table(), L.c.table()
    av = a.ravel(order="F")[ta]                      # (threads, slots): colex tile index
    bv = b.ravel(order="F")[tb]
    out = [acc.ravel(order="F")[tc].copy()] + [np.zeros(tc.shape) for _ in range(chains - 1)]
    for st in steps:
        cur = out[st.chain]
        for w in range(L.wn):
            A, B, Cm = np.full((16, 16), np.nan), np.full((16, 8), np.nan), np.full((16, 8), np.nan)
            for lane in range(32):
                th = 32 * w + lane
                for reg, (lo, hi) in enumerate(st.a):
                    for q, s in enumerate((lo, hi)):
                        r, c = _isa("a", lane, 2 * reg + q)
                        assert np.isnan(A[r, c])
                        A[r, c] = bv[th, s]
                for reg, (lo, hi) in enumerate(st.x):
                    for q, s in enumerate((lo, hi)):
                        r, c = _isa("b", lane, 2 * reg + q)
                        B[r, c] = av[th, s]
                for e in range(4):
                    r, c = _isa("c", lane, e)
                    Cm[r, c] = cur[th, st.c[e]]
            D_ = A @ B + Cm
            for lane in range(32):
                for e in range(4):
                    if st.keep[e]:
                        cur[32 * w + lane, st.c[e]] = D_[_isa("c", lane, e)]
    res = out[0]
    for extra in out[1:]:
        res = res + extra
    return res, tc


@pytest.mark.parametrize("m", ROWS)
@pytest.mark.parametrize("n,k,warps", SHAPES)
@pytest.mark.parametrize("T", ["float16", "int8", "int4", "int2", "int3", "int6"])
def test_schedule_computes_the_dot(m, n, k, warps, T):
    dt = D.dtype(T)
    rng = np.random.default_rng(m * 1000 + n + k + dt.nbits)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    acc = rng.standard_normal((m, n))
    got, tc = emulate(m, n, k, warps, run_order(dt, k, 10), a, b, acc)
    want = (a @ b + acc).ravel(order="F")[tc]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_schedule_shares_x_and_pairs_codes():
    steps, chains = rows.schedule(1, 64, 128, 4, distance_pairs(128, 4))
    assert chains == 2 and len(steps) == 8
    assert steps[0].a == ((0, 4), (32, 36), (1, 5), (33, 37)) and steps[0].x == ((0, 4), (1, 5))
    assert steps[0].keep == (True, False, True, False) and steps[0].c == (0, 0, 1, 1)


# ------------------------------------------------------------------------------------------ PTX
def qmatmul_ptx(T: str, S=D.float16, arch="sm_90", **kw):
    consts = dict(T=D.dtype(T), S=S, X=D.float16, G=128, DOT=1, EXACT=1, BM=1, BN=64, BK=128, W=4)
    consts.update(kw)
    k = vm.load(ROOT / "stdlib" / "kernels" / "qmatmul.vm")
    ir = k._lower(dict(k.ir(**consts).consts), (("N", 128), ("K", 128)))
    _, module, _ = launch.lower_program(ir, None, arch)
    return ir, toolchain.to_ptx(str(module), arch)


@needs_ptxas
@pytest.mark.parametrize("T", ["int4", "int2", "int3", "int8", "uint4", "float4_e2m1", "float8_e4m3fn"])
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_qmatmul_gemv_on_mma(T, arch):
    kw = {"HAS_Z": 1} if T == "uint4" else {}
    ir, ptx = qmatmul_ptx(T, arch=arch, **kw)
    plans = [p for p in pipeline(ir).facts.of_type(DotPlan).values()]
    assert len(plans) == 1 and plans[0].rows and plans[0].mma
    assert ptx.count("mma.sync.aligned.m16n8k16") == 8            # 8 k steps, one row tile per warp
    assert "ld.global.v4.b32" in ptx or "ld.global.v2.b32" in ptx
    assert "bar.sync" not in ptx and "st.shared" not in ptx
    if T in ("int4", "int2", "int8"):
        assert "lop3.b32" in ptx or "prmt.b32" in ptx                 # pairs decoded into f16x2 registers
    toolchain.ptxas_check(ptx, arch)


@needs_ptxas
@pytest.mark.parametrize("T", ["int2", "int3", "uint4"])
def test_qmatmul_gemv_two_slabs_per_iteration(T):
    """U = 2: each iteration reads the slabs k0 and k0 + BK (a scale each) -- twice the mma of U = 1 in the
    one loop, every code and x load vectorized, still no shared memory."""
    kw = {"HAS_Z": 1} if T == "uint4" else {}
    ir, ptx = qmatmul_ptx(T, U=2, **kw)
    plans = [p for p in pipeline(ir).facts.of_type(DotPlan).values()]
    assert len(plans) == 2 and all(p.rows and p.mma for p in plans)
    assert ptx.count("mma.sync.aligned.m16n8k16") == 16
    assert "bar.sync" not in ptx and "st.shared" not in ptx
    one = qmatmul_ptx(T, **kw)[1]
    assert ptx.count("ld.global.v2.b32") + ptx.count("ld.global.v4.b32") == 2 * (
        one.count("ld.global.v2.b32") + one.count("ld.global.v4.b32"))
    for arch in ("sm_90", "sm_80"):
        toolchain.ptxas_check(ptx if arch == "sm_90" else qmatmul_ptx(T, arch=arch, U=2, **kw)[1], arch)


@needs_ptxas
@pytest.mark.parametrize("T,R", [("int2", 4), ("int2", 8), ("int3", 4), ("uint4", 4), ("int8", 2)])
def test_qmatmul_gemv_groups_as_rows(T, R):
    """R groups per step as the rows of the few-row dot (qmatmul.vm ``R``): 32 weight rows x R groups are
    32 * R dot rows, i.e. R row tiles of 16 for each of the 2 warps, 8 k steps each; a lane's code loads stay
    64-bit runs (one per dot row it holds: 2 per row tile), a lane loads the scale of each dot row it holds
    (layout inference gives the scales the layout of the dot's result, no conversion), and nothing goes
    through shared memory -- the diagonal's sum after the loop is shuffles."""
    kw = {"HAS_Z": 1} if T == "uint4" else {}
    ir, ptx = qmatmul_ptx(T, R=R, BN=32, W=2, **kw)
    plans = [p for p in pipeline(ir).facts.of_type(DotPlan).values()]
    assert len(plans) == 1 and plans[0].rows and plans[0].mma
    assert ptx.count("mma.sync.aligned.m16n8k16") == 8 * R
    assert "bar.sync" not in ptx and "st.shared" not in ptx and "shfl.sync" in ptx
    assert ".maxntid 64" in ptx                               # the block of 2 warps, for ptxas's budget
    bits = D.dtype(T).nbits
    codes = "ld.global.v2.b32" if bits == 2 else None        # 32 int2 per lane and dot row: 64 bits
    if codes:
        assert ptx.count(codes) == 2 * R
    notes = [n.text for n in pipeline(ir).report if n.pass_name in ("vectorize", "layout")]
    assert [n for n in notes if n.startswith(f"load s[") and f"b16 x {2 * R} per thread" in n], notes
    assert not [n for n in notes if "conversion inserted" in n], notes
    for arch in ("sm_90", "sm_80"):
        toolchain.ptxas_check(ptx if arch == "sm_90" else qmatmul_ptx(T, arch=arch, R=R, BN=32, W=2, **kw)[1], arch)


# ------------------------------------------------------------------------------------------ GPU
ROWS_DOT = """
kernel rows_dot<BM = 1, BN = 64, BK = 32, X = f16>(a: X[M, K] global, b: X[N, K] global, y: f32[M, N] global)
    grid(cdiv(N, BN), cdiv(M, BM)) warps(4) {
    m0 = block.y * BM;
    n0 = block.x * BN;
    acc = zeros(f32, [BM, BN]);
    for k0 in range(0, K, BK) {
        at = load(a[m0 : +BM, k0 : +BK]);
        bt = load(b[n0 : +BN, k0 : +BK]);
        acc = dot(at, trans(bt), acc);
    }
    store(y[m0 : +BM, n0 : +BN], acc);
}
"""


@pytest.mark.parametrize("X", ["f16", "bf16"])
@pytest.mark.parametrize("BM", ROWS)
@pytest.mark.parametrize("M,N,K", [(1, 64, 32), (3, 100, 48), (17, 33, 100), (8, 130, 17)])
def test_run_rows_dot(X, BM, M, N, K, backend):
    """A few-row dot kernel at awkward sizes (masked edges) against the VM (``--backend ptx`` on a GPU)."""
    import ml_dtypes
    from support import run_kernel
    if backend not in ("numpy", "ptx"):
        pytest.skip("the few-row mma is the ptx backend's")
    xd = {"f16": D.float16, "bf16": D.bfloat16}[X]
    kern = vm.compile_source(ROWS_DOT, "rows_dot.vm", {"BM": BM, "X": xd})
    assert any(p.rows for p in pipeline(kern).facts.of_type(DotPlan).values())
    rng = np.random.default_rng(BM + M + N + K)
    npdt = np.float16 if X == "f16" else ml_dtypes.bfloat16
    a = (rng.standard_normal((M, K)) + 0.1).astype(npdt)
    b = (rng.standard_normal((N, K)) + 0.1).astype(npdt)
    # tensor cores add in f32 in their own order (and rounding): the tolerance is relative to sum |a * b|
    scale = np.abs(a.astype(np.float32)) @ np.abs(b.astype(np.float32)).T
    run_kernel(backend, kern, a, b, np.zeros((M, N), np.float32), scale=scale)
