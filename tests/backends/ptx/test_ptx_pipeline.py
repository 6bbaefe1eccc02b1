"""Software pipelining of cp.async tile loads in ``for`` loops (backends/ptx/pipeline.py), on a CPU machine.

* the schedule (prologue, ``wait_group S-2``, barrier, issue of iteration i+S-1, compute on buffer i % S) is
  replayed with the semantics of cp.async commit groups and barriers: every compute reads a buffer whose
  copies are complete and that no later copy has started to overwrite;
* matmul_f16's PTX has the prologue, ``cp.async.wait_group 1`` (S = 3) and the loop's copies of the next
  stage, and ptxas accepts it for sm_90 and sm_80 (W = 4 and W = 8);
* loops that do not qualify (the tile is yielded, a load that is not cp.async, a store in the body, a
  loop-invariant load, too little shared memory) are lowered as before.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from ptx_support import ROOT, launch, needs_ptxas, toolchain

PL = importlib.import_module("vmlang.backends.ptx.pipeline")


SRC = (ROOT / "examples" / "matmul_f16.vm").read_text()
FACTS = "assume(M % 16 == 0); assume(N % 16 == 0); assume(K % 16 == 0);"


def matmul(facts: bool = True) -> str:
    return SRC.replace("    acc = zeros(f32, [BM, BN]);", f"    {FACTS if facts else ''}\n    acc = zeros(f32, [BM, BN]);")


def lowered(src: str, consts=None, arch="sm_90", options=None):
    """(ptx, report of the lowering) for kernel source ``src``."""
    k = vm.compile_source(src, "k.vm", consts or {})
    program, module, lw = launch.lower_program(k, options, arch)
    return toolchain.to_ptx(str(module), arch), launch.lowering_report(program, lw)


# ------------------------------------------------------------------------------------------ schedule
def replay(n: int, stages: int):
    """Run :func:`pipeline.schedule` against the cp.async group rules; assert that it is race free."""
    groups, pending = [], []          # groups: list of sets of (iteration, buffer); pending: their indices
    done = set()                      # iterations whose copies have landed (seen by this thread)
    visible = set()                   # ... and by every thread (after a barrier)
    current = set()                   # copies issued since the last commit
    reads_since_barrier = set()       # buffers some thread may still be reading
    computed = set()
    holder = {}                       # buffer -> iteration whose data it holds (or is receiving)
    issued = []
    for ev in PL.schedule(n, stages):
        kind = ev[0]
        if kind == "issue":
            _, j, buf = ev
            assert j < n, "a copy past the end of the loop"
            assert buf not in reads_since_barrier, "overwrites a buffer another thread may still be reading"
            assert holder.get(buf, -1) in computed | {-1}, f"buffer {buf} overwritten before it was read"
            holder[buf] = j
            current.add((j, buf))
            issued.append(j)
        elif kind == "commit":
            groups.append(current)
            pending.append(len(groups) - 1)
            current = set()
        elif kind == "wait":
            keep = ev[1]
            while len(pending) > keep:
                done |= {j for j, _ in groups[pending.pop(0)]}
        elif kind == "barrier":
            visible = set(done)
            reads_since_barrier = set()
        elif kind == "compute":
            _, i, buf = ev
            assert i in visible, f"iteration {i} computes before its copies landed in every thread"
            assert holder.get(buf) == i, f"iteration {i} reads buffer {buf}, which holds {holder.get(buf)}"
            reads_since_barrier.add(buf)
            computed.add(i)
    assert issued == list(range(n)), "each iteration's copies are issued exactly once, in order"
    assert not current and all(not groups[g] for g in pending), "real copies still in flight after the loop"


@pytest.mark.parametrize("stages", [2, 3, 4])
@pytest.mark.parametrize("n", range(0, 8))
def test_schedule_is_race_free(n, stages):
    replay(n, stages)


def test_schedule_shape():
    assert PL.wait_count(3) == 1 and PL.wait_count(2) == 0
    assert PL.prologue_iterations(3) == [0, 1]
    assert PL.issued_at(5, 3) == (7, 1)
    ev = PL.schedule(4, 3)
    assert sum(e[0] == "commit" for e in ev) == 2 + 4        # prologue + one (maybe empty) per iteration
    assert [e[1] for e in ev if e[0] == "issue"] == [0, 1, 2, 3]


def test_replay_catches_a_wrong_wait():
    """The replay is strict enough to see a wait that is one group short."""
    orig = PL.wait_count
    try:
        PL.wait_count = lambda s: s - 1
        with pytest.raises(AssertionError):
            replay(4, 3)
    finally:
        PL.wait_count = orig


# ------------------------------------------------------------------------------------------ analysis
def _loop(src: str, consts=None) -> N.For:
    k = vm.compile_source(src, "k.vm", consts or {})
    return next(i for i in N.walk(k.body) if isinstance(i, N.For))


def test_index_slice_follows_scalar_arithmetic():
    src = matmul().replace("for k0 in range(0, K, BK) {", "for j in range(0, K / BK) {\n        k0 = j * BK;")
    loop = _loop(src)
    loads = [i for i in loop.body.instrs if isinstance(i, N.Load)]
    for ld in loads:
        instrs, on_var = PL.index_slice(loop, ld)
        assert on_var and any(isinstance(x, N.Mul) for x in instrs)


# ------------------------------------------------------------------------------------------ PTX
@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("warps", [4, 8])
def test_matmul_is_pipelined(arch, warps):
    ptx, report = lowered(matmul(), dict(BM=128, BN=128, BK=32, W=warps), arch)
    toolchain.ptxas_check(ptx, arch)
    per_stage = 2 * (128 * 32 * 2) // (warps * 32 * 16)              # 16-byte chunks per thread of a and b
    assert ptx.count("cp.async.cg.shared.global") == 3 * per_stage, "2 prologue sites + 1 in the loop"
    assert ptx.count("cp.async.wait_group 1;") == 1 and ptx.count("cp.async.commit_group;") == 3
    assert "cp.async.wait_group 0;" in ptx                            # the drain after the loop
    assert "pipelined: 3 stages of 16384 bytes" in report and "wait_group 1" in report
    info = toolchain.ptxas_info(ptx, arch)
    assert info["spill_stores"] == 0, info


@needs_ptxas
def test_two_stages_wait_for_everything():
    ptx, report = lowered(matmul(), dict(BM=64, BN=64, BK=32), options={"pipeline_stages": 2})
    toolchain.ptxas_check(ptx, "sm_90")
    assert "cp.async.wait_group 1;" not in ptx and ptx.count("cp.async.wait_group 0;") == 2
    assert "pipelined: 2 stages" in report


@needs_ptxas
def test_masked_edges_and_the_index_slice_assemble():
    """No divisibility facts (masked copies) and the loop variable scaled inside the body."""
    src = matmul(facts=False).replace("for k0 in range(0, K, BK) {",
                                      "for j in range(0, cdiv(K, BK)) {\n        k0 = j * BK;")
    for arch in ("sm_90", "sm_80"):
        ptx, report = lowered(src, dict(BM=64, BN=64, BK=32), arch)
        toolchain.ptxas_check(ptx, arch)
    assert "pipelined" in report or "cp.async" not in ptx


def _not_pipelined(src, consts=None):
    ptx, report = lowered(src, consts or dict(BM=64, BN=64, BK=32))
    toolchain.ptxas_check(ptx, "sm_90")
    assert "cp.async.wait_group 1;" not in ptx and "for loop pipelined:" not in report
    return ptx, report


@needs_ptxas
def test_a_store_in_the_body_keeps_the_old_lowering():
    src = matmul().replace("        acc = dot(at, bt, acc);",
                           "        acc = dot(at, bt, acc);\n        store(c[m0 : +BM, n0 : +BN], cast(acc, f16));")
    ptx, report = _not_pipelined(src)
    assert "cp.async.commit_group; cp.async.wait_group 0;" in ptx
    assert "not pipelined: the loop body writes global memory" in report


@needs_ptxas
def test_a_load_that_is_not_cp_async_keeps_the_old_lowering():
    """A fill of 1.0 cannot be cp.async's zero fill: both tiles load through registers."""
    src = matmul(facts=False).replace("load(a[m0 : +BM, k0 : +BK])", "load(a[m0 : +BM, k0 : +BK], fill=1.0)")
    src = src.replace("load(b[k0 : +BK, n0 : +BN])", "load(b[k0 : +BK, n0 : +BN], fill=1.0)")
    ptx, _ = _not_pipelined(src)
    assert "cp.async" not in ptx


