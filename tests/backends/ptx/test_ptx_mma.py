"""Tensor-core ``dot`` (mma.sync + ldmatrix) and ``cp.async`` tile loads of the PTX backend.

On a CPU machine: the fragment maps are checked against the PTX ISA's fragment definitions, the whole
ldmatrix -> mma -> accumulator-slot chain is emulated in NumPy on the real layout tables (so a wrong slot,
address or swizzle shows up without a GPU), and matmul_f16 (f16 and bf16) compiles to PTX with
``mma.sync``, ``ldmatrix`` and ``cp.async`` that ptxas accepts for sm_90 and sm_80; shapes that are not
multiples of 16 x 8 x 16 fall back to the FMA dot. On a GPU (``-m gpu``-marked tests, run with
``--backend ptx``): matmul at awkward sizes against the NumPy VM.
"""
from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.ir.layout import MemLayout, Swizzle
from vmlang.ir.layout.core import Layout
from vmlang.ir.layout.tv import MMA_M16N8K16_A, MMA_M16N8K16_B, MMA_M16N8K16_C
from vmlang.passes.tvmaps import mma_layouts
from ptx_support import ROOT, launch, needs_ptxas, toolchain

mma = importlib.import_module("vmlang.backends.ptx.mma")
async_copy = importlib.import_module("vmlang.backends.ptx.async_copy")
exchange = importlib.import_module("vmlang.backends.ptx.exchange")


SRC = (ROOT / "examples" / "matmul_f16.vm").read_text()


def source(dtype="f16", assume=("M", "N", "K")) -> str:
    """matmul_f16 with operands of ``dtype`` and ``assume(X % 16 == 0)`` for the names in ``assume`` (what
    the runtime adds for sizes divisible by 16)."""
    s = SRC
    if dtype != "f16":
        s = s.replace("a: f16[M, K]", f"a: {dtype}[M, K]").replace("b: f16[K, N]", f"b: {dtype}[K, N]")
    facts = "".join(f"assume({x} % 16 == 0); " for x in assume)
    return s.replace("    acc = zeros(f32, [BM, BN]);", f"    {facts}\n    acc = zeros(f32, [BM, BN]);")


def ptx_of(src: str, consts=None, arch="sm_90", wgmma=False) -> str:
    """The PTX of ``src``; on sm_90 with mma.sync unless ``wgmma`` (this file tests mma.sync; warpgroup
    MMA, sm_90's default for shared operands, has test_ptx_wgmma.py)."""
    k = vm.compile_source(src, "matmul_f16.vm", consts or {})
    _, module, _ = launch.lower_program(k, {"wgmma": wgmma}, arch)
    return toolchain.to_ptx(str(module), arch)


# ------------------------------------------------------------------------------------------ fragments
def _spec(role, lane, e):
    """The PTX ISA fragment tables (mma.m16n8k16, .f16/.bf16 A and B, .f32 C), written as the ISA does."""
    group, tig = lane >> 2, lane % 4
    if role == "a":    # a0..a7: row groupID (+8 for a2,a3,a6,a7); col tig*2 + (i & 1) (+8 for i >= 4)
        return group + (8 if e in (2, 3, 6, 7) else 0), tig * 2 + (e & 1) + (8 if e >= 4 else 0)
    if role == "b":    # b0..b3: row tig*2 + (i & 1) (+8 for i >= 2); col groupID
        return tig * 2 + (e & 1) + (8 if e >= 2 else 0), group
    return group + (8 if e >= 2 else 0), tig * 2 + (e & 1)


@pytest.mark.parametrize("role", ["a", "b", "c"])
def test_fragment_formulas_match_the_isa(role):
    for lane in range(32):
        for e in range(mma.FRAG[role][2]):
            r, c = _spec(role, lane, e)
            assert mma.element_of(role, lane, e) == (r, c)
            assert tuple(int(x) for x in mma.lane_element(role, r, c)) == (lane, e)


@pytest.mark.parametrize("role, lay", [("a", MMA_M16N8K16_A), ("b", MMA_M16N8K16_B), ("c", MMA_M16N8K16_C)])
def test_single_warp_fragment_layouts(role, lay):
    """The IR's one-warp mma layouts hold exactly the ISA fragments; the slot of element e is found."""
    fr, fc, ne = mma.FRAG[role]
    m = mma.fragment_slots(lay, role, (fr, fc))
    assert m is not None and list(m) == [((0, 0),)]
    tbl = lay.table()
    for lane in range(32):
        for e, v in enumerate(m[((0, 0),)]):
            r, c = _spec(role, lane, e)
            assert tbl[lane, v] == r + fr * c


