"""backends/ptx/convert.py: conversions between every pair of dtypes as LLVM IR, bit for bit against the
NumPy VM, run on this CPU.

The same LLVM IR the PTX lowering emits is JIT-compiled for the host (llvmlite MCJIT): per source dtype
one module with a function ``void conv(i8* in, i8* out, i64 n)`` per (destination, saturate) that loops
over ``n`` elements and calls :func:`convert.cast`. NumPy arrays of reprs go in through ctypes; the codes
that come out are compared with the VM's own cast (:func:`vmlang.backends.numpy.arith.cast`) on the
inputs the VM accepts (unsaturated out-of-range values and NaN into formats or ints without NaN are
run-time errors there). The one freedom: any NaN equals any NaN in float16/float32 (storage formats and
bfloat16 must give the VM's NaN code).

Inputs: every code of every dtype of at most 16 bits; for int32/uint32 boundaries, powers of two and
their neighbours, ties of narrow formats above 2**24 and random values; for float32, per destination,
every value of the destination and every midpoint between neighbours with the float32 values one ulp
either side (for float16 and bfloat16 all 2 x 65536 of them), the overflow thresholds, integers and
half-integers around integer ranges, zeros, subnormals, +-max, Inf, NaN and random bit patterns.

The NVPTX tests emit the conversions for sm_90 (and assemble the PTX with ptxas where it is installed); the
last one checks that decoding packed codes to float32/float16 is short and branch-free there.
"""
from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest

from vmlang.backends.numpy import arith as AR
from vmlang.ir import dtypes as D
from vmlang.ir.types import BOOL

llvm = pytest.importorskip("llvmlite.binding")
from llvmlite import ir

from vmlang.backends.ptx import convert as C
from vmlang.backends.ptx import floatfmt as FF
from host_jit import Engine, counted_loop
from ptx_support import ADDRESS_OPS, entry_instructions, thread_kernel

DTYPES = D.all_dtypes()
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # NaN inputs of the VM's own casts

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()


def _name(dt) -> str:
    return dt.name


# ----------------------------------------------------------------------------------- JIT on the host
def _mem_type(dt) -> ir.Type:
    """How a repr sits in memory in these tests: bool as an i8 0/1, everything else as its repr."""
    t = C.repr_type(dt)
    return I8 if t == I1 else t


def _loop_typed(mod, name, arg_type, ret_type, emit):
    """``void name(ptr in, ptr out, i64 n)``: out[i] = emit(builder, in[i]) for i < n."""
    def body(b, i, pin, pout):
        x = b.load(b.gep(pin, [i], source_etype=arg_type), typ=arg_type)
        b.store(emit(b, x), b.gep(pout, [i], source_etype=ret_type))
    counted_loop(mod, name, body)


def _bool8(b, v):
    return b.zext(v, I8) if v.type == I1 else v


def _loop(mod: ir.Module, name: str, in_dt, out_type: ir.Type, emit) -> None:
    """``void name(ptr in, ptr out, i64 n)``: out[i] = emit(builder, in[i]) for i < n, in[i] a repr of
    ``in_dt`` (a bool sits in memory as an i8 0/1, and so does a bool result)."""
    def body(b, x):
        if C.repr_type(in_dt) == I1:
            x = b.trunc(x, I1)
        y = _bool8(b, emit(b, x))
        assert y.type == out_type, (y.type, out_type)
        return y
    _loop_typed(mod, name, _mem_type(in_dt), out_type, body)


class Jitted(Engine):
    """A compiled module and its functions, callable on NumPy arrays."""

    def __call__(self, name: str, x: np.ndarray, out_dtype) -> np.ndarray:
        return self.call(name, x, len(x), np.zeros(len(x), out_dtype))


def _fname(dst, saturate: bool) -> str:
    return f"conv_{dst.name}_{int(saturate)}"


@functools.lru_cache(maxsize=None)
def cast_module(src) -> Jitted:
    """conv_<dst>_<sat>: cast from src to every dtype, plain and saturating; dec: to_f32 of src."""
    mod = ir.Module(name=f"casts_{src.name}")
    for dst in DTYPES:
        for sat in (False, True):
            _loop(mod, _fname(dst, sat), src, _mem_type(dst),
                  lambda b, x, dst=dst, sat=sat: C.cast(b, src, dst, x, sat))
    _loop(mod, "dec", src, ir.FloatType(), lambda b, x: C.to_f32(b, src, x))
    return Jitted(mod)


