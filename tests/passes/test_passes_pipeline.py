"""Properties of the whole pipeline: after placement, layout and vectorize every tile has a layout of
its exact shape, the verifier passes, elementwise operands share the result's layout, every global
access has a VectorPlan -- and the NumPy VM computes the same bits before and after (the passes only
add ConvertLayout, which is the identity there). Over every example and qmatmul with random
compile-time values and small awkward sizes, and over the differential fuzzer's random kernels."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import vmlang as vm
from vmlang.ir.verify import verify
from vmlang.passes import pipeline

from passes_checks import check_contract, same_results

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
QMATMUL = ROOT / "stdlib" / "kernels" / "qmatmul.vm"
SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

small = st.sampled_from([1, 2, 3, 5, 17, 33, 64, 100])


@st.composite
def example_cases(draw):
    """(kernel file, compile-time values, sizes) respecting each example's own assumes."""
    name = draw(st.sampled_from(["vector_add", "dequant_int3", "gemv_nf4", "gemv_w4a16", "matmul_f16",
                                 "mxfp4_gemv", "softmax"]))
    s = lambda: draw(small)  # noqa: E731
    if name == "vector_add":
        c, sz = dict(BLOCK=draw(st.sampled_from([1, 3, 16, 100, 256]))), dict(N=s() * 3)
    elif name == "dequant_int3":
        bc = draw(st.sampled_from([8, 32, 64, 128]))
        g = draw(st.sampled_from([d for d in (1, 2, 8, 32) if bc % d == 0]))
        c, sz = dict(BR=draw(st.sampled_from([1, 2, 4])), BC=bc, G=g), dict(R=s(), C=s() * 3)
    elif name == "gemv_nf4":
        c, sz = dict(BN=draw(st.sampled_from([16, 64])), BK=draw(st.sampled_from([64, 128]))), \
            dict(M=draw(st.integers(1, 3)), N=s(), K=s() * 3)
    elif name == "gemv_w4a16":
        c, sz = dict(BN=draw(st.sampled_from([32, 64, 128])), G=draw(st.sampled_from([32, 64, 128]))), \
            dict(M=draw(st.integers(1, 3)), N=s(), K=s() * 3)
    elif name == "matmul_f16":
        c = dict(BM=draw(st.sampled_from([16, 32, 24])), BN=draw(st.sampled_from([8, 16, 32, 20])),
                 BK=draw(st.sampled_from([16, 32])))
        sz = dict(M=draw(st.integers(1, 40)), N=draw(st.integers(1, 40)), K=draw(st.integers(1, 70)))
    elif name == "mxfp4_gemv":
        c, sz = dict(BN=draw(st.sampled_from([16, 64])), BK=draw(st.sampled_from([32, 128]))), \
            dict(M=draw(st.integers(1, 3)), N=s(), K=s() * 3)
    else:
        c, sz = dict(BN=draw(st.sampled_from([16, 100, 128]))), dict(M=draw(st.integers(1, 3)), N=s() * 2)
    return EX / f"{name}.vm", c, sz


@settings(max_examples=60, **SETTINGS)
@given(case=example_cases(), seed=st.integers(0, 3))
def test_examples_keep_their_results(case, seed):
    path, consts, sizes = case
    k = vm.compile_file(path, consts)
    p = pipeline(k)
    verify(p.kernel)
    check_contract(p)
    same_results(k, p.kernel, sizes, seed)


QUANT = [(vm.int4, vm.float16, 0), (vm.nf4, vm.float16, 1), (vm.uint4, vm.bfloat16, 0), (vm.int3, vm.float32, 0),
         (vm.float4_e2m1, vm.float8_e8m0, 0), (vm.int8, vm.float16, 0), (vm.float6_e3m2, vm.float16, 0),
         (vm.int2, vm.float16, 0)]


@st.composite
def qmatmul_cases(draw):
    t, s, lut = draw(st.sampled_from(QUANT))
    dot = draw(st.sampled_from([0, 1]))
    bm = draw(st.sampled_from([16, 32])) if dot else draw(st.sampled_from([1, 2, 4]))
    x = vm.bfloat16 if s == vm.bfloat16 else vm.float16
    c = dict(T=t, S=s, X=x, LUT=lut, DOT=dot, BM=bm, G=draw(st.sampled_from([16, 32, 128])),
             HAS_Z=draw(st.sampled_from([0, 1])) if not t.is_float else 0,
             BN=draw(st.sampled_from([32, 64])), W=draw(st.sampled_from([2, 4])))
    sizes = dict(M=draw(st.integers(1, 20)), N=draw(st.integers(1, 70)), K=draw(st.integers(1, 150)))
    sizes.update(ZN=sizes["N"], ZG=-(-sizes["K"] // c["G"]))
    return c, sizes


@settings(max_examples=40, **SETTINGS)
@given(case=qmatmul_cases())
def test_qmatmul_keeps_its_results(case):
    consts, sizes = case
    k = vm.compile_file(QMATMUL, consts)
    p = pipeline(k)
    check_contract(p)
    same_results(k, p.kernel, sizes)


def test_fuzz_kernels_keep_their_results():
    """Random valid kernels of the differential fuzzer (loops, ifs, views, lookups, dots, placements,
    odd shapes): the contract holds and the VM gives identical bits or the identical error."""
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from fuzz.runner import ORACLE, compile_case, run
    from fuzz.strategies import cases

    @settings(max_examples=200, **SETTINGS)
    @given(case=cases())
    def check(case):
        k = compile_case(case)
        p = pipeline(k)
        check_contract(p)
        a, b = run(case, k, ORACLE), run(case, p.kernel, ORACLE)
        assert a.ok == b.ok, (a.describe(), b.describe())
        if a.ok:
            for name in a.outputs:
                np.testing.assert_array_equal(a.outputs[name], b.outputs[name], err_msg=name)
        else:
            assert type(a.error) is type(b.error)
    check()


@pytest.mark.parametrize("path", sorted(EX.glob("*.vm")), ids=lambda p: p.stem)
def test_passes_are_deterministic(path):
    from vmlang.passes import format_report
    a, b = pipeline(vm.compile_file(path)), pipeline(vm.compile_file(path))
    assert a.kernel == b.kernel and format_report(a) == format_report(b)
