"""Block barriers stay where every thread reaches them (CPU: the PTX, checked by ptx_support's scan).

``bar.sync`` is ``.aligned``: all threads of the block must execute the same barrier instruction. The backend
emits each barrier once, in code every thread runs; LLVM must not copy one into code that only some threads
run. It did (GPU run, H100, 2026-12-06): jump threading merged the two ``tid < n`` guarded stores around a
barrier pair into one branch and duplicated the barriers into both arms; the 128 threads then split across
two copies and the block never finished (tests/backends/numpy/test_vm_semantics.py's
``test_dot_f16_is_exact_even_with_cancellation`` and ``test_lookup_by_signed_sub_byte_codes_uses_the_raw_codes``
hung with ``--backend ptx``). The barrier (and the warp-collective ``ldmatrix`` / ``mma.sync``) calls are
now ``convergent``, which forbids that, and the backend scans every kernel's PTX for such barriers
(backends/ptx/ptx_check.py): one would be a compile-time error."""
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


def test_compile_refuses_ptx_with_a_barrier_only_some_threads_reach(monkeypatch):
    """The backend scans every kernel's PTX: PTX shaped like the one that hung (here substituted for the
    real one) is a clear compile-time error naming the kernel and the barrier, not a GPU that never
    returns."""
    kernel = vm.compile_source(HUNG["dot_1x1x3"], "dot_1x1x3.vm")
    real = toolchain.to_ptx
    monkeypatch.setattr(toolchain, "to_ptx", lambda text, arch: real(text, arch) + HUNG_SHAPE)
    with pytest.raises(vm.BackendError, match=r"kernel k has a barrier that only some threads reach "
                                              r"\(\$L__BB0_2: bar\.sync 0;\); it would hang the GPU"):
        launch.compile(kernel, None)


def test_a_cached_kernel_with_such_a_barrier_is_not_trusted():
    """A disk-cache entry made before the fix (same vmlang version, so the same key) is refused when it
    loads; the runtime then recompiles and replaces it (tests/runtime/test_cache.py: corrupt entries)."""
    kernel = vm.compile_source(HUNG["dot_1x1x3"], "dot_1x1x3.vm")
    good = launch.compile(kernel, None)
    files = dict(good.files)
    assert launch.load(kernel, files).ptx == good.ptx
    files[launch.PTX_FILE] = good.ptx + HUNG_SHAPE
    with pytest.raises(vm.BackendError, match="barrier that only some threads reach"):
        launch.load(kernel, files)