# ----------------------------------------------------------------------------------- codes <-> memory
def _mem_np(dt) -> np.dtype:
    return np.dtype({1: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32}[_mem_bits(dt)])


def _mem_bits(dt) -> int:
    t = _mem_type(dt)
    return {ir.HalfType(): 16, ir.FloatType(): 32}.get(t, getattr(t, "width", None))


def _shift(dt) -> int:
    """Where the code sits in the repr's bits: bfloat16 is the top half of a float32."""
    return _mem_bits(dt) - dt.nbits if C.repr_type(dt) == ir.FloatType() else 0


def codes_to_mem(dt, codes: np.ndarray) -> np.ndarray:
    return (np.asarray(codes, np.uint64) << np.uint64(_shift(dt))).astype(_mem_np(dt))


def mem_to_codes(dt, mem: np.ndarray) -> np.ndarray:
    """The codes of reprs written by the JIT, checking the repr's invariants: unused high bits of storage
    codes and bools are zero, bfloat16 values are exact (the low 16 bits of the float32 are zero)."""
    m = mem.astype(np.uint64)
    s = _shift(dt)
    low = m & np.uint64((1 << s) - 1)
    assert not low.any(), f"{dt}: not {dt}-exact: {mem[low != 0][:4]}"
    c = m >> np.uint64(s)
    assert int(c.max(initial=0)) < (1 << dt.nbits), f"{dt}: bits above the code set: {mem[c >= 1 << dt.nbits][:4]}"
    return c


def _nan_codes(dt, codes: np.ndarray) -> np.ndarray:
    """Where codes of a float16/float32/bfloat16 are NaN (any NaN equals any NaN there)."""
    if dt in (D.float16, D.float32, D.bfloat16):
        with np.errstate(invalid="ignore"):
            return np.isnan(dt.decode(codes.astype(np.int64)))
    return np.zeros(len(codes), bool)


def vm_cast(src, dst, codes: np.ndarray, saturate: bool) -> np.ndarray:
    """The VM's result codes (the codes must be valid inputs)."""
    return AR.to_codes(dst, AR.cast(src, dst, AR.from_codes(src, codes), saturate)).astype(np.uint64)


def _vm_ok(src, dst, a, saturate) -> bool:
    try:
        AR.cast(src, dst, a, saturate)
        return True
    except AR.CastError:
        return False


def valid_inputs(src, dst, codes: np.ndarray, saturate: bool) -> np.ndarray:
    """The codes the VM casts without a run-time error.

    Which values the VM accepts is an interval of values (the range of the target after rounding), and
    NaN is accepted or not as a whole: the interval's ends are found by bisection over the sorted values
    with single-element casts, and the whole interval is then cast at once (which must succeed)."""
    a = AR.from_codes(src, codes)
    if _vm_ok(src, dst, a, saturate):
        return codes
    vals = AR.to_values(src, a)
    nan = np.isnan(vals)
    keep = np.zeros(len(codes), bool)
    if nan.any() and _vm_ok(src, dst, a[nan][:1], saturate):
        keep |= nan
    order = np.flatnonzero(~nan)
    order = order[np.argsort(vals[order], kind="stable")]
    sv = vals[order]

    def ok(k):
        return _vm_ok(src, dst, a[order[k]:order[k] + 1], saturate)

    # a valid element to start from: near 1, -1, 0, 0.5, then evenly spaced; else try every element
    near = [int(np.argmin(np.abs(sv - c))) for c in (1.0, -1.0, 0.0, 0.5)] if len(sv) else []
    probes = near + list(np.linspace(0, len(sv) - 1, 33).astype(int)) + list(range(len(sv)))
    p = next((int(k) for k in probes if ok(int(k))), None)
    if p is not None:
        lo, hi = 0, p
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
        first = lo
        lo, hi = p, len(order) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
        sel = order[first:lo + 1]
        assert _vm_ok(src, dst, a[sel], saturate), f"{src} -> {dst}: the VM's valid inputs are not one interval"
        keep[sel] = True
    return codes[keep]


