"""The NumPy VM against the semantics documented in vmlang/ir/nodes.py, one small kernel per rule.

Expected values are computed here with NumPy / Python from the documented rule (or, for formats,
from ml_dtypes or a brute-force nearest-value search); nothing below is a pasted VM output.

Every test runs once per backend (the ``backend`` fixture of tests/conftest.py, through the autouse
fixture below). On a compiled backend, :func:`run` also runs the kernel on the VM and checks that the
backend agrees with it by the rule of tests/support.py (bit for bit, or within the float tolerance for
kernels with sums, dots and math functions -- those then keep the VM's outputs for the exact checks
that follow, which are statements about the VM). Run-time errors are the VM's: :func:`raises_at` checks
them on the VM only (compiled code cannot raise from inside a kernel), and tests that are only about
such errors are marked ``numpy_only``.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import vmlang as vm

from support import run_kernel

NP = vm.backend("numpy")
BACKEND = "numpy"      # set per test by the autouse fixture below
VM_ERRORS = "a run-time error of the VM: compiled backends do not check at run time"


@pytest.fixture(autouse=True)
def _on_backend(backend):
    global BACKEND
    BACKEND = backend
    yield
    BACKEND = "numpy"


def kernel(src: str, filename: str = "t.vm", **consts):
    return vm.compile_source(src, filename, consts)


def run(src: str, *args, filename: str = "t.vm", scale=None, **consts):
    """Run on the current backend (compared with the VM there; ``scale``: see support.run_kernel)."""
    run_kernel(BACKEND, kernel(src, filename, **consts), *args, scale=scale)


def line_of(src: str, marker: str) -> int:
    """1-based line number of the (unique) source line containing ``marker``."""
    hits = [i for i, l in enumerate(src.splitlines(), 1) if marker in l]
    assert len(hits) == 1, hits
    return hits[0]


def raises_at(src, marker, match, *args, filename="t.vm"):
    """Run ``src`` and check it raises VMRuntimeError matching ``match`` at the line of ``marker``.

    On the VM only: on a compiled backend nothing runs and the result is None."""
    if BACKEND != "numpy":
        return None
    with pytest.raises(vm.VMRuntimeError, match=match) as e:
        run(src, *args, filename=filename)
    assert e.value.loc is not None and e.value.loc.file == filename
    assert e.value.loc.line == line_of(src, marker)
    assert str(e.value).startswith(f"{filename}:{e.value.loc.line}:")
    return e.value


RNG = np.random.default_rng(20240611)


# ==================================================================================== masked memory
LOAD_WINDOW = """
kernel window(x: f32[N] global, y: f32[8] global, off: i32) grid(1) {
    store(y[0 : +8], load(x[off : +8], fill=-7.5));
}
"""


@pytest.mark.parametrize("off", [-10, -3, 0, 2, 5, 12])
def test_masked_load_reads_fill_outside_the_shape(off):
    x = RNG.standard_normal(5).astype(np.float32)
    y = np.zeros(8, np.float32)
    run(LOAD_WINDOW, x, y, off)
    p = off + np.arange(8)
    inside = (p >= 0) & (p < 5)
    np.testing.assert_array_equal(y, np.where(inside, x[np.clip(p, 0, 4)], np.float32(-7.5)))


def test_masked_load_default_fill_is_zero_2d():
    src = """
kernel corner(x: i16[R, C] global, y: i16[4, 8] global) grid(1) {
    store(y[0 : +4, 0 : +8], load(x[R - 2 : +4, C - 5 : +8]));
}"""
    x = RNG.integers(1, 1000, (3, 7)).astype(np.int16)
    y = np.full((4, 8), -1, np.int16)
    run(src, x, y)
    want = np.zeros((4, 8), np.int16)
    want[:2, :5] = x[1:, 2:]
    np.testing.assert_array_equal(y, want)


def test_fill_from_a_scalar_parameter_can_be_infinite():
    """fill may be a scalar of the loaded dtype, which is how -inf reaches an f16 load."""
    src = """
kernel k(x: f16[N] global, y: f16[16] global, pad: f16) grid(1) {
    store(y[0 : +16], load(x[0 : +16], fill=pad));
}"""
    x = RNG.standard_normal(10).astype(np.float16)
    y = np.zeros(16, np.float16)
    run(src, x, y, float("-inf"))
    np.testing.assert_array_equal(y, np.concatenate([x, np.full(6, -np.inf, np.float16)]))


def test_masked_load_of_a_storage_type_with_fill():
    src = """
kernel k(x: int4[N] global, y: int4[8] global) grid(1) {
    store(y[0 : +8], load(x[0 : +8], fill=-3));
}"""
    vals = RNG.integers(-8, 8, 5)
    y = vm.Tensor.from_values(np.zeros(8), vm.int4)
    run(src, vm.Tensor.from_values(vals, vm.int4), y)
    np.testing.assert_array_equal(y.values(), np.concatenate([vals, [-3, -3, -3]]))


def test_masked_load_without_fill_of_a_type_without_zero_is_an_error():
    """float8_e8m0 has no 0, so a masked load gets no default fill and may not read outside."""
    src = """
kernel k(e: float8_e8m0[N] global, y: f32[4] global, off: i32) grid(1) {
    store(y[0 : +4], cast(load(e[off : +4]), f32));   // LOAD
}"""
    codes = np.array([120, 127, 130, 127, 3], np.uint8)
    y = np.zeros(4, np.float32)
    run(src, vm.Tensor(codes, vm.float8_e8m0), y, 1)      # inside: fine
    np.testing.assert_array_equal(y, np.ldexp(1.0, codes[1:5].astype(int) - 127))
    raises_at(src, "// LOAD", "out-of-bounds read", vm.Tensor(codes, vm.float8_e8m0), y, 2)


STORE_WINDOW = """
kernel k(x: f32[8] global, y: f32[N] global, off: i32) grid(1) {
    store(y[off : +8], load(x[0 : +8]));
}
"""


@pytest.mark.parametrize("off", [-9, -3, 0, 4, 20])
def test_masked_store_skips_positions_outside_the_shape(off):
    x = RNG.standard_normal(8).astype(np.float32)
    y = np.full(6, 123.0, np.float32)
    run(STORE_WINDOW, x, y, off)
    want = np.full(6, 123.0, np.float32)
    for j in range(8):
        if 0 <= off + j < 6:
            want[off + j] = x[j]
    np.testing.assert_array_equal(y, want)
@pytest.mark.numpy_only(VM_ERRORS)
def test_unmasked_out_of_bounds_load_is_an_error_with_location():
    src = """
