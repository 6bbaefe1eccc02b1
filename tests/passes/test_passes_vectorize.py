"""passes/vectorize.py: vector widths, masks and their reasons, from layouts and divisibility facts."""
from __future__ import annotations

import pathlib

import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.passes import VectorPlan, pipeline
from vmlang.passes.scalars import ScalarFacts

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
GEMV = (EX / "gemv_w4a16.vm").read_text()


def plans(p) -> dict:
    """name of the global tensor (``w`` / ``store y``) -> VectorPlan."""
    out = {}
    for ins in N.walk(p.kernel.body):
        if isinstance(ins, N.Load) and ins.src.is_global:
            out[ins.src.name] = p.facts[ins]
        elif isinstance(ins, (N.Store, N.AtomicAdd)):
            out[f"store {ins.dst.name}"] = p.facts[ins]
    return out


def gemv(*assumes, **consts):
    src = GEMV.replace("    acc = zeros", "".join(f"    assume({a});\n" for a in assumes) + "    acc = zeros")
    return pipeline(vm.compile_source(src, "gemv_w4a16.vm", consts))


def test_plan_fields():
    p = VectorPlan(128, 4, True, "why")
    assert (p.bits_per_access, p.accesses_per_thread, p.masked, p.reason) == (128, 4, True, "why")
    assert p.instruction == "v4.b32" and VectorPlan(16, 1, False, "").instruction == "b16"


def test_gemv_w4a16_int4_codes_get_128_bit_loads_given_divisibility():
    w = plans(gemv("N % 32 == 0"))["w"]
    assert (w.bits_per_access, w.accesses_per_thread) == (128, 4)     # 4 rows x 32 int4 per thread
    assert w.reason.startswith("load w[k0 : +128, block.x * 128 : +128]: ld.global.v4.b32 x 4 per thread "
                               "(32 int4 each)")
    assert "N % 32 == 0 assumed" in w.reason
    assert w.masked and "k0 : +128 within K not proven" in w.reason   # K is not a multiple of G
    # the whole tile inside the shapes: no mask at all
    p = gemv("N % 128 == 0", "K % 128 == 0")
    assert all(not pl.masked for pl in plans(p).values())
    # x loads in its broadcast's layout (two f16 per thread, no shared-memory conversion)
    assert (plans(p)["w"].bits_per_access, plans(p)["x"].bits_per_access) == (128, 16)
    assert plans(p)["store y"].bits_per_access == 128 and "one of them writes it" in plans(p)["store y"].reason


def test_gemv_w4a16_without_facts_reads_bytes():
    pl = plans(gemv())
    assert (pl["w"].bits_per_access, pl["w"].accesses_per_thread) == (8, 64)
    assert "assume(N % 32 == 0) would allow 128 bits" in pl["w"].reason
    assert (pl["x"].bits_per_access, pl["x"].accesses_per_thread) == (16, 4)
    assert pl["w"].masked and pl["x"].masked


def test_runtime_specialisation_gives_64_bit_int4_loads():
    k = vm.load(EX / "gemv_w4a16.vm")
    ir = k._lower(dict(k.ir().consts), (("N", 16), ("K", 16)))   # what a call with N, K % 16 == 0 compiles
    pl = plans(pipeline(ir))
    assert (pl["w"].bits_per_access, pl["w"].accesses_per_thread) == (64, 8)
    assert "only known to be a multiple of 64 bits (N % 16 == 0 assumed)" in pl["w"].reason
    assert pl["x"].bits_per_access == 16 and pl["s"].bits_per_access == 128


def test_int3_vectorizes_over_whole_granules():
    src = (EX / "dequant_int3.vm").read_text().replace("    r0 = block.y", "    assume(C % 128 == 0);\n    r0 = block.y")
    pl = plans(pipeline(vm.compile_source(src, "dequant_int3.vm")))
    q = pl["q"]
    assert (q.bits_per_access, q.accesses_per_thread) == (128, 3)     # 128 int3 = 48 bytes = 3 x 128 bits
    assert q.reason.startswith("load q[block.y * 4 : +4, block.x * 48 : +48]: ld.global.v4.b32 x 3 per thread")
    assert pl["store y"].bits_per_access == 128                       # 128 f16 per thread: 16 x 128 bits


def test_masks_follow_assumptions():
    src = (EX / "vector_add.vm").read_text()
    pl = plans(pipeline(vm.compile_source(src, "vector_add.vm")))
    assert all(p.masked for p in pl.values())
    assert all(p.bits_per_access == 16 for p in pl.values())            # the edge at N may cut a vector
    pl = plans(pipeline(vm.compile_source(src.replace("    i = block.x", "    assume(N % 8 == 0);\n    i = block.x"))))
    assert all(p.masked and p.bits_per_access == 128 for p in pl.values())
    pl = plans(pipeline(vm.compile_source(src.replace("    i = block.x", "    assume(N % 256 == 0);\n    i = block.x"))))
    assert all(not p.masked and p.bits_per_access == 128 for p in pl.values())
    assert all("unmasked: the slice is inside the shape" in p.reason for p in pl.values())


