"""Bugs the fuzzers found in the VM, the lowering and the printer, as strict xfails (minimal reproductions).

Each test states the documented behaviour and fails today; ``strict=True`` makes the suite notice the
fix (the xfail then passes and must be turned into a plain test). The generator steers around these
(see the notes in strategies.py / runner.py) so that the campaigns keep finding new things.
"""
from __future__ import annotations

import numpy as np
import pytest

import vmlang as vm

NP = vm.backend("numpy")


def run(src, *args):
    NP.compile(vm.compile_source(src, "bug.vm"))(*args)


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
