"""Every example kernel and the stdlib's quantized matmul kernel compile through the PTX backend (passes,
llvmlite lowering, NVPTX) to PTX that ``ptxas`` accepts for sm_90 and sm_80 -- on a CPU machine.

Running them (and comparing with the VM) needs a GPU: tests/examples and tests/backends/numpy run with
``--backend ptx`` there.
"""
from __future__ import annotations

import importlib
import pathlib
import re

import pytest

import vmlang as vm
from vmlang.ir import dtypes as D

toolchain = importlib.import_module("vmlang.backends.ptx.toolchain")
launch = importlib.import_module("vmlang.backends.ptx.launch")

pytestmark = [
    pytest.mark.skipif(not toolchain.nvptx_available(), reason="this llvmlite has no NVPTX target"),
    pytest.mark.skipif(not toolchain.ptxas_available(), reason="ptxas (CUDA toolkit) is not installed"),
]

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.vm"))
QMATMUL = ROOT / "stdlib" / "kernels" / "qmatmul.vm"


def _ptx(kernel, arch: str) -> str:
    _, module, _ = launch.lower_program(kernel, None, arch)
    return toolchain.to_ptx(str(module), arch)


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_assembles(path, arch):
    src = path.read_text()
    for name in vm.api.kernel_names(src, str(path)):
        ptx = _ptx(vm.compile_file(path, {}, kernel=name), arch)
        assert f".entry {name}(" in ptx and f".target {arch}" in ptx
        cubin = toolchain.ptxas_check(ptx, arch)
        assert pathlib.Path(cubin).stat().st_size > 0


QM_CASES = [  # (T, S, extra consts): one of each decode family
    ("int4", "float16", {}), ("int3", "float16", {}), ("int6", "bfloat16", {}), ("uint4", "float16", {"HAS_Z": 1}),
    ("nf4", "float16", {"LUT": 1}), ("float4_e2m1", "float8_e8m0", {}), ("float6_e3m2", "float16", {}),
    ("int8", "float16", {}), ("float8_e4m3", "float32", {}),
]


@pytest.mark.parametrize("dot", [0, 1], ids=["gemv", "dot"])
@pytest.mark.parametrize("T, S, extra", QM_CASES, ids=[c[0] for c in QM_CASES])
def test_qmatmul_kernel_assembles(T, S, extra, dot):
    consts = dict(T=D.dtype(T), S=D.dtype(S), X=D.float16, G=32, DOT=dot, BM=16 if dot else 2, BN=16, BK=32, W=4)
    consts.update(extra)
    ptx = _ptx(vm.compile_file(QMATMUL, consts), "sm_90")
    toolchain.ptxas_check(ptx, "sm_90")
    # masked global loads are guarded instructions, never branches around each element
    assert "@p ld.global" in ptx


def test_math_functions_link_libdevice():
    """exp in softmax comes from CUDA's libdevice, linked and inlined (no extern call left)."""
    ptx = _ptx(vm.compile_file(ROOT / "examples" / "softmax.vm", {}), "sm_90")
    assert "__nv_expf" not in ptx and "ex2.approx" in ptx


def test_missing_rule_names_the_instruction_and_backend(monkeypatch):
    from vmlang.backends.ptx import core
    from vmlang.ir import nodes as N
    monkeypatch.delitem(core.RULES, N.Add)
    with pytest.raises(vm.BackendError, match="ptx backend has no rule for instruction Add"):
        _ptx(vm.compile_file(ROOT / "examples" / "vector_add.vm", {}), "sm_90")


# ------------------------------------------------------------------------------------------ what the passes did
def _specialised(path, consts, facts):
    """The IR a call compiles: the runtime's ``assume(n % d == 0)`` facts for ``facts`` ((name, d), ...)."""
    k = vm.load(path)
    return k._lower(dict(k.ir(**consts).consts), tuple(facts))


def test_w4_gemv_loads_128_bits_given_divisibility():
    """gemv_w4a16 with N, K % 128 (the runtime's class of 4096): the int4 codes and x in 128-bit loads; with
    only % 16 (4112): 64-bit code loads. The vectorize pass's plan is what the PTX does."""
    gemv = ROOT / "examples" / "gemv_w4a16.vm"
    ptx = _ptx(_specialised(gemv, {"BN": 64}, [("N", 128), ("K", 128)]), "sm_90")
    assert "ld.global.v4.b32" in ptx
    ptx16 = _ptx(_specialised(gemv, {"BN": 64}, [("N", 16), ("K", 16)]), "sm_90")
    assert "ld.global.v2.b32" in ptx16
    toolchain.ptxas_check(ptx16, "sm_90")


def _loop_bodies(ptx: str) -> list[str]:
    """The PTX between each loop label and the backward branch to it."""
    out = []
    for m in re.finditer(r"bra(?:\.uni)?\s+(\$L__BB\d+_\d+);", ptx):
        start = ptx.find(m.group(1) + ":")
        if 0 <= start < m.start():
            out.append(ptx[start:m.start()])
    return out


@pytest.mark.parametrize("width", [3, 4, 6])
def test_qmatmul_gemv_has_vector_loads_and_no_barrier(width):
    """The stdlib GEMV with the ptx tiles: 128-bit code and x loads, decoding without int->float cvt, x and
    the scales loaded in their use's layout (no barrier in the K loop; the sum across warps after it may take
    one), and the partial sums kept per thread through the K loop: its body has FMAs and no shuffle; the sum
    across lanes comes once, after it."""
    from vmlang.stdlib.matmul import PTX_GEMV_TILES
    bn, bk, w, c = PTX_GEMV_TILES[width]
    consts = dict(T=D.dtype(f"int{width}"), S=D.float16, X=D.float16, G=128, DOT=0, BM=1, BN=bn, BK=bk, C=c, W=w)
    ptx = _ptx(_specialised(QMATMUL, consts, [("N", 128), ("K", 128)]), "sm_90")
    assert ptx.count("ld.global.v4.b32") >= 2 or width == 3      # int3: runs of 96 bits (3 x b32)
    assert "cvt.rn.f32.s32" not in ptx
    loops = _loop_bodies(ptx)
    assert len(loops) == 1 and "fma.rn.f32" in loops[0] and "shfl.sync" not in loops[0]
    assert "bar.sync" not in loops[0] and ptx.count("bar.sync") <= 2
    assert "shfl.sync.bfly" in ptx
    toolchain.ptxas_check(ptx, "sm_90")


@pytest.mark.parametrize("which", ["example", "stdlib"])
def test_nf4_table_is_read_from_shared_memory(which):
    """The nf4 value table is placed in shared memory (placement: indexed by data) and read with ld.shared."""
    if which == "example":
        kernel = vm.compile_file(ROOT / "examples" / "gemv_nf4.vm", {})
    else:
        consts = dict(T=D.nf4, S=D.float32, X=D.float16, G=64, LUT=1, DOT=0, BM=1, BN=16, BK=512, W=4)
        kernel = _specialised(QMATMUL, consts, [("N", 128), ("K", 128)])
    ptx = _ptx(kernel, "sm_90")
    assert "ld.shared" in ptx and "st.shared" in ptx
    toolchain.ptxas_check(ptx, "sm_90")
