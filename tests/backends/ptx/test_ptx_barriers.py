"""Block barriers stay where every thread reaches them (CPU: the PTX, checked by ptx_support's scan).

``bar.sync`` is ``.aligned``: all threads of the block must execute the same barrier instruction. The backend
emits each barrier once, in code every thread runs; LLVM must not copy one into code that only some threads
run. It did (GPU run, H100, 2026-12-06): jump threading merged the two ``tid < n`` guarded stores around a
barrier pair into one branch and duplicated the barriers into both arms; the 128 threads then split across
two copies and the block never finished (tests/backends/numpy/test_vm_semantics.py's
``test_dot_f16_is_exact_even_with_cancellation`` and ``test_lookup_by_signed_sub_byte_codes_uses_the_raw_codes``
hung with ``--backend ptx``). The barrier (and the warp-collective ``ldmatrix`` / ``mma.sync``) calls are
now ``convergent``, which forbids that; ptx_support's scan checks the PTX here and in the fuzz-compile
campaign. A cached kernel from before has a new key (the ptx backend's lowering revision)."""
from __future__ import annotations

import pathlib

import pytest
from ptx_support import ROOT, barriers_under_thread_branches, launch, needs_nvptx, toolchain, thread_dependent

import vmlang as vm

pytestmark = needs_nvptx

#: the two kernels that hung on the GPU: one output element written by 3 of 128 threads, and 64 int1
#: codes of 2 words looked up in a 4-entry table (the tile exchange through shared memory between)
HUNG = {
    "dot_1x1x3": """
kernel k(a: f16[M, K] global, b: f16[K, N] global, c: f32[M, N] global, d: f32[M, N] global) grid(1) {
    acc = load(c[0 : +1, 0 : +1]);
    store(d[0 : +1, 0 : +1], dot(load(a[0 : +1, 0 : +3]), load(b[0 : +3, 0 : +1]), acc));
}""",
    "lookup_int1": """
kernel k(x: f32[N] global, o: f16[64] global) grid(1) {
    store(o[0 : +64], lookup(codebook(int2, f16), view(load(x[0 : +2]), int1)));
}""",
}

#: the shape of the PTX that hung (abridged from the dot kernel's): threads with tid > 2 jump over a copy of
#: the two barriers and run their own copy
HUNG_SHAPE = """
    mov.u32 %r1, %tid.x;
    setp.gt.u32 %p4, %r1, 2;
    bar.sync 0;
    @%p4 bra $L__BB0_2;
    st.shared.b16 [%rd11], %r7;
    bar.sync 0;
    bar.sync 0;
    bra.uni $L__BB0_3;
$L__BB0_2:
    bar.sync 0;
    bar.sync 0;
$L__BB0_3:
    bar.sync 0;
    ret;
"""


def _ptx(kernel, arch: str = "sm_90") -> tuple[str, str]:
    _, module, _ = launch.lower_program(kernel, None, arch)
    return str(module), toolchain.to_ptx(str(module), arch)


def test_the_scan_finds_barriers_that_only_some_threads_reach():
    """Both arms of the branch on ``tid > 2`` hold barriers; a branch on a value every thread shares does
    not count, nor does the barrier before the branch or after the join."""
    assert "%p4" in thread_dependent(HUNG_SHAPE) and "%r1" in thread_dependent(HUNG_SHAPE)
    assert barriers_under_thread_branches(HUNG_SHAPE) == ["$L__BB0_2: bar.sync 0;"] * 4
    uniform = HUNG_SHAPE.replace("mov.u32 %r1, %tid.x;", "ld.param.u32 %r1, [k_param_0];")
    assert thread_dependent(uniform) == set() and barriers_under_thread_branches(uniform) == []


@pytest.mark.parametrize("name", sorted(HUNG))
def test_barriers_are_emitted_once_where_every_thread_runs(name):
    ll, ptx = _ptx(vm.compile_source(HUNG[name], f"{name}.vm"))
    assert "convergent" in ll
    assert ptx.count("bar.sync") == ll.count('"bar.sync 0;"') > 0    # none duplicated by LLVM
    assert barriers_under_thread_branches(ptx) == []


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.vm")), ids=lambda p: p.stem)
def test_every_example_keeps_its_barriers_out_of_thread_branches(path: pathlib.Path):
    for name in vm.api.kernel_names(path.read_text(), str(path)):
        _, ptx = _ptx(vm.compile_file(path, {}, kernel=name))
        assert barriers_under_thread_branches(ptx) == [], name



def test_a_branch_on_a_warp_reduced_scalar_is_uniform():
    """A vmlang ``if`` on a scalar reduced over the block (one warp: five butterfly steps of shuffles) runs
    barriers inside; every lane holds the same sum, so the scan does not count the branch -- while the same
    value after only two steps (uniform within groups of 4 lanes) still varies."""
    src = """
kernel k(x: f32[32, 32] global, y: f32[32, 32] global) grid(1) warps(1) {
    t = load(x[0 : +32, 0 : +32]);
    if sum(sum(t, axis=1), axis=0) > 0.0 {
        u: shared = t;
        store(y[0 : +32, 0 : +32], trans(u));
    }
}"""
    ll, ptx = _ptx(vm.compile_source(src))
    assert ptx.count("bar.sync") >= 2 and ptx.count("shfl.sync.bfly") >= 5
    assert barriers_under_thread_branches(ptx) == []
    partial = """
    .maxntid 32
    mov.u32 %r1, %tid.x;
    shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;
    add.s32 %r3, %r1, %r2;
    shfl.sync.bfly.b32 %r4, %r3, 2, 31, -1;
    add.s32 %r5, %r3, %r4;
    setp.gt.s32 %p1, %r5, 6;
    @%p1 bra $L__BB0_2;
    bar.sync 0;
$L__BB0_2:
    ret;
"""
    assert "%p1" in thread_dependent(partial) and barriers_under_thread_branches(partial) == ["$L__BB0_2: bar.sync 0;"]
    full = partial.replace("setp.gt.s32 %p1, %r5, 6;", """shfl.sync.bfly.b32 %r6, %r5, 4, 31, -1;
    add.s32 %r7, %r5, %r6;
    shfl.sync.bfly.b32 %r8, %r7, 8, 31, -1;
    add.s32 %r9, %r7, %r8;
    shfl.sync.bfly.b32 %r10, %r9, 16, 31, -1;
    add.s32 %r11, %r9, %r10;
    setp.gt.s32 %p1, %r11, 6;""")
    assert barriers_under_thread_branches(full) == []
    assert barriers_under_thread_branches(full.replace(".maxntid 32", ".maxntid 64")) != []   # warps differ


def test_cached_kernels_from_before_the_fix_are_not_reused():
    """The ptx backend's toolchain description -- part of every disk-cache key -- carries the lowering's
    revision, raised with the barrier fix: an entry made before it (same vmlang version) is never found."""
    import vmlang.backends.ptx as P
    assert P.toolchain()["lowering"] == str(P.LOWERING_REVISION) and P.LOWERING_REVISION >= 2