kernel k(x: f32[N] global, y: f32[8] global) grid(1) {
    t = load(x[0 : +8], masked=false);   // HERE
    store(y[0 : +8], t);
}"""
    y = np.zeros(8, np.float32)
    e = raises_at(src, "// HERE", r"out-of-bounds read of x\[5\] \(shape \[5\]\)",
                  np.ones(5, np.float32), y, filename="oob_load.vm")
    assert e.loc.column == src.splitlines()[line_of(src, "// HERE") - 1].index("load(") + 1
    run(src, np.ones(8, np.float32), y, filename="oob_load.vm")   # in bounds: no error
    np.testing.assert_array_equal(y, 1.0)


def test_unmasked_out_of_bounds_store_is_an_error_and_writes_nothing():
    src = """
kernel k(x: f32[8] global, y: f32[N] global) grid(2) {
    store(y[block.x * 8 : +8], load(x[0 : +8]), masked=false);   // HERE
}"""
    x = RNG.standard_normal(8).astype(np.float32)
    y = np.full(12, 5.0, np.float32)
    raises_at(src, "// HERE", r"out-of-bounds write of y\[12\]", x, y, filename="oob_store.vm")
    # block 0 had stored successfully, but a failed launch writes nothing back
    np.testing.assert_array_equal(y, 5.0)


def test_out_of_bounds_read_of_a_tile_is_an_error():
    src = """
kernel k(y: f32[4] global, off: i32) grid(1) {
    t = zeros(f32, [8]);
    store(y[0 : +4], t[off : +4]);   // HERE
}"""
    y = np.ones(4, np.float32)
    run(src, y, 4)
    np.testing.assert_array_equal(y, 0.0)
    raises_at(src, "// HERE", "out-of-bounds read of tile", y, 5)
@pytest.mark.numpy_only(VM_ERRORS)
def test_negative_offset_in_unmasked_load_is_an_error():
    src = """
kernel k(x: f32[N] global, y: f32[2] global, off: i32) grid(1) {
    store(y[0 : +2], load(x[off : +2], masked=false));   // HERE
}"""
    raises_at(src, "// HERE", r"x\[-1\]", np.ones(4, np.float32), np.zeros(2, np.float32), -1)


# ==================================================================================== uninitialised
@pytest.mark.numpy_only(VM_ERRORS)
def test_storing_an_empty_tile_is_an_error():
    src = """
kernel k(y: f32[8] global) grid(1) {
    t = empty(f32, [8]);             // ALLOC
    store(y[0 : +8], t * 2.0);       // HERE
}"""
    e = raises_at(src, "// HERE", "uninitialised memory", np.zeros(8, np.float32))
    assert f"t.vm:{line_of(src, '// ALLOC')}:" in e.message   # names where it was allocated


def test_partially_written_empty_tile_is_fine_where_written():
    src = """
kernel k(x: f32[N] global, y: f32[5] global) grid(1) {
    t = empty(f32, [8]);
    store(t[0 : +5], load(x[0 : +5]) + 1.0);
    u = t[0 : +5] * 2.0;
    store(y[0 : +5], u);
}"""
    x = RNG.standard_normal(5).astype(np.float32)
    y = np.zeros(5, np.float32)
    run(src, x, y)
    np.testing.assert_array_equal(y, (x + np.float32(1)) * np.float32(2))


@pytest.mark.numpy_only(VM_ERRORS)
@pytest.mark.parametrize("use", ["t[0 : +6]", "broadcast(sum(t), [5])", "t[3 : +5]"])
def test_any_use_of_the_unwritten_part_is_an_error(use):
    src = f"""
kernel k(x: f32[N] global, y: f32[{6 if use.startswith("t[0") else 5}] global) grid(1) {{
    t = empty(f32, [8]);
    store(t[0 : +5], load(x[0 : +5]));
    store(y[0 : +{6 if use.startswith("t[0") else 5}], {use});   // HERE
}}"""
    raises_at(src, "// HERE", "uninitialised", RNG.standard_normal(5).astype(np.float32),
              np.zeros(6 if use.startswith("t[0") else 5, np.float32))


def test_empty_filled_in_a_loop_is_fine():
    src = """
kernel k(x: i32[N] global, y: i32[4] global) grid(1) {
    t = empty(i32, [4]);
    for i in range(0, 4) {
        store(t[i : +1], load(x[i : +1]) * 3);
    }
    store(y[0 : +4], t);
}"""
    x = RNG.integers(-100, 100, 4).astype(np.int32)
    y = np.zeros(4, np.int32)
    run(src, x, y)
    np.testing.assert_array_equal(y, x * 3)
@pytest.mark.numpy_only(VM_ERRORS)
def test_poison_in_an_index_is_an_error():
    src = """
