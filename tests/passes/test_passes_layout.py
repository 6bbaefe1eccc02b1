"""passes/layout.py: layout inference on the kernels that matter, conversions, loops, user layouts."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.ir.errors import VMTypeError
from vmlang.ir.layout import MemLayout, TVLayout
from vmlang.ir.types import REGISTER
from vmlang.passes import DotPlan, ReducePlan, ShapePlan, default_layout, pipeline
from vmlang.passes import layout as LP
from vmlang.passes import tvmaps as TM

from passes_checks import check_contract, tiles

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
QMATMUL = ROOT / "stdlib" / "kernels" / "qmatmul.vm"

QVARIANTS = [
    dict(),
    dict(T=vm.nf4, LUT=1, G=64),
    dict(DOT=1, BM=16),
    dict(T=vm.uint4, S=vm.bfloat16, X=vm.bfloat16, DOT=1, BM=32, G=128, HAS_Z=1),
    dict(T=vm.int3, S=vm.float32, BM=2, G=16),
    dict(T=vm.float4_e2m1, S=vm.float8_e8m0, DOT=1, BM=16),
    dict(T=vm.int8, BM=4, G=256, HAS_Z=1),
    dict(T=vm.nf4, LUT=1, DOT=1, BM=16, W=8, BN=128),
]


def by_name(kernel, name):
    return [v for v, _ in tiles(kernel) if v.name == name]


def instrs(kernel, cls):
    return [i for i in N.walk(kernel.body) if isinstance(i, cls)]


def layout_notes(p):
    return [n.text for n in p.report if n.pass_name == "layout"]


@pytest.mark.parametrize("path", sorted(EX.glob("*.vm")), ids=lambda p: p.stem)
def test_contract_on_examples(path):
    check_contract(pipeline(vm.compile_file(path)))


@pytest.mark.parametrize("consts", QVARIANTS, ids=lambda c: ",".join(f"{k}={getattr(v, 'name', v)}" for k, v in c.items()) or "default")
def test_contract_on_qmatmul(consts):
    check_contract(pipeline(vm.compile_file(QMATMUL, consts)))


def test_default_layout_is_reexported():
    assert LP.default_layout is default_layout


def test_gemv_w4a16():
    p = pipeline(vm.compile_file(EX / "gemv_w4a16.vm"))
    k = p.kernel
    (wt,) = by_name(k, "wt")
    assert TM.same_layout(wt.type.layout, default_layout((128, 128), 4, 128))
    (xt,) = by_name(k, "xt")
    ex = instrs(k, N.ExpandDims)[0]
    assert p.facts[ex] == ShapePlan(True, "expanddims: free (each thread keeps its own values)")
    bc = instrs(k, N.Broadcast)[0]
    assert p.facts[bc].free
    # x (two f16 per thread) loads straight into the layout where every thread holds the x values its rows
    # need: narrow L1 reads instead of a shared-memory conversion
    assert not TM.same_layout(xt.type.layout, default_layout((128,), 16, 128))
    assert TM.holds_all(bc.x.type.layout, bc.out.type.layout, TM.broadcast_map(bc.x.shape, bc.out.shape))
    red = instrs(k, N.Sum)[0]
    assert p.facts[red].scope == "block"                  # K is spread over the 4 warps
    assert instrs(k, N.ConvertLayout) == []
    notes = layout_notes(p)
    assert not any(t.startswith("convert ") for t in notes) and notes[-1] == "0 layout conversions inserted"
    assert any(t.startswith("xt%") and "loaded in the layout" in t and "broadcast" in t for t in notes)
    # the scales st (used once, by acc's multiply) load straight into acc's replicated layout instead
    st = next(i for i in instrs(k, N.Load) if i.out.name == "st").out
    assert TM.same_layout(st.type.layout, red.out.type.layout)
    fl = instrs(k, N.For)[0]
    lays = {str(x.type.layout) for x in (fl.inits[0], fl.carried[0], fl.yields[0], fl.outs[0])}
    assert len(lays) == 1                                  # acc: one layout before, in and after the loop
    assert TM.same_layout(fl.carried[0].type.layout, red.out.type.layout)
    full = instrs(k, N.Full)[0]
    assert full.out is fl.inits[0] or full.out.id == fl.inits[0].id    # zeros made in the loop's layout


def test_matmul_uses_mma_and_swizzled_shared_operands():
    p = pipeline(vm.compile_file(EX / "matmul_f16.vm"))
    k = p.kernel
    dot = instrs(k, N.Dot)[0]
    plan = p.facts[dot]
    assert plan == DotPlan(True, (2, 2), plan.reason) and "mma.sync.m16n8k16" in plan.reason
    mm = TM.mma_layouts(64, 64, 32, 4)
    assert TM.same_layout(dot.out.type.layout, mm.c) and TM.same_layout(dot.acc.type.layout, mm.c)
    for op in (dot.a, dot.b):
        assert isinstance(op.type.layout, MemLayout) and op.type.layout.swizzle is not None
    assert not instrs(k, N.ConvertLayout)              # the zeros init is made in the C layout
    assert any("0 conflicts" in t for t in layout_notes(p))


def test_non_mma_dot_gets_the_default_layout():
    p = pipeline(vm.compile_file(EX / "matmul_f16.vm", dict(BM=24, BN=20, BK=16)))
    dot = instrs(p.kernel, N.Dot)[0]
    assert not p.facts[dot].mma and "not a multiple of 16 x 8 x 16" in p.facts[dot].reason
    assert TM.same_layout(dot.out.type.layout, default_layout((24, 20), 32, 128))
    check_contract(p)


def test_register_dot_operand_is_converted_to_fragments():
    p = pipeline(vm.compile_file(QMATMUL, dict(DOT=1, BM=16)))
    dot = instrs(p.kernel, N.Dot)[0]
    mm = TM.mma_layouts(16, 64, 64, 4)
    assert TM.same_layout(dot.b.type.layout, mm.b)
    assert any("operand b of dot in the mma B fragments" in t for t in layout_notes(p))


def test_dequant_int3_view_is_free_with_whole_granules():
    p = pipeline(vm.compile_file(EX / "dequant_int3.vm"))
    k = p.kernel
    view = instrs(k, N.View)[0]
    assert p.facts[view].free
    assert (view.x.type.layout.threads, view.x.type.layout.values) == (4, 48)       # 48 bytes per thread
    assert (view.out.type.layout.threads, view.out.type.layout.values) == (4, 128)  # = 128 int3
    assert any("whole granules per thread for the view" in t for t in layout_notes(p))
    for r in instrs(k, N.Reshape):
        assert p.facts[r].free


def test_softmax_needs_no_conversion():
    p = pipeline(vm.compile_file(EX / "softmax.vm"))
    assert not instrs(p.kernel, N.ConvertLayout)
    ar = instrs(p.kernel, N.Arange)[0]
    xt = by_name(p.kernel, "xt")[0]
    assert TM.same_layout(ar.out.type.layout, xt.type.layout)     # arange is made where it is used
    red = [i for i in instrs(p.kernel, N.Reduce)]
    assert {p.facts[r].scope for r in red} == {"warp"}


def test_shape_instructions_keep_values_in_threads():
    src = """
