"""Warpgroup MMA (``wgmma.mma_async``, sm_90a) for ``dot``: the layouts layout inference gives such a dot
(:mod:`vmlang.passes.wgmma`), the backend's checks of them (:mod:`vmlang.backends.ptx.wgmma`) and the PTX.

On a CPU machine (the accumulator layout against the ISA's fragment is tests/passes/test_passes_wgmma.py):
the canonical shared layouts against the ISA's swizzle-atom definition written out independently (an element's address computed the way the hardware walks a descriptor), and matmul_f16
compiles to sm_90a PTX that ptxas accepts. On a GPU the matmul tests of test_ptx_mma.py run both engines
against the NumPy VM (``test_matmul_on_gpu_matches_vm[wgmma-...]``).
"""
from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.ir.layout import Layout, MemLayout, Swizzle
from vmlang.passes import DotPlan, pipeline
from vmlang.passes.wgmma import canonical_shared, wgmma_layouts
from ptx_support import ROOT, launch, needs_ptxas, toolchain

W = importlib.import_module("vmlang.backends.ptx.wgmma")
core = importlib.import_module("vmlang.backends.ptx.core")

SRC = (ROOT / "examples" / "matmul_f16.vm").read_text()


def kernel(consts, dtype="f16", facts=True):
    s = SRC if dtype == "f16" else SRC.replace("a: f16[M, K]", f"a: {dtype}[M, K]").replace("b: f16[K, N]", f"b: {dtype}[K, N]")
    if facts:
        s = s.replace("    acc = zeros(f32, [BM, BN]);", "    assume(M % 16 == 0); assume(N % 16 == 0); assume(K % 16 == 0);\n"
                                                  "    acc = zeros(f32, [BM, BN]);")
    return vm.compile_source(s, "matmul_f16.vm", dict(consts))


def ptx_of(consts, arch="sm_90", options=None, dtype="f16", facts=True):
    _, module, lw = launch.lower_program(kernel(consts, dtype, facts), options, arch)
    return toolchain.to_ptx(str(module), arch), lw