kernel k(x: f32[N] global, y: f32[1] global) grid(1) {
    t = empty(i32, [4]);
    i = sum(t);
    store(y[0 : +1], load(x[i : +1]));   // HERE
}"""
    raises_at(src, "// HERE", "uninitialised", np.zeros(4, np.float32), np.zeros(1, np.float32))


# ==================================================================================== casts
CAST = """
kernel k(x: {src}[N] global, y: {dst}[N] global) grid(1) {{
    store(y[0 : +{n}], cast(load(x[0 : +{n}]), {dst}{sat}));   // HERE
}}"""


def cast_src(src, dst, n, saturate=False):
    return CAST.format(src=src, dst=dst, n=n, sat=", saturate=true" if saturate else "")


def test_cast_f32_to_f16_rounds_to_nearest_even():
    ulp1 = 2.0 ** -10
    vals = [1 + ulp1 / 2, 1 + 3 * ulp1 / 2, -(1 + ulp1 / 2), 2 + ulp1, 2 + 3 * ulp1,   # exact ties
            2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -26,                                      # subnormal ties
            65519.0, 65520.0, 1 + ulp1 / 2 + 2.0 ** -20, 1 / 3, -7e-8, 1e-9]
    x = np.array(vals, np.float32)
    assert (x[:11].astype(np.float64) == np.array(vals[:11])).all()   # the ties are exact in f32
    y = np.zeros(len(vals), np.float16)
    run(cast_src("f32", "f16", len(vals)), x, y)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)    # NumPy: IEEE round to nearest even
    np.testing.assert_array_equal(y.view(np.uint16), want.view(np.uint16))
    # spelled out for the ties: to the even significand
    assert y[0] == 1.0 and y[1] == 1 + 2 * ulp1 and y[3] == 2.0 and y[4] == 2 + 4 * ulp1
    assert y[9] == np.inf and y[8] == 65504.0


def test_cast_f32_to_f16_saturate():
    x = np.array([7e4, -1e30, 65519.0, 65520.0, 3.0, np.inf, -np.inf], np.float32)
    y = np.zeros(7, np.float16)
    run(cast_src("f32", "f16", 7, saturate=True), x, y)
    want = np.clip(x.astype(np.float64), -65504, 65504).astype(np.float16)
    np.testing.assert_array_equal(y, want)


def e2m1_nearest(v):
    """Brute force: nearest e2m1 value, ties to the even code (mantissa bit 0)."""
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]   # 8.0: the first value past the format
    out = []
    for x in v:
        a = abs(x)
        d = [abs(a - g) for g in grid]
        best = min(d)
        cands = [i for i, di in enumerate(d) if di == best]
        i = cands[0] if len(cands) == 1 else [c for c in cands if c % 2 == 0][0]
        out.append(math.copysign(grid[i], x))
    return np.array(out)


def test_cast_to_float4_e2m1_rounds_to_nearest_even():
    vals = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.3, 0.74, 2.9, 6.0, 6.5, 6.9, -0.25, -0.75, -5.0,
            -6.9, 0.1, -0.1, 4.0]
    x = np.array(vals, np.float32)
    y = vm.Tensor.from_codes(np.zeros(len(vals), np.uint8), vm.float4_e2m1)
    run(cast_src("f32", "float4_e2m1", len(vals)), x, y)
    want = e2m1_nearest(vals)
    assert np.abs(want).max() <= 6.0
    np.testing.assert_array_equal(y.values(), want)
    # and ml_dtypes agrees where it has the format
    np.testing.assert_array_equal(y.values(), x.astype(ml_dtypes.float4_e2m1fn).astype(np.float64))


@pytest.mark.parametrize("v", [7.0, 8.0, 100.0, -7.0, -1e30])
def test_cast_to_float4_e2m1_overflow(v):
    """Values that round past 6 (from 7 = the midpoint of 6 and 8 up) are an error without
    saturate and clamp to +-6 with it."""
    x = np.array([1.0, v], np.float32)
    y = vm.Tensor.from_codes(np.zeros(2, np.uint8), vm.float4_e2m1)
    raises_at(cast_src("f32", "float4_e2m1", 2), "// HERE", "float4_e2m1", x, y)
    np.testing.assert_array_equal(y.values(), 0.0)   # nothing written
    run(cast_src("f32", "float4_e2m1", 2, saturate=True), x, y)
    np.testing.assert_array_equal(y.values(), [1.0, math.copysign(6.0, v)])
@pytest.mark.numpy_only(VM_ERRORS)
def test_cast_nan_to_float4_e2m1_is_an_error():
    y = vm.Tensor.from_codes(np.zeros(1, np.uint8), vm.float4_e2m1)
    raises_at(cast_src("f32", "float4_e2m1", 1), "// HERE", "cast", np.array([np.nan], np.float32), y)


def test_cast_float_to_int_rounds_to_nearest_even_and_checks_range():
    vals = np.array([2.5, 3.5, -2.5, -0.5, 0.5, 1.49, 127.4, -128.0, 99.5], np.float32)
    y = np.zeros(len(vals), np.int8)
    run(cast_src("f32", "i8", len(vals)), vals, y)
    np.testing.assert_array_equal(y, np.rint(vals.astype(np.float64)).astype(np.int8))
    bad = np.array([1.0, 127.5], np.float32)           # rounds to 128
    raises_at(cast_src("f32", "i8", 2), "// HERE", "out of range", bad, np.zeros(2, np.int8))
    y2 = np.zeros(2, np.int8)
    run(cast_src("f32", "i8", 2, saturate=True), np.array([1e6, -1e6], np.float32), y2)
    np.testing.assert_array_equal(y2, [127, -128])


def test_cast_int_to_int_wraps_or_saturates():
    x = RNG.integers(-2**31, 2**31, 64).astype(np.int32)
    x[:4] = [300, -129, 128, 255]
    y = np.zeros(64, np.int8)
    run(cast_src("i32", "i8", 64), x, y)
    np.testing.assert_array_equal(y, x.astype(np.int8))            # NumPy truncates = wraps mod 2**8
    run(cast_src("i32", "i8", 64, saturate=True), x, y)
    np.testing.assert_array_equal(y, np.clip(x, -128, 127))
    u = np.zeros(64, np.uint8)
    run(cast_src("i32", "u8", 64), x, u)
    np.testing.assert_array_equal(u, (x.astype(np.int64) % 256).astype(np.uint8))


def test_cast_int_to_f16_rounds_to_nearest_even():
    x = np.array([2049, 2051, 4097, 4099, 4101, 65519, 65520, -2049, 7], np.int32)
    y = np.zeros(len(x), np.float16)
    run(cast_src("i32", "f16", len(x)), x, y)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(y, x.astype(np.float64).astype(np.float16))


def test_cast_int4_and_nf4_to_f32():
    codes = RNG.permutation(16)
    y = np.zeros(16, np.float32)
    run(cast_src("int4", "f32", 16), vm.Tensor.from_codes(codes, vm.int4), y)
    np.testing.assert_array_equal(y, np.where(codes >= 8, codes - 16, codes))      # two's complement
    run(cast_src("nf4", "f32", 16), vm.Tensor.from_codes(codes, vm.nf4), y)
    nf4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
           -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
           0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
           0.7229568362236023, 1.0]                                                # bitsandbytes NF4
    np.testing.assert_array_equal(y, np.array(nf4, np.float32)[codes])


# ==================================================================================== integers
BINOP = """
kernel k(a: {t}[N] global, b: {t}[N] global, c: {r}[N] global) grid(1) {{
    store(c[0 : +{n}], load(a[0 : +{n}]) {op} load(b[0 : +{n}]));   // HERE
}}"""


def binop(op, a, b, t, r=None, n=None):
    n = len(a) if n is None else n
    c = np.zeros(len(a), a.dtype if r is None else {"bool": np.bool_}.get(r, a.dtype))
    run(BINOP.format(t=t, r=r or t, op=op, n=n), a, b, c)
    return c


@pytest.mark.parametrize("t, npt", [("i8", np.int8), ("u8", np.uint8), ("i16", np.int16), ("i32", np.int32),
                                    ("u32", np.uint32)])
@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_int_arithmetic_wraps_around(t, npt, op):
    info = np.iinfo(npt)
    a = RNG.integers(info.min, info.max, 50, endpoint=True).astype(npt)
    b = RNG.integers(info.min, info.max, 50, endpoint=True).astype(npt)
    a[0], b[0] = info.max, info.max        # overflows for + and *
    a[1], b[1] = info.min, 1               # underflows for -
    c = binop(op, a, b, t)
    exact = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}[op](
        a.astype(object), b.astype(object))
    bits = np.dtype(npt).itemsize * 8
    want = [((v - info.min) % (1 << bits)) + info.min for v in exact]
    np.testing.assert_array_equal(c.astype(object), want)


def test_int8_add_overflow_example():
    c = binop("+", np.array([100, -100, 127], np.int8), np.array([100, -100, 1], np.int8), "i8")
    np.testing.assert_array_equal(c, np.array([200 - 256, -200 + 256, -128]))


def test_int_division_truncates_toward_zero():
    a = RNG.integers(-1000, 1000, 200).astype(np.int32)
    b = RNG.integers(-30, 30, 200).astype(np.int32)
    b[b == 0] = 7
    a[:4], b[:4] = [7, -7, 7, -7], [2, 2, -2, -2]
    q = binop("/", a, b, "i32")
    r = binop("%", a, b, "i32")
    want_q = [math.trunc(x / y) for x, y in zip(a.tolist(), b.tolist())]   # exact: |x| < 2**53
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(r, [x - y * w for x, y, w in zip(a.tolist(), b.tolist(), want_q)])
    np.testing.assert_array_equal(r, np.fmod(a, b))                     # C remainder: sign of a
    np.testing.assert_array_equal(q[:4], [3, -3, -3, 3])


def test_int_division_of_the_minimum_by_minus_one_wraps():
    q = binop("/", np.array([-128], np.int8), np.array([-1], np.int8), "i8")
    assert q[0] == -128


@pytest.mark.numpy_only(VM_ERRORS)
@pytest.mark.parametrize("op", ["/", "%"])
def test_int_division_by_zero_is_an_error(op):
    a = np.array([1, 2, 3], np.int32)
    b = np.array([1, 0, 3], np.int32)
    raises_at(BINOP.format(t="i32", r="i32", op=op, n=3), "// HERE", "division by zero", a, b,
              np.zeros(3, np.int32))


def test_float_division_by_zero_is_inf():
    a = np.array([1, -2, 0], np.float32)
    c = binop("/", a, np.zeros(3, np.float32), "f32")
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(c, a / np.float32(0))


def shift_ref(a, s, bits, signed, left):
    out = []
    for x, k in zip(a.tolist(), s.tolist()):
        if left:
            v = 0 if k >= bits else x << k
        else:
            v = (-1 if x < 0 else 0) if k >= bits else x >> k   # Python >> is arithmetic
        m = 1 << bits
        v %= m
        if signed and v >= m // 2:
            v -= m
        out.append(v)
    return out


@pytest.mark.parametrize("t, npt", [("i32", np.int32), ("u32", np.uint32), ("i8", np.int8), ("u8", np.uint8)])
@pytest.mark.parametrize("op", ["<<", ">>"])
def test_shifts(t, npt, op):
    info = np.iinfo(npt)
    bits = np.dtype(npt).itemsize * 8
    a = RNG.integers(info.min, info.max, 3 * bits, endpoint=True).astype(npt)
    s = np.tile(np.arange(bits + 2), 3)[:3 * bits].astype(npt)   # includes >= width
    a[:2] = [info.min, info.max]
    c = binop(op, a, s, t)
    want = shift_ref(a.astype(object), s.astype(object), bits, info.min < 0, op == "<<")
    np.testing.assert_array_equal(c.astype(object), want)
@pytest.mark.numpy_only(VM_ERRORS)
def test_negative_shift_is_an_error():
    raises_at(BINOP.format(t="i32", r="i32", op=">>", n=2), "// HERE", "negative shift",
              np.array([8, 8], np.int32), np.array([1, -1], np.int32), np.zeros(2, np.int32))


def test_bitwise_ops():
    a = RNG.integers(-2**31, 2**31, 40).astype(np.int32)
    b = RNG.integers(-2**31, 2**31, 40).astype(np.int32)
    np.testing.assert_array_equal(binop("&", a, b, "i32"), a & b)
    np.testing.assert_array_equal(binop("|", a, b, "i32"), a | b)
    np.testing.assert_array_equal(binop("^", a, b, "i32"), a ^ b)


# ==================================================================================== float ops
def test_f16_arithmetic_rounds_each_op():
    a = RNG.standard_normal(64).astype(np.float16) * np.float16(30)
    b = RNG.standard_normal(64).astype(np.float16)
    for op, fn in (("+", np.add), ("-", np.subtract), ("*", np.multiply), ("/", np.divide)):
        want = fn(a.astype(np.float64), b.astype(np.float64)).astype(np.float16)
        np.testing.assert_array_equal(binop(op, a, b, "f16"), want)


def test_bf16_arithmetic_rounds_each_op():
    a = (RNG.standard_normal(64) * 4).astype(ml_dtypes.bfloat16)
    b = RNG.standard_normal(64).astype(ml_dtypes.bfloat16)
    for op, fn in (("+", np.add), ("*", np.multiply)):
        exact = fn(a.astype(np.float64), b.astype(np.float64))   # exact in float64 (and in float32)
        want = exact.astype(np.float32).astype(ml_dtypes.bfloat16)
        got = binop(op, a, b, "bf16")
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def test_math_functions_are_correctly_rounded():
    src = """