kernel shapes(x: f32[M, N] global, y: f32[N, M] global, z: f32[M] global) grid(1) {
    t = load(x[0 : +16, 0 : +32]);
    u = trans(t);
    store(y[0 : +32, 0 : +16], u);
    r = reshape(t, [16, 4, 8]);
    store(z[0 : +16], sum(sum(r, axis=2), axis=1));
}"""
    p = pipeline(vm.compile_source(src))
    check_contract(p)
    perm = instrs(p.kernel, N.Permute)[0]
    assert p.facts[perm].free and TM.holds_all(perm.x.type.layout, perm.out.type.layout,
                                               TM.inverse(TM.permute_map((16, 32), (1, 0))))
    assert all(p.facts[r].free for r in instrs(p.kernel, N.Reshape))


def test_shape_instructions_of_a_shared_tile():
    """A broadcast (and the expand_dims under it) of a shared tile: the result's layout is a memory layout,
    not a thread-value one, so there is nothing to pull back to the operand -- layout inference once raised
    IndexError here (random fuzz campaign, 2026-12-06). The kernel lays out, and the VM runs it."""
    src = """
kernel k(x: f32[M, N] global, o: f32[P1, P2] global) grid(cdiv(N, 4), cdiv(M, 4)) {
    c0 = block.x * 4;
    t = load(x[block.y * 4 : +4, c0 : +4]);
    s: shared = cast(zeros(f32, [4]), f32);
    store(o[block.y * 4 : +4, c0 : +4], where(c0 > 1, s, t));
}"""
    k = vm.compile_source(src)
    check_contract(pipeline(k))
    x = np.arange(1, 52, dtype=np.float32).reshape(3, 17)
    o = np.full((4, 20), 7.0, np.float32)
    vm.backend("numpy").compile(k)(x, o)
    want = np.full((4, 20), 7.0, np.float32)
    want[:3, :4] = x[:, :4]                                  # block.x == 0 keeps t; every later block writes s
    want[:4, 4:20] = 0.0
    want[3, :4] = 0.0                                        # row 3 is past M: t reads 0 there
    np.testing.assert_array_equal(o, want)


def test_user_layouts_are_honoured():
    src = """
