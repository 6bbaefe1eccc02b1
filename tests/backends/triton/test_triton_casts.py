"""cast() between every pair of dtypes on the Triton backend, bit for bit against the NumPy VM.

One kernel per (source dtype, saturate) casts the source to every other dtype. Inputs: every code of
sources of up to 8 bits and (saturating) of float16 / bfloat16; for float32 the values where rounding
decides (each midpoint between two neighbouring values of every narrower format, one float32 ulp either
side of it, the overflow thresholds); for integers boundaries and ties above 2**24; specials and random
bit patterns. Each pair gets only the inputs the VM accepts (out-of-range values without saturation, and
NaN into formats without NaN, are run-time errors of the VM); tiles of 300 or 3000 elements (padded to
512 / 4096 in Triton) over a grid.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import vmlang as vm
from vmlang.backends.numpy import arith as AR
from vmlang.ir import dtypes as D

from support import run_kernel

DTYPES = D.all_dtypes()
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # NaN inputs of the VM's own casts


def _f32_codes() -> np.ndarray:
    """float32 inputs where rounding decides: for every format of at most 8 bits each value, each
    midpoint between neighbours and the overflow thresholds, one float32 ulp either side of each; a
    sample of the same for f16 and bf16; specials and random bit patterns."""
    rng = np.random.default_rng(7)
    vals = []
    for dt in DTYPES:
        if not dt.is_float or dt.nbits > 16:
            continue
        v = np.unique(dt.values[np.isfinite(dt.values)])
        mids = (v[:-1] + v[1:]) / 2
        top = v[-1] - v[-2]
        edge = np.array([dt.max + top / 2, dt.max + top, dt.max * 2])
        pts = np.concatenate([v, mids, edge])
        if dt.nbits > 8:
            pts = rng.choice(pts, 1500, replace=False)
        with np.errstate(over="ignore"):
            m = pts.astype(np.float32)
        vals += [m, -m, np.nextafter(m, np.float32(np.inf)), np.nextafter(m, np.float32(-np.inf))]
    vals.append(rng.integers(0, 1 << 32, 2048, dtype=np.uint64).astype(np.uint32).view(np.float32))
    vals.append(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38, 1e-45, 2.0 ** -127,
                          2.0 ** -127 * 1.5, 2.0 ** -128, 2.0 ** 127, 2.0 ** 128 * 0.75, 1e30, -1e-30], np.float32))
    return np.unique(np.concatenate(vals).view(np.uint32))


def _int_values(bits: int, signed: bool) -> np.ndarray:
    """Integers where conversions decide: small values, powers of two and their neighbours, ties of
    narrow formats above 2**24 (no double rounding through f32 allowed), extremes, random values."""
    v = [0, 1, 2, 3, 127, 128, 255, 256, 65519, 65520, 65535, 65536]
    for k in range(1, bits):
        v += [(1 << k) + d for d in (-2, -1, 0, 1, 2)]
        v += [(3 << k) // 2 + d for d in (-1, 0, 1)]
    if bits == 32:
        v += [(1 << 24) + (1 << j) + d for j in range(1, 8) for d in (-1, 0, 1)]
        v += [(1 << 31) - (1 << j) + d for j in range(1, 8) for d in (-1, 0, 1)]
    v += list(np.random.default_rng(3).integers(0, 1 << bits, 1024))
    mask = (1 << bits) - 1
    v = np.array(v, dtype=np.int64) & mask
    if signed:
        v = np.concatenate([v, (-v) & mask])
    return np.unique(v)


@functools.lru_cache(maxsize=None)
def source_codes(dt, saturate: bool) -> np.ndarray:
    """Every code of sources of at most 8 bits, and of f16/bf16 when saturating (the rounding paths are
    the same with and without saturation; the unsaturated run checks overflow on a sample)."""
    if dt.nbits <= 8 or (dt.nbits == 16 and dt.is_float and saturate):
        return np.arange(1 << dt.nbits, dtype=np.uint64)
    if dt == D.float32:
        codes = _f32_codes()
    elif dt.is_float:
        codes = np.arange(1 << 16, dtype=np.uint64)
    else:
        codes = _int_values(dt.nbits, dt.is_signed)
    if not saturate and len(codes) > 4096:
        codes = np.random.default_rng(11).choice(codes, 4096, replace=False)
    return np.sort(codes).astype(np.uint64)


def valid_inputs(src, dst, codes: np.ndarray, saturate: bool) -> np.ndarray:
    """The codes the VM casts without a run-time error."""
    a = AR.from_codes(src, codes)
    if src.is_float and (dst.is_int or not dst.has_nan if isinstance(dst, D.FloatType) else dst.is_codebook):
        with np.errstate(invalid="ignore"):
            keep = ~np.isnan(AR.to_values(src, a))
        codes, a = codes[keep], a[keep]
    try:
        AR.cast(src, dst, a, saturate)
        return codes
    except AR.CastError:
        pass
    ok = np.zeros(len(codes), bool)
    stack = [(0, len(codes))]
    while stack:                       # split failing chunks until the failures are single elements
        lo, hi = stack.pop()
        try:
            AR.cast(src, dst, a[lo:hi], saturate)
            ok[lo:hi] = True
        except AR.CastError:
            if hi - lo > 1:
                step = max(1, (hi - lo + 7) // 8)
                stack += [(j, min(j + step, hi)) for j in range(lo, hi, step)]
    return codes[ok]


def _ident(dt) -> str:
    return dt.name


def destinations(src, saturate):
    """Every other dtype, on the interpreter and on a GPU alike (the whole matrix is about 4500 cast sites;
    on the H100 compiling them takes about 0.15 s each, so run the GPU suite with -n 16)."""
    return [d for d in DTYPES if d != src]


@pytest.mark.parametrize("saturate", [False, True], ids=["plain", "saturate"])
@pytest.mark.parametrize("src", DTYPES, ids=_ident)
def test_cast_to_every_dtype(src, saturate):
    codes = source_codes(src, saturate)
    pairs, args = [], []
    # not powers of two: Triton pads them to 512 / 4096 (the interpreter runs big blocks faster; compiled
    # code grows with the elements per thread)
    block = 300 if len(codes) <= 300 or not vm.backend("triton").interpreting() else 3000
    n = -(-len(codes) // block) * block               # whole tiles: the VM would cast fill values too
    for dst in destinations(src, saturate):
        ok = valid_inputs(src, dst, codes, saturate)
        if len(ok) == 0:
            continue
        x = np.resize(ok, n)                       # repeat the valid inputs to the common length
        pairs.append(dst)
        args += [vm.Tensor.from_codes(x, src), vm.Tensor.from_codes(np.zeros(n, np.uint64), dst)]
    params = ", ".join(f"x{k}: {src.name}[N] global, y{k}: {d.name}[N] global" for k, d in enumerate(pairs))
    sat = ", saturate=true" if saturate else ""
    body = "\n".join(f"    store(y{k}[i : +{block}], cast(load(x{k}[i : +{block}]), {d.name}{sat}));"
                     for k, d in enumerate(pairs))
    src_text = f"kernel casts({params}) grid(cdiv(N, {block})) {{\n    i = block.x * {block};\n{body}\n}}\n"
    kernel = vm.compile_source(src_text, f"casts_{src.name}.vm")
    run_kernel("triton", kernel, *args, exact=True)


@pytest.mark.parametrize("dt", [d for d in DTYPES if d.nbits <= 8 and d.is_float], ids=_ident)
def test_codebook_table_of_every_small_format(dt):
    """codebook(T, f32) and codebook(T, f16): the decoded value of every code."""
    n = 1 << dt.nbits
    src = f"""
kernel k(a: f32[{n}] global, b: f16[{n}] global) grid(1) {{
    store(a[0 : +{n}], codebook({dt.name}, f32));
    store(b[0 : +{n}], codebook({dt.name}, f16));
}}"""
    run_kernel("triton", vm.compile_source(src), np.zeros(n, np.float32), np.zeros(n, np.float16), exact=True)
