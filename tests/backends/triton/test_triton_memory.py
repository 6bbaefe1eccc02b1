"""Memory and data movement on the Triton backend, for every dtype, bit for bit against the NumPy VM:
masked loads and stores (packed sub-byte streams of every width, fields straddling bytes, blocks writing
neighbouring fields of one byte at once), scalar accesses, view between widths, tile slices and inserts,
reshape/permute of awkward shapes, lookup."""
from __future__ import annotations

import math

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import dtypes as D

from support import run_kernel

DTYPES = D.all_dtypes()
RNG = np.random.default_rng(1234)


def random_codes(dt, shape, finite=True):
    """Random element codes of ``dt`` (finite values only where ``finite``)."""
    if dt.nbits > 16:
        codes = RNG.integers(0, 1 << 32, shape, dtype=np.uint64)
        if dt.is_float:
            codes = RNG.standard_normal(shape).astype(np.float32).view(np.uint32).astype(np.uint64)
        return codes
    ok = np.arange(1 << dt.nbits)
    if finite and dt.is_float:
        ok = ok[np.isfinite(dt.values)]
    return RNG.choice(ok, shape).astype(np.uint64)


def tensor(dt, codes):
    return vm.Tensor.from_codes(np.asarray(codes), dt)


def fill_literal(dt) -> str:
    """A value of ``dt`` written as a literal that is exact in it (the value of a non-zero code)."""
    if dt == vm.uint1:
        return "1"
    v = float(dt.decode(np.array([1 if dt.nbits < 16 else 0x3C00 if dt.nbits == 16 else 0x3F800000]))[0])
    if dt == vm.bfloat16:
        v = 1.0
    if dt.is_int:
        return str(int(v))
    return repr(v)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_masked_load_store_and_scalar_access(dt):
    """A 2-d copy shifted by (-1, -2) with a fill, in tiles of 3 x 7 (blocks share bytes of packed rows),
    plus scalar loads and stores at run-time positions from every block."""
    R, C = 5, 37
    src = f"""
kernel k(x: {dt.name}[R, C] global, y: {dt.name}[R, C] global, z: {dt.name}[C] global) grid(cdiv(C, 7), cdiv(R, 3)) {{
    r0 = block.y * 3;
    c0 = block.x * 7;
    t = load(x[r0 - 1 : +3, c0 - 2 : +7], fill={fill_literal(dt)});
    store(y[r0 : +3, c0 : +7], t);
    s = load(x[block.y, (block.x * 5) % C]);
    store(z[block.x + 6 * block.y], s);
}}"""
    x = tensor(dt, random_codes(dt, (R, C)))
    y = tensor(dt, random_codes(dt, (R, C)))
    z = tensor(dt, random_codes(dt, (C,)))
    run_kernel("triton", vm.compile_source(src), x, y, z, exact=True)


@pytest.mark.parametrize("dt", [vm.uint1, vm.int2, vm.uint4, vm.nf4, vm.float4_e2m1], ids=str)
def test_whole_byte_row_segments(dt):
    """Row segments that provably start on a byte (block.x * 16, loop variables stepping by 16) move as
    plain bytes unpacked in registers; edges (C = 37, a negative start) still read the fill and skip
    stores outside the shape."""
    src = f"""
kernel k(x: {dt.name}[R, C] global, y: {dt.name}[R, C] global, z: {dt.name}[R, C] global)
        grid(cdiv(C, 16), cdiv(R, 2)) {{
    c0 = block.x * 16;
    r0 = block.y * 2;
    t = load(x[r0 : +2, c0 : +16], fill={fill_literal(dt)});
    store(y[r0 : +2, c0 : +16], t);
    for j in range(0, 48, 16) {{
        u = load(x[r0 : +2, j - 16 : +16]);
        store(z[r0 : +2, j : +16], u);
    }}
}}"""
    k = vm.compile_source(src)
    text = vm.backend("triton").generate_source(k)
    assert "vm_load_bits" not in text and "vm_store_bits" not in text
    R, C = 5, 37
    x = tensor(dt, random_codes(dt, (R, C)))
    y = tensor(dt, random_codes(dt, (R, C)))
    z = tensor(dt, random_codes(dt, (R, C)))
    run_kernel("triton", k, x, y, z, exact=True)


VIEW_DTYPES = [vm.uint1, vm.uint2, vm.int3, vm.float4_e2m1, vm.int5, vm.float6_e2m3, vm.int7, vm.float8_e5m2,
               vm.uint8, vm.int8, vm.float16, vm.bfloat16, vm.int16, vm.float32, vm.uint32]


