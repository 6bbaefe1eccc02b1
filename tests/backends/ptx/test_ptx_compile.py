"""Every example kernel and the stdlib's quantized matmul kernel compile through the PTX backend (passes,
llvmlite lowering, NVPTX) to PTX that ``ptxas`` accepts for sm_90 and sm_80 -- on a CPU machine.

Running them (and comparing with the VM) needs a GPU: tests/examples and tests/backends/numpy run with
``--backend ptx`` there.
"""
from __future__ import annotations

import importlib
import pathlib

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
