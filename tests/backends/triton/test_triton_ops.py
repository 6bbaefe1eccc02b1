"""Arithmetic on the Triton backend against the NumPy VM: integer ops of every width (bit for bit,
including the VM's rules for MIN / -1, shift counts and division by zero avoided), float ops of f16, bf16
and f32 with specials (bit for bit for + - * / sqrt min max where; within the tolerance of tests/support.py
for exp, exp2, log, rsqrt), reductions and dots of awkward shapes, atomics, scalar parameters."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import vmlang as vm

from support import run_kernel

RNG = np.random.default_rng(99)
INTS = [("i8", np.int8), ("u8", np.uint8), ("i16", np.int16), ("u16", np.uint16), ("i32", np.int32),
        ("u32", np.uint32)]
FLOATS = [("f16", np.float16), ("bf16", ml_dtypes.bfloat16), ("f32", np.float32)]


def ints(npt, n):
    info = np.iinfo(npt)
    x = RNG.integers(info.min, info.max, n, endpoint=True).astype(npt)
    special = [info.min, info.max, 0, 1, info.max // 2, info.min // 2 if info.min else 7]
    x[:min(n, 6)] = special[:min(n, 6)]
    return x


@pytest.mark.parametrize("t, npt", INTS, ids=[t for t, _ in INTS])
def test_integer_ops(t, npt):
    n = 37
    ops = ["a + b", "a - b", "a * b", "a / nz", "a % nz", "min(a, b)", "max(a, b)", "a & b", "a | b", "a ^ b",
           "-a", "~a", "abs(a)", "a << s", "a >> s", "where(a < b, a, b)"]
    cmps = ["a == b", "a != b", "a < b", "a <= b", "a > b", "a >= b"]
    outs = ", ".join(f"y{k}: {t}[N] global" for k in range(len(ops)))
    bouts = ", ".join(f"c{k}: uint1[N] global" for k in range(len(cmps)))
    body = "\n".join(f"    store(y{k}[0 : +{n}], {op});" for k, op in enumerate(ops))
    body += "\n" + "\n".join(f"    store(c{k}[0 : +{n}], {op});" for k, op in enumerate(cmps))
    src = f"""
kernel k(x: {t}[M] global, z: {t}[N] global, sh: {t}[N] global, {outs}, {bouts}) grid(1) {{
    a = load(x[0 : +{n}]);
    b = load(z[0 : +{n}]);
    s = load(sh[0 : +{n}]);
    nz = where(b == 0, load(x[1 : +{n}], fill=1), b);
{body}
}}"""
    a, b = ints(npt, n + 1), ints(npt, n)
    b[3], b[4] = 0, (-1 if np.iinfo(npt).min else 1)      # MIN / -1 wraps; 0 divisors are replaced
    a[4] = np.iinfo(npt).min
    a[a == 0] = 5
    bits = np.iinfo(npt).bits
    s = RNG.integers(0, bits + 3, n).astype(npt)
    args = [a, b, s] + [np.zeros(n, npt) for _ in ops] + [np.zeros(n, bool) for _ in cmps]
    run_kernel("triton", vm.compile_source(src), *args, exact=True)


SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, 3.0, 65504.0, 1e-7]


@pytest.mark.parametrize("t, npt", FLOATS, ids=[t for t, _ in FLOATS])
def test_float_ops_round_once_like_the_vm(t, npt):
    n = 53
    ops = ["a + b", "a - b", "a * b", "a / b", "sqrt(abs(a))", "min(a, b)", "max(a, b)", "-a", "abs(a)",
           "a * b + a", "where(a > b, a, b)"]
    cmps = ["a == b", "a != b", "a < b", "a >= b"]
    outs = ", ".join(f"y{k}: {t}[N] global" for k in range(len(ops)))
    bouts = ", ".join(f"c{k}: uint1[N] global" for k in range(len(cmps)))
    body = "\n".join(f"    store(y{k}[0 : +{n}], {op});" for k, op in enumerate(ops))
    body += "\n" + "\n".join(f"    store(c{k}[0 : +{n}], {op});" for k, op in enumerate(cmps))
    src = f"""
