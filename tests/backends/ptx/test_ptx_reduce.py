"""Reductions on the PTX backend (backends/ptx/reduce.py): the shuffle plan on layout tables, the PTX it
gives (``shfl.sync.bfly`` exactly where lanes combine), and -- on a GPU -- the results against the VM.

* plan tests: pure numpy; every plan :func:`plan_reduction` returns is executed here on integers by an
  independent emulator of the generated code (per-thread groups, butterfly, shared-memory round) and must
  give every result holder the exact sum of its preimage;
* PTX tests: need llvmlite's NVPTX target and ``ptxas`` (skipped otherwise);
* run tests: use the ``backend`` fixture (tests/conftest.py); on the numpy VM they check the kernels
  themselves, with ``--backend ptx`` on a GPU they compare the PTX backend with the VM:
  ``python -m pytest -q tests/backends/ptx/test_ptx_reduce.py --backend ptx``.
"""
from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.passes.tvmaps import collapse, default_layout, reduce_map
from ptx_support import launch, needs_ptxas, toolchain

from support import run_kernel

R = importlib.import_module("vmlang.backends.ptx.reduce")


RNG = np.random.default_rng(7)


# ==================================================================================== the plan
def emulate(plan, x_tbl, in_shape, axis, out_tbl, data):
    """What the generated code computes, on int64 sums: per thread and result slot, or None where the
    plan leaves a thread's slot undefined (threads beyond the result layout)."""
    T = plan.block_threads
    Tin = x_tbl.shape[0]
    Vout = len(plan.groups)
    P = 1 << max(0, (T - 1).bit_length())
    acc = np.zeros((P, Vout), np.int64)
    for w, grp in enumerate(plan.groups):
        for v in grp:
            acc[:Tin, w] += data[x_tbl[:, v]]
    ar = np.arange(P)
    for j in plan.lane_bits:
        acc = acc + acc[ar ^ (1 << j)]
    if plan.shared_mask:
        new = np.zeros_like(acc)
        for h in plan.shared_parts:
            q = (ar & ~plan.shared_mask) | h
            new += np.where((q < T)[:, None], acc[np.minimum(q, P - 1)], 0)
        acc = new
    return acc


def check_plan(x_tbl, in_shape, axis, out_tbl, T):
    """The plan (or the reason there is none); a plan must compute every result exactly."""
    plan = R.plan_reduction(x_tbl, in_shape, axis, out_tbl, T)
    if isinstance(plan, str):
        return plan
    n = int(np.prod(in_shape))
    data = RNG.integers(1, 1 << 20, n)
    ref = data.reshape(in_shape, order="F").sum(axis).ravel(order="F")
    if out_tbl is None:
        out_tbl = np.zeros((T, 1), np.int64)
    got = emulate(plan, np.asarray(x_tbl), in_shape, axis, out_tbl, data)
    Tout = out_tbl.shape[0]
    np.testing.assert_array_equal(got[:Tout], ref[out_tbl])
    return plan


SHAPES = [(1,), (3,), (17,), (100,), (256,), (4096,), (16, 256), (64, 128), (3, 5), (128, 4), (2, 3, 8)]