kernel k(x: f16[N] global, e: f16[N] global, l: f16[N] global, s: f16[N] global, r: f16[N] global)
        grid(1) {
    t = load(x[0 : +64]);
    store(e[0 : +64], exp(t));
    store(l[0 : +64], log(abs(t)));
    store(s[0 : +64], sqrt(abs(t)));
    store(r[0 : +64], rsqrt(abs(t)));
}"""
    x = (RNG.standard_normal(64) * 3).astype(np.float16)
    outs = [np.zeros(64, np.float16) for _ in range(4)]
    run(src, x, *outs)
    x64 = np.abs(x.astype(np.float64))
    for got, want in zip(outs, [np.exp(x.astype(np.float64)), np.log(x64), np.sqrt(x64), 1 / np.sqrt(x64)]):
        np.testing.assert_array_equal(got, want.astype(np.float16))


def test_min_max_ignore_a_single_nan():
    a = np.array([1.0, np.nan, np.nan, -2.0], np.float32)
    b = np.array([np.nan, 3.0, np.nan, 5.0], np.float32)
    src = """
kernel k(a: f32[N] global, b: f32[N] global, lo: f32[N] global, hi: f32[N] global) grid(1) {
    x = load(a[0 : +4]);
    y = load(b[0 : +4]);
    store(lo[0 : +4], min(x, y));
    store(hi[0 : +4], max(x, y));
}"""
    lo, hi = np.zeros(4, np.float32), np.zeros(4, np.float32)
    run(src, a, b, lo, hi)
    np.testing.assert_array_equal(lo, np.fmin(a, b))
    np.testing.assert_array_equal(hi, np.fmax(a, b))


# ==================================================================================== view
VIEW = """
kernel k(x: {a}[R, C] global, y: {b}[R, D] global) grid(1) {{
    store(y[0 : +{r}, 0 : +{d}], view(load(x[0 : +{r}, 0 : +{c}]), {b}));
}}"""


@pytest.mark.parametrize("rows, granules", [(1, 1), (3, 4), (2, 7)])
def test_view_uint8_as_int3_matches_unpack(rows, granules):
    nbytes, n = 3 * granules, 8 * granules
    data = RNG.integers(0, 256, (rows, nbytes)).astype(np.uint8)
    y = vm.Tensor.from_codes(np.zeros((rows, n), np.uint8), vm.int3)
    run(VIEW.format(a="u8", b="int3", r=rows, c=nbytes, d=n), data, y)
    np.testing.assert_array_equal(y.codes(), vm.unpack(data, 3, n))
    # the values: two's complement of each 3-bit field, read LSB first from the byte stream
    bitstream = np.unpackbits(data, axis=1, bitorder="little").reshape(rows, n, 3)
    codes = (bitstream * [1, 2, 4]).sum(-1)
    np.testing.assert_array_equal(y.values(), np.where(codes >= 4, codes - 8, codes))


@pytest.mark.parametrize("rows, granules", [(1, 1), (4, 3)])
def test_view_int3_as_uint8_matches_pack(rows, granules):
    nbytes, n = 3 * granules, 8 * granules
    codes = RNG.integers(0, 8, (rows, n)).astype(np.uint8)
    y = np.zeros((rows, nbytes), np.uint8)
    run(VIEW.format(a="int3", b="u8", r=rows, c=n, d=nbytes), vm.Tensor.from_codes(codes, vm.int3), y)
    np.testing.assert_array_equal(y, vm.pack(codes, 3))


def test_view_round_trip_is_bit_exact():
    src = """