# ----------------------------------------------------------------------------------- inputs
def _f32_codes(vals) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(vals, np.float64).astype(np.float32).view(np.uint32).astype(np.uint64)


def _around(v32: np.ndarray) -> list:
    """float32 values and their neighbours one ulp either side, both signs."""
    v32 = np.asarray(v32, np.float32)
    v32 = np.concatenate([v32, -v32])
    return [v32, np.nextafter(v32, np.float32(np.inf)), np.nextafter(v32, np.float32(-np.inf))]


@functools.lru_cache(maxsize=None)
def _f32_common() -> np.ndarray:
    """float32 inputs for every destination: specials, subnormals, powers of two, random bit patterns,
    and the values and midpoints of every format of at most 8 bits (one ulp either side)."""
    rng = np.random.default_rng(7)
    vals = [np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 3.4028235e38, -3.4028235e38, 1e-45, -1e-45,
                      2.0 ** -126, 2.0 ** -127, 1.5 * 2.0 ** -127, 2.0 ** -128, 2.0 ** -149 * 3, 2.0 ** 127,
                      1.5 * 2.0 ** 127, 1e30, -1e-30, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5], np.float32)]
    vals += _around(np.ldexp(np.float32(1), np.arange(-149, 128)).astype(np.float32))
    vals.append(rng.integers(0, 1 << 23, 512).astype(np.uint32).view(np.float32))          # subnormals
    vals.append(rng.integers(0, 1 << 32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32))
    for dt in DTYPES:
        if dt.is_float and dt.nbits <= 8:
            vals += _around(_points(dt))
    codes = np.concatenate([_f32_codes(v) for v in vals])
    codes = np.concatenate([codes, [0x7FC00001, 0xFFC00000, 0x7F800001, 0x7FBFFFFF]])   # NaN payloads
    return np.unique(codes)


def _points(dt) -> np.ndarray:
    """The finite values of a float-like dtype, the midpoints between neighbours and the overflow
    thresholds, as float32 (a midpoint not exact in float32 rounds to a neighbour, then widened by
    :func:`_around`)."""
    v = np.unique(dt.values[np.isfinite(dt.values)])
    mids = (v[:-1] + v[1:]) / 2
    top = v[-1] - v[-2]
    edge = np.array([dt.max + top / 2, dt.max + top, dt.max * 2])
    with np.errstate(over="ignore"):
        return np.concatenate([v, mids, edge]).astype(np.float32)


def _int_points(dt) -> np.ndarray:
    """float32 values where float -> int decides: every half-integer near zero and near both ends of
    the range, and the float32 values around the ends."""
    lo, hi = float(dt.min), float(dt.max)
    base = np.arange(-300, 301) / 2
    pts = [base, lo + base, hi + base, [lo - 1, hi + 1, 2.0 ** 31, 2.0 ** 32, -2.0 ** 31, 2.0 ** 24 + 2]]
    return np.concatenate([np.asarray(p, np.float64) for p in pts]).astype(np.float32)


@functools.lru_cache(maxsize=None)
def f32_inputs(dst) -> np.ndarray:
    """float32 codes for casts from float32 to ``dst``."""
    parts = [_f32_common()]
    if dst.is_float and dst.nbits <= 16:
        parts += [_f32_codes(v) for v in _around(_points(dst))]
    if dst.is_int and not dst.is_codebook:
        parts += [_f32_codes(v) for v in _around(_int_points(dst))]
    return np.unique(np.concatenate(parts))