kernel k(x: {t}[N] global, z: {t}[N] global, {outs}, {bouts}) grid(1) {{
    a = load(x[0 : +{n}]);
    b = load(z[0 : +{n}]);
{body}
}}"""
    a = (RNG.standard_normal(n) * 8).astype(npt)
    b = (RNG.standard_normal(n) * 8).astype(npt)
    a[:len(SPECIALS)] = np.array(SPECIALS, np.float32).astype(npt)
    b[:len(SPECIALS)] = np.array(SPECIALS[::-1], np.float32).astype(npt)
    b[len(SPECIALS):2 * len(SPECIALS)] = np.array(SPECIALS, np.float32).astype(npt)
    args = [a, b] + [np.zeros(n, npt) for _ in ops] + [np.zeros(n, bool) for _ in cmps]
    run_kernel("triton", vm.compile_source(src), *args, exact=True)


@pytest.mark.parametrize("t, npt", FLOATS, ids=[t for t, _ in FLOATS])
def test_math_functions_within_the_tolerance(t, npt):
    n = 40
    fns = ["exp", "exp2", "log", "rsqrt"]
    outs = ", ".join(f"y{k}: {t}[N] global" for k in range(len(fns)))
    body = "\n".join(f"    store(y{k}[0 : +{n}], {fn}(a));" for k, fn in enumerate(fns))
    src = f"kernel k(x: {t}[N] global, {outs}) grid(1) {{\n    a = load(x[0 : +{n}]);\n{body}\n}}"
    a = (RNG.standard_normal(n) * 4).astype(npt)
    a[:6] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0], np.float32).astype(npt)
    run_kernel("triton", vm.compile_source(src), a, *[np.zeros(n, npt) for _ in fns])


@pytest.mark.parametrize("t, npt", [("f32", np.float32), ("f16", np.float16), ("i8", np.int8), ("u32", np.uint32)])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 3), (4, 100)], ids=str)
def test_reductions_of_awkward_shapes(t, npt, shape):
    r, c = shape
    src = f"""
kernel k(x: {t}[R, C] global, s0: {t}[C] global, s1: {t}[R] global, m0: {t}[C] global, m1: {t}[R] global,
         n0: {t}[C] global, n1: {t}[R] global, s: {t}[1] global) grid(1) {{
    v = load(x[0 : +{r}, 0 : +{c}]);
    store(s0[0 : +{c}], sum(v, axis=0));
    store(s1[0 : +{r}], sum(v, axis=1));
    store(m0[0 : +{c}], max(v, axis=0));
    store(m1[0 : +{r}], max(v, axis=-1));
    store(n0[0 : +{c}], min(v, axis=0));
    store(n1[0 : +{r}], min(v, axis=1));
    store(s[0], sum(reshape(v, [{r * c}])));
}}"""
    if npt in (np.float32, np.float16):
        x = RNG.standard_normal(shape).astype(npt)
        if r > 2:
            x[1, :] = np.nan        # an all-NaN row: max/min give NaN
            x[2, 0] = np.nan        # one NaN: ignored by max/min
    else:
        x = ints(npt, r * c).reshape(shape)
    outs = [np.zeros(c, npt), np.zeros(r, npt), np.zeros(c, npt), np.zeros(r, npt), np.zeros(c, npt),
            np.zeros(r, npt), np.zeros(1, npt)]
    ax = np.abs(x.astype(np.float64))
    scale = {"s0": ax.sum(0), "s1": ax.sum(1), "s": ax.sum(keepdims=True).reshape(1)}
    run_kernel("triton", vm.compile_source(src), x, *outs, scale=scale)


@pytest.mark.parametrize("t, npt", [("f16", np.float16), ("bf16", ml_dtypes.bfloat16), ("f32", np.float32),
                                    ("i8", np.int8)], ids=["f16", "bf16", "f32", "i8"])
@pytest.mark.parametrize("mkn", [(1, 1, 1), (3, 17, 5), (16, 16, 16), (32, 17, 48), (20, 64, 33)], ids=str)
def test_dot_of_any_shape(t, npt, mkn):
    m, k, n = mkn
    acc = "i32" if t == "i8" else "f32"
    src = f"""