@pytest.mark.parametrize("a", VIEW_DTYPES, ids=str)
def test_view_between_widths(a):
    """view(x: A[3, n], B) for every B: the LSB-first bit stream of each row reread in another width."""
    lines, params, args = [], [f"x: {a.name}[R, C] global"], []
    for k, b in enumerate(VIEW_DTYPES):
        if b == a:
            continue
        lcm = a.nbits * b.nbits // math.gcd(a.nbits, b.nbits)
        n, m = 3 * lcm // a.nbits, 3 * lcm // b.nbits
        params.append(f"y{k}: {b.name}[R, {m}] global")
        lines.append(f"    store(y{k}[0 : +3, 0 : +{m}], view(load(x[0 : +3, 0 : +{n}]), {b.name}));")
        args.append(tensor(b, np.zeros((3, m), np.uint64)))
    width = max(3 * (a.nbits * b.nbits // math.gcd(a.nbits, b.nbits)) // a.nbits for b in VIEW_DTYPES)
    codes = random_codes(a, (3, width), finite=False)
    if a == vm.bfloat16:     # the VM keeps bf16 in float32 and canonicalises NaN payloads
        codes = np.where(np.isnan(a.decode(codes.astype(np.int64))), 0x7FC0, codes)
    src = f"kernel views({', '.join(params)}) grid(1) {{\n" + "\n".join(lines) + "\n}\n"
    run_kernel("triton", vm.compile_source(src), tensor(a, codes), *args, exact=True)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_view_every_dtype_as_bytes_and_bits_and_back(dt):
    """Every dtype's bit stream read as bytes and as bits, and bytes read as it."""
    n = 24                                  # 24 elements of any width fill whole bytes
    nb, nbits = n * dt.nbits // 8, n * dt.nbits
    src = f"""
kernel k(x: {dt.name}[R, C] global, b: u8[R, {nb}] global, t: uint1[R, {nbits}] global, y: {dt.name}[R, C] global,
         c: u8[R, {nb}] global) grid(1) {{
    v = load(x[0 : +3, 0 : +{n}]);
    store(b[0 : +3, 0 : +{nb}], view(v, u8));
    store(t[0 : +3, 0 : +{nbits}], view(v, uint1));
    store(y[0 : +3, 0 : +{n}], view(load(c[0 : +3, 0 : +{nb}]), {dt.name}));
}}"""
    codes = random_codes(dt, (3, n), finite=False)
    if dt == vm.bfloat16:     # the VM keeps bf16 in float32 and canonicalises NaN payloads
        codes = np.where(np.isnan(dt.decode(codes.astype(np.int64))), 0x7FC0, codes)
    c = RNG.integers(0, 256, (3, nb)).astype(np.uint8)
    if dt == vm.bfloat16:                   # bytes that make no bf16 Inf/NaN (exponent not all ones)
        hi = c[:, 1::2]
        c[:, 1::2] = np.where((hi & 0x7F) == 0x7F, hi & 0xBF, hi)   # no bf16 NaN patterns
    run_kernel("triton", vm.compile_source(src), tensor(dt, codes), np.zeros((3, nb), np.uint8),
               tensor(vm.uint1, np.zeros((3, nbits), np.uint64)), tensor(dt, np.zeros((3, n), np.uint64)), c,
               exact=True)


@pytest.mark.parametrize("dt", [vm.uint1, vm.int3, vm.float6_e3m2, vm.nf4, vm.float8_e4m3, vm.int8, vm.float16,
                                vm.bfloat16, vm.float32, vm.uint32], ids=str)
@pytest.mark.parametrize("off", [0, 3, 12])
def test_tile_slices_points_and_inserts(dt, off):
    src = f"""
kernel k(x: {dt.name}[R, C] global, y: {dt.name}[R, C] global, z: {dt.name}[3] global, off: i32) grid(1) {{
    t = load(x[0 : +3, 0 : +17]);
    part = t[1 : +2, off : +5];                   // dynamic start
    u = insert(t[0 : +2, 12 - off : +5], part);   // written back elsewhere
    v = insert(u[2, off], t[0, 16 - off]);        // one element
    store(y[0 : +3, 0 : +17], v);
    store(z[0], t[2, off]);
    store(z[1 : +2], t[0 : +2, off]);
}}"""
    x = tensor(dt, random_codes(dt, (3, 17)))
    y = tensor(dt, np.zeros((3, 17), np.uint64))
    z = tensor(dt, np.zeros(3, np.uint64))
    run_kernel("triton", vm.compile_source(src), x, y, z, off, exact=True)


@pytest.mark.parametrize("dt", [vm.int3, vm.uint1, vm.int32, vm.float16], ids=str)
@pytest.mark.parametrize("shapes", [([3, 4, 5], [5, 12], [1, 0]), ([6, 10], [4, 15], [1, 0]),
                                    ([2, 3, 5], [30], None), ([3, 5, 2], [5, 3, 2], [2, 0, 1]),
                                    ([4, 8], [2, 2, 8], [0, 2, 1])], ids=str)
def test_reshape_and_permute_of_awkward_shapes(dt, shapes):
    a, b, perm = shapes
    n = math.prod(a)
    out = b if perm is None else [b[p] for p in perm]
    body = f"reshape(reshape(load(x[0 : +{n}]), {a}), {b})"
    if perm is not None:
        body = f"permute({body}, {perm})"
    src = f"""
kernel k(x: {dt.name}[N] global, y: {dt.name}[N] global) grid(1) {{
    store(y[0 : +{n}], reshape({body}, [{n}]));
}}"""
    run_kernel("triton", vm.compile_source(src), tensor(dt, random_codes(dt, (n,))),
               tensor(dt, np.zeros(n, np.uint64)), exact=True)
    del out


@pytest.mark.parametrize("table", ["f32[10]", "i8[7]", "bf16[3]", "uint1[2]", "float8_e4m3[5]"])
def test_lookup_in_tables_of_any_length(table):
    dt = vm.dtype(table.split("[")[0])
    n = int(table.split("[")[1][:-1])
    src = f"""
kernel k(t: {dt.name}[T] global, c: i32[R, C] global, y: {dt.name}[R, C] global) grid(1) {{
    store(y[0 : +3, 0 : +11], lookup(load(t[0 : +{n}]), load(c[0 : +3, 0 : +11])));
}}"""
    codes = RNG.integers(0, n, (3, 11)).astype(np.int32)
    run_kernel("triton", vm.compile_source(src), tensor(dt, random_codes(dt, (n,))), codes,
               tensor(dt, np.zeros((3, 11), np.uint64)), exact=True)


@pytest.mark.parametrize("of", ["nf4", "float4_e2m1", "int4", "float8_e4m3"])
def test_lookup_in_a_codebook_decodes_in_registers(of):
    src = f"""
kernel k(w: {of}[R, C] global, y: f32[R, C] global, z: f16[R, C] global) grid(1) {{
    codes = load(w[0 : +3, 0 : +20]);
    store(y[0 : +3, 0 : +20], lookup(codebook({of}, f32), codes));
    store(z[0 : +3, 0 : +20], lookup(codebook({of}, f16), codes));
}}"""
    dt = vm.dtype(of)
    k = vm.compile_source(src)
    assert "tl.gather" not in vm.backend("triton").generate_source(k)
    run_kernel("triton", k, tensor(dt, random_codes(dt, (3, 20))), np.zeros((3, 20), np.float32),
               np.zeros((3, 20), np.float16), exact=True)


def test_lookup_in_a_codebook_of_another_type_reinterprets_the_raw_codes():
    """(fuzzer) lookup(codebook(int8, f32), codes of float8_e4m3): the raw code 0x80 indexes entry 0x80 of
    int8's table, which is -128; the decoded path used to read the code as unsigned (128)."""
    src = """
kernel k(w: float8_e4m3[N] global, y: f32[N] global, z: f32[N] global) grid(1) {
    c = load(w[0 : +40]);
    store(y[0 : +40], lookup(codebook(int8, f32), c));
    store(z[0 : +40], lookup(codebook(uint8, f32), c));
}"""
    codes = RNG.integers(0, 256, 40).astype(np.uint8)
    codes[:4] = [0x80, 0xFF, 0x7F, 0x00]
    run_kernel("triton", vm.compile_source(src), vm.Tensor(codes, "float8_e4m3"), np.zeros(40, np.float32),
               np.zeros(40, np.float32), exact=True)


@pytest.mark.parametrize("rows, n", [(1, 3), (4, 12), (3, 99)], ids=str)
def test_view_to_more_elements_than_the_source_tile(rows, n):
    """(H100, Triton 3.6) a gather whose index tile is longer than its source along the gather axis
    (bytes -> int3 codes) failed an assertion in TritonGPUOptimizeThreadLocality; the source is now
    repeated along the axis first."""
    m = n * 8 // 3
    src = f"""
kernel k(x: u8[R, C] global, y: int3[R, D] global) grid(1) {{
    store(y[0 : +{rows}, 0 : +{m}], view(load(x[0 : +{rows}, 0 : +{n}]), int3));
}}"""
    x = RNG.integers(0, 256, (rows, n)).astype(np.uint8)
    out = tensor(vm.int3, np.zeros((rows, m), np.uint64))
    run_kernel("triton", vm.compile_source(src), x, out, exact=True)