# ------------------------------------------------------------------------------------------ layouts
def _hardware_address(role, desc, r, c):
    """The byte a descriptor ``(start, lbo, sbo, W)`` reads for element (r, c) of the instruction's block,
    from the ISA's canonical layouts in units of 16-byte chunks ``T`` (8 halves): K-major
    ``((8, m), (T, 2k)) : ((W/16 chunks, SBO), (1 half, 1 chunk))``; MN-major
    ``((T, W/16, m), (8, k)) : ((1 half, 1 chunk, LBO), (W/16 chunks, SBO))``, then the swizzle of mode W
    on the absolute address (chunk bits 4.. xor row bits 7..)."""
    start, lbo, sbo, w = desc
    if role == "a":      # r: m, c: k
        addr = start + (r % 8) * w + (r // 8) * sbo + (c // 8) * 16 + (c % 8) * 2
    else:                # r: k, c: n
        per = w // 16
        addr = start + (c % 8) * 2 + (c // 8 % per) * 16 + (c // 8 // per) * lbo + (r % 8) * w + (r // 8) * sbo
    b = {128: 3, 64: 2, 32: 1}[w]
    return addr ^ ((addr >> 7) & ((1 << b) - 1)) << 4


@pytest.mark.parametrize("shape, role, blocks", [
    ((128, 32), "a", [(r, k, 64, 16) for r in (0, 64) for k in (0, 16)]),
    ((64, 64), "a", [(0, k, 64, 16) for k in (0, 16, 32, 48)]),
    ((64, 16), "a", [(0, 0, 64, 16)]),
    ((32, 128), "b", [(k, 0, 16, 128) for k in (0, 16)]),
    ((64, 256), "b", [(k, n, 16, 128) for k in (0, 16, 32, 48) for n in (0, 128)]),
    ((16, 48), "b", [(0, 0, 16, 48)]),
    ((32, 64), "b", [(k, 0, 16, 64) for k in (0, 16)]),
])
def test_canonical_layouts_read_back_by_descriptor(shape, role, blocks):
    """The tile laid out by canonical_shared (at a 1024-byte aligned base) holds element (r, c) exactly
    where the hardware reads it through the descriptor operand_plan derives, for every block."""
    mem = canonical_shared(shape, 16)
    st = core.SharedTile(0, mem, D.float16, shape, 2)
    op = W.operand_plan(st, role, blocks)
    assert op is not None
    base = 3 * 1024                                       # any multiple of 1024
    R, C = shape
    from vmlang.backends.ptx.exchange import shared_byte_table
    byte = np.asarray(shared_byte_table(mem, 2, R * C)).reshape(C, R).T + base
    for r0, c0, nr, nc in blocks:
        desc = (base + op.starts[(r0, c0)], op.lbo, op.sbo, op.mode)
        for r in range(nr):
            for c in range(nc):
                assert _hardware_address(role, desc, r, c) == byte[r0 + r, c0 + c], (r0, c0, r, c)


def test_operand_plan_worked_examples_and_rejections():
    a = core.SharedTile(0, canonical_shared((128, 32), 16), D.float16, (128, 32), 2)
    op = W.operand_plan(a, "a", [(64, 16, 64, 16)])
    assert (op.mode, op.sbo, op.starts) == (64, 512, {(64, 16): 64 * 64 + 32})     # the module docstring's
    b = core.SharedTile(0, canonical_shared((32, 128), 16), D.float16, (32, 128), 2)
    op = W.operand_plan(b, "b", [(16, 0, 16, 128)])
    assert (op.mode, op.lbo, op.sbo, op.starts) == (128, 4096, 1024, {(16, 0): 2048})
    # what mma.sync's ldmatrix reads well is not canonical: 256-byte rows with Sw<3,4,4>
    ld = MemLayout(Layout((32, 128), (128, 1)), 16, Swizzle(3, 4, 4))
    assert W.operand_plan(core.SharedTile(0, ld, D.float16, (32, 128), 2), "b", [(0, 0, 16, 128)]) is None
    plain = MemLayout(Layout((128, 32), (32, 1)), 16)                               # no swizzle
    assert W.operand_plan(core.SharedTile(0, plain, D.float16, (128, 32), 2), "a", [(0, 0, 64, 16)]) is None
    # a b block that starts inside an atom, an a block whose 32 bytes cross the end of an atom row
    assert W.operand_plan(b, "b", [(0, 8, 16, 64)]) is None
    a32 = core.SharedTile(0, canonical_shared((64, 16), 16), D.float16, (64, 16), 2)
    assert W.operand_plan(a32, "a", [(0, 8, 64, 8)]) is not None
    assert W.operand_plan(a32, "a", [(0, 8, 64, 16)]) is None                       # past the tile


# ------------------------------------------------------------------------------------------ PTX
@pytest.mark.parametrize("consts, n, per_iter", [({}, 64, 2), ({"BM": 128, "BN": 128, "BK": 32}, 128, 4),
                                                 ({"BM": 128, "BN": 128, "BK": 64, "W": 8}, 128, 4),
                                                 ({"BM": 128, "BN": 256, "BK": 32, "W": 8}, 256, 2),
                                                 ({"BM": 64, "BN": 48, "BK": 16}, 48, 1),
                                                 ({"BM": 64, "BN": 32, "BK": 16, "W": 8}, 16, 1)])
@pytest.mark.parametrize("facts", [True, False], ids=["div16", "nofacts"])
@needs_ptxas
def test_matmul_ptx_on_wgmma(consts, n, per_iter, facts):
    ptx, lw = ptx_of(consts, facts=facts)
    assert re.search(r"^\.target sm_90a", ptx, re.M) and lw.wgmma_dots == 1
    toolchain.ptxas_check(ptx, "sm_90")                   # assembled for sm_90a (toolchain.specific_arch)
    assert ptx.count(f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16") == per_iter
    assert "mma.sync" not in ptx and "ldmatrix" not in ptx
    for x in ("wgmma.fence.sync.aligned;", "wgmma.commit_group.sync.aligned;", "wgmma.wait_group.sync.aligned 0;"):
        assert ptx.count(x) == 1, x
    assert ptx.count("fence.proxy.async.shared::cta; bar.sync 0;") == ptx.count("bar.sync 0;")
    assert re.search(r"\.extern \.shared \.align 1024 \.b8 vm_smem\[\]", ptx)
    if facts:
        assert "cp.async.cg.shared.global" in ptx and "cp.async.wait_group 1" in ptx


@needs_ptxas
def test_bf16_and_the_other_targets():
    for facts in (True, False):      # without facts bf16 goes through registers, stored as its 16-bit code
        ptx, _ = ptx_of({"BM": 128, "BN": 128, "BK": 32}, dtype="bf16", facts=facts)
        assert ptx.count("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16") == 4
        assert ("st.shared.b16" in ptx) == (not facts) and "st.shared.b32" not in ptx
        toolchain.ptxas_check(ptx, "sm_90")
    for arch, opts in (("sm_80", None), ("sm_90", {"wgmma": False})):
        ptx, lw = ptx_of({"BM": 128, "BN": 128, "BK": 32}, arch, opts)
        assert "wgmma" not in ptx and "fence.proxy" not in ptx and ptx.count("mma.sync") == 64 and not lw.wgmma
        assert re.search(rf"^\.target {arch}$", ptx, re.M)
        toolchain.ptxas_check(ptx, arch)


@needs_ptxas
def test_a_dot_that_cannot_take_wgmma_is_lowered_again_without_its_fences(monkeypatch):
    """If the backend's checks refuse every wgmma dot, the kernel is lowered again as a plain sm_90 kernel
    on mma.sync (the same layouts): no proxy fences, no sm_90a."""
    monkeypatch.setattr(W, "plan", lambda lw, i: None)
    ptx, lw = ptx_of({"BM": 128, "BN": 128, "BK": 32})
    assert not lw.wgmma and "fence.proxy" not in ptx and "wgmma" not in ptx and ptx.count("mma.sync") > 0
    assert re.search(r"^\.target sm_90$", ptx, re.M)
    toolchain.ptxas_check(ptx, "sm_90")


@needs_ptxas
def test_stage_buffers_are_1024_byte_aligned():
    """b = f16[16, 48] is 1536 bytes: its stage buffers (and a's after them) are rounded to 1024 bytes,
    which the swizzle on absolute addresses needs; the report says so through the stage size."""
    k = kernel({"BM": 64, "BN": 48, "BK": 16})
    program, _, lw = launch.lower_program(k, None, "sm_90")
    notes = " ".join(t for _, t in lw.pipeline_notes)
    assert "3 stages of 4096 bytes" in notes, notes        # a: 2048 + b: 1536 -> 2048, per stage
    assert lw.tile_align == 1024


@needs_ptxas
def test_random_tiles_the_pass_plans_are_the_ones_the_backend_takes():
    """Random matmul tiles on sm_90 (hypothesis): whenever layout inference plans a dot for wgmma, the
    backend's table checks accept it (no fallback), the PTX has one instruction per warpgroup block and k
    step, and ptxas accepts it; otherwise the dot is on mma.sync and the kernel is a plain sm_90 one."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=8, deadline=None, derandomize=True)
    @given(st.sampled_from([64, 128, 192]), st.integers(1, 32).map(lambda x: 8 * x), st.sampled_from([16, 32, 64]),
           st.sampled_from([4, 8]), st.sampled_from(["f16", "bf16"]))
    def check(BM, BN, BK, Wn, dt):
        consts = {"BM": BM, "BN": BN, "BK": BK, "W": Wn}
        ptx, lw = ptx_of(consts, dtype=dt)
        planned = [d.wgmma for d in pipeline(kernel(consts, dt), {"arch": "sm_90"}).facts.of_type(DotPlan).values()]
        wl = wgmma_layouts(BM, BN, BK, Wn)
        if wl is not None and not (canonical_shared((BK, BN), 16, wl.n) and canonical_shared((BM, BK), 16)):
            wl = None
        # operands under 1 KiB stay in registers (placement's dot_shared_min_bytes): no wgmma for them
        assert bool(planned[0]) == (wl is not None and min(BM, BN) * BK * 2 >= 1024), (consts, planned)
        if not planned[0]:
            assert not lw.wgmma and "wgmma" not in ptx and "mma.sync" in ptx, consts
        else:
            assert lw.wgmma_dots == 1, consts
            assert ptx.count(f"wgmma.mma_async.sync.aligned.m64n{wl.n}k16") == wl.mb * BK // 16
        toolchain.ptxas_check(ptx, "sm_90")
    check()