kernel annotated(x: f16[N] global, y: f16[N] global, z: f16[N] global) grid(1) warps(4) {
    t: f16[128] = load(x[0 : +128]);
    s: shared = t;
    r: f16[128] register layout("(128):(1)") = s;
    q: f16[128] register layout("((32,2),2):((2,64),1) -> (128)") = r + 1.0;
    h: shared layout("Sw<1,4,3> o (128):(1) @16b") = q;
    store(y[0 : +128], r * q);
    store(z[0 : +64], h[32 : +64]);
}"""
    k = vm.compile_source(src, "annotated.vm")
    p = pipeline(k)
    check_contract(p)
    (r,) = by_name(p.kernel, "r")
    assert [r.type.layout.coord(t, 0) for t in (0, 1, 127)] == [(0,), (1,), (127,)]
    q = [v for v in by_name(p.kernel, "q") if isinstance(v.type.layout, TVLayout)]
    assert any(str(v.type.layout) == "((32,2),2):((2,64),1) -> (128)" for v in q)
    (h,) = by_name(p.kernel, "h")
    assert str(h.type.layout) == "Sw<1,4,3> o (128):(1) @16b"
    assert sum("user layout" in t for t in layout_notes(p)) == 3
    with pytest.raises(VMTypeError, match="uses 128 threads, but the block has 64"):
        pipeline(vm.compile_source(src.replace("warps(4)", "warps(2)")))


def test_loop_carried_conversions_sit_on_init_and_yield():
    init_src = """
kernel init_cvt(x: f32[N, 8] global, y: f32[N] global) grid(1) {
    acc = sum(load(x[0 : +64, 0 : +8]), axis=1);   // two threads per row: a replicated layout
    for i in range(0, N, 64) {
        acc = acc + load(y[i : +64]);              // the body computes acc in the load's layout
    }
    store(y[0 : +64], acc);
}"""
    p = pipeline(vm.compile_source(init_src))
    check_contract(p)
    fl = instrs(p.kernel, N.For)[0]
    top = list(p.kernel.body.instrs)
    (cv,) = [i for i in top if isinstance(i, N.ConvertLayout)]
    assert cv.out is fl.inits[0] and top.index(cv) < top.index(fl)   # converted once, before the loop
    assert isinstance(top[top.index(cv) - 1], N.Sum)                  # right after the value it converts
    assert not [i for i in fl.body.instrs if isinstance(i, N.ConvertLayout)]
    assert any("the init of loop-carried acc takes the carried layout" in t for t in layout_notes(p))

    yield_src = """
