"""The warpgroup-MMA layouts of layout inference (:mod:`vmlang.passes.wgmma`): the accumulator against the
PTX ISA's m64nNk16 fragment, the shapes that do not fit, and which target and operands get them. The
backend's side (descriptors, PTX) is tests/backends/ptx/test_ptx_wgmma.py."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.passes import DotPlan, format_report, pipeline
from vmlang.passes.wgmma import canonical_shared, swizzle_bytes, wgmma_layouts

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = (ROOT / "examples" / "matmul_f16.vm").read_text()


def kernel(consts, dtype="f16"):
    s = SRC if dtype == "f16" else SRC.replace("a: f16[M, K]", f"a: {dtype}[M, K]").replace("b: f16[K, N]", f"b: {dtype}[K, N]")
    s = s.replace("    acc = zeros(f32, [BM, BN]);", "    assume(M % 16 == 0); assume(N % 16 == 0); assume(K % 16 == 0);\n"
                                                  "    acc = zeros(f32, [BM, BN]);")
    return vm.compile_source(s, "matmul_f16.vm", dict(consts))


def _isa_accumulator(lane: int, warp: int, r: int):
    """The PTX ISA's m64nNk16 f32 accumulator fragment: (row, col) of register ``r`` of ``lane`` in warp
    ``warp`` of the warpgroup (row = 16 warp + lane / 4 (+8 for r % 4 >= 2), col = 8 (r / 4) + 2 (lane % 4)
    + r % 2)."""
    return 16 * warp + lane // 4 + 8 * (r % 4 // 2), 8 * (r // 4) + 2 * (lane % 4) + r % 2


@pytest.mark.parametrize("m, n, warps", [(64, 64, 4), (128, 128, 4), (128, 128, 8), (128, 256, 8), (256, 64, 8),
                                         (64, 48, 4), (192, 40, 12)])
def test_accumulator_layout_is_the_isa_fragment(m, n, warps):
    """Every (thread, slot) of the layout is some register of the ISA's fragment of one instruction of its
    warpgroup, and every register of every instruction is held exactly once."""
    wl = wgmma_layouts(m, n, 16, warps)
    assert wl is not None and wl.gm * wl.gn * 4 == warps and wl.n * wl.gn == n and 64 * wl.mb * wl.gm == m
    tbl = np.asarray(wl.c.table()).reshape(warps * 32, -1)
    seen = set()
    for t in range(warps * 32):
        g, q, lane = t // 128, t // 32 % 4, t % 32
        gi, gj = g % wl.gm, g // wl.gm
        isa = {}
        for blk in range(wl.mb):
            for r in range(wl.n // 2):
                row, col = _isa_accumulator(lane, q, r)
                isa[(gi * wl.mb + blk) * 64 + row, gj * wl.n + col] = (blk, r)
        for v in tbl[t]:
            rc = (int(v) % m, int(v) // m)
            assert rc in isa, (t, rc)
            seen.add(rc)
    assert len(seen) == m * n


def test_layouts_that_do_not_fit():
    assert wgmma_layouts(32, 64, 16, 4) is None        # fewer than 64 rows
    assert wgmma_layouts(64, 64, 16, 2) is None        # no whole warpgroup
    assert wgmma_layouts(64, 512, 16, 4) is None       # more than 256 columns for one warpgroup
    assert wgmma_layouts(64, 60, 16, 4) is None        # n not a multiple of 8
    assert wgmma_layouts(128, 128, 16, 8).gm == 2      # split along m: one instruction per k step each
    assert canonical_shared((32, 8), 16) is None       # 16 bytes a row: narrower than any swizzle atom
    assert canonical_shared((30, 64), 16) is None      # not whole 8-row groups
    assert canonical_shared((32, 64), 8) is None       # 8-bit elements: not f16/bf16
    assert [swizzle_bytes((8, c), 16) for c in (16, 32, 48, 64, 128)] == [32, 64, 32, 128, 128]
    # b's panels must not straddle warpgroups: 32 columns over 2 warpgroups take 32-byte atoms
    assert swizzle_bytes((16, 32), 16, block=16) == 32 and canonical_shared((16, 32), 16, 8) is None


def test_layout_pass_chooses_wgmma_only_for_sm90():
    k = kernel({"BM": 128, "BN": 128, "BK": 32})
    plans = lambda p: list(p.facts.of_type(DotPlan).values())            # noqa: E731
    p90 = pipeline(k, {"arch": "sm_90"})
    assert [d.wgmma for d in plans(p90)] == [(1, 1, 2, 128)]
    text = format_report(p90)
    assert "wgmma.mma_async m64n128k16 over 1 x 1 warpgroups" in text
    assert "shared layout for the wgmma a operand: Sw<2,4,3> o (128,32):(32,1)" in text
    assert "shared layout for the wgmma b operand: Sw<3,4,3> o (32,(64,2)):(64,(1,2048))" in text
    for opts in ({"arch": "sm_80"}, None, {"arch": "sm_90", "wgmma": False}):
        assert [d.wgmma for d in plans(pipeline(k, opts))] == [()]
    # operands computed in registers (not loads placed in shared memory): mma.sync
    s = SRC.replace("load(a[m0 : +BM, k0 : +BK]);", "load(a[m0 : +BM, k0 : +BK]) * 1.0;")
    reg = vm.compile_source(s, "matmul_f16.vm", {"BM": 128, "BN": 128, "BK": 32})
    assert [d.wgmma for d in plans(pipeline(reg, {"arch": "sm_90"}))] == [()]
