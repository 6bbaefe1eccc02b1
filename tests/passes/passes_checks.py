"""Shared checks for tests/passes: the layout contract of docs/ptx.md, and running a kernel before and
after the passes on the NumPy VM with the same random inputs."""
from __future__ import annotations

import numpy as np

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.ir.layout import Layout, MemLayout, TVLayout
from vmlang.ir.types import GlobalType, REGISTER, SHARED
from vmlang.passes import VectorPlan
from vmlang.passes.tvmaps import same_layout

ELEMENTWISE = (N.Unary, N.Binary, N.Where, N.Cast)
NP = vm.backend("numpy")


def tiles(kernel):
    for ins in N.walk(kernel.body):
        vals = list(ins.results) + (list(ins.carried) if isinstance(ins, N.For) else [])
        for v in vals:
            if v.is_tile:
                yield v, ins


def check_contract(program):
    """Every tile placed and laid out over exactly its shape; elementwise operands share the result's
    layout; every global access has a VectorPlan keyed by an instruction of the final kernel."""
    k = program.kernel
    for v, ins in tiles(k):
        t = v.type
        assert t.space in (REGISTER, SHARED), f"{v} of {type(ins).__name__} is {t.space}"
        if t.space == REGISTER:
            assert isinstance(t.layout, TVLayout), f"register tile {v} has layout {t.layout!r}"
            assert tuple(t.layout.tile) == tuple(t.shape), (v, str(t.layout))
            assert t.layout.threads <= k.warps * 32
            # every element is held by some thread
            held = np.unique(t.layout.table())
            assert held.size == t.numel and held[0] == 0 and held[-1] == t.numel - 1, (v, str(t.layout))
        else:
            assert isinstance(t.layout, (MemLayout, Layout)), f"shared tile {v} has layout {t.layout!r}"
            lay = t.layout.layout if isinstance(t.layout, MemLayout) else t.layout
            assert lay.size == t.numel
    for ins in N.walk(k.body):
        if isinstance(ins, ELEMENTWISE) and ins.out.is_tile:
            for x in ins.operands:
                if x.is_tile:
                    assert x.type.space == REGISTER, f"{type(ins).__name__} operand {x} in {x.type.space}"
                    assert same_layout(x.type.layout, ins.out.type.layout), \
                        f"{type(ins).__name__}: operand {x.type.layout} vs result {ins.out.type.layout}"
        if isinstance(ins, N.Lookup):
            assert same_layout(ins.codes.type.layout, ins.out.type.layout)
            assert ins.table.type.space == SHARED
        if isinstance(ins, (N.Store, N.AtomicAdd)) and ins.value.is_tile:
            assert ins.value.type.space == REGISTER
        if isinstance(ins, N.Dot):
            assert same_layout(ins.acc.type.layout, ins.out.type.layout)
        if isinstance(ins, (N.Load, N.Store, N.AtomicAdd)) and getattr(ins, "src", getattr(ins, "dst", None)).is_global:
            assert isinstance(program.facts.get(ins), VectorPlan), f"no VectorPlan for {ins}"
    for ins in program.facts:
        assert any(ins == j for j in N.walk(k.body)), f"a fact is keyed by an instruction not in the kernel: {ins}"


def random_args(kernel, sizes, seed=0):
    from vmlang.commands.lang import random_argument
    rng = np.random.default_rng(seed)
    out = []
    for p in kernel.params:
        if isinstance(p.type, GlobalType):
            shape = tuple(d.evaluate(sizes) for d in p.type.dims)
            out.append(random_argument(p.dtype, shape, rng))
        else:
            out.append(sizes[p.name])
    return out


def _copy(a):
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, vm.Tensor):
        return vm.Tensor.from_codes(a.codes().copy(), a.dtype)
    return a


def _codes(a):
    if isinstance(a, vm.Tensor):
        return a.codes()
    if isinstance(a, np.ndarray):
        return a.view(np.uint8) if a.dtype != np.bool_ else a
    return a


def same_results(before, after, sizes, seed=0):
    """Run both kernels on the VM with the same inputs; every argument must end up bit-identical (or
    both raise the same error)."""
    args = random_args(before, sizes, seed)
    a1, a2 = [_copy(a) for a in args], [_copy(a) for a in args]
    e1 = e2 = None
    try:
        NP.compile(before)(*a1)
    except vm.VMError as e:
        e1 = e
    try:
        NP.compile(after)(*a2)
    except vm.VMError as e:
        e2 = e
    assert (e1 is None) == (e2 is None), f"before: {e1}\nafter: {e2}"
    if e1 is not None:
        assert e1.message == e2.message
        return
    for p, x, y in zip(before.params, a1, a2):
        np.testing.assert_array_equal(_codes(x), _codes(y), err_msg=f"parameter {p.name}")