@functools.lru_cache(maxsize=None)
def int32_inputs(bits: int = 32) -> np.ndarray:
    """Codes of 32-bit integers where conversions decide: small values, powers of two and their
    neighbours, ties of narrow formats above 2**24 (no double rounding allowed), extremes, random."""
    v = [0, 1, 2, 3, 127, 128, 255, 256, 65504, 65519, 65520, 65535, 65536]
    for k in range(1, bits):
        v += [(1 << k) + d for d in (-2, -1, 0, 1, 2)]
        v += [(3 << k) // 2 + d for d in (-1, 0, 1)]
        v += [(5 << k) // 4 + d for d in (-1, 0, 1)] + [(7 << k) // 4 + d for d in (-1, 0, 1)]
    v += [(1 << 24) + (1 << j) + d for j in range(1, 9) for d in (-1, 0, 1)]
    v += [(1 << 31) - (1 << j) + d for j in range(1, 9) for d in (-1, 0, 1)]
    v += [(1 << 32) - (1 << j) + d for j in range(1, 9) for d in (-1, 0, 1)]
    v += list(np.random.default_rng(3).integers(0, 1 << bits, 4096))
    mask = (1 << bits) - 1
    v = np.array(v, dtype=np.int64) & mask
    return np.unique(np.concatenate([v, (-v) & mask])).astype(np.uint64)


def source_codes(src, dst) -> np.ndarray:
    if src.nbits <= 16:
        return np.arange(1 << src.nbits, dtype=np.uint64)
    if src == D.float32:
        return f32_inputs(dst)
    return int32_inputs(src.nbits)


# ----------------------------------------------------------------------------------- the tests
def _check(src, dst, saturate, codes, got_mem):
    got = mem_to_codes(dst, got_mem)
    want = vm_cast(src, dst, codes, saturate)
    same = (got == want) | (_nan_codes(dst, got) & _nan_codes(dst, want))
    if not same.all():
        bad = np.flatnonzero(~same)[:8]
        rows = [f"  in {int(codes[k]):#x} ({AR.to_values(src, AR.from_codes(src, codes[k:k + 1]))[0]!r}) -> "
                f"got {int(got[k]):#x}, VM {int(want[k]):#x}" for k in bad]
        raise AssertionError(f"cast {src} -> {dst} (saturate={saturate}): {int((~same).sum())} of {len(codes)} "
                             "differ\n" + "\n".join(rows))


@pytest.mark.parametrize("saturate", [False, True], ids=["plain", "saturate"])
@pytest.mark.parametrize("src", DTYPES, ids=_name)
def test_cast_to_every_dtype(src, saturate):
    jit = cast_module(src)
    checked = 0
    for dst in DTYPES:
        codes = valid_inputs(src, dst, source_codes(src, dst), saturate)
        if len(codes) == 0:
            continue
        got = jit(_fname(dst, saturate), codes_to_mem(src, codes), _mem_np(dst))
        _check(src, dst, saturate, codes, got)
        checked += len(codes)
    assert checked > 0


@pytest.mark.parametrize("src", DTYPES, ids=_name)
def test_to_f32(src):
    """to_f32 of every code of dtypes of at most 16 bits is the exact value; int32/uint32 and float32
    inputs round to nearest even (NumPy's conversion)."""
    codes = source_codes(src, D.float32)
    got = cast_module(src)("dec", codes_to_mem(src, codes), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        want = src.decode(codes.astype(np.int64)).astype(np.float32)
    if src.nbits <= 16:
        assert np.array_equal(want.astype(np.float64), src.decode(codes.astype(np.int64)), equal_nan=True)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_valid_inputs_bisection_agrees_with_elementwise():
    """The interval search of valid_inputs agrees with casting one element at a time."""
    rng = np.random.default_rng(0)
    cases = [(D.float32, D.float4_e2m1, False), (D.float32, D.float8_e8m0, False), (D.float32, D.uint8, False),
             (D.float16, D.nf4, False), (D.int32, D.float8_e4m3, False), (D.float32, D.float8_e4m3, True),
             (D.bfloat16, D.int32, True)]
    for src, dst, sat in cases:
        codes = np.sort(rng.choice(source_codes(src, dst), 400, replace=False))
        a = AR.from_codes(src, codes)
        each = np.array([_vm_ok(src, dst, a[k:k + 1], sat) for k in range(len(codes))])
        assert np.array_equal(valid_inputs(src, dst, codes, sat), codes[each]), (src, dst, sat)


def _one_fn_module(arg_type, ret_type, emit) -> Jitted:
    mod = ir.Module()
    _loop_typed(mod, "f", arg_type, ret_type, emit)
    return Jitted(mod)


def test_int_to_f32_round_to_odd():
    """int_to_f32_rto: truncation toward zero, last bit set when inexact (checked in exact integers)."""
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.integers(-(1 << 40), 1 << 40, 20000), rng.integers(-(1 << 26), 1 << 26, 20000),
                        (1 << np.arange(63)) - 1, -(1 << np.arange(63)), (1 << np.arange(62)) + 1,
                        np.arange(-300, 300)]).astype(np.int64)
    got = _one_fn_module(I64, ir.FloatType(), lambda b, x: C.int_to_f32_rto(b, x))("f", v, np.float32)
    for x, g in zip(v.tolist(), got.tolist()):
        ax = abs(x)
        nb = ax.bit_length()
        drop = max(0, nb - 24)
        t = (ax >> drop) << drop
        if t != ax:
            t |= 1 << drop
        assert g == (t if x >= 0 else -t), (x, g)


@pytest.mark.parametrize("dt", [d for d in DTYPES if d.is_int], ids=_name)
def test_int_value_and_int_to(dt):
    """int_value of every code (sign- or zero-extended, to i32/i64 and to i64), and int_to wrapping
    every i32 value pattern back (low bits)."""
    n = min(dt.nbits, 16)
    codes = np.arange(1 << n, dtype=np.uint64)
    if dt.nbits == 32:
        codes = int32_inputs(32)
    want = dt.decode(codes.astype(np.int64)).astype(np.int64)
    mod = ir.Module()
    def value64(b, x):
        v = C.int_value(b, dt, x)
        return v if v.type == I64 else b.sext(v, I64)

    _loop(mod, "v", dt, I64, value64)
    _loop(mod, "w", dt, I64, lambda b, x: C.int_value(b, dt, x, I64))
    _loop_typed(mod, "t32", I32, _mem_type(dt), lambda b, x: _bool8(b, C.int_to(b, dt, x)))
    _loop_typed(mod, "t64", I64, _mem_type(dt), lambda b, x: _bool8(b, C.int_to(b, dt, x)))
    jit = Jitted(mod)
    mem = codes_to_mem(dt, codes)
    assert np.array_equal(jit("v", mem, np.int64), want)
    assert np.array_equal(jit("w", mem, np.int64), want)
    rng = np.random.default_rng(dt.nbits)
    vals = np.concatenate([rng.integers(-(1 << 40), 1 << 40, 5000), np.arange(-600, 600)]).astype(np.int64)
    mask = np.int64((1 << dt.nbits) - 1)
    got32 = mem_to_codes(dt, jit("t32", vals.astype(np.int32), _mem_np(dt)))
    got64 = mem_to_codes(dt, jit("t64", vals, _mem_np(dt)))
    assert np.array_equal(got32.astype(np.int64), vals.astype(np.int32).astype(np.int64) & mask)
    assert np.array_equal(got64.astype(np.int64), vals & mask)


def test_repr_types():
    seen = {}
    for dt in DTYPES:
        t = C.repr_type(dt)
        seen.setdefault(str(t), []).append(dt.name)
        if dt == BOOL:
            assert t == I1
        elif C.is_storage(dt):
            assert t == I8
    assert seen["half"] == ["float16"]
    assert sorted(seen["float"]) == ["bfloat16", "float32"]
    assert sorted(seen["i32"]) == ["int32", "uint32"] and sorted(seen["i16"]) == ["int16", "uint16"]


def test_helpers_made_once_per_module():
    """Helpers are internal, always-inline functions of the module, one per dtype (and saturation where
    it matters), found again by name: a second conversion site calls the same function."""
    mod = ir.Module()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ir.FloatType(), PTR]), name="k")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    f, p = fn.args
    for _ in range(3):
        for dst in (D.float8_e4m3, D.float8_e5m2, D.nf4, D.bfloat16, D.int8):
            for sat in (False, True):
                y = C.cast(b, D.float32, dst, f, sat)
                b.store(y, p)
        for src in (D.float8_e4m3, D.nf4):
            b.store(C.cast(b, src, D.float32, ir.Constant(I8, 3)), p)
    b.ret_void()
    helpers = [g for g in mod.functions if g.name.startswith("vm.cvt.")]
    names = sorted(g.name for g in helpers)
    assert names == sorted(set(names))
    assert names == sorted(["vm.cvt.encode.float8_e4m3", "vm.cvt.encode.float8_e5m2",
                            "vm.cvt.encode.float8_e5m2.sat", "vm.cvt.encode.nf4", "vm.cvt.round.bfloat16",
                            "vm.cvt.f2i.int8", "vm.cvt.decode.float8_e4m3", "vm.cvt.decode.nf4"])
    for g in helpers:
        assert g.linkage == "internal" and "alwaysinline" in g.attributes
    llvm.parse_assembly(str(mod)).verify()


