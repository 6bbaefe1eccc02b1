"""``stage_loads`` (backends/ptx/staging.py): the register loads of the named tensors in a loop are copied
``S - 1`` iterations ahead by ``cp.async`` into each thread's own shared-memory slots and read back with
``ld.shared`` -- on the CPU, the slots' arithmetic, the PTX of the int2 GEMV (copies per iteration, no
barrier, no global load of the codes left in the loop; ptxas accepts it for sm_90 and sm_80), which loads
qualify; with ``--backend ptx`` on a GPU, a masked loop against the VM (and tests/stdlib/test_qmatmul.py's
``test_ptx_gemv_with_staged_loads``)."""
from __future__ import annotations

import doctest
import importlib
import re

import numpy as np
import pytest
from ptx_support import ROOT, launch, loop_text, needs_ptxas, toolchain

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.ir.layout import TVLayout

staging = importlib.import_module("vmlang.backends.ptx.staging")

GEMV = dict(T=D.int2, Y=D.float16, X=D.float16, S=D.float16, G=128, DOT=1, EXACT=1, BN=16, BK=128, W=2, R=8)

LOOP = """
kernel k<TRIPS = 4>(x: f32[N] global, y: f32[128] global) grid(1) warps(1) {
    acc = zeros(f32, [128]);
    for i in range(0, TRIPS * 128, 128) {
        acc += load(x[i : +128]);                      // past N: masked chunks read 0
    }
    store(y[0 : +128], acc);
}"""