def test_fragment_slots_rejects_a_non_fragment_layout():
    from vmlang.passes.tvmaps import default_layout
    assert mma.fragment_slots(default_layout((64, 64), 32, 128), "c", (64, 64)) is None


def _emulate(m, n, k, warps, mem_a, mem_b):
    """NumPy emulation of what try_lower emits for shared a and b: per warp and C fragment, ldmatrix (ISA
    semantics, through the byte tables) and mma; returns (got, want) per C slot of every thread."""
    rng = np.random.default_rng(0)
    A, B = rng.integers(-4, 5, (m, k)).astype(np.float64), rng.integers(-4, 5, (k, n)).astype(np.float64)
    mm = mma_layouts(m, n, k, warps)
    cmap = mma.fragment_slots(mm.c, "c", (m, n))
    assert cmap is not None and mma._c_groups_cover(cmap, mm.c.values)

    def mem_of(X, mem):
        rows, cols = X.shape
        byte = exchange.shared_byte_table(mem, 2, rows * cols)
        img = {}
        for idx, bt in enumerate(byte):
            img[int(bt)] = X[idx % rows, idx // rows]          # colex index -> element (r, c)
        return img, byte.reshape(cols, rows).T

    imgA, addrA = mem_of(A, mem_a)
    imgB, addrB = mem_of(B, mem_b)

    def ldsm(img, row_addr, n_mat, trans):
        """row_addr[lane] (byte); returns regs[lane][j] = (lo, hi) values."""
        out = []
        for lane in range(32):
            regs = []
            for j in range(n_mat):
                if trans:
                    vals = [img[row_addr[8 * j + 2 * (lane % 4) + h] + 2 * (lane // 4)] for h in (0, 1)]
                else:
                    base = row_addr[8 * j + lane // 4]
                    vals = [img[base + 2 * (2 * (lane % 4)) + 2 * h] for h in (0, 1)]
                regs.append(vals)
            out.append(regs)
        return out

    T = mm.c.threads
    got = np.zeros((T, mm.c.values))
    for w in range(T // 32):
        for key, sl in cmap.items():
            mt, nt = key[w]
            D_ = np.zeros((16, 8))
            for kt in range(k // 16):
                ra = [addrA[mt * 16 + lane % 16, kt * 16 + 8 * (lane // 16)] for lane in range(32)]
                fa = ldsm(imgA, ra, 4, False)
                rb = [addrB[kt * 16 + lane % 16, nt * 8] for lane in range(32)]
                fb = ldsm(imgB, rb, 2, True)
                Af, Bf = np.zeros((16, 16)), np.zeros((16, 8))
                for lane in range(32):
                    for e in range(8):
                        Af[_spec("a", lane, e)] = fa[lane][e // 2][e % 2]
                    for e in range(4):
                        Bf[_spec("b", lane, e)] = fb[lane][e // 2][e % 2]
                D_ += Af @ Bf
            for lane in range(32):
                for e, v in enumerate(sl):
                    got[32 * w + lane, v] = D_[_spec("c", lane, e)]
    C = A @ B
    tbl = mm.c.table()
    want = C[tbl % m, tbl // m]
    return got, want


@pytest.mark.parametrize("m, n, k, warps", [(64, 64, 32, 4), (128, 128, 32, 4), (32, 32, 48, 4), (16, 8, 16, 1),
                                            (64, 32, 64, 8), (32, 24, 16, 4)])
def test_emulated_mma_from_swizzled_shared_tiles(m, n, k, warps):
    from vmlang.passes.layout_dot import _choose_shared
    from vmlang.passes.tvmaps import default_layout
    mm = mma_layouts(m, n, k, warps)
    mems = []
    for shape, reader in (((m, k), mm.a), ((k, n), mm.b)):
        ch = _choose_shared(default_layout(shape, 16, warps * 32), reader, 16)
        mems.append(ch.mem if ch is not None else MemLayout(Layout(shape, (shape[1], 1)), 16))
    got, want = _emulate(m, n, k, warps, *mems)
    np.testing.assert_array_equal(got, want)


def test_ldmatrix_row_check_on_layouts():
    from vmlang.backends.ptx.core import SharedTile
    ok = MemLayout(Layout((64, 32), (32, 1)), 16, Swizzle(2, 4, 3))
    assert mma._row_segments_ok(SharedTile(0, ok, D.float16, (64, 32), 2), 64, 32)
    odd_pitch = MemLayout(Layout((64, 32), (33, 1)), 16)            # rows 66 bytes apart: not 16-aligned
    assert not mma._row_segments_ok(SharedTile(0, odd_pitch, D.float16, (64, 32), 2), 64, 32)
    small_chunks = MemLayout(Layout((64, 32), (32, 1)), 16, Swizzle(2, 3, 3))    # moves 8-byte chunks
    assert not mma._row_segments_ok(SharedTile(0, small_chunks, D.float16, (64, 32), 2), 64, 32)
    assert not mma._row_segments_ok(SharedTile(0, ok, D.bfloat16, (64, 32), 4), 64, 32)  # 4-byte staging


def test_cp_async_chunk_check_on_layouts():
    from vmlang.passes.tvmaps import default_layout
    lay = default_layout((64, 32), 16, 128)
    assert async_copy.chunk_ok(lay, (64, 32), MemLayout(Layout((64, 32), (32, 1)), 16, Swizzle(2, 4, 3)), 2, 8, 16)
    assert not async_copy.chunk_ok(lay, (64, 32), MemLayout(Layout((64, 32), (32, 1)), 16, Swizzle(2, 3, 3)), 2, 8, 16)
    assert not async_copy.chunk_ok(lay, (64, 32), MemLayout(Layout((64, 32), (1, 64)), 16), 2, 8, 16)  # column-major


# ------------------------------------------------------------------------------------------ PTX
def _counts(ptx):
    return {w: ptx.count(w) for w in ("mma.sync.aligned.m16n8k16", "ldmatrix", "cp.async.cg", "@p ld.global")}


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("facts", [True, False], ids=["div16", "nofacts"])
@needs_ptxas
def test_matmul_uses_tensor_cores(dtype, facts, arch):
    ptx = ptx_of(source(dtype, ("M", "N", "K") if facts else ()), arch=arch)
    toolchain.ptxas_check(ptx, arch)
    c = _counts(ptx)
    assert c["mma.sync.aligned.m16n8k16"] == 16, c          # 2 x 4 tiles per warp, 2 k steps
    assert f".f32.{dtype}.{dtype}.f32" in ptx
    if facts:      # 128-bit plans: the tiles arrive by cp.async, fragments by ldmatrix
        # 4 copies per thread per stage, issued at S - 1 prologue sites and 1 in the loop (pipeline.py)
        assert c["cp.async.cg"] == 4 * 3 and "cp.async.wait_group 1" in ptx and c["@p ld.global"] == 0, c
        assert c["ldmatrix"] == 8 and "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in ptx, c
    else:   # 16-bit loads through registers, then ldmatrix from the staging (bf16 as its 16-bit code too)
        assert c["cp.async.cg"] == 0 and c["ldmatrix"] == 8, c


@pytest.mark.parametrize("consts, n_mma", [(dict(BM=17, BN=17, BK=17), 0), (dict(BM=16, BN=16, BK=8), 0),
                                           (dict(BM=32, BN=24, BK=16), 2), (dict(BM=16, BN=8, BK=16), 1),
                                           (dict(BM=32, BN=32, BK=48), 6), (dict(BM=128, BN=128, BK=32), 64)])
@needs_ptxas
def test_awkward_tile_shapes(consts, n_mma):
    """Not multiples of 16 x 8 x 16: the FMA dot, still valid PTX. 32 x 24 splits over 3 of the 4 warps
    (the fourth runs the same code on a valid address and its results are unused): 2 mma per warp."""
    ptx = ptx_of(source(), consts)
    toolchain.ptxas_check(ptx, "sm_90")
    assert ptx.count("mma.sync") == n_mma


@needs_ptxas
def test_register_operands_feed_mma_directly():
    s = source().replace("load(a[m0 : +BM, k0 : +BK]);", "load(a[m0 : +BM, k0 : +BK]) * 1.0;")
    s = s.replace("load(b[k0 : +BK, n0 : +BN]);", "load(b[k0 : +BK, n0 : +BN]) * 1.0;")
    ptx = ptx_of(s)
    toolchain.ptxas_check(ptx, "sm_90")
    assert ptx.count("mma.sync") == 16 and "ldmatrix" not in ptx


# ------------------------------------------------------------------------------------------ GPU
SIZES = (1, 3, 17, 100, 128, 200)
SHAPES = sorted({(m, n, k) for m in SIZES for n in SIZES for k in SIZES
                 if len({m, n, k}) <= 2 or (m, n, k) in ((200, 100, 17), (17, 128, 200), (128, 3, 100))})


@functools.lru_cache(maxsize=None)
def _kernel(dtype: str, facts: tuple, consts: tuple):
    return vm.compile_source(source(dtype, facts), "matmul_f16.vm", dict(consts))


#: the tiles that run on warpgroup MMA when it is on (64-row multiples, 4 warps per warpgroup)
WGMMA_TILES = ((), (("BM", 128), ("BN", 128), ("BK", 64), ("W", 8)), (("BM", 64), ("BN", 48), ("BK", 16)),
               (("BM", 64), ("BN", 32), ("BK", 16), ("W", 8)))


@functools.lru_cache(maxsize=None)
def _compiled(kern, wgmma: bool):
    """The ptx compilation of ``kern`` (one per kernel and engine: the shapes share it)."""
    return vm.backend("ptx").compile(kern, {"wgmma": wgmma})


@pytest.mark.gpu
@pytest.mark.parametrize("consts", [(), (("BM", 32), ("BN", 32), ("BK", 48)), (("BM", 32), ("BN", 24), ("BK", 16)),
                                    (("BM", 17), ("BN", 17), ("BK", 17)),
                                    (("BM", 128), ("BN", 128), ("BK", 64), ("W", 8)), (("BM", 64), ("BN", 48), ("BK", 16)),
                                    (("BM", 64), ("BN", 32), ("BK", 16), ("W", 8))],
                         ids=["64x64x32", "32x32x48", "32x24x16-3warps", "17", "128x128x64x8", "64x48x16", "64x32x16x8"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("engine", ["wgmma", "mma.sync"])
def test_matmul_on_gpu_matches_vm(dtype, consts, engine, request):
    """Random non-zero inputs at sizes 1..200 (masked edges in every axis), with the divisibility facts the
    runtime would add, on the ptx backend against the NumPy VM; the PTX must use the tensor cores where it
    should: warpgroup MMA on sm_90 for the tiles of :data:`WGMMA_TILES` unless ``wgmma`` is off, else
    mma.sync."""
    import ml_dtypes
    import torch
    from support import compiled_backends, float_tolerance
    if "ptx" not in compiled_backends(request.config.getoption("--backend")):
        pytest.skip("the ptx backend is not selected / not loadable (run with --backend ptx on a GPU)")
    npdt = np.float16 if dtype == "f16" else ml_dtypes.bfloat16
    rng = np.random.default_rng(1)
    seen = set()
    for (M, N, K) in SHAPES:
        facts = tuple(x for x, v in (("M", M), ("N", N), ("K", K)) if v % 16 == 0)
        kern = _kernel(dtype, facts, consts)
        ck = _compiled(kern, engine == "wgmma")
        if (facts, consts) not in seen:
            seen.add((facts, consts))
            want_tc = consts != (("BM", 17), ("BN", 17), ("BK", 17))
            on_wg = "wgmma.mma_async" in ck.ptx
            want_wg = engine == "wgmma" and consts in WGMMA_TILES and torch.cuda.get_device_capability()[0] == 9
            assert on_wg == want_wg, (facts, consts)
            assert ("mma.sync" in ck.ptx) == (want_tc and not on_wg), (facts, consts)
            if want_tc and facts == ("M", "N", "K"):
                assert "cp.async" in ck.ptx and ("ldmatrix" in ck.ptx or on_wg)
        sign = np.where(rng.random((M, K)) < 0.5, -1.0, 1.0)
        a = (sign * rng.uniform(0.25, 2.0, (M, K))).astype(npdt)
        b = (np.where(rng.random((K, N)) < 0.5, -1.0, 1.0) * rng.uniform(0.25, 2.0, (K, N))).astype(npdt)
        c = np.full((M, N), np.nan, dtype=np.float16)
        ref = np.full((M, N), np.nan, dtype=np.float16)
        ck(a, b, c)
        vm.backend("numpy").compile(kern)(a.copy(), b.copy(), ref)
        af, bf = a.astype(np.float64), b.astype(np.float64)
        scale = np.abs(af) @ np.abs(bf)
        exact = af @ bf
        got, vmv = c.astype(np.float64), ref.astype(np.float64)
        tol = float_tolerance(D.float16, scale, K)
        assert np.isfinite(got).all(), f"{dtype} {M}x{N}x{K} {consts}: non-finite outputs (unwritten?)"
        bad = np.abs(got - vmv) > tol
        assert not bad.any(), (f"{dtype} {M}x{N}x{K} {consts} facts {facts}: {int(bad.sum())} elements off; "
                               f"first {np.argwhere(bad)[0]}: got {got[bad][0]}, vm {vmv[bad][0]}, "
                               f"exact {exact[bad][0]}")
