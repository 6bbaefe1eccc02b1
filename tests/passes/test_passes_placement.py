"""passes/placement.py: every auto tile becomes register or shared, each decision a note with its reason."""
from __future__ import annotations

import pathlib

import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.ir.types import AUTO, REGISTER, SHARED
from vmlang.passes import Program, pipeline
from vmlang.passes import placement

from passes_checks import tiles

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
QMATMUL = ROOT / "stdlib" / "kernels" / "qmatmul.vm"


def placed(k, options=None):
    return placement.run(Program(k), options)


def space_of(p, name):
    return {v.type.space for v, _ in tiles(p.kernel) if v.name == name}


def note_of(p, prefix):
    return next(n.text for n in p.report if n.text.startswith(prefix))


@pytest.mark.parametrize("path", sorted(EX.glob("*.vm")) + [QMATMUL], ids=lambda p: p.stem)
def test_no_auto_tile_is_left(path):
    p = placed(vm.compile_file(path))
    assert all(v.type.space in (REGISTER, SHARED) for v, _ in tiles(p.kernel))
    auto = [v for v, _ in tiles(vm.compile_file(path)) if v.type.space == AUTO]
    notes = [n for n in p.report if n.pass_name == "placement"]
    assert len(notes) >= 2 and notes[-1].text.startswith("estimate: ")
    named = " ".join(n.text for n in notes)
    assert all(f"{v.name or 'v'}%{v.id}" in named for v in auto if v.name)


def test_nf4_gemv_table_goes_to_shared_memory():
    p = placed(vm.compile_file(EX / "gemv_nf4.vm"))
    assert space_of(p, "table") == {SHARED}
    text = note_of(p, "table%")
    assert "f32[16] (64 B): shared" in text and "indexed by data" in text and "ld.shared" in text
    assert space_of(p, "codes") == {REGISTER}          # the codes are read per thread
    lookup = next(i for i in N.walk(p.kernel.body) if isinstance(i, N.Lookup))
    assert lookup.table.type.space == SHARED


def test_qmatmul_lut_table_goes_to_shared_memory():
    k = vm.compile_file(QMATMUL, dict(T=vm.nf4, LUT=1))
    p = placed(k)
    assert space_of(p, "table") == {SHARED}
    full = pipeline(k)
    lookup = next(i for i in N.walk(full.kernel.body) if isinstance(i, N.Lookup))
    assert lookup.table.type.space == SHARED and lookup.table.type.layout is not None


def test_dot_operands_loaded_from_memory_are_staged_in_shared_memory():
    p = placed(vm.compile_file(EX / "matmul_f16.vm"))
    assert space_of(p, "at") == {SHARED} and space_of(p, "bt") == {SHARED}
    assert "operand a of dot" in note_of(p, "at%") and "cp.async" in note_of(p, "at%")
    assert space_of(p, "acc") == {REGISTER}
    small = placed(vm.compile_file(EX / "matmul_f16.vm", dict(BM=16, BN=16, BK=16)))
    assert space_of(small, "at") == {REGISTER}          # 512 B: below dot_shared_min_bytes
    forced = placed(vm.compile_file(EX / "matmul_f16.vm", dict(BM=16, BN=16, BK=16)), {"dot_shared_min_bytes": 256})
    assert space_of(forced, "at") == {SHARED}


def test_register_budget():
    src = """
kernel big(x: f32[N] global, y: f32[N] global) grid(1) warps(1) {
    t = load(x[0 : +4096]);            // 4096 f32 over 32 threads: 128 registers each
    store(y[0 : +4096], t + 1.0);
}"""
    p = placed(vm.compile_source(src))
    assert space_of(p, "t") == {SHARED}
    assert "128 registers per thread would exceed the budget of 64" in note_of(p, "t%")
    out = next(v for v, ins in tiles(p.kernel) if isinstance(ins, N.Add))
    assert out.type.space == REGISTER                   # computed per thread: stays, with a warning
    assert "expect spills" in " ".join(n.text for n in p.report)
    assert space_of(placed(vm.compile_source(src), {"max_regs_per_thread": 255}), "t") == {REGISTER}


def test_user_placement_is_kept():
    src = """
kernel user(x: f16[N] global, y: f16[N] global) grid(1) {
    t = load(x[0 : +128]);
    s: shared = t;
    r: register = s;
    store(y[0 : +128], r);
}"""
    p = placed(vm.compile_source(src))
    assert space_of(p, "s") == {SHARED} and space_of(p, "r") == {REGISTER}
    assert note_of(p, "s%").endswith("shared: user")
    assert note_of(p, "r%").endswith("register: user")


def test_a_load_annotated_shared_is_placed_itself():
    """``t: shared = load(...)`` places the global load itself in shared memory (no register load, no
    conversion); a value bound to a name earlier, a computed value and a load of a tile keep the
    conversion (the annotation then applies to the value, not to an instruction nothing else uses)."""
    k = vm.compile_source("""
kernel a(x: f16[N] global, y: f16[N] global) grid(1) {
    t: shared = load(x[0 : +128]);
    u = load(x[128 : +128]);
    v: shared = u;
    w: shared = load(x[256 : +128]) * 2.0;
    z: shared = load(t[0 : +64]);
    store(y[0 : +128], t + v + w);
    store(y[128 : +64], z);
}""")
    loads = [i for i in k.body.instrs if isinstance(i, N.Load)]
    assert [i.out.type.space for i in loads] == [SHARED, AUTO, AUTO, AUTO]
    converts = [i for i in k.body.instrs if isinstance(i, N.ConvertLayout)]
    assert [(c.x.name, c.out.name) for c in converts] == [("u", "v"), ("w", "w"), ("z", "z")]
    p = placed(k)
    assert note_of(p, "t%").endswith("shared: user")


def test_loop_carried_values_are_placed_together():
    p = placed(vm.compile_file(EX / "gemv_w4a16.vm"))
    fl = next(i for i in N.walk(p.kernel.body) if isinstance(i, N.For))
    spaces = {x.type.space for x in (fl.inits[0], fl.carried[0], fl.yields[0], fl.outs[0])}
    assert spaces == {REGISTER}
    text = note_of(p, "acc%")
    assert text.count("acc%") == 4                     # one note for the four values


def test_estimate_counts_live_tiles():
    p = placed(vm.compile_file(EX / "matmul_f16.vm"))
    est = p.report[-1].text
    assert "8192 B of shared memory per block" in est and "(2 shared tiles)" in est
    assert est.startswith("estimate: ") and "registers of 32 bits per thread" in est
    from vmlang.ir.types import TileType
    assert placement.regs_per_thread(TileType(vm.float32, (4096,), REGISTER), 128) == 32
    assert placement.regs_per_thread(TileType(vm.int4, (3,), REGISTER), 128) == 1
