"""Exhaustive and property tests of the dtype codecs.

The brute-force reference decoder below is written from the published format descriptions,
independently of vmlang.ir.floatcodec: plain Python integers, Fractions and per-format rules.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmlang as vm
from vmlang.ir.dtypes import all_dtypes

SMALL = [t for t in all_dtypes() if t.nbits <= 8]
SMALL_FLOATS = [t for t in SMALL if t.is_float and not t.is_codebook]


# ----------------------------------------------------------------------------- brute-force reference
def ref_decode(name: str, code: int):
    """Value of `code` in format `name` as a Fraction, or 'nan' / 'inf' / '-inf'."""
    m = re.fullmatch(r"(u?)int(\d+)", name)
    if m:
        bits = int(m.group(2))
        if m.group(1) == "" and code >= 2 ** (bits - 1):
            return Fraction(code - 2 ** bits)
        return Fraction(code)
    if name == "nf4":
        return Fraction(REF_NF4[code])
    if name == "float8_e8m0":
        return "nan" if code == 255 else Fraction(2) ** (code - 127)
    fields = {"float8_e4m3": (4, 3), "float8_e5m2": (5, 2), "float16": (5, 10), "bfloat16": (8, 7),
              "float32": (8, 23)}
    m = re.fullmatch(r"float(\d+)_e(\d+)m(\d+)", name)
    E, M = fields.get(name) or (int(m.group(2)), int(m.group(3)))
    s, e, f = code >> (E + M), (code >> M) % 2 ** E, code % 2 ** M
    sign = -1 if s else 1
    if name == "float8_e4m3" and e == 15 and f == 7:
        return "nan"
    if name in ("float8_e5m2", "float16", "bfloat16", "float32") and e == 2 ** E - 1:
        return ("-inf" if s else "inf") if f == 0 else "nan"
    bias = 2 ** (E - 1) - 1
    if e == 0 and f == 0 and s:
        return "-0"
    if e == 0:
        return sign * Fraction(f, 2 ** M) * Fraction(2) ** (1 - bias)
    return sign * (1 + Fraction(f, 2 ** M)) * Fraction(2) ** (e - bias)


REF_NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
           -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
           0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
           0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]


def as_float(r) -> float:
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0}[r] if isinstance(r, str) else float(r)


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


# ----------------------------------------------------------------------------- the type table
def test_named_types_exist():
    names = ([f"int{b}" for b in range(1, 9)] + [f"uint{b}" for b in range(1, 9)] +
             ["int16", "int32", "uint16", "uint32", "float8_e4m3", "float8_e5m2", "float8_e8m0",
              "float16", "bfloat16", "float32", "nf4"])
    names += [f"float{1 + e + m}_e{e}m{m}" for e in range(1, 7) for m in range(0, 7) if 1 + e + m <= 7]
    for n in names:
        t = vm.dtype(n)
        assert t.name == n and getattr(vm, n) is t
    for n in ("float3_e1m1", "float4_e2m1", "float5_e2m2", "float6_e3m2", "float6_e2m3", "float7_e4m2"):
        assert n in names
    assert len({t.name for t in all_dtypes()}) == len(all_dtypes())


def test_published_ranges():
    assert (vm.float4_e2m1.max, vm.float6_e3m2.max, vm.float6_e2m3.max) == (6.0, 28.0, 7.5)
    assert vm.float8_e4m3.max == 448.0 and vm.float8_e5m2.max == 57344.0
    assert vm.float8_e8m0.max == 2.0 ** 127 and vm.float8_e8m0.min == 2.0 ** -127
    assert vm.float16.max == 65504.0 and vm.float16.smallest_subnormal == 2.0 ** -24
    assert vm.float4_e2m1.smallest_subnormal == 0.5 and vm.float6_e3m2.smallest_subnormal == 2.0 ** -4
    assert vm.int3.min == -4 and vm.int3.max == 3 and vm.uint5.max == 31 and vm.int1.min == -1
    assert vm.float8_e4m3.bias == 7 and vm.float6_e3m2.bias == 3
    assert vm.float4_e2m1.is_float and vm.float4_e2m1.is_signed and not vm.uint3.is_signed
    assert vm.nf4.nbits == 4 and vm.nf4.is_float


def test_dtype_lookup_errors_and_aliases():
    assert vm.dtype("f16") is vm.float16 and vm.dtype("bf16") is vm.bfloat16 and vm.f32 is vm.float32
    with pytest.raises(vm.DTypeError, match="unknown dtype 'int9'"):
        vm.dtype("int9")
    with pytest.raises(vm.DTypeError, match="did you mean"):
        vm.dtype("flaot16")
    with pytest.raises(vm.DTypeError):
        vm.FloatType(4, 4)          # 9 bits: not a finite small float
    with pytest.raises(vm.DTypeError):
        vm.IntType(12, True)


def test_structural_equality_and_hash():
    assert vm.FloatType(2, 1) == vm.float4_e2m1 and hash(vm.FloatType(2, 1)) == hash(vm.float4_e2m1)
    assert vm.IntType(3, True) == vm.int3 and vm.IntType(3, False) != vm.int3
    assert len({vm.IntType(4, True), vm.int4, vm.dtype("int4")}) == 1


# ----------------------------------------------------------------------------- exhaustive decode
@pytest.mark.parametrize("t", SMALL + [vm.float16, vm.bfloat16], ids=lambda t: t.name)
def test_decode_exhaustive_against_brute_force(t):
    codes = np.arange(2 ** t.nbits)
    got = t.decode(codes)
    assert got.dtype == np.float64
    for c in codes.tolist():
        assert same(got[c], as_float(ref_decode(t.name, c))), (t.name, c, got[c])


def test_float32_decode_samples():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.integers(0, 2 ** 32, 20000, dtype=np.uint64),
                            np.array([0, 1, 0x7F7FFFFF, 0x80000001, 0x7F800000, 0xFF800000, 0x7FC00000], np.uint64)])
    got = vm.float32.decode(codes)
    for c, g in zip(codes.tolist(), got.tolist()):
        assert same(g, as_float(ref_decode("float32", c)))
    with np.errstate(invalid="ignore"):
        ref = codes.astype(np.uint32).view(np.float32).astype(np.float64)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name,mlname", [
    ("float4_e2m1", "float4_e2m1fn"), ("float6_e2m3", "float6_e2m3fn"), ("float6_e3m2", "float6_e3m2fn"),
    ("float8_e4m3", "float8_e4m3fn"), ("float8_e5m2", "float8_e5m2"), ("float8_e8m0", "float8_e8m0fnu"),
    ("bfloat16", "bfloat16"), ("int2", "int2"), ("int4", "int4"), ("uint2", "uint2"), ("uint4", "uint4"),
])
def test_decode_against_ml_dtypes(name, mlname):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    t = vm.dtype(name)
    mt = np.dtype(getattr(ml_dtypes, mlname))
    codes = np.arange(2 ** t.nbits)
    if t.nbits < 8:  # ml_dtypes stores one sub-byte element per byte, sign-extended for ints
        raw = codes.astype(np.uint8)
        if t.is_int and t.is_signed:
            raw = np.where(codes >= 2 ** (t.nbits - 1), codes - 2 ** t.nbits, codes).astype(np.int8).view(np.uint8)
        ref = raw.view(mt).astype(np.float64)
    else:
        with np.errstate(invalid="ignore"):
            ref = codes.astype(np.uint8 if t.nbits == 8 else np.uint16).view(mt).astype(np.float64)
    np.testing.assert_array_equal(t.decode(codes), ref)
    # encode agrees with ml_dtypes' own rounding on every representable value
    finite = np.isfinite(ref)
    back = t.encode(ref[finite])
    np.testing.assert_array_equal(t.decode(back), ref[finite])


# ----------------------------------------------------------------------------- encode
@pytest.mark.parametrize("t", SMALL + [vm.float16, vm.bfloat16], ids=lambda t: t.name)
def test_encode_decode_round_trip_every_code(t):
    codes = np.arange(2 ** t.nbits)
    vals = t.decode(codes)
    ok = ~np.isnan(vals)
    back = t.encode(vals[ok])
    assert back.dtype == t.code_dtype
    np.testing.assert_array_equal(back, codes[ok])


def _finite_table(t):
    """(sorted Fractions, their codes) of every finite value, -0 folded into +0."""
    vals = {}
    for c in range(2 ** t.nbits):
        r = ref_decode(t.name, c)
        if isinstance(r, str):
            continue
        vals.setdefault(r, []).append(c)
    keys = sorted(vals)
    return keys, [min(vals[k]) for k in keys]


def ref_encode(t, x: float):
    """Correctly rounded code of x (ties to even code; nf4: ties to the lower code), or 'range'."""
    keys, codes = _finite_table(t)
    if x < 0 and t.is_float and not t.is_codebook and t.is_signed and 0 in keys:
        codes = list(codes)
        codes[keys.index(0)] = 1 << (t.nbits - 1)      # a negative value that rounds to zero gives -0
    fx = Fraction(x)
    lo, hi = keys[0], keys[-1]
    if t.is_int:  # integers round half to even first, then must lie in range
        r = round(fx)  # Python's round is half-to-even on Fractions
        return codes[keys.index(r)] if lo <= r <= hi else "range"
    if t.name == "float8_e8m0" and fx < lo:            # no zero: (min/2, min) rounds up to min
        return codes[0] if fx > lo / 2 else "range"
    if fx < lo or fx > hi:
        if t.is_codebook:
            return "range"
        # a float rounds into range if it lies within half an ulp of +-max (a tie goes to even: max's
        # code is odd when its mantissa is all ones, so the tie overflows). The ulp is the gap from max
        # to the next value of the format with an unbounded exponent: the gap below max when there are
        # mantissa bits, max itself when there are none (the next value is 2 * max).
        half = (hi if t.man == 0 else keys[-1] - keys[-2]) / 2
        edge, code = (hi, codes[-1]) if fx > hi else (lo, codes[0])
        if abs(fx - edge) < half or (abs(fx - edge) == half and code % 2 == 0):
            return code
        return "range"
    best = min(range(len(keys)), key=lambda i: (abs(keys[i] - fx), 0))
    d = abs(keys[best] - fx)
    ties = [i for i in range(len(keys)) if abs(keys[i] - fx) == d]
    if len(ties) == 1:
        return codes[ties[0]]
    if t.is_codebook:
        return codes[min(ties)]
    cs = [codes[i] for i in ties]
    even = [c for c in cs if c % 2 == 0]
    return even[0]


def _boundary_values(t):
    keys, _ = _finite_table(t)
    f = [float(k) for k in keys]
    out = set(f)
    for a, b in zip(f, f[1:]):
        mid = (a + b) / 2
        out |= {mid, np.nextafter(mid, -np.inf), np.nextafter(mid, np.inf)}
    out |= {f[-1] * 1.0000001, f[0] * 1.0000001}
    return sorted(out)


@pytest.mark.parametrize("t", SMALL, ids=lambda t: t.name)
def test_encode_boundaries_correctly_rounded(t):
    xs = _boundary_values(t)
    for x in xs:
        want = ref_encode(t, x)
        if x == 0 and t.is_float and not t.is_codebook and math.copysign(1, x) < 0 and t.is_signed:
            want = 1 << (t.nbits - 1)
        if want == "range" and getattr(t, "has_inf", False):
            assert t.decode(t.encode([x]))[0] == math.copysign(math.inf, x)
        elif want == "range":
            with pytest.raises(ValueError, match=t.name):
                t.encode([x])
        else:
            got = int(t.encode([x])[0])
            if t.is_float and not t.is_codebook and x == 0:
                continue
            assert got == want, (t.name, x, got, want)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SMALL), st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64,
                                                  min_value=-1e6, max_value=1e6), min_size=1, max_size=20))
def test_encode_random_correctly_rounded(t, xs):
    for x in xs:
        want = ref_encode(t, x)
        if want == "range" and getattr(t, "has_inf", False):   # IEEE formats overflow to +-Inf
            assert t.decode(t.encode([x]))[0] == math.copysign(math.inf, x)
        elif want == "range":
            with pytest.raises(ValueError):
                t.encode([x])
            sat = float(t.decode(t.encode([x], saturate=True))[0])
            assert sat == (t.max if x > t.max else t.min)
        else:
            got = int(t.encode([x])[0])
            if x == 0 or (t.is_float and not t.is_codebook and ref_decode(t.name, got) == 0):
                assert t.decode([got])[0] == 0
                if t.is_signed and t.is_float and not t.is_codebook:
                    assert (got >> (t.nbits - 1)) == (1 if math.copysign(1, x) < 0 else 0)
                continue
            assert got == want, (t.name, x, got, want)


def test_encode_wide_floats_match_numpy():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-8, 5, 5000),
                        [0.0, -0.0, 65504.0, 65519.99, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26]])
    np.testing.assert_array_equal(vm.float16.encode(x), x.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(vm.float32.encode(x), x.astype(np.float32).view(np.uint32))
    ml_dtypes = pytest.importorskip("ml_dtypes")
    np.testing.assert_array_equal(vm.bfloat16.encode(x), x.astype(ml_dtypes.bfloat16).view(np.uint16))


def test_out_of_range_nan_and_saturation():
    with pytest.raises(ValueError, match=r"7\.0 is out of range for float4_e2m1"):
        vm.float4_e2m1.encode([1.0, 7.0])
    assert vm.float4_e2m1.decode(vm.float4_e2m1.encode([7.0, -100.0, np.inf], saturate=True)).tolist() == [6, -6, 6]
    assert vm.float4_e2m1.encode([6.9]).tolist() == [0b0111]
    with pytest.raises(ValueError, match="NaN"):
        vm.float6_e3m2.encode([np.nan], saturate=True)
    with pytest.raises(ValueError, match="out of range for float8_e4m3"):
        vm.float8_e4m3.encode([465.0])
    assert vm.float8_e4m3.encode([464.0]).tolist() == [0x7E]         # tie -> even -> 448
    assert vm.float8_e4m3.encode([np.nan]).tolist() == [0x7F]
    assert vm.float8_e5m2.encode([1e6, -np.inf]).tolist() == [0x7C, 0xFC]   # IEEE overflow to Inf
    assert vm.float8_e5m2.encode([1e6], saturate=True).tolist() == [0x7B]
    assert vm.float8_e8m0.encode([1.0, 3.0, 0.75, np.nan]).tolist() == [127, 128, 126, 255]
    with pytest.raises(ValueError, match="float8_e8m0"):
        vm.float8_e8m0.encode([0.0])
    with pytest.raises(ValueError, match="int4"):
        vm.int4.encode([8])
    assert vm.int4.encode([7.5, -8.5, 2.5], saturate=True).tolist() == [7, 8, 2]
    with pytest.raises(ValueError, match="uint3"):
        vm.uint3.encode([-1])
    with pytest.raises(ValueError, match="nf4"):
        vm.nf4.encode([1.5])
    with pytest.raises(ValueError, match="code 16 does not fit"):
        vm.int4.decode([16])


def test_negative_zero_round_trips():
    for t in SMALL_FLOATS:
        if t.is_signed:
            c = int(t.encode([-0.0])[0])
            assert c == 1 << (t.nbits - 1) and math.copysign(1, t.decode([c])[0]) == -1


def test_nf4_ties_take_lower_code():
    v = vm.nf4.values
    mids = (v[:-1] + v[1:]) / 2
    np.testing.assert_array_equal(vm.nf4.encode(mids), np.arange(15))
    np.testing.assert_array_equal(vm.nf4.encode(np.nextafter(mids, 2)), np.arange(1, 16))