# ----------------------------------------------------------------------------------- NVPTX
def _nvptx_module() -> ir.Module:
    """One kernel per source dtype: thread t reads element t and writes its cast to every destination,
    plain and saturating."""
    T = importlib.import_module("vmlang.backends.ptx.toolchain")
    gptr = ir.PointerType(addrspace=1)
    mod = ir.Module(name="convert_all")
    tid_fn = ir.Function(mod, ir.FunctionType(I32, []), name="llvm.nvvm.read.ptx.sreg.tid.x")
    for si, src in enumerate(DTYPES):
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [gptr, gptr]), name=f"casts_{si}")
        T.mark_kernel(fn, max_threads=128)
        pin, pout = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        t = b.zext(b.call(tid_fn, []), I64)
        st = _mem_type(src)
        x = b.load(b.gep(pin, [t], source_etype=st), typ=st)
        if C.repr_type(src) == I1:
            x = b.trunc(x, I1)
        k = 0
        for dst in DTYPES:
            for sat in (False, True):
                y = C.cast(b, src, dst, x, sat)
                y = _bool8(b, y)
                off = b.add(b.mul(t, ir.Constant(I64, 4)), ir.Constant(I64, 4 * 128 * k))
                b.store(y, b.gep(pout, [off], source_etype=I8))
                k += 1
        b.ret_void()
    return mod


