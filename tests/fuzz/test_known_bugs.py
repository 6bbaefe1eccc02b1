"""Bugs the fuzzers found in the VM, the lowering and the printer, as strict xfails (minimal reproductions).

Each test states the documented behaviour and fails today; ``strict=True`` makes the suite notice the
fix (the xfail then passes and must be turned into a plain test). The generator steers around these
(see the notes in strategies.py / runner.py) so that the campaigns keep finding new things.
"""
from __future__ import annotations

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir.printer import print_kernel

NP = vm.backend("numpy")


def run(src, *args):
    NP.compile(vm.compile_source(src, "bug.vm"))(*args)


@pytest.mark.xfail(strict=True, reason="codebook(of, dtype) with entries outside dtype raises a raw CastError "
                                       "(a ValueError from backends/numpy/arith.py), not a vmlang diagnostic")
def test_codebook_that_does_not_fit_its_dtype_is_a_diagnostic():
    # float8_e5m2 reaches 57344 and has Inf/NaN; float8_e4m3 stops at 448 and has no Inf. The table is
    # static, so this should be a VMTypeError when compiling (or at least a VMRuntimeError), never a
    # Python exception from inside the VM.
    src = """
kernel k(y: f32[N] global) grid(1) {
    t = codebook(float8_e5m2, float8_e4m3);
    store(y[0 : +256], cast(t, f32));
}"""
    y = np.zeros(256, np.float32)
    with pytest.raises(vm.VMError):
        run(src, y)


@pytest.mark.xfail(strict=True, reason="the VM keeps bfloat16 values as float32 numbers and re-encodes them, "
                                       "so NaN payloads and NaN signs are lost: a copy changes the bits")
def test_bfloat16_copy_and_view_keep_the_bits():
    # view() is defined as a reinterpretation of the bits ("identical on every backend"), and a plain
    # load/store moves data; both must give back the input codes exactly. The VM returns 0x7fc0 for
    # the NaNs 0x7f81 (signalling, payload 1) and 0xffc1 (negative, payload 1).
    copy = """
kernel k(x: bf16[N] global, y: bf16[N] global) grid(1) {
    store(y[0 : +4], load(x[0 : +4]));
}"""
    view = """
kernel k(x: u16[N] global, y: u16[N] global) grid(1) {
    store(y[0 : +4], view(view(load(x[0 : +4]), bfloat16), u16));
}"""
    codes = np.array([0x7F81, 0xFFC1, 0x7FC0, 0x8000], np.uint16)
    x, y = vm.Tensor(codes, vm.bfloat16), vm.Tensor(np.zeros(4, np.uint16), vm.bfloat16)
    run(copy, x, y)
    yv = np.zeros(4, np.uint16)
    run(view, codes.copy(), yv)
    assert [hex(c) for c in y.codes()] == [hex(c) for c in codes]
    assert [hex(c) for c in yv] == [hex(c) for c in codes]


@pytest.mark.xfail(strict=True, reason="the literal true lowers to the constant 1 (an int) of uint1, which the "
                                       "printer writes as 'uint1 = 1' and which re-parses as 'true': "
                                       "print -> parse -> print is not a fixed point")
def test_printing_a_bool_literal_is_a_fixed_point():
    # vmlang/lang/values.py const_of: `v = iv if dtype != BOOL or isinstance(w.value, bool) else bool(iv)`
    # keeps the int for a *bool* literal (the condition is inverted).
    src = """
kernel k(x: f32[N] global, y: f32[N] global) grid(1) {
    t = load(x[0 : +4]);
    store(y[0 : +4], where(true, t, 0.0));
}"""
    text = print_kernel(vm.compile_source(src))
    assert "uint1 = true" in text
    assert print_kernel(vm.compile_source(text)) == text


@pytest.mark.xfail(strict=True, reason="the VM sums with math.fsum, which returns +0.0 for a sum of -0.0s; "
                                       "IEEE addition in any order gives -0.0")
def test_sum_of_negative_zeros_is_negative_zero():
    src = """
kernel k(x: f32[N] global, y: f32[K] global) grid(1) {
    store(y[0 : +1], broadcast(sum(load(x[0 : +4])), [1]));
}"""
    x = np.full(4, -0.0, np.float32)
    y = np.ones(1, np.float32)
    run(src, x, y)
    assert y[0] == 0 and np.signbit(y[0])
