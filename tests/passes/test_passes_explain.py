"""``vm explain FILE.vm`` and ``kernel.explain()``: the passes' report from the command line and the API."""
from __future__ import annotations

import pathlib

import numpy as np

import vmlang as vm
from vmlang.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEMV = str(ROOT / "examples" / "gemv_w4a16.vm")


def test_explain_prints_every_pass(capsys):
    assert main(["explain", GEMV]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "kernel gemv_w4a16: 4 warps (128 threads), BN = 128, G = 128"
    assert [ln for ln in lines if not ln.startswith(" ")][1:] == ["placement:", "layout:", "vectorize:"]
    assert "wt%" in out and "int4[128, 128] (8 KiB): register" in out
    assert "wt%18: default layout: 128 threads x 128 values, 32 contiguous (128 bits) along the last axis" in out
    # x (4 narrow loads per thread at most) loads in the layout its broadcast needs: no conversion
    assert "0 layout conversions inserted" in out
    assert "xt%13: loaded in the layout acc%28 is used in by broadcast at gemv_w4a16.vm:13:20" in out
    # the scales load in the layout of their use (acc), with no conversion
    assert "st%25: loaded in the layout acc%32 is used in by mul at gemv_w4a16.vm:13:16, so no conversion" in out
    assert ("gemv_w4a16.vm:11:14: load w[k0 : +128, block.x * 128 : +128]: ld.global.b8 x 64 per thread "
            "(2 int4 each)") in out
    assert "specialised on" not in out


def test_explain_with_sizes_specialises_like_a_call(capsys):
    assert main(["explain", GEMV, "-D", "N=4096", "-D", "K=4096", "-D", "M=3", "-D", "BN=64"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "kernel gemv_w4a16: 4 warps (128 threads), BN = 64, G = 128"
    assert "load w[k0 : +128, block.x * 64 : +64]: ld.global.v4.b32 x 2 per thread (32 int4 each)" in out
    assert "load x[block.y, k0 : +128]: ld.global.b16 x 2 per thread (1 float16 each)" in out
    assert out.rstrip().endswith("specialised on: M % 16 != 0, K % 1024 == 0, N % 1024 == 0")
    # sizes divisible by 16 but not 128: int4 rows are only known to be 64-bit multiples
    assert main(["explain", GEMV, "-D", "N=4112", "-D", "K=4112", "-D", "M=3", "-D", "BN=64"]) == 0
    out = capsys.readouterr().out
    assert "load w[k0 : +128, block.x * 64 : +64]: ld.global.v2.b32 x 4 per thread (16 int4 each)" in out
    assert out.rstrip().endswith("specialised on: M % 16 != 0, K % 16 == 0, N % 16 == 0")


def test_explain_ir_shows_layouts(capsys):
    assert main(["explain", str(ROOT / "examples" / "matmul_f16.vm"), "--ir"]) == 0
    out = capsys.readouterr().out
    assert "mma.sync.m16n8k16 over 2 x 2 warps" in out
    assert 'shared layout("Sw<' in out and 'register layout("' in out
    assert "= dot(at_" in out


def test_explain_errors_are_diagnostics(tmp_path, capsys):
    bad = tmp_path / "bad.vm"
    bad.write_text('kernel bad(x: f16[N] global) grid(1) warps(1) {\n'
                   '    t: f16[64] register layout("(64):(1)") = load(x[0 : +64]);\n'
                   '    store(x[0 : +64], t);\n}\n')
    assert main(["explain", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.vm:2:" in err and "uses 64 threads, but the block has 32 (warps(1))" in err
    two = tmp_path / "two.vm"
    two.write_text("kernel a(x: f16[N] global) grid(1) { }\nkernel b(x: f16[N] global) grid(1) { }\n")
    assert main(["explain", str(two)]) == 1
    assert "choose one with --kernel" in capsys.readouterr().err
    assert main(["explain", str(two), "--kernel", "b"]) == 0
    assert capsys.readouterr().out.startswith("kernel b: 4 warps")


def test_kernel_explain_from_load_and_jit():
    k = vm.load(GEMV)
    text = k.explain(BN=64)
    assert text.startswith("kernel gemv_w4a16: 4 warps (128 threads), BN = 64, G = 128")
    x = np.zeros((2, 256), np.float16)
    w = vm.Tensor.from_codes(np.zeros((256, 64), np.uint8), vm.int4)
    s = np.ones((2, 64), np.float16)
    y = np.zeros((2, 64), np.float16)
    text = k.explain(x, w, s, y, BN=64)
    assert "ld.global.v2.b32 x 4 per thread (16 int4 each)" in text
    assert text.endswith("specialised on: M % 16 != 0, K % 128 == 0, N % 16 == 0")
    assert k.explain(sizes={"M": 2, "N": 64, "K": 256}, BN=64) == text     # the same facts from sizes
    assert not k.events                                   # explaining compiles nothing

    @vm.jit(grid=lambda N, BN: (vm.cdiv(N, BN),))
    def double(x: vm.f32["N"], y: vm.f32["N"], BN: vm.constexpr = 64):  # noqa: F821
        i = vm.block.x * BN
        vm.store(y[i : +BN], vm.load(x[i : +BN]) * 2.0)

    text = double.explain(BN=128)
    assert text.startswith("kernel double: ") and "ld.global" in text and "st.global" in text


def test_explain_takes_dtype_parameters(capsys):
    qm = str(ROOT / "stdlib" / "kernels" / "qmatmul.vm")
    assert main(["explain", qm, "-D", "T=nf4", "-D", "LUT=1", "-D", "K=4096", "-D", "N=4096", "--ir"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernel qmatmul: 4 warps (128 threads), T = nf4,")
    assert "f32[16] (64 B): shared: the table of lookup" in out
    assert 'float32[16] shared layout("(16):(1) @32b") = codebook(nf4, float32);' in out
    assert main(["explain", qm, "-D", "T=oops"]) == 1
    assert "T='oops' is not a number or a dtype name" in capsys.readouterr().err


def test_explain_for_an_architecture(capsys):
    """``--arch sm_90`` (``explain(arch=...)``) decides as a compile for that GPU would: matmul's dot on
    warpgroup MMA with canonical shared layouts; without it (or for sm_80) on mma.sync; a bad name is an error."""
    mm = str(ROOT / "examples" / "matmul_f16.vm")
    assert main(["explain", mm, "--arch", "sm_90", "-D", "BM=128", "-D", "BN=128"]) == 0
    out = capsys.readouterr().out
    assert "wgmma.mma_async m64n128k16 over 1 x 1 warpgroups, 2 per warpgroup" in out
    assert "shared layout for the wgmma b operand: Sw<3,4,3> o (32,(64,2)):(64,(1,2048))" in out
    assert out.rstrip().endswith("target: sm_90")
    for extra in ([], ["--arch", "sm_80"]):
        assert main(["explain", mm, *extra]) == 0
        out = capsys.readouterr().out
        assert "mma.sync.m16n8k16 over 2 x 2 warps" in out and "wgmma" not in out
    k = vm.load(mm)
    assert "wgmma.mma_async m64n64k16" in k.explain(arch="sm_90a")
    assert main(["explain", mm, "--arch", "sm90"]) == 1
    assert "'sm90' is not a GPU architecture name" in capsys.readouterr().err