def _tile_used_after_the_loop():
    """matmul_f16 where the last a tile is used again after the loop (so ``at`` is loop-carried)."""
    src = matmul().replace("    acc = zeros(f32, [BM, BN]);",
                           "    acc = zeros(f32, [BM, BN]);\n    at = load(a[m0 : +BM, 0 : +BK]);")
    return src.replace("    store(c[m0 : +BM, n0 : +BN], cast(acc, f16));",
                       "    acc = dot(at, load(b[0 : +BK, n0 : +BN]), acc);\n"
                       "    store(c[m0 : +BM, n0 : +BN], cast(acc, f16));")


def test_a_yielded_tile_is_not_pipelined():
    """The rule: a load whose tile is yielded to the next iteration stays out of the rotating buffers."""
    import types
    from vmlang.passes import pipeline
    core = importlib.import_module("vmlang.backends.ptx.core")
    importlib.import_module("vmlang.backends.ptx.rules")
    p = pipeline(vm.compile_source(_tile_used_after_the_loop(), "k.vm", dict(BM=64, BN=64, BK=32)))
    loop = next(i for i in N.walk(p.kernel.body) if isinstance(i, N.For))
    at, bt = [i for i in loop.body.instrs if isinstance(i, N.Load)]
    plan, _ = PL.plan_loop(core.Lowerer(p, "sm_90"), loop)
    assert [ld for ld, _, _ in plan.loads] == [at, bt]        # the layout pass yields a copy of at
    direct = types.SimpleNamespace(body=loop.body, var=loop.var, carried=loop.carried,
                                   yields=(at.out,) + tuple(y for y in loop.yields if y.name != "at"))
    plan, _ = PL.plan_loop(core.Lowerer(p, "sm_90"), direct)
    assert [ld for ld, _, _ in plan.loads] == [bt]