kernel k(a: {t}[M, K] global, b: {t}[K, N] global, c: {acc}[M, N] global, d: {acc}[M, N] global) grid(1) {{
    acc = load(c[0 : +{m}, 0 : +{n}]);
    store(d[0 : +{m}, 0 : +{n}], dot(load(a[0 : +{m}, 0 : +{k}]), load(b[0 : +{k}, 0 : +{n}]), acc));
}}"""
    if t == "i8":
        a, b = ints(np.int8, m * k).reshape(m, k), ints(np.int8, k * n).reshape(k, n)
        c = ints(np.int32, m * n).reshape(m, n)
        d = np.zeros((m, n), np.int32)
        scale = None
    else:
        a, b = RNG.standard_normal((m, k)).astype(npt), RNG.standard_normal((k, n)).astype(npt)
        c, d = RNG.standard_normal((m, n)).astype(np.float32), np.zeros((m, n), np.float32)
        scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)) + np.abs(c)
    run_kernel("triton", vm.compile_source(src), a, b, c, d, scale=scale)


@pytest.mark.parametrize("t, npt", [("f16", np.float16), ("bf16", ml_dtypes.bfloat16), ("f32", np.float32),
                                    ("i32", np.int32), ("u32", np.uint32)], ids=["f16", "bf16", "f32", "i32", "u32"])
def test_atomic_add_from_many_blocks(t, npt):
    src = f"""
kernel k(x: {t}[B, 7] global, y: {t}[7] global, s: {t}[1] global) grid(B) {{
    v = load(x[block.x, 0 : +7]);
    atomic_add(y[0 : +7], v);
    atomic_add(s[0], v[block.x % 7]);
}}"""
    if npt in (np.int32, np.uint32):
        x = ints(npt, 5 * 7).reshape(5, 7)
    else:   # small integers: every partial sum is exact, whatever the order
        x = RNG.integers(-20, 20, (5, 7)).astype(np.float32).astype(npt)
    run_kernel("triton", vm.compile_source(src), x, np.full(7, 3, npt), np.zeros(1, npt), exact=True)


@pytest.mark.parametrize("t, value", [("f32", -1.25e-3), ("f16", 0.1), ("bf16", 3.1), ("i8", -100), ("u8", 250),
                                      ("i16", -30000), ("u16", 65000), ("i32", -2**31), ("u32", 2**32 - 5),
                                      ("uint1", True), ("f16", float("-inf")), ("f32", float("nan"))])
def test_scalar_parameters_of_every_compute_dtype(t, value):
    src = f"""
kernel k(y: {t}[N] global, v: {t}) grid(1) {{
    store(y[0 : +3], broadcast(v, [3]));
    store(y[3], v);
}}"""
    npt = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16, "i8": np.int8, "u8": np.uint8,
           "i16": np.int16, "u16": np.uint16, "i32": np.int32, "u32": np.uint32, "uint1": np.bool_}[t]
    run_kernel("triton", vm.compile_source(src), np.zeros(4, npt), value, exact=True)


def test_loops_branches_and_grid_axes():
    src = """
kernel k(x: f32[Z, Y, X] global, y: f32[Z, Y, X] global, n: i32) grid(cdiv(X, 4), Y, Z) {
    x0 = block.x * 4;
    acc = load(x[block.z, block.y, x0 : +4]);
    cnt = 0;
    for i in range(block.y, n, 2) {
        if i % 3 == 0 {
            acc = acc * 0.5;
        } else {
            acc = acc + cast(i, f32);
            cnt += 1;
        }
    }
    store(y[block.z, block.y, x0 : +4], acc + cast(cnt, f32));
}"""
    x = RNG.standard_normal((2, 3, 9)).astype(np.float32)
    for n in (0, 1, 7):
        run_kernel("triton", vm.compile_source(src), x, np.zeros_like(x), n, exact=True)


# ---------------------------------------------------------------- regressions found by the differential fuzzer
def test_float16_max_keeps_its_dtype_for_a_view():
    """(fuzzer) max/min of an f16 tile with padding lanes came back as f32 data, and view(m, u16) failed."""
    src = """
