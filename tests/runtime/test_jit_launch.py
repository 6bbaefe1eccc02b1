"""@vm.jit kernels launch like .vm kernels: the Python twins of the examples give the same bits."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.commands.lang import random_argument
from vmlang.ir.types import GlobalType

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZES = {"N": 100, "M": 3, "K": 129, "R": 5, "C": 100}


def _twins():
    spec = importlib.util.spec_from_file_location("jit_examples", ROOT / "examples" / "jit_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {k.name: k for k in mod.KERNELS}


TWINS = _twins()


def _args(kernel, seed):
    ir = kernel.ir()
    rng = np.random.default_rng(seed)
    out = []
    for p in ir.params:
        assert isinstance(p.type, GlobalType)
        shape = tuple(d.evaluate(SIZES) for d in p.type.dims)
        a = random_argument(p.dtype, shape, rng)
        out.append(a)
    return out


def _bits(a):
    return a.codes() if isinstance(a, vm.Tensor) else np.asarray(a).view(np.uint8)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_jit_twin_runs_like_the_vm_kernel(name):
    twin = TWINS[name]
    ref = vm.load(ROOT / "examples" / f"{name}.vm")
    a1, a2 = _args(ref, 7), _args(ref, 7)
    ref(*a1)
    twin(*a2)
    for p, x, y in zip(ref.ir().params, a1, a2):
        np.testing.assert_array_equal(_bits(x), _bits(y), err_msg=f"{name}: {p.name} differs")
    assert twin.events[0].spec["consts"] == ref.events[0].spec["consts"]


def test_jit_cache_key_sees_inlined_globals(tmp_path):
    """A module constant inlined into the kernel is part of the cache key (through the IR)."""
    src = tmp_path / "k.py"
    body = '''
import vmlang as vm
SCALE = {scale}

@vm.jit(grid=lambda N: (vm.cdiv(N, 16),))
def scale(x: vm.f32["N"], y: vm.f32["N"]):
    i = vm.block.x * 16
    vm.store(y[i:+16], vm.load(x[i:+16]) * SCALE)
'''
    results = []
    for s in (2.0, 3.0):
        src.write_text(body.format(scale=s))
        spec = importlib.util.spec_from_file_location(f"k{int(s)}", src)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        x = np.arange(5, dtype=np.float32)
        y = np.zeros(5, np.float32)
        mod.scale(x, y)
        results.append((y.copy(), mod.scale.events[0]))
    np.testing.assert_array_equal(results[0][0], np.arange(5) * 2)
    np.testing.assert_array_equal(results[1][0], np.arange(5) * 3)
    assert results[1][1].outcome == "compiled" and results[0][1].path != results[1][1].path