def test_every_conversion_compiles_for_nvptx():
    T = pytest.importorskip("vmlang.backends.ptx.toolchain")
    if not T.nvptx_available():
        pytest.skip("this llvmlite has no NVPTX target")
    mod = _nvptx_module()
    ptx = T.to_ptx(mod, arch="sm_90", opt=3)
    assert ".entry casts_0" in ptx
    assert "cvt.rni.f32.f32" in ptx           # llvm.roundeven
    assert "cvt.rn.f16.f32" in ptx            # fptrunc float -> half
    assert "cvt.f32.f16" in ptx               # fpext half -> float
    assert ".func" not in ptx and "call" not in ptx    # every helper inlined
    if not T.ptxas_available():
        pytest.skip("ptxas not found")
    T.ptxas_check(ptx, "sm_90")


# ----------------------------------------------------------------------------------- decoding: exact and short
_DECODE_TARGETS = [(ir.HalfType(), np.float16), (ir.FloatType(), np.float32)]


def test_decode_into_every_format():
    """The branch-free float decoding (fields moved into float16's/float32's, one exact multiplication by a
    power of two) of every code of every format that decodes exactly into the target, bit for bit (any
    NaN for NaN codes); this includes paths the casts do not take (e5m2 straight into float32)."""
    mod = ir.Module()
    cases = []
    for dt in DTYPES:
        for t, npt in _DECODE_TARGETS:
            if FF.decodes_exactly_into(dt, t):
                name = f"d_{dt.name}_{npt.__name__}"
                _loop_typed(mod, name, I8, t, lambda b, x, dt=dt, t=t: FF.decode_into_body(dt, t)(b, x))
                cases.append((dt, npt, name))
    assert {(dt.name, npt) for dt, npt, _ in cases} >= {("float4_e2m1", np.float16), ("float8_e4m3", np.float16),
                                                        ("float8_e5m2", np.float16), ("float8_e5m2", np.float32),
                                                        ("float6_e3m2", np.float32), ("float7_e1m5", np.float32)}
    assert not FF.decodes_exactly_into(D.float7_e5m1, ir.HalfType())     # 2**16 overflows float16
    assert not FF.decodes_exactly_into(D.float8_e8m0, ir.FloatType())    # no zero, no subnormals
    jit = Jitted(mod)
    for dt, npt, name in cases:
        codes = np.arange(1 << dt.nbits, dtype=np.uint8)
        got = jit(name, codes, npt)
        with np.errstate(over="raise"):
            want = dt.decode(codes).astype(npt)
        assert np.array_equal(want.astype(np.float64), dt.decode(codes), equal_nan=True)
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), (dt, npt)
        ui = np.uint16 if npt == np.float16 else np.uint32
        assert np.array_equal(got[~nan].view(ui), want[~nan].view(ui)), (dt, npt)


