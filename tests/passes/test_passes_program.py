"""passes/program.py: Program, facts, notes, the pipeline's verification, rebuilding kernels; and the
doctests of every pass module."""
from __future__ import annotations

import dataclasses
import doctest
import importlib
import pathlib

import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.ir.errors import VerifyError
from vmlang.ir.layout import spatial
from vmlang.ir.verify import verify
from vmlang.passes import Facts, Ids, Note, format_report, pipeline, rebuild
from vmlang.passes import program as P

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEMV = ROOT / "examples" / "gemv_w4a16.vm"


@pytest.mark.parametrize("mod", ["program", "placement", "layout", "layout_dot", "layout_shapes", "conversions", "vectorize", "scalars",
                                 "tvmaps"])
def test_doctests(mod, monkeypatch):
    monkeypatch.chdir(ROOT)
    m = importlib.import_module(f"vmlang.passes.{mod}")
    res = doctest.testmod(m, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_program_is_frozen_and_facts_read_only():
    p = pipeline(vm.compile_file(GEMV))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.kernel = None
    with pytest.raises(TypeError):
        p.facts[next(iter(p.facts))] = 1
    with pytest.raises(AttributeError):
        p.facts._d = {}
    from vmlang.passes import ReducePlan, ShapePlan, VectorPlan
    assert isinstance(p.facts, Facts) and len(p.facts.of_type(VectorPlan)) == 4
    assert len(p.facts.of_type(ReducePlan)) == 1 and len(p.facts.of_type(ShapePlan)) == 2   # no convert
    assert all(isinstance(n, Note) for n in p.report)
    assert [n.pass_name for n in p.report] == sorted((n.pass_name for n in p.report),
                                                     key=["placement", "layout", "vectorize"].index)
    q = p.with_(notes=[Note("x", None, "hello")], facts={"k": 1})
    assert q.report[-1].text == "hello" and q.facts["k"] == 1 and "k" not in p.facts


def test_identical_instructions_share_decisions():
    k = vm.compile_source("""
kernel twice(x: f16[N] global, y: f16[N] global) grid(1) {
    store(y[0 : +64], load(x[0 : +64]));
}""")
    p = pipeline(k)
    loads = [i for i in N.walk(p.kernel.body) if isinstance(i, N.Load)]
    twin = dataclasses.replace(loads[0])             # structurally equal, another object
    assert twin is not loads[0] and p.facts[twin] is p.facts[loads[0]]


def test_rebuild_reaches_into_loops():
    k = vm.compile_file(GEMV)
    fl = next(i for i in N.walk(k.body) if isinstance(i, N.For))
    c = fl.carried[0]
    group = {fl.inits[0].id, c.id, fl.yields[0].id, fl.outs[0].id}
    vals = {v.id: v for v in P.all_values(k) if v.id in group}
    vmap = {v: N.Value(v.id, v.type.with_(space="register"), v.name) for v in vals.values()}
    k2 = rebuild(k, vmap)
    verify(k2)
    fl2 = next(i for i in N.walk(k2.body) if isinstance(i, N.For))
    assert fl2.carried[0].type.space == "register" and fl2.yields[0].type.space == "register"
    adds = [i for i in N.walk(fl2.body) if isinstance(i, N.Add) and i.a.id == c.id]
    assert adds and adds[0].a.type.space == "register"   # the use inside the body sees the new value
    # an empty map gives back the very same instructions
    k3 = rebuild(k, {})
    assert all(a is b for a, b in zip(k.body.instrs, k3.body.instrs))


def test_ids_definitions_uses():
    k = vm.compile_file(GEMV)
    ids = Ids(k)
    top = max(v.id for v in P.all_values(k))
    assert ids.value(k.params[0].type).id == top + 1 and ids.value(k.params[0].type).id == top + 2
    defs = P.definitions(k)
    assert all(p.id in defs for p in k.params)
    uses = P.uses(k)
    fl = next(i for i in N.walk(k.body) if isinstance(i, N.For))
    assert any(ins is fl and f == "yields[0]" for ins, f in uses[fl.yields[0].id])
    assert all(f.split("[")[0] not in ("out", "carried", "outs", "var") for us in uses.values() for _, f in us)


def test_pipeline_names_the_pass_that_broke_the_ir(monkeypatch):
    from vmlang.passes import layout

    def broken(program, options=None):
        k = program.kernel
        ld = next(i for i in N.walk(k.body) if isinstance(i, N.Load) and i.out.is_tile)
        bad = N.Value(ld.out.id, ld.out.type.with_(layout=spatial(3)), ld.out.name)   # wrong tile
        return program.with_(kernel=rebuild(k, {ld.out: bad}))
    monkeypatch.setattr(layout, "run", broken)
    with pytest.raises(VerifyError, match="after pass layout: .*register layout of tile"):
        pipeline(vm.compile_file(GEMV))


def test_pipeline_rejects_a_malformed_kernel():
    k = vm.compile_file(GEMV)
    dup = dataclasses.replace(k, body=N.Block(k.body.instrs + k.body.instrs[:1]))
    with pytest.raises(VerifyError, match="given to the passes"):
        pipeline(dup)


def test_options_accept_objects_and_mappings():
    assert P.option(None, "max_regs_per_thread") == 64
    assert P.option({"max_regs_per_thread": 8}, "max_regs_per_thread") == 8
    assert P.option(P.PassOptions(dot_shared_min_bytes=1), "dot_shared_min_bytes") == 1
    from vmlang.runtime.options import CompileOptions
    assert P.option(CompileOptions(), "base_align_bytes") == 16


def test_format_report_layout():
    p = pipeline(vm.compile_file(GEMV))
    text = format_report(p)
    lines = text.splitlines()
    assert lines[0] == "kernel gemv_w4a16: 4 warps (128 threads), BN = 128, G = 128"
    heads = [ln for ln in lines if not ln.startswith(" ")]
    assert heads[1:] == ["placement:", "layout:", "vectorize:"]
    assert all(ln.startswith("  ") for ln in lines if ln not in heads)
    assert "gemv_w4a16.vm:11:14: load w[k0 : +128, block.x * 128 : +128]" in text