def test_worked_example_and_slots():
    """The module's worked example, and the post-condition of the slots: every (thread, chunk) of a stage
    has its own aligned slot inside the stage, and a warp's 32 lanes of one chunk are 32 consecutive slots
    (one wavefront of copies, one conflict-free read)."""
    assert doctest.testmod(staging).failed == 0
    for threads in (32, 64, 128):
        for chunks in (1, 4, 8):
            for nbytes in (4, 8, 16):
                pp = staging.PrivatePlan(None, None, 2, chunks, nbytes, threads)
                offs = np.array([[pp.slot_offset(4096, t, j) for j in range(chunks)] for t in range(threads)])
                assert len(np.unique(offs)) == offs.size
                assert offs.min() == 4096 and offs.max() + nbytes == 4096 + pp.size_bytes
                assert (offs % nbytes == 0).all()
                for w in range(threads // 32):
                    assert (np.diff(offs[32 * w: 32 * w + 32], axis=0) == nbytes).all()


def test_replicated_layouts():
    """A layout in which two threads hold the same element is replicated (each would copy it to its own
    slots): such loads are not staged."""
    assert not staging.replicated(TVLayout.parse("(32,4):(4,1) -> (128)"))
    assert staging.replicated(TVLayout.parse("(32,4):(0,1) -> (4)"))


def _gemv(spec=(("N", 128), ("K", 1024))):
    k = vm.load(str(ROOT / "stdlib" / "kernels" / "qmatmul.vm"))
    return k._lower(dict(k.ir(**GEMV).consts), spec)


def _lower(kernel, options, arch="sm_90"):
    _, module, lw = launch.lower_program(kernel, options, arch)
    ptx = toolchain.to_ptx(str(module), arch)
    return ptx, [t for _, t in getattr(lw, "pipeline_notes", ())], lw



@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("stages", [2, 3])
def test_gemv_codes_are_staged(arch, stages):
    """The int2 GEMV's codes (16 rows x 256 bytes a step, 2 warps): 8 chunks of 8 bytes per thread, so 8
    copies per iteration in flight, S - 1 iterations of them in the prologue, 8 ``ld.shared`` in the loop
    where the 8 ``ld.global.v2`` were; no barrier anywhere (each thread reads only what it copied); the
    scales and x still load from global memory."""
    ptx, notes, lw = _lower(_gemv(), {"stage_loads": "w", "pipeline_stages": stages}, arch)
    toolchain.ptxas_check(ptx, arch)
    assert notes == [f"for loop pipelined: {stages} stages of 4096 bytes (the load of w (registers, staged in "
                     f"each thread's own slots); {stages * 4096} bytes of shared memory), cp.async.wait_group "
                     f"{stages - 2} per iteration, copies of iteration i+{stages - 1} issued before iteration i "
                     f"computes"]
    assert lw.shared_max == stages * 4096
    loop = loop_text(ptx)
    assert ptx.count("cp.async.ca.shared.global") == 8 * stages and loop.count("cp.async.ca.shared.global") == 8
    assert loop.count("ld.shared.v2.b32") == 8 and f"cp.async.wait_group {stages - 2};" in loop
    assert "bar.sync" not in ptx
    assert "ld.global.v2" not in loop and "ld.global.u16" in loop and "ld.global.v4" in loop
    plain, none, lw0 = _lower(_gemv(), None, arch)
    assert "cp.async" not in plain and none == [] and lw0.shared_max == 0
    assert loop_text(plain).count("ld.global.v2") == 8


@needs_ptxas
def test_which_loads_are_staged():
    """``*`` names every tensor, but only w's load qualifies: x's and the scales' layouts are replicated
    (the dot's operand and the scales broadcast to its rows); an unknown name stages nothing; the FMA GEMV
    stages its codes too."""
    _, notes, _ = _lower(_gemv(), {"stage_loads": "*"})
    assert len(notes) == 1 and notes[0].count("the load of") == 1 and "the load of w (registers" in notes[0]
    ptx, notes, _ = _lower(_gemv(), {"stage_loads": "nothing"})
    assert notes == [] and "cp.async" not in ptx
    k = vm.load(str(ROOT / "stdlib" / "kernels" / "qmatmul.vm"))
    fma = k._lower(dict(k.ir(T=D.int4, S=D.float16, X=D.float16, G=128, BN=16, BK=512, W=4, C=32).consts),
                   (("N", 128), ("K", 1024)))
    ptx, notes, _ = _lower(fma, {"stage_loads": "w", "pipeline_stages": 2}, "sm_80")
    toolchain.ptxas_check(ptx, "sm_80")
    assert "the load of w (registers, staged in each thread's own slots)" in notes[0]
    assert ptx.count("cp.async.cg.shared.global") == 2 * 2       # one 16-byte chunk a thread and iteration


@needs_ptxas
def test_masked_chunks_and_one_iteration():
    """Past N a chunk reads nothing (source size 0: zero fill, from a valid address); a loop known to run
    once is not staged (nothing to overlap)."""
    ptx, notes, _ = _lower(vm.compile_source(LOOP), {"stage_loads": "x"})
    toolchain.ptxas_check(ptx, "sm_90")
    assert "(the load of x (registers, staged in each thread's own slots); 1536 bytes" in notes[0]
    assert re.search(r"selp\.b32\s+%r\d+, 4, 0", ptx)       # N unknown: 4-byte chunks, each masked
    _, notes, _ = _lower(vm.compile_source(LOOP, consts={"TRIPS": 1}), {"stage_loads": "x"})
    assert notes == []


@pytest.mark.parametrize("N, trips", [(1000, 8), (100, 4), (3, 2), (128, 1)])
def test_run_stagedloop_text(N, trips, backend):
    """The masked loop staged over 2 and 3 stages agrees with the VM (exact: f32 sums of the same
    values in the same order per thread); on numpy and triton the option changes nothing."""
    from support import run_kernel
    rng = np.random.default_rng(N)
    kernel = vm.compile_source(LOOP, consts={"TRIPS": trips})
    for stages in (2, 3):
        x = (rng.standard_normal(N) + 0.25).astype(np.float32)
        y = np.zeros(128, np.float32)
        run_kernel(backend, kernel, x, y, options={"stage_loads": "x", "pipeline_stages": stages}, exact=True)
        want = np.zeros(128, np.float32)
        for i in range(0, trips * 128, 128):
            part = np.zeros(128, np.float32)
            got = x[i: i + 128]
            part[: len(got)] = got
            want += part
        np.testing.assert_array_equal(y, want)


@needs_ptxas
@pytest.mark.parametrize("stages", [2, 3])
def test_every_example_and_fma_gemv_assembles_with_everything_staged(stages):
    """``stage_loads="*"`` over every example (sizes unspecialised) and the FMA GEMV of codes whose plans
    qualify (8-bit, nf4, float4_e2m1 at N = 100, K = 1000: masked edges): ptxas accepts each, no barrier
    lies under a thread-dependent branch, and the GEMVs' codes are staged (W4A16 once its sizes divide)."""
    import glob

    from ptx_support import barriers_under_thread_branches
    opts = {"stage_loads": "*", "pipeline_stages": stages}

    def assemble(kernel):
        ptx, notes, _ = _lower(kernel, opts)
        toolchain.ptxas_check(ptx, "sm_90")
        assert barriers_under_thread_branches(ptx) == [], kernel.name
        return notes
    for f in sorted(glob.glob(str(ROOT / "examples" / "*.vm"))):
        k = vm.load(f)
        assemble(k._lower(dict(k.ir().consts), ()))
    k = vm.load(str(ROOT / "examples" / "gemv_w4a16.vm"))
    notes = assemble(k._lower(dict(k.ir().consts), (("N", 1024), ("K", 1024))))
    assert any("the load of w (registers, staged" in t for t in notes)
    q = vm.load(str(ROOT / "stdlib" / "kernels" / "qmatmul.vm"))
    for T in (D.int8, D.nf4, D.float4_e2m1):
        consts = q.ir(T=T, S=D.float16, X=D.float16, G=128, BN=16, BK=512, W=4, C=32,
                      LUT=int(T.is_codebook)).consts
        notes = assemble(q._lower(dict(consts), (("N", 100), ("K", 1000))))
        assert any(f"{stages} stages" in t and "the load of w (registers, staged" in t for t in notes), T


def test_option_names_are_parsed_once():
    """``l2_prefetch`` and ``stage_loads`` name tensors the same way (core.tensor_names, its doctest too):
    comma-separated, spaces and empty items ignored, ``*`` selects every tensor."""
    core = importlib.import_module("vmlang.backends.ptx.core")
    assert doctest.testmod(core).failed == 0
    names = core.tensor_names(" w ,s")
    x, w = vm.compile_source(LOOP).params[0], _gemv().params[1]
    assert names == {"w", "s"} and core.names_tensor(names, w) and not core.names_tensor(names, x)
    assert core.names_tensor(core.tensor_names("*"), x) and not core.names_tensor(core.tensor_names(""), x)