kernel k(x: u8[R, C] global, y: u8[R, C] global) grid(1) {
    b = load(x[0 : +5, 0 : +12]);
    store(y[0 : +5, 0 : +12], view(view(view(b, int3), float6_e3m2), u8));
}"""
    x = RNG.integers(0, 256, (5, 12)).astype(np.uint8)
    y = np.zeros_like(x)
    run(src, x, y)
    np.testing.assert_array_equal(y, x)


def test_view_u8_as_float4_e2m1_low_nibble_first():
    src = VIEW.format(a="u8", b="float4_e2m1", r=2, c=3, d=6)
    x = RNG.integers(0, 256, (2, 3)).astype(np.uint8)
    y = vm.Tensor.from_codes(np.zeros((2, 6), np.uint8), vm.float4_e2m1)
    run(src, x, y)
    want = np.stack([x & 15, x >> 4], axis=-1).reshape(2, 6)
    np.testing.assert_array_equal(y.codes(), want)


# ==================================================================================== lookup
def test_lookup_gathers_from_a_table():
    src = """
kernel k(t: f32[T] global, c: i32[N] global, y: f32[N] global) grid(1) {
    table = load(t[0 : +10]);
    store(y[0 : +32], lookup(table, load(c[0 : +32])));
}"""
    table = RNG.standard_normal(10).astype(np.float32)
    codes = RNG.integers(0, 10, 32).astype(np.int32)
    y = np.zeros(32, np.float32)
    run(src, table, codes, y)
    np.testing.assert_array_equal(y, table[codes])


@pytest.mark.numpy_only(VM_ERRORS)
@pytest.mark.parametrize("bad", [10, -1, 1000])
def test_lookup_out_of_range_is_an_error(bad):
    src = """
kernel k(t: f32[T] global, c: i32[N] global, y: f32[N] global) grid(1) {
    table = load(t[0 : +10]);
    store(y[0 : +4], lookup(table, load(c[0 : +4])));   // HERE
}"""
    codes = np.array([0, 9, bad, 3], np.int32)
    raises_at(src, "// HERE", f"lookup index {bad} is outside the table of 10 entries",
              np.ones(10, np.float32), codes, np.zeros(4, np.float32))


def test_lookup_with_storage_codes_uses_the_raw_codes():
    """int4 codes index by their 4-bit pattern (-1 -> 15), nf4 codes by their code."""
    src = """
kernel k(t: f32[16] global, q: int4[N] global, w: nf4[N] global, y: f32[N] global, z: f32[N] global)
        grid(1) {
    table = load(t[0 : +16]);
    store(y[0 : +16], lookup(table, load(q[0 : +16])));
    store(z[0 : +16], lookup(codebook(nf4, f32), load(w[0 : +16])));
}"""
    table = RNG.standard_normal(16).astype(np.float32)
    qv = RNG.permutation(np.arange(-8, 8))
    wc = RNG.integers(0, 16, 16)
    y, z = np.zeros(16, np.float32), np.zeros(16, np.float32)
    run(src, table, vm.Tensor.from_values(qv, vm.int4), vm.Tensor.from_codes(wc, vm.nf4), y, z)
    np.testing.assert_array_equal(y, table[qv & 15])
    np.testing.assert_array_equal(z, vm.nf4.values[wc].astype(np.float32))


# ==================================================================================== reductions
REDUCE = """
kernel k(x: {t}[R, C] global, y: {t}[R] global, z: {t}[C] global, w: {t}[1] global) grid(1) {{
    v = load(x[0 : +{r}, 0 : +{c}]);
    store(y[0 : +{r}], {fn}(v, axis=1));
    store(z[0 : +{c}], {fn}(v, axis=0));
    store(w[0 : +1], {fn}(reshape(v, [{rc}])));
}}"""


def reduce_run(fn, x, t):
    r, c = x.shape
    y, z, w = np.zeros(r, x.dtype), np.zeros(c, x.dtype), np.zeros(1, x.dtype)
    ax = np.abs(x.astype(np.float64))     # magnitude sums: the scale of the tolerance on compiled backends
    run(REDUCE.format(t=t, r=r, c=c, rc=r * c, fn=fn), x, y, z, w,
        scale={"y": ax.sum(1), "z": ax.sum(0), "w": ax.sum(keepdims=True).reshape(1)})
    return y, z, w


def test_sum_f32_is_exact_then_rounded_once():
    x = (RNG.standard_normal((7, 33)) * np.exp(RNG.uniform(-20, 20, (7, 33)))).astype(np.float32)
    y, z, w = reduce_run("sum", x, "f32")
    np.testing.assert_array_equal(y, [np.float32(math.fsum(row)) for row in x.astype(np.float64)])
    np.testing.assert_array_equal(z, [np.float32(math.fsum(col)) for col in x.T.astype(np.float64)])
    assert w[0] == np.float32(math.fsum(x.astype(np.float64).ravel()))


def test_sum_f16_rounds_once():
    x = RNG.standard_normal((3, 50)).astype(np.float16)
    y, _, _ = reduce_run("sum", x, "f16")
    np.testing.assert_array_equal(y, [np.float16(math.fsum(row)) for row in x.astype(np.float64)])


def test_sum_int8_wraps():
    x = RNG.integers(-128, 128, (4, 9)).astype(np.int8)
    x[0] = 100
    y, z, w = reduce_run("sum", x, "i8")
    np.testing.assert_array_equal(y, x.astype(np.int64).sum(1).astype(np.int8))   # wraps mod 256
    np.testing.assert_array_equal(z, x.astype(np.int64).sum(0).astype(np.int8))
    assert w[0] == np.int8(x.astype(np.int64).sum().astype(np.int8))


@pytest.mark.parametrize("fn, npfn", [("max", np.max), ("min", np.min)])
def test_max_min_reductions(fn, npfn):
    x = RNG.standard_normal((5, 17)).astype(np.float32)
    y, z, w = reduce_run(fn, x, "f32")
    np.testing.assert_array_equal(y, npfn(x, axis=1))
    np.testing.assert_array_equal(z, npfn(x, axis=0))
    assert w[0] == npfn(x)
    xi = RNG.integers(-2**31, 2**31, (3, 4)).astype(np.int32)
    yi, zi, wi = reduce_run(fn, xi, "i32")
    np.testing.assert_array_equal(yi, npfn(xi, axis=1))
    assert wi[0] == npfn(xi)


def test_max_reduction_skips_nan_unless_all_nan():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    x[0, 1] = np.nan
    x[2, :] = np.nan
    y, _, _ = reduce_run("max", x, "f32")
    np.testing.assert_array_equal(y, np.fmax.reduce(x, axis=1))
    assert np.isnan(y[2]) and not np.isnan(y[0])


# ==================================================================================== dot
DOT = """
kernel k(a: {t}[M, K] global, b: {t}[K, N] global, c: {acc}[M, N] global, d: {acc}[M, N] global) grid(1) {{
    acc = load(c[0 : +{m}, 0 : +{n}]);
    store(d[0 : +{m}, 0 : +{n}], dot(load(a[0 : +{m}, 0 : +{k}]), load(b[0 : +{k}, 0 : +{n}]), acc));
}}"""


@pytest.mark.parametrize("t, npt", [("f16", np.float16), ("f32", np.float32),
                                    ("bf16", ml_dtypes.bfloat16)])
def test_dot_floats(t, npt):
    m, k, n = 5, 24, 7
    a = (RNG.standard_normal((m, k))).astype(npt)
    b = (RNG.standard_normal((k, n))).astype(npt)
    c = RNG.standard_normal((m, n)).astype(np.float32)
    d = np.zeros((m, n), np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    run(DOT.format(t=t, acc="f32", m=m, n=n, k=k), a, b, c, d, scale=np.abs(a64) @ np.abs(b64) + np.abs(c))
    want = np.array([[math.fsum([float(a[i, j]) * float(b[j, l]) for j in range(k)] + [float(c[i, l])])
                      for l in range(n)] for i in range(m)])
    # f16/bf16 products are exact in float64 and their sums stay within float64's 53 bits here, so the
    # VM's "exact, rounded once" equals fsum rounded to f32; for f32 allow the float64 summation error
    if t == "f32":
        np.testing.assert_allclose(d, want.astype(np.float32), rtol=2 ** -23, atol=1e-30)
    else:
        np.testing.assert_array_equal(d, want.astype(np.float32))


def test_dot_int8_accumulates_in_int32_with_wraparound():
    m, k, n = 3, 16, 5
    a = RNG.integers(-128, 128, (m, k)).astype(np.int8)
    b = RNG.integers(-128, 128, (k, n)).astype(np.int8)
    a[0], b[:, 0] = 127, 127
    c = RNG.integers(-2**31, 2**31, (m, n)).astype(np.int32)
    c[0, 0] = 2**31 - 10                       # + 16 * 127 * 127 overflows
    d = np.zeros((m, n), np.int32)
    run(DOT.format(t="i8", acc="i32", m=m, n=n, k=k), a, b, c, d)
    exact = a.astype(np.int64) @ b.astype(np.int64) + c
    np.testing.assert_array_equal(d, ((exact + 2**31) % 2**32) - 2**31)
    assert d[0, 0] < 0


# ==================================================================================== where
def test_where_selects_elementwise():
    src = """