@needs_ptxas
def test_a_tile_used_after_the_loop_is_copied_out_of_its_stage():
    """End to end: the yielded value is a copy (convert_layout) made inside the iteration; it assembles."""
    ptx, report = lowered(_tile_used_after_the_loop(), dict(BM=64, BN=64, BK=32))
    toolchain.ptxas_check(ptx, "sm_90")
    assert "for loop pipelined: 3 stages" in report


@needs_ptxas
def test_a_loop_invariant_load_keeps_the_old_lowering():
    src = matmul().replace("load(a[m0 : +BM, k0 : +BK])", "load(a[m0 : +BM, 0 : +BK])")
    src = src.replace("load(b[k0 : +BK, n0 : +BN])", "load(b[0 : +BK, n0 : +BN])")
    _not_pipelined(src)


@needs_ptxas
def test_shared_memory_budget_picks_fewer_stages(monkeypatch):
    monkeypatch.setitem(PL.SHARED_LIMIT, "sm_90", 2 * 8192 + 100)       # 2 stages of 8 KiB fit, 3 do not
    ptx, report = lowered(matmul(), dict(BM=64, BN=64, BK=32))
    assert "pipelined: 2 stages of 8192 bytes" in report
    monkeypatch.setitem(PL.SHARED_LIMIT, "sm_90", 8192 + 100)
    ptx, report = lowered(matmul(), dict(BM=64, BN=64, BK=32))
    assert "not pipelined: 2 stages of 8192 bytes do not fit" in report
    assert "cp.async.commit_group; cp.async.wait_group 0;" in ptx


ANNOTATED = """
kernel annotated(x: f32[N] global, y: f32[128] global) grid(1) warps(1) {
    acc = zeros(f32, [128]);
    for i in range(0, N, 128) {
        t: shared = load(x[i : +128]);       // placed in shared memory by the source
        acc += t;
    }
    store(y[0 : +128], acc);
}"""


@needs_ptxas
def test_a_load_the_source_places_in_shared_memory_is_pipelined():
    """``t: shared = load(...)`` in a loop: the load itself is the shared tile, so the copies are
    ``cp.async`` and pipelined -- no register load stored to shared memory, one barrier per iteration."""
    _, module, lw = launch.lower_program(vm.compile_source(ANNOTATED), None, "sm_90")
    ptx = toolchain.to_ptx(str(module), "sm_90")
    toolchain.ptxas_check(ptx, "sm_90")
    assert [t for _, t in lw.pipeline_notes] == [
        "for loop pipelined: 3 stages of 512 bytes (t; 1536 bytes of shared memory), cp.async.wait_group 1 per "
        "iteration, copies of iteration i+2 issued before iteration i computes"]
    assert "st.shared" not in ptx and ptx.count("bar.sync") == 2 and "ld.global" not in ptx


@pytest.mark.parametrize("N", [1, 100, 1000])
def test_run_annotated_shared_loads(N, backend):
    from support import run_kernel
    rng = np.random.default_rng(N)
    x = (rng.standard_normal(N) + 0.25).astype(np.float32)
    y = np.zeros(128, np.float32)
    run_kernel(backend, vm.compile_source(ANNOTATED), x, y, exact=True)
    want = np.zeros(128, np.float32)
    for i in range(0, N, 128):
        part = np.zeros(128, np.float32)
        part[: len(x[i: i + 128])] = x[i: i + 128]
        want += part
    np.testing.assert_array_equal(y, want)
