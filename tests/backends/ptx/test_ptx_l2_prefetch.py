"""``l2_prefetch`` (backends/ptx/prefetch.py): a loop's next-iteration loads of the named tensors are
prefetched to L2 at the top of each iteration -- on the CPU, the PTX (how many prefetches, predicated, inside
the loop, accepted by ptxas for sm_90 and sm_80, none without the option or where the loop writes global
memory). On a GPU: tests/stdlib/test_qmatmul.py's ``test_ptx_gemv_with_l2_prefetch``."""
from __future__ import annotations


import pytest
from ptx_support import ROOT, launch, loop_text, needs_ptxas, toolchain

import vmlang as vm
from vmlang.ir import dtypes as D

pytestmark = needs_ptxas

GEMV = dict(T=D.int2, Y=D.float16, X=D.float16, S=D.float16, G=128, DOT=1, EXACT=1, BN=16, BK=128, W=2, R=8)


def _lower(kernel, names: str, arch: str = "sm_90"):
    _, module, lw = launch.lower_program(kernel, {"l2_prefetch": names} if names else None, arch)
    ptx = toolchain.to_ptx(str(module), arch)
    toolchain.ptxas_check(ptx, arch)
    return ptx, [t for _, t in getattr(lw, "pipeline_notes", ())]


def _gemv(spec=(("N", 128), ("K", 1024))):
    k = vm.load(str(ROOT / "stdlib" / "kernels" / "qmatmul.vm"))
    return k._lower(dict(k.ir(**GEMV).consts), spec)


def _count(text: str) -> int:
    return len([ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("//", "$"))])



@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_gemv_prefetches_its_codes_and_scales(arch):
    """The int2 GEMV at K % 1024 == 0: the codes' 16 rows x 256 bytes are 32 whole lines (the slice starts
    on a line), the scales' 16 rows x 16 bytes may straddle one (2 addresses a row): one predicated
    prefetch per thread for each, inside the loop; x is not named and not prefetched."""
    ptx, notes = _lower(_gemv(), "w,s", arch)
    assert notes == ["for loop: the next iteration's lines of w (32 lines), s (32 lines) prefetched to L2 "
                     "(prefetch.global.L2 at the top of each iteration)"]
    assert ptx.count("prefetch.global.L2") == 2 and loop_text(ptx).count("@p prefetch.global.L2") == 2
    plain, none = _lower(_gemv(), "", arch)
    assert "prefetch" not in plain and none == []
    # both slices are proven inside the shape (vectorize: unmasked), so no bounds checks per line: the
    # loop grows by the next iteration's start, its existence and two addresses (14 instructions)
    assert _count(loop_text(ptx)) - _count(loop_text(plain)) <= 20


def test_star_names_every_tensor_and_unknown_names_none():
    ptx, notes = _lower(_gemv(), "*")
    assert ptx.count("prefetch.global.L2") == 3 and "x (" in notes[0]
    ptx, notes = _lower(_gemv(), "nothing")
    assert "prefetch" not in ptx and notes == []


def test_unaligned_slices_get_a_line_more_per_row():
    """A slice whose start is not known to be on a line (steps of 100 floats: 400 bytes) may touch one line
    more than its bytes fill: 401 bytes -> 4 lines + 1 address for the last byte's line."""
    src = """
kernel k(x: f32[N] global, y: f32[128] global) grid(1) {
    acc = zeros(f32, [100]);
    for i in range(0, N, 100) {
        acc += load(x[i : +100]);
    }
    store(y[0 : +100], acc);
}"""
    ptx, notes = _lower(vm.compile_source(src), "x")
    assert notes[-1] == ("for loop: the next iteration's lines of x (5 lines) prefetched to L2 "
                         "(prefetch.global.L2 at the top of each iteration)")
    assert loop_text(ptx).count("prefetch.global.L2") == 1        # 5 lines over 128 threads: one round


def test_a_loop_that_writes_global_memory_prefetches_nothing():
    src = """
kernel k(x: f32[N] global, y: f32[N] global) grid(1) {
    for i in range(0, N, 128) {
        store(y[i : +128], load(x[i : +128]) * 2.0);
    }
}"""
    ptx, notes = _lower(vm.compile_source(src), "*")
    assert "prefetch" not in ptx and not any("prefetched" in t for t in notes)