kernel k(a: f32[N] global, b: f32[N] global, y: f32[N] global, q: int4[N] global, r: int4[N] global)
        grid(1) {
    x = load(a[0 : +20]);
    z = load(b[0 : +20]);
    store(y[0 : +20], where(x > z, x - z, where(arange(20) % 3 == 0, 0.5, z)));
    store(r[0 : +20], where(x > 0.0, load(q[0 : +20]), load(r[0 : +20])));
}"""
    a = RNG.standard_normal(20).astype(np.float32)
    b = RNG.standard_normal(20).astype(np.float32)
    qv, rv = RNG.integers(-8, 8, 20), RNG.integers(-8, 8, 20)
    y = np.zeros(20, np.float32)
    r = vm.Tensor.from_values(rv, vm.int4)
    run(src, a, b, y, vm.Tensor.from_values(qv, vm.int4), r)
    np.testing.assert_array_equal(y, np.where(a > b, a - b, np.where(np.arange(20) % 3 == 0, np.float32(0.5), b)))
    np.testing.assert_array_equal(r.values(), np.where(a > 0, qv, rv))


# ==================================================================================== control flow
def test_for_loop_carries_scalars_and_tiles():
    src = """
kernel k(x: f32[R, C] global, y: f32[C] global, fib: i32[2] global, n: i32) grid(1) {
    acc = zeros(f32, [8]);
    a = 0;
    b = 1;
    for i in range(0, n) {
        acc = acc * 0.5 + load(x[i, 0 : +8]);
        t = a + b;
        a = b;
        b = t;
    }
    store(y[0 : +8], acc);
    store(fib[0 : +1], a);
    store(fib[1 : +1], b);
}"""
    x = RNG.standard_normal((6, 8)).astype(np.float32)
    for n in (0, 1, 6):
        y, fib = np.full(8, 99.0, np.float32), np.zeros(2, np.int32)
        run(src, x, y, fib, n)
        acc = np.zeros(8, np.float32)
        a, b = 0, 1
        for i in range(n):
            acc = acc * np.float32(0.5) + x[i]
            a, b = b, a + b
        np.testing.assert_array_equal(y, acc)
        np.testing.assert_array_equal(fib, [a, b])


def test_for_loop_with_start_stop_step():
    src = """
kernel k(y: i32[1] global, start: i32, stop: i32, step: i32) grid(1) {
    s = 0;
    cnt = 0;
    for i in range(start, stop, step) {
        s += i * i;
        cnt += 1;
    }
    store(y[0 : +1], s * 1000 + cnt);
}"""
    for start, stop, step in [(0, 10, 3), (5, 5, 1), (7, 3, 2), (-4, 9, 4)]:
        y = np.zeros(1, np.int32)
        run(src, y, start, stop, step)
        r = range(start, stop, step)
        assert y[0] == sum(i * i for i in r) * 1000 + len(r)
@pytest.mark.numpy_only(VM_ERRORS)
def test_for_loop_non_positive_runtime_step_is_an_error():
    src = """
kernel k(y: i32[1] global, step: i32) grid(1) {
    s = 0;
    for i in range(0, 4, step) {   // HERE
        s += i;
    }
    store(y[0 : +1], s);
}"""
    raises_at(src, "// HERE", "step must be positive", np.zeros(1, np.int32), 0)


def test_if_else_with_results():
    src = """