@pytest.mark.parametrize("warps", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_plan_computes_the_reduction(shape, bits, warps):
    T = warps * 32
    X = default_layout(shape, bits, T)
    for axis in range(len(shape)):
        out_shape = shape[:axis] + shape[axis + 1:]
        if out_shape:
            O = collapse(X, reduce_map(shape, axis), out_shape)
            if O is None:
                continue
            check_plan(X.table(), shape, axis, O.table(), T)
        else:
            check_plan(X.table(), shape, axis, None, T)        # scalar: every thread of the block


@pytest.mark.parametrize("shape, axis, lanes, shared", [
    ((16, 256), 1, (0, 1, 2, 3, 4), True),      # GEMV: 32 lanes of a row, then 2 warps
    ((64, 128), 1, (0, 1, 2, 3, 4), False),     # a row within one warp
    ((128, 4), 1, (), False),                   # a row within one thread
    ((4096,), 0, (0, 1, 2, 3, 4), True),        # scalar: everything
    ((100,), 0, (0, 1, 2, 3, 4), True),         # 25 threads (the other lanes add the identity), scalar
])
def test_plan_levels(shape, axis, lanes, shared):
    X = default_layout(shape, 32, 128)
    O = None if len(shape) == 1 else collapse(X, reduce_map(shape, axis), shape[:axis] + shape[axis + 1:]).table()
    p = check_plan(X.table(), shape, axis, O, 128)
    assert p.lane_bits == lanes and bool(p.shared_mask) == shared


def test_scalar_of_one_thread_is_a_broadcast_without_shuffles():
    X = default_layout((1,), 32, 128)
    p = check_plan(X.table(), (1,), 0, None, 128)
    assert p.lane_bits == () and p.shared_parts == (0,) and p.scope == "block"


def test_replicated_input_is_counted_once():
    # 1-D [128] on 64 threads, threads 2k and 2k+1 hold the same 4 elements: bit 0 must not combine
    x = np.array([[(t // 2) * 4 + v for v in range(4)] for t in range(64)])
    p = check_plan(x, (128,), 0, None, 128)
    assert 0 not in p.lane_bits


def test_partially_overlapping_threads_fall_back():
    x = np.array([[(2 * t + v) % 64 for v in range(4)] for t in range(32)])
    assert "overlapping" in R.plan_reduction(x, (64,), 0, None, 32)


def test_layouts_not_aligned_to_thread_bits_fall_back():
    X = default_layout((3, 5), 32, 128)            # 5 threads per row: rows do not follow index bits
    O = collapse(X, reduce_map((3, 5), 1), (3,))
    assert isinstance(R.plan_reduction(X.table(), (3, 5), 1, O.table(), 128), str)


def test_result_layout_that_does_not_match_falls_back():
    X = default_layout((64, 128), 32, 128)
    O = collapse(X, reduce_map((64, 128), 1), (64,)).table()
    assert "does not hold" in R.plan_reduction(X.table(), (64, 128), 1, O[::-1], 128)


def test_non_uniform_grouping_falls_back():
    # thread 0 holds elements of rows (0, 1) in slots (0, 1), thread 1 in slots (1, 0)
    x = np.array([[0, 1], [3, 2]])                 # [2, 2] tile, colex: (r, c) -> r + 2c
    o = np.array([[0, 1], [0, 1]])
    assert "differently" in R.plan_reduction(x, (2, 2), 1, o, 32)


# ==================================================================================== PTX
def single_src(t: str, shape, fn: str, axis, warps: int = 4) -> str:
    """A kernel with one reduction: ``fn`` over ``axis`` of a ``shape`` tile (None: everything, the
    result stored into y[0]), on ``warps`` warps."""
    xi = ", ".join(f"0 : +{s}" for s in shape)
    dims = ", ".join(f"D{k}" for k in range(len(shape)))
    if axis is None:
        n = int(np.prod(shape))
        v = "v" if len(shape) == 1 else f"reshape(v, [{n}])"
        store, odims = f"store(y[0 : +1], {fn}({v}));", "E0"
    else:
        oshape = [s for k, s in enumerate(shape) if k != axis]
        odims = ", ".join(f"E{k}" for k in range(len(oshape)))
        store = f"store(y[{', '.join(f'0 : +{s}' for s in oshape)}], {fn}(v, axis={axis}));"
    return f"""kernel k(x: {t}[{dims}] global, y: {t}[{odims}] global) grid(1) warps({warps}) {{
    v = load(x[{xi}]);
    {store}
}}"""


def ptx_of(src: str) -> tuple[str, object]:
    """PTX (checked by ptxas) and the reduction's plan."""
    from vmlang.passes import pipeline
    k = vm.compile_source(src, "t.vm", {})
    prog = pipeline(k, None)
    red = [i for i in N.walk(prog.kernel.body) if isinstance(i, N.Reduce)][-1]
    out = None if red.out.is_scalar else red.out.type.layout.table()
    plan = R.plan_reduction(red.x.type.layout.table(), red.x.shape, red.axis, out, prog.kernel.warps * 32)
    _, module, _ = launch.lower_program(k, None, "sm_90")
    ptx = toolchain.to_ptx(str(module), "sm_90")
    toolchain.ptxas_check(ptx, "sm_90")
    return ptx, (plan, prog.facts.get(red))


CASES = [((1,), None), ((3,), None), ((17,), None), ((100,), None), ((4096,), None),
         ((16, 256), 0), ((16, 256), 1), ((16, 256), None), ((64, 128), 0), ((64, 128), 1),
         ((3, 5), 0), ((3, 5), 1), ((3, 5), None), ((128, 4), 1)]
DTYPES = ["f32", "f16", "bf16", "i8", "i32", "u8"]


@needs_ptxas
@pytest.mark.parametrize("shape, axis", CASES, ids=lambda c: str(c).replace(" ", ""))
def test_shuffles_appear_where_lanes_combine(shape, axis):
    ptx, (plan, fact) = ptx_of(single_src("f32", shape, "sum", axis))
    has = "shfl.sync.bfly" in ptx
    if isinstance(plan, str):                      # the scratch fallback
        assert not has
        return
    assert has == bool(plan.lane_bits)
    assert "bar.sync" in ptx or not plan.shared_mask
    if axis is not None and fact is not None:      # the layout pass's view of the scope agrees
        if fact.scope == "thread":
            assert not has and "bar.sync" not in ptx
        elif fact.scope == "warp":
            assert has and "bar.sync" not in ptx
        else:
            assert "bar.sync" in ptx


@needs_ptxas
@pytest.mark.parametrize("warps", [1, 3, 8])
@pytest.mark.parametrize("shape, axis", [((100,), None), ((16, 256), 1), ((64, 128), 0), ((4096,), None)],
                         ids=lambda c: str(c).replace(" ", ""))
def test_other_block_sizes_assemble(shape, axis, warps):
    ptx, (plan, _) = ptx_of(single_src("f32", shape, "sum", axis, warps))
    assert not isinstance(plan, str) and plan.block_threads == 32 * warps
    assert ("shfl.sync.bfly" in ptx) == bool(plan.lane_bits)
    assert "bar.sync" in ptx or not plan.shared_mask       # (a store's layout conversion may add more)


@needs_ptxas
def test_gemv_row_sum_uses_shuffles_and_one_shared_round():
    ptx, (plan, fact) = ptx_of(single_src("f32", (16, 256), "sum", 1))
    assert fact.scope == "block" and plan.lane_bits == (0, 1, 2, 3, 4)
    assert ptx.count("shfl.sync.bfly") == 5 * 8            # 5 steps x 8 rows per thread
    assert ptx.count("bar.sync") == 2 and ptx.count("ld.shared") == 2 * 8


@needs_ptxas
def test_thread_scope_has_no_shuffles():
    ptx, (plan, fact) = ptx_of(single_src("f32", (128, 4), "max", 1))
    assert fact.scope == "thread" and plan.scope == "thread"
    assert "shfl" not in ptx and "bar.sync" not in ptx


@needs_ptxas
@pytest.mark.parametrize("fn", ["sum", "max", "min"])
@pytest.mark.parametrize("t", DTYPES)
@pytest.mark.parametrize("shape, axis", [((16, 256), 1), ((64, 128), 0), ((100,), None), ((3, 5), 1)],
                         ids=lambda c: str(c).replace(" ", ""))
def test_dtypes_assemble(shape, axis, t, fn):
    ptx, (plan, _) = ptx_of(single_src(t, shape, fn, axis))
    assert ("shfl.sync.bfly" in ptx) == (not isinstance(plan, str) and bool(plan.lane_bits))


def test_bool_reductions_are_rejected_by_the_language():
    src = single_src("f32", (16,), "max", None).replace("max(v)", "max(v > 0.0)").replace("y: f32", "y: uint1")
    with pytest.raises(vm.VMError, match="compute dtype"):
        vm.compile_source(src, "t.vm", {})


# ==================================================================================== runs (GPU)
RUN_SRC = """
kernel k(x: {t}[R, C] global, y: {t}[R] global, z: {t}[C] global, w: {t}[1] global) grid(1) {{
    v = load(x[0 : +{r}, 0 : +{c}]);
    store(y[0 : +{r}], {fn}(v, axis=1));
    store(z[0 : +{c}], {fn}(v, axis=0));
    store(w[0 : +1], {fn}(reshape(v, [{rc}])));
}}"""
RUN_SRC_1D = """
kernel k(x: {t}[N] global, w: {t}[1] global) grid(1) {{
    v = load(x[0 : +{n}]);
    store(w[0 : +1], {fn}(v));
}}"""
NP_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16, "i8": np.int8,
             "i32": np.int32, "u8": np.uint8}


def random_nonzero(t: str, shape) -> np.ndarray:
    dt = NP_DTYPES[t]
    if t in ("f32", "f16", "bf16"):
        x = RNG.standard_normal(shape) * (4 if t != "f16" else 1)
        x = np.where(np.abs(x) < 1e-3, 0.5, x)
        return x.astype(dt)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -(1 << 20)), min(info.max, 1 << 20)
    x = RNG.integers(lo, hi + 1, shape)
    return np.where(x == 0, 1, x).astype(dt)


@pytest.fixture
def on_ptx(backend):
    if backend not in ("numpy", "ptx"):
        pytest.skip("the PTX reduction tests run on the VM and on --backend ptx")
    return backend


@pytest.mark.parametrize("fn", ["sum", "max", "min"])
@pytest.mark.parametrize("t", DTYPES)
@pytest.mark.parametrize("shape", [(16, 256), (64, 128), (3, 5), (1, 17), (8, 100)], ids=str)
def test_run_2d(on_ptx, shape, t, fn):
    x = random_nonzero(t, shape)
    r, c = shape
    y, z, w = np.zeros(r, x.dtype), np.zeros(c, x.dtype), np.zeros(1, x.dtype)
    ax = np.abs(x.astype(np.float64))
    run_kernel(on_ptx, vm.compile_source(RUN_SRC.format(t=t, r=r, c=c, rc=r * c, fn=fn), "t.vm", {}), x, y, z, w,
               scale={"y": ax.sum(1), "z": ax.sum(0), "w": ax.sum(keepdims=True).reshape(1)}, keep="vm")
    _check_vm(x, fn, t, [(y, 1), (z, 0), (w, None)])


@pytest.mark.parametrize("fn", ["sum", "max", "min"])
@pytest.mark.parametrize("t", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 17, 100, 256, 4096])
def test_run_1d(on_ptx, n, t, fn):
    x = random_nonzero(t, (n,))
    w = np.zeros(1, x.dtype)
    run_kernel(on_ptx, vm.compile_source(RUN_SRC_1D.format(t=t, n=n, fn=fn), "t.vm", {}), x, w,
               scale=np.abs(x.astype(np.float64)).sum(keepdims=True), keep="vm")
    _check_vm(x, fn, t, [(w, None)])


def _check_vm(x, fn, t, outs):
    """The VM's results (kept in the arguments) are the reductions: the kernels test what they claim."""
    for got, axis in outs:
        if fn != "sum":
            want = (np.max if fn == "max" else np.min)(x, axis=axis)
        elif t in ("f32", "f16", "bf16"):
            want = x.astype(np.float64).sum(axis)
            np.testing.assert_allclose(got.astype(np.float64).ravel(), np.ravel(want), rtol=1e-2,
                                       atol=1e-2 * np.abs(x.astype(np.float64)).sum())
            continue
        else:
            want = x.astype(np.int64).sum(axis).astype(x.dtype)         # wraps in the dtype
        np.testing.assert_array_equal(got.ravel(), np.ravel(want).astype(x.dtype))


@pytest.mark.parametrize("warps", [1, 3, 8])
@pytest.mark.parametrize("fn", ["sum", "max"])
@pytest.mark.parametrize("t", ["f32", "i32", "f16"])
def test_run_other_block_sizes(on_ptx, t, fn, warps):
    for shape, axis in [((16, 256), 1), ((64, 128), 0), ((100,), None), ((4096,), None)]:
        x = random_nonzero(t, shape)
        oshape = (1,) if axis is None else shape[:axis] + shape[axis + 1:]
        y = np.zeros(oshape, x.dtype)
        ax = np.abs(x.astype(np.float64))
        scale = ax.sum(keepdims=True).reshape(1) if axis is None else ax.sum(axis)
        run_kernel(on_ptx, vm.compile_source(single_src(t, shape, fn, axis, warps), "t.vm", {}), x, y,
                   scale=scale, keep="vm")
        _check_vm(x, fn, t, [(y, axis)])


# ==================================================================================== sums of products
DOT_SRC = """
kernel k(a: f32[R, C] global, b: f32[C] global, y: f32[R] global) grid(1) warps({w}) {{
    v = load(a[0 : +{r}, 0 : +{c}]);
    u = load(b[0 : +{c}]);
    store(y[0 : +{r}], sum(v * u[None, :], axis=1));
}}"""


@needs_ptxas
def test_sum_of_products_contracts_to_fma():
    """``sum(a * b)`` in f32 adds each product with ``fma`` inside the thread (no separate rounding of the
    product); a sum of sums does not, and neither does an f16 product (rounded to f16 first in the VM)."""
    ptx, _ = ptx_of(DOT_SRC.format(r=16, c=256, w=4))
    assert "fma.rn.f32" in ptx
    plain, _ = ptx_of(DOT_SRC.format(r=16, c=256, w=4).replace("v * u[None, :]", "v + u[None, :]"))
    assert "fma.rn.f32" not in plain
    half, _ = ptx_of(DOT_SRC.format(r=16, c=256, w=4).replace("f32", "f16"))
    assert "fma.rn.f32" not in half


@pytest.mark.parametrize("r,c,w", [(16, 256, 4), (3, 17, 1), (1, 100, 2), (7, 33, 4)])
def test_run_sum_of_products(on_ptx, r, c, w):
    """The contracted sums agree with the VM's exact-then-rounded ones within the f32 tolerance."""
    a = random_nonzero("f32", (r, c))
    b = random_nonzero("f32", (c,))
    y = np.zeros(r, np.float32)
    scale = np.abs(a.astype(np.float64) * b.astype(np.float64)).sum(1)
    run_kernel(on_ptx, vm.compile_source(DOT_SRC.format(r=r, c=c, w=w), "t.vm", {}), a, b, y,
               scale={"y": scale}, keep="vm")
    want = (a.astype(np.float64) * b.astype(np.float64)).sum(1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * scale.max())