#: (source, destination, most PTX instructions per element): what LLVM 22 emits for sm_90 (measured, per
#: element, counting the extraction of the code from the packed word; loads, stores, moves and 64-bit
#: address arithmetic not counted). Before the branch-free decoding: ints 2 (bfe + the quarter-rate
#: cvt.rn.f32.s32/u32), e2m1 12.9, e3m2 13, e4m3 16.8, e5m2 18.8 (with cvt, setp and selp).
_SHORT_DECODES = [
    ("int4", "float32", 3.0),         # bfe, xor, add.rn.f32
    ("uint4", "float32", 3.0),        # bfe, or, add.rn.f32
    ("int3", "float32", 3.0),
    ("uint8", "float32", 3.0),
    ("int8", "float32", 3.0),
    ("float4_e2m1", "float32", 3.75),  # shl, shr.s32, and, mul.rn.f32 (3 for the top nibble)
    ("float6_e3m2", "float32", 3.8),
    ("float6_e2m3", "float32", 3.8),
    ("float8_e4m3", "float32", 6.75),  # the same 4, and NaN: and, setp, selp
    ("float8_e5m2", "float32", 2.75),  # the top byte of a float16: shl.b16, cvt.f32.f16
    ("int4", "float16", 4.0),          # shr, and, xor, add.rn.f16 (16-bit ops)
    ("float4_e2m1", "float16", 4.375),
]
def _decode_kernel(mod, name, src, dst) -> int:
    """``name(in, out)``: thread t loads the 32-bit word in[t], decodes the 32 // bits codes packed in it
    (LSB first) with :func:`convert.cast` and stores them; returns the number of codes."""
    b, pin, pout, t = thread_kernel(mod, name)
    n = src.nbits
    k_codes = 32 // n
    w = b.load(b.gep(pin, [t], source_etype=I32), typ=I32)
    for k in range(k_codes):
        code = b.and_(b.lshr(w, ir.Constant(I32, k * n)), ir.Constant(I32, (1 << n) - 1))
        y = C.cast(b, src, dst, b.trunc(code, C.repr_type(src)))
        off = b.add(b.mul(t, ir.Constant(I64, k_codes)), ir.Constant(I64, k))
        b.store(y, b.gep(pout, [off], source_etype=C.repr_type(dst)))
    b.ret_void()
    return k_codes


def test_decoding_is_short_and_branch_free_in_ptx():
    """Decoding packed int/uint/small-float codes to float32 (and float16), as a GEMV's inner loop does,
    emits for sm_90: no int -> float conversion (cvt.rn.f32.s32/u32 run at a quarter of the rate), no
    branch, no .ftz (the float decoding needs float32 subnormals), a setp/selp only for formats with NaN
    codes (e4m3: one per element), and at most the instructions per element of ``_SHORT_DECODES``."""
    T = importlib.import_module("vmlang.backends.ptx.toolchain")
    if not T.nvptx_available():
        pytest.skip("this llvmlite has no NVPTX target")
    mod = ir.Module(name="decode")
    kernels = []
    for i, (src, dst, most) in enumerate(_SHORT_DECODES):
        name = f"dec_{i}"
        kernels.append((name, D.dtype(src), D.dtype(dst), most, _decode_kernel(mod, name, D.dtype(src), D.dtype(dst))))
    ptx = T.to_ptx(mod, arch="sm_90", opt=3)
    for name, src, dst, most, k_codes in kernels:
        ins = entry_instructions(ptx, name)
        ops = [s.split()[0] for s in ins]
        what = f"{src} -> {dst}:\n  " + "\n  ".join(ins)
        assert not any(op.startswith(("cvt.rn.f32.s", "cvt.rn.f32.u", "cvt.rn.f16.s", "cvt.rn.f16.u",
                                      "cvt.rn.f16.f32", "bra", "call")) for op in ops), what
        assert not any(".ftz" in op for op in ops), what
        selects = sum(op.startswith(("selp", "setp")) for op in ops)
        specials = src.is_float and src.has_nan and not (src.exp == 5 and dst == D.float32)
        assert selects == (2 * k_codes if specials else 0), what
        work = [op for op in ops if not op.startswith(ADDRESS_OPS)]
        assert len(work) / k_codes <= most, f"{len(work) / k_codes} instructions per element\n{what}"
    if T.ptxas_available():
        T.ptxas_check(ptx, "sm_90")