kernel k(x: f32[N] global, y: f32[N] global) grid(cdiv(N, 4)) {
    i = block.x * 4;
    v = load(x[i : +4]);
    sign = 0;
    if block.x % 3 == 0 {
        v = v * 2.0;
        sign = 1;
    } else if block.x % 3 == 1 {
        v = -v;
    } else {
        v = v + 100.0;
        sign = -1;
    }
    store(y[i : +4], v + cast(sign, f32));
}"""
    x = RNG.standard_normal(22).astype(np.float32)
    y = np.zeros(22, np.float32)
    run(src, x, y)
    want = np.empty_like(x)
    for bx in range(6):
        v = x[4 * bx: 4 * bx + 4]
        if bx % 3 == 0:
            w = v * np.float32(2) + np.float32(1)
        elif bx % 3 == 1:
            w = -v + np.float32(0)
        else:
            w = v + np.float32(100) - np.float32(1)
        want[4 * bx: 4 * bx + 4] = w
    np.testing.assert_array_equal(y, want)


def test_if_without_else_keeps_the_old_value():
    src = """
kernel k(y: i32[N] global, t: i32) grid(N) {
    v = block.x;
    if block.x > t {
        v = v * 10;
    }
    store(y[block.x : +1], v);
}"""
    y = np.zeros(9, np.int32)
    run(src, y, 4)
    np.testing.assert_array_equal(y, [i * 10 if i > 4 else i for i in range(9)])


def test_assume_violation_is_an_error():
    src = """
kernel k(x: f32[N] global, y: f32[N] global) grid(cdiv(N, 4)) {
    assume(N % 4 == 0);   // HERE
    store(y[block.x * 4 : +4], load(x[block.x * 4 : +4], masked=false), masked=false);
}"""
    x = RNG.standard_normal(8).astype(np.float32)
    y = np.zeros(8, np.float32)
    run(src, x, y)
    np.testing.assert_array_equal(y, x)
    raises_at(src, "// HERE", "assumption does not hold", np.ones(6, np.float32), np.zeros(6, np.float32))


def test_grid_of_several_blocks_in_x_y_z():
    src = """
kernel k(y: i32[Z, Y, X] global) grid(cdiv(X, 2), Y, Z) {
    x0 = block.x * 2;
    v = (block.z * 100 + block.y) * 100 + x0 + arange(2);
    store(y[block.z, block.y, x0 : +2], v);
}"""
    Z, Y, X = 2, 3, 7
    y = np.full((Z, Y, X), -1, np.int32)
    run(src, y)
    z, yy, x = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
    np.testing.assert_array_equal(y, (z * 100 + yy) * 100 + x)


def test_scalar_parameters_and_block_index_arithmetic():
    src = """
kernel k(x: f32[M, N] global, y: f32[M, N] global, alpha: f32, shift: i32) grid(cdiv(N, 8), M) {
    c0 = block.x * 8;
    v = load(x[block.y, c0 : +8]);
    store(y[block.y, c0 : +8], v * alpha + cast(block.y * shift, f32));
}"""
    x = RNG.standard_normal((5, 19)).astype(np.float32)
    y = np.zeros_like(x)
    run(src, x, y, 0.75, 3)
    want = x * np.float32(0.75) + (np.arange(5, dtype=np.float32) * 3)[:, None]
    np.testing.assert_array_equal(y, want)


# ==================================================================================== more memory
def test_scalar_loads_and_stores():
    src = """
kernel k(x: f32[N] global, y: f32[3] global, i: i32) grid(1) {
    a = load(x[i]);                  // a scalar
    b = load(x[i + 100], fill=2.5);  // outside: the fill
    store(y[0], a * 2.0);
    store(y[1], b);
    store(y[i + 100], a);            // outside: skipped
}"""
    x = RNG.standard_normal(4).astype(np.float32)
    y = np.full(3, 9.0, np.float32)
    run(src, x, y, 2)
    np.testing.assert_array_equal(y, [x[2] * np.float32(2), 2.5, 9.0])


def test_out_of_bounds_write_of_a_tile_is_an_error():
    src = """
kernel k(y: f32[4] global, off: i32) grid(1) {
    t = zeros(f32, [8]);
    store(t[off : +4], full(f32, [4], 1.0));   // HERE
    store(y[0 : +4], t[4 : +4]);
}"""
    y = np.zeros(4, np.float32)
    run(src, y, 3)
    np.testing.assert_array_equal(y, [1, 1, 1, 0])
    raises_at(src, "// HERE", "out-of-bounds write of tile", y, 5)


@pytest.mark.parametrize("t, npt", [("f32", np.float32), ("i32", np.int32)])
def test_atomic_add_accumulates_across_blocks(t, npt):
    src = f"""
kernel k(x: {t}[B, 6] global, y: {t}[6] global) grid(B) {{
    atomic_add(y[0 : +6], load(x[block.x, 0 : +6]));
}}"""
    if npt is np.int32:
        x = RNG.integers(-2**31, 2**31, (5, 6)).astype(np.int32)
        want = ((x.astype(np.int64).sum(0) + 7 + 2**31) % 2**32) - 2**31    # wraps
    else:
        x = RNG.integers(-1000, 1000, (5, 6)).astype(np.float32) / np.float32(8)   # sums exact in f32
        want = x.astype(np.float64).sum(0) + 7
    y = np.full(6, 7, npt)
    run(src, x, y)
    np.testing.assert_array_equal(y, want)
@pytest.mark.numpy_only(VM_ERRORS)
def test_integer_division_by_a_default_fill_errors_on_padding_lanes():
    """Padding lanes are ordinary lanes after the load: an integer division by a masked load's default
    fill (0) fails at an edge tile although those lanes are never stored; fill=1 avoids it."""
    src = """
kernel k(a: i32[N] global, b: i32[N] global, c: i32[N] global) grid(cdiv(N, 8)) {
    i = block.x * 8;
    store(c[i : +8], load(a[i : +8]) / load(b[i : +8]FILL));   // HERE
}"""
    a = RNG.integers(-100, 100, 10).astype(np.int32)
    b = RNG.integers(1, 9, 10).astype(np.int32)
    c = np.zeros(10, np.int32)
    raises_at(src.replace("FILL", ""), "// HERE", "division by zero", a, b, c)
    run(src.replace("FILL", ", fill=1"), a, b, c)
    np.testing.assert_array_equal(c, [int(x / y) for x, y in zip(a.tolist(), b.tolist())])


# ==================================================================================== tables, math
def codebook_reference(of):
    i = np.arange(1 << vm.dtype(of).nbits)
    if of == "int4":
        return ((i + 8) % 16) - 8.0
    if of == "uint2":
        return i.astype(np.float64)
    md = {"float4_e2m1": ml_dtypes.float4_e2m1fn, "float8_e4m3": ml_dtypes.float8_e4m3fn,
          "float8_e5m2": ml_dtypes.float8_e5m2, "float8_e8m0": ml_dtypes.float8_e8m0fnu}[of]
    return i.astype(np.uint8).view(md).astype(np.float64)


@pytest.mark.parametrize("of, dt, npt", [("int4", "f32", np.float32), ("uint2", "f16", np.float16),
                                         ("float4_e2m1", "f16", np.float16), ("float8_e4m3", "f32", np.float32),
                                         ("float8_e5m2", "f16", np.float16), ("float8_e8m0", "f32", np.float32)])
def test_codebook_tables(of, dt, npt):
    n = 1 << vm.dtype(of).nbits
    src = f"""