kernel yield_cvt(x: f32[N, 8] global, y: f32[N] global) grid(1) {
    acc = load(x[0 : +64, 0]);
    for i in range(0, N, 64) {
        store(y[i : +64], acc);                     // no preference: acc keeps the default layout
        acc = sum(load(x[i : +64, 0 : +8]), axis=1);
    }
    store(y[0 : +64], acc);
}"""
    p = pipeline(vm.compile_source(yield_src))
    check_contract(p)
    fl = instrs(p.kernel, N.For)[0]
    body = list(fl.body.instrs)
    assert isinstance(body[-1], N.ConvertLayout) and body[-1].out is fl.yields[0]
    assert TM.same_layout(fl.carried[0].type.layout, default_layout((64,), 32, 128))
    assert any("the value yielded for loop-carried acc" in t for t in layout_notes(p))


def test_if_yields_share_a_layout():
    src = """
kernel branch(x: f32[N] global, y: f32[N] global, c: int32) grid(1) {
    a = load(x[0 : +64]);
    if c > 0 {
        b = a * 2.0;
    } else {
        b = trans(reshape(a, [8, 8]));
        b = reshape(b, [64]);
    }
    store(y[0 : +64], b);
}"""
    p = pipeline(vm.compile_source(src))
    check_contract(p)
    br = instrs(p.kernel, N.If)[0]
    assert TM.same_layout(br.then_yields[0].type.layout, br.else_yields[0].type.layout)
    assert br.outs[0].type.space == REGISTER


def test_every_converted_value_is_defined_right_after_its_source():
    p = pipeline(vm.compile_file(QMATMUL))
    for blk in [p.kernel.body] + [b for i in N.walk(p.kernel.body) for b in i.blocks()]:
        seq = list(blk.instrs)
        for j, ins in enumerate(seq):
            if isinstance(ins, N.ConvertLayout) and j > 0:
                prev = seq[j - 1]
                defined = {r.id for r in prev.results} | {ins.x.id}
                assert ins.x.id in defined or isinstance(prev, N.ConvertLayout)


def test_reduce_scope_notes():
    p = pipeline(vm.compile_file(EX / "gemv_nf4.vm"))
    red = instrs(p.kernel, N.Sum)[0]
    assert p.facts[red] == ReducePlan("warp", p.facts[red].reason)
    assert "shuffles between lanes" in p.facts[red].reason
    np.testing.assert_array_equal(np.unique(red.out.type.layout.table()), np.arange(64))


def test_loads_take_the_layout_of_their_single_use():
    """The qmatmul GEMV (ptx tiles): x and the scales are each used once, through a cast and expand_dims, by a
    broadcast against the weights; they load straight into the layout that makes the broadcast free (each
    thread reads the x values beside its codes, 4 x 128 bits), so no conversion is left. A load whose new
    layout would be narrower than its own (gemv_w4a16's x: 16 bits per thread) keeps its conversion."""
    from vmlang.ir import dtypes as D
    k = vm.load(ROOT / "stdlib" / "kernels" / "qmatmul.vm")
    base = k.ir(T=D.int4, G=128, BM=1, BN=32, BK=512, W=4)
    p = pipeline(k._lower(dict(base.consts), (("K", 128), ("N", 128))))
    assert not instrs(p.kernel, N.ConvertLayout)
    notes = layout_notes(p)
    assert notes[-1] == "0 layout conversions inserted"
    assert sum("so no conversion is needed" in t for t in notes) == 2
    from vmlang.passes import VectorPlan
    x = next(i for i in instrs(p.kernel, N.Load) if i.src.name == "x")
    assert (p.facts[x].bits_per_access, p.facts[x].accesses_per_thread) == (128, 4)
    assert all(p.facts[b].free for b in instrs(p.kernel, N.Broadcast) if isinstance(p.facts.get(b), ShapePlan))
    assert isinstance(p.facts[x], VectorPlan)