kernel k(x: f16[R, C] global, y: u16[R] global, z: u16[R] global) grid(1) {
    store(y[0 : +3], view(max(load(x[0 : +3, 0 : +5]), axis=1), u16));
    store(z[0 : +3], view(min(load(x[0 : +3, 0 : +5]), axis=1), u16));
}"""
    x = RNG.standard_normal((3, 5)).astype(np.float16)
    run_kernel("triton", vm.compile_source(src), x, np.zeros(3, np.uint16), np.zeros(3, np.uint16), exact=True)


@pytest.mark.parametrize("t, npt", [("u8", np.uint8), ("u16", np.uint16)])
@pytest.mark.parametrize("red", ["max", "min", "sum"])
def test_unsigned_reductions_stay_unsigned(t, npt, red):
    """(fuzzer) reductions of uint8/uint16 over padded tiles came back as int32, and a following % or /
    failed on mixed signedness."""
    src = f"""
kernel k(x: {t}[R, C] global, y: {t}[R] global, z: {t}[R] global) grid(1) {{
    m = {red}(load(x[0 : +3, 0 : +5]), axis=1);
    store(y[0 : +3], m % cast(7, {t}));
    store(z[0 : +3], m / cast(3, {t}));
}}"""
    x = RNG.integers(1, np.iinfo(npt).max, (3, 5), endpoint=True).astype(npt)
    run_kernel("triton", vm.compile_source(src), x, np.zeros(3, npt), np.zeros(3, npt), exact=True)


def test_negating_zero_gives_negative_zero():
    """(H100) Triton lowers -x to 0 - x, which is +0.0 for x = +0.0; the VM (IEEE negation) gives -0.0."""
    src = """
kernel k(x: f32[N] global, y: f32[N] global, h: f16[N] global, b: bf16[N] global) grid(1) {
    a = load(x[0 : +5]);
    store(y[0 : +5], -a);
    store(h[0 : +5], -cast(a, f16));
    store(b[0 : +5], -cast(a, bf16));
}"""
    x = np.array([0.0, -0.0, 1.5, -np.inf, np.nan], np.float32)
    run_kernel("triton", vm.compile_source(src), x, np.ones(5, np.float32), np.ones(5, np.float16),
               np.ones(5, ml_dtypes.bfloat16), exact=True)


@pytest.mark.parametrize("t, npt", [("f32", np.float32), ("f16", np.float16), ("bf16", ml_dtypes.bfloat16)])
def test_full_of_negative_zero_keeps_its_sign(t, npt):
    """(fuzzer, H100) full(f32, [4, 16], -0.0) stored +0.0: on the GPU tl.full turns a constant equal to 0
    into the null value."""
    src = f"""
kernel k(y: {t}[N] global) grid(1) {{
    store(y[0 : +16], full({t}, [16], -0.0));
}}"""
    run_kernel("triton", vm.compile_source(src), np.ones(16, npt), exact=True)


@pytest.mark.parametrize("t, npt", [("i8", np.int8), ("i16", np.int16), ("u8", np.uint8), ("u16", np.uint16)])
def test_negation_and_abs_wrap_before_widening(t, npt):
    """(fuzzer, H100) -x of int16 -32768 is -32768 (it wraps), also when the result is then cast to int32
    or summed by an atomic; the generated code had given 32768 there."""
    src = f"""
kernel k(x: {t}[N] global, y: i32[N] global, z: i32[N] global, s: i32[1] global) grid(1) {{
    a = load(x[0 : +9]);
    store(y[0 : +9], cast(-a, int32));
    store(z[0 : +9], cast(abs(a), int32));
    atomic_add(s[0 : +1], broadcast(sum(cast(-a, int32)), [1]));
}}"""
    x = ints(npt, 9)
    x[:3] = [np.iinfo(npt).min, np.iinfo(npt).max, 1]
    run_kernel("triton", vm.compile_source(src), x, np.zeros(9, np.int32), np.zeros(9, np.int32),
               np.zeros(1, np.int32), exact=True)