kernel k(y: {dt}[{n}] global) grid(1) {{
    store(y[0 : +{n}], codebook({of}, {dt}));
}}"""
    y = np.zeros(n, npt)
    run(src, y)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(y, codebook_reference(of).astype(npt))


def test_log_sqrt_special_values():
    src = """
kernel k(x: f32[4] global, l: f32[4] global, s: f32[4] global) grid(1) {
    t = load(x[0 : +4]);
    store(l[0 : +4], log(t));
    store(s[0 : +4], sqrt(t));
}"""
    x = np.array([0.0, -1.0, 1.0, np.inf], np.float32)
    l, s = np.zeros(4, np.float32), np.zeros(4, np.float32)
    run(src, x, l, s)
    np.testing.assert_array_equal(l, [-np.inf, np.nan, 0.0, np.inf])
    np.testing.assert_array_equal(s, [0.0, np.nan, 1.0, np.inf])


# ==================================================================================== known VM bugs
# Each test below states documented semantics (vmlang/ir/nodes.py) that an earlier VM got wrong.

def test_sum_is_exact_even_with_cancellation():
    src = """
kernel k(x: f32[3] global, y: f32[1] global) grid(1) {
    store(y[0 : +1], broadcast(sum(load(x[0 : +3])), [1]));
}"""
    x = np.array([2.0 ** 60, 1.0, -2.0 ** 60], np.float32)
    y = np.zeros(1, np.float32)
    run(src, x, y, scale=np.abs(x.astype(np.float64)).sum())     # compiled backends: within the tolerance
    assert y[0] == np.float32(math.fsum(x.astype(np.float64)))   # = 1.0


def test_dot_f16_is_exact_even_with_cancellation():
    a = np.array([[65504.0, 2.0 ** -24, 65504.0]], np.float16)
    b = np.array([[65504.0], [2.0 ** -24], [-65504.0]], np.float16)
    c = np.zeros((1, 1), np.float32)
    d = np.zeros((1, 1), np.float32)
    run(DOT.format(t="f16", acc="f32", m=1, n=1, k=3), a, b, c, d,
        scale=np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    assert d[0, 0] == np.float32(2.0 ** -48)


def test_where_takes_poison_only_from_the_selected_branch():
    src = """
kernel k(y: f32[8] global) grid(1) {
    t = empty(f32, [8]);
    store(t[0 : +4], full(f32, [4], 1.5));
    store(y[0 : +8], where(arange(8) < 4, t, 0.0));
}"""
    y = np.full(8, 9.0, np.float32)
    run(src, y)
    np.testing.assert_array_equal(y, [1.5] * 4 + [0.0] * 4)


def test_shl_by_a_negative_amount_gives_zero():
    c = binop("<<", np.array([8, 8], np.int32), np.array([1, -1], np.int32), "i32")
    np.testing.assert_array_equal(c, [16, 0])


def test_shift_amount_of_a_wider_type_keeps_its_value():
    src = """
kernel k(x: i8[2] global, s: i32[2] global, y: i8[2] global) grid(1) {
    store(y[0 : +2], load(x[0 : +2]) << load(s[0 : +2]));
}"""
    y = np.zeros(2, np.int8)
    run(src, np.array([1, 1], np.int8), np.array([256, 3], np.int32), y)
    np.testing.assert_array_equal(y, [0, 8])          # a shift by >= the width gives 0


def test_masked_store_ignores_poison_in_skipped_lanes():
    src = """
kernel k(x: f32[N] global, y: f32[N] global) grid(1) {
    t = empty(f32, [8]);
    for j in range(0, N) {
        store(t[j : +1], load(x[j : +1]) * 2.0);
    }
    store(y[0 : +8], t);     // lanes >= N are outside y: skipped
}"""
    x = RNG.standard_normal(5).astype(np.float32)
    y = np.zeros(5, np.float32)
    run(src, x, y)
    np.testing.assert_array_equal(y, x * np.float32(2))


def test_sum_of_negative_zeros_is_negative_zero():
    """(found by the fuzzer) math.fsum returns +0.0 for a sum of -0.0s; IEEE addition in any order gives
    -0.0, and +0.0 as soon as one term is +0.0."""
    src = """
kernel k(x: f32[N] global, y: f32[K] global) grid(1) {
    store(y[0 : +1], broadcast(sum(load(x[0 : +4])), [1]));
}"""
    x = np.full(4, -0.0, np.float32)
    y = np.ones(1, np.float32)
    run(src, x, y)
    assert y[0] == 0 and np.signbit(y[0])
    x[2] = 0.0
    run(src, x, y)
    assert y[0] == 0 and not np.signbit(y[0])


def test_max_and_min_ignore_signalling_nans_too():
    """(fuzzer) float16 0xFC06 is a signalling NaN; NumPy widens it bit for bit and np.fmax of a
    signalling NaN is NaN. max/min (reductions and elementwise) give NaN only if all inputs are NaN."""
    src = """
kernel k(x: f16[N] global, r: f16[4] global, e: f16[N] global) grid(1) {
    t = load(x[0 : +2]);
    store(r[0 : +1], broadcast(max(t), [1]));
    store(r[1 : +1], broadcast(min(t), [1]));
    store(e[0 : +2], max(t, load(x[2 : +2])));
}"""
    x = np.array([0xFC06, 0x2195, 0x3C00, 0x7C01], np.uint16).view(np.float16)   # sNaN, 0.0109, 1, sNaN
    r, e = np.zeros(4, np.float16), np.zeros(4, np.float16)
    NP.compile(kernel(src))(x, r, e)
    assert r[0] == x[1] and r[1] == x[1]
    assert e[0] == 1.0 and e[1] == x[1]
    run(src, x, np.zeros(4, np.float16), np.zeros(4, np.float16))     # and the backend agrees


def test_lookup_by_signed_sub_byte_codes_uses_the_raw_codes():
    """(fuzzer, H100) int1 codes -1 index entry 1 (the raw code), not -1; the Triton backend had
    sign-extended them and read entry 0."""
    src = """
kernel k(x: f32[N] global, o: f16[64] global) grid(1) {
    store(o[0 : +64], lookup(codebook(int2, f16), view(load(x[0 : +2]), int1)));
}"""
    x = np.array([3.0, -0.75], np.float32)
    o = np.zeros(64, np.float16)
    NP.compile(kernel(src))(x, o)
    bits = np.unpackbits(x.view(np.uint8), bitorder="little")
    assert np.array_equal(o, np.where(bits == 1, 1.0, 0.0).astype(np.float16))   # int2 codes 0 -> 0, 1 -> 1
    run(src, x, np.zeros(64, np.float16))