def test_layout_limits_the_width():
    p = pipeline(vm.compile_source("""
kernel t(x: f32[M, N] global, y: f32[M] global) grid(1) {
    assume(N % 64 == 0);
    assume(M % 64 == 0);
    store(y[0 : +64], sum(load(x[0 : +64, 0 : +64]), axis=1));
}"""))
    pl = plans(p)
    assert pl["x"].bits_per_access == 128
    # M % 64 == 0 allows M == 0: a constant slice 0 : +64 is only inside the shape under a grid over M
    assert pl["x"].masked and "0 : +64 within M not proven" in pl["x"].reason
    st = pl["store y"]                 # after the reduction a thread holds 8 rows of y, 4 threads apart
    assert (st.bits_per_access, st.accesses_per_thread) == (32, 8)
    assert "not wider: 64-bit: thread 0 access 0 is not contiguous in memory" in st.reason
    assert "each element is held by 16 threads: one of them writes it" in st.reason


def test_scalar_and_shared_accesses():
    p = pipeline(vm.compile_source("""
kernel t(x: f16[N] global, y: f16[N] global) grid(1) {
    assume(N % 256 == 0);
    c = load(x[3]);
    s: shared = load(x[0 : +256]);
    store(y[0 : +128], s[64 : +128] * c);
}"""))
    loads = [i for i in N.walk(p.kernel.body) if isinstance(i, N.Load)]
    scalar = p.facts[loads[0]]
    assert (scalar.bits_per_access, scalar.accesses_per_thread) == (16, 1) and "one element" in scalar.reason
    shared = [i for i in loads if i.src.is_tile][0]
    sp = p.facts[shared]
    assert sp.bits_per_access == 128 and "ld.shared.v4.b32" in sp.reason and not sp.masked


def test_atomic_add_is_per_element():
    p = pipeline(vm.compile_source("""
kernel t(x: int32[N] global, y: int32[N] global) grid(1) {
    atomic_add(y[0 : +64], load(x[0 : +64]));
}"""))
    a = plans(p)["store y"]
    assert a.bits_per_access == 32 and "red.global.add" in a.reason


def test_every_example_has_a_plan_per_access_and_a_summary():
    for path in sorted(EX.glob("*.vm")):
        p = pipeline(vm.compile_file(path))
        n = sum(1 for i in N.walk(p.kernel.body) if isinstance(i, (N.Store, N.AtomicAdd))
                or isinstance(i, N.Load) and not i.src.is_tile)
        assert len(p.facts.of_type(VectorPlan)) >= n
        notes = [x.text for x in p.report if x.pass_name == "vectorize"]
        assert notes[-1].endswith("64 or 128 bits wide")


@pytest.mark.parametrize("expr,div", [("block.x * 128", 128), ("k0", 64), ("k0 + 32", 32), ("k0 / 16", 4),
                                      ("(k0 + 64) * 3", 192)])
def test_scalar_divisibility(expr, div):
    k = vm.compile_source(f"""
kernel t(x: f16[K] global) grid(1) {{
    for k0 in range(0, K, 64) {{ v = load(x[{expr} : +8]); }}
}}""")
    ld = next(i for i in N.walk(k.body) if isinstance(i, N.Load))
    assert ScalarFacts(k).divisor(ld.index[0].start) == div


@pytest.mark.parametrize("stop,fits", [("K - 512", True), ("K - 100", False), ("K", False)])
def test_a_loop_stopping_a_step_early_keeps_the_next_step_in_bounds(stop, fits):
    """A load one step ahead (``k0 + 512``: a slab prefetched in registers) fits when the loop stops one step
    early: the stop ``K - 512`` is exact (linear in the sizes), the variable a multiple of 128 below it, so
    ``k0 <= K - 640``. A stop the step does not divide, or no early stop, proves nothing (K = 1024,
    ``range(0, 924, 512)`` reaches k0 = 512, whose next step 1024 is past K)."""
    k = vm.compile_source(f"""
kernel t(x: f16[K] global) grid(1, 1, 4) {{
    assume(K % 1024 == 0);
    for k0 in range(block.z * 128, {stop}, 512) {{ v = load(x[k0 + 512 : +128]); }}
}}""")
    ld = next(i for i in N.walk(k.body) if isinstance(i, N.Load))
    assert ScalarFacts(k).fits(ld.index[0].start, ld.index[0].length, k.params[0].type.dims[0]) is fits
