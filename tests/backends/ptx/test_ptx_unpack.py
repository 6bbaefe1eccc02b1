"""backends/ptx/unpack.py: packed codes decoded two per word operation (lop3/prmt, f16x2/bf16x2), bit for bit
against the NumPy VM's cast and the per-code path (convert.cast), JIT-compiled for this CPU.

Per (code dtype, target) one host function ``f(words, out, n)`` takes groups of four 32-bit words (one
``ld.global.v4.b32``), cuts the codes out as the vector load does (:func:`vector.split_words`), decodes them
with :func:`unpack.cast_packed` and, beside, with :func:`convert.cast` one code at a time. Inputs: words
holding every code at every position (code ``(k + r) mod 2**bits`` at position ``k``, for every ``r``) and
random words. NaN: any NaN equals any NaN in float16/float32 (as the convert tests allow); bfloat16 must
give the VM's code. On NVPTX the lop3 is inline PTX; the CPU evaluates its truth table, so the table is
what is checked here. The PTX tests count instructions per code against the per-code path and assemble
with ptxas for sm_90 and sm_80.
"""
from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest

from vmlang.backends.numpy import arith as AR
from vmlang.ir import dtypes as D

llvm = pytest.importorskip("llvmlite.binding")
from llvmlite import ir

from vmlang.backends.ptx import convert as C
from vmlang.backends.ptx import floatfmt as FF
from vmlang.backends.ptx import unpack as U
from vmlang.backends.ptx import vector as V
from vmlang.backends.ptx.core import Packed, from_code
from host_jit import Engine, counted_loop
from ptx_support import ADDRESS_OPS, ROOT, entry_instructions, launch, needs_nvptx, needs_ptxas, thread_kernel
from ptx_support import toolchain as T

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
NWORDS = 4


def _nwords(n: int) -> int:
    """Words per group: one ld.global.v4.b32, or n words (32 codes) for widths that do not divide 128."""
    return NWORDS if 128 % n == 0 else n

TARGETS = [D.float16, D.bfloat16, D.float32]
#: every code dtype of at most 8 bits (ints, uints, float formats, e8m0, nf4)
CODES = [d for d in D.all_dtypes() if d.nbits <= 8]


def _cases():
    out = []
    for src in CODES:
        for dst in TARGETS:
            for sat in (False, True):
                if U.applies(src, dst, saturate=sat):
                    out.append((src, dst, sat))
    return out


CASES = _cases()


def test_which_casts_pair_up():
    """Every int/uint of 1, 2, 4, 8 bits and the float formats that fit decode in pairs into float16;
    nf4, e8m0 and formats with Inf/NaN beyond the lane tricks do not; 3/5/6/7-bit codes never pair."""
    names = {(s.name, d.name) for s, d, sat in CASES if not sat}
    for n in (1, 2, 4, 8):
        assert (f"int{n}", "float16") in names and (f"uint{n}", "bfloat16") in names
    # ints of 1..7 bits into float32 are not paired (measured faster on an H100: see lanes_for) but decoded
    # where they sit in their words (ints_in_place)
    assert U.lanes_for(D.int4, D.float32) is None and U.lanes_for(D.uint2, D.float32) is None
    assert ("int4", "float32") in names and ("uint2", "float32") in names and ("int3", "float32") in names
    assert ("int8", "float32") in names and ("uint8", "float32") in names
    for f in ("float4_e2m1", "float8_e4m3", "float8_e5m2", "float4_e1m2", "float4_e3m0"):
        assert (f, "float16") in names
    assert ("float4_e2m1", "bfloat16") in names and ("int4", "bfloat16") in names
    assert ("float8_e4m3", "float32") in names and ("int8", "bfloat16") in names
    assert ("float8_e4m3", "bfloat16") not in names         # its NaN is not bfloat16's canonical code
    assert ("float8_e5m2", "float16", True) not in {(s.name, d.name, sat) for s, d, sat in CASES}
    for dst in TARGETS:
        assert U.lanes_for(D.nf4, dst) is None and U.lanes_for(D.float8_e8m0, dst) is None
    assert U.lanes_for(D.float7_e5m1, D.float16) is None    # 2**16 is not a float16
    assert U.lanes_for(D.float6_e3m2, D.float16) is not None and 16 % 6   # fits, but never 16 bits apart
    for dt in CODES:      # the f16 lanes are a subset of what the per-code decoding handles exactly
        if U._float_fits(dt, U.F16_LANES):
            assert FF.decodes_exactly_into(dt, ir.HalfType())


# ----------------------------------------------------------------------------------- JIT on the host
def _mem_np(dst):
    return {D.float16: np.uint16, D.bfloat16: np.uint32, D.float32: np.uint32}[dst]


def _body(b, src, dst, words, packed_path: bool, sat: bool = False):
    n = src.nbits
    codes, where = V.split_words(b, words, n, len(words) * 32 // n)
    slots = [from_code(b, src, c) for c in codes]
    if packed_path:
        out = U.cast_packed(b, src, dst, Packed(tuple(words), tuple(where), n), slots, sat)
        assert out is not None
        return out
    return [C.cast(b, src, dst, x, sat) for x in slots]


def _group_fn(mod, name, src, dst, packed_path, sat):
    """``void name(ptr words, ptr out, i64 groups)``: per group of NWORDS words, its codes' reprs of dst."""
    rt = C.repr_type(dst)
    nw = _nwords(src.nbits)
    k = nw * 32 // src.nbits

    def body(b, g, pin, pout):
        base = b.mul(g, ir.Constant(I64, nw))
        words = [b.load(b.gep(pin, [b.add(base, ir.Constant(I64, j))], source_etype=I32), typ=I32)
                 for j in range(nw)]
        ys = _body(b, src, dst, words, packed_path, sat)
        obase = b.mul(g, ir.Constant(I64, k))
        for v, y in enumerate(ys):
            b.store(y, b.gep(pout, [b.add(obase, ir.Constant(I64, v))], source_etype=rt))
    counted_loop(mod, name, body)


class _Jit(Engine):
    def run(self, name, words: np.ndarray, nw: int, per_group: int, out_np) -> np.ndarray:
        words = np.ascontiguousarray(words, np.uint32)
        groups = len(words) // nw
        return self.call(name, words, groups, np.zeros(groups * per_group, out_np))


# ----------------------------------------------------------------------------------- inputs
def _pack(codes: np.ndarray, n: int) -> np.ndarray:
    """LSB-first bit stream of n-bit codes -> uint32 words."""
    bits = ((codes[:, None].astype(np.uint64) >> np.arange(n, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").view(np.uint32)


def _unpack(words: np.ndarray, n: int) -> np.ndarray:
    bits = np.unpackbits(words.view(np.uint8), bitorder="little").reshape(-1, n).astype(np.uint64)
    return (bits << np.arange(n, dtype=np.uint64)).sum(axis=1)


def _inputs(n: int) -> np.ndarray:
    k = _nwords(n) * 32 // n
    pos = np.arange(k)
    groups = [(pos + r) % (1 << n) for r in range(1 << n)]          # every code at every position
    codes = np.concatenate(groups).astype(np.uint64)
    words = _pack(codes, n)
    rng = np.random.default_rng(n)
    rand = rng.integers(0, 1 << 32, _nwords(n) * 64, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([words, rand])


def _vm_codes(src, dst, codes, sat) -> np.ndarray:
    return AR.to_codes(dst, AR.cast(src, dst, AR.from_codes(src, codes), sat)).astype(np.uint64)


def _got_codes(dst, mem) -> np.ndarray:
    m = mem.astype(np.uint64)
    if dst == D.bfloat16:
        assert not (m & np.uint64(0xFFFF)).any(), "not bfloat16-exact"
        m = m >> np.uint64(16)
    return m


def _nan(dst, codes) -> np.ndarray:
    if dst == D.bfloat16:
        return np.zeros(len(codes), bool)                    # the VM's code exactly
    return np.isnan(dst.decode(codes.astype(np.int64)))


@pytest.mark.parametrize("src, dst, sat", CASES,
                         ids=[f"{s.name}-{d.name}" + ("-sat" if sat else "") for s, d, sat in CASES])
def test_pairs_decode_bit_for_bit(src, dst, sat):
    mod = ir.Module(name=f"unpack_{src.name}_{dst.name}")
    _group_fn(mod, "pairs", src, dst, True, sat)
    _group_fn(mod, "each", src, dst, False, sat)
    jit = _Jit(mod)
    n = src.nbits
    words = _inputs(n)
    codes = _unpack(words, n)
    nw = _nwords(n)
    per = nw * 32 // n
    pairs = _got_codes(dst, jit.run("pairs", words, nw, per, _mem_np(dst)))
    each = _got_codes(dst, jit.run("each", words, nw, per, _mem_np(dst)))
    want = _vm_codes(src, dst, codes, sat)
    for label, got in (("VM", want), ("convert.cast", each)):
        same = (pairs == got) | (_nan(dst, pairs) & _nan(dst, got))
        if not same.all():
            bad = np.flatnonzero(~same)[:6]
            rows = [f"  slot {k % per} code {int(codes[k]):#x} -> {int(pairs[k]):#x}, {label} {int(got[k]):#x}"
                    for k in bad]
            raise AssertionError(f"{src} -> {dst}: {int((~same).sum())} of {len(codes)} differ from {label}\n"
                                 + "\n".join(rows))


def test_lane_shifts_put_every_pair_inside_the_mantissa():
    """Post-condition of unpack.lane_shifts (its doctest runs here too): after its word's shift every pair's
    code lies inside the lane's mantissa, each shift is 0 or one of the offsets, and a shift is only added
    when the previous one cannot reach."""
    import doctest
    assert doctest.testmod(U).failed == 0
    for man in (7, 10):
        for n in range(1, 8):
            if n > man:
                continue
            offs = list(range(0, 16 - n + 1, n))
            got = U.lane_shifts(offs, n, man)
            assert sorted(got) == offs
            ts = sorted(set(got.values()))
            assert set(ts) <= {0, *offs}
            for s, t in got.items():
                assert 0 <= s - t and s - t + n <= man, (n, man, s, t)
            for a, c in zip(ts, ts[1:]):
                assert c - a + n > man, (n, man, ts)


def test_lop3_truth_table():
    """lop3's table is fn(0xF0, 0xCC, 0xAA); the CPU evaluation of the table is the function."""
    mod = ir.Module()
    fn = ir.Function(mod, ir.FunctionType(I32, [I32, I32, I32]), name="f")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(U.lop3(b, *fn.args, lambda x, y, z: (x & y | z) ^ (~x & z)))
    jit = _Jit(mod)
    f = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)(
        jit.engine.get_function_address("f"))
    rng = np.random.default_rng(1)
    for x, y, z in rng.integers(0, 1 << 32, (200, 3), dtype=np.uint64).tolist():
        assert f(x, y, z) == ((x & y | z) ^ (~x & z)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------- PTX
def _kernel(mod, name, src, dst, packed_path: bool):
    """Thread t decodes the codes of its group of words (four, or ``bits``: 32 codes) and stores them."""
    b, pin, pout, t = thread_kernel(mod, name)
    nw = _nwords(src.nbits)
    words = [b.load(b.gep(pin, [b.add(b.mul(t, ir.Constant(I64, nw)), ir.Constant(I64, j))],
                          source_etype=I32), typ=I32) for j in range(nw)]
    ys = _body(b, src, dst, words, packed_path)
    rt = C.repr_type(dst)
    for v, y in enumerate(ys):
        off = b.add(b.mul(t, ir.Constant(I64, len(ys))), ir.Constant(I64, v))
        b.store(y, b.gep(pout, [off], source_etype=rt))
    b.ret_void()
    return len(ys)


def _work(ptx: str, name: str) -> list[str]:
    return [s for s in entry_instructions(ptx, name) if not s.startswith(ADDRESS_OPS)]


#: (code, target, most instructions per code with pairs): sm_90, loads/stores/moves not counted
PER_CODE = [("int4", "float16", 1.125), ("uint4", "float16", 1.125),
            ("int4", "bfloat16", 2.375), ("int2", "float16", 1.0625), ("int8", "float16", 1.25),
            ("uint8", "float32", 2.0), ("float4_e2m1", "float16", 2.375), ("float8_e4m3", "float16", 3.25),
            ("float8_e5m2", "float16", 0.5), ("float4_e2m1", "float32", 3.375), ("float8_e4m3", "float32", 4.25),
            ("int3", "float16", 1.125), ("uint3", "float16", 1.125), ("int5", "float16", 1.35),
            ("int6", "float16", 1.32), ("int7", "float16", 1.47),
            ("float6_e3m2", "float16", 4.6), ("int6", "bfloat16", 3.2),
            ("int4", "float32", 2.2), ("uint2", "float32", 2.2), ("int3", "float32", 3.0)]


def per_code_counts(arch: str = "sm_90"):
    """{(src, dst): (instructions per code before, after)} of PER_CODE, and the PTX."""
    mod = ir.Module(name="unpack_counts")
    mod.triple = T.TRIPLE          # lop3 as inline PTX
    names = []
    for k, (s, d, _) in enumerate(PER_CODE):
        src, dst = D.dtype(s), D.dtype(d)
        _kernel(mod, f"each_{k}", src, dst, False)
        per = _kernel(mod, f"pairs_{k}", src, dst, True)
        names.append((s, d, per, k))
    ptx = T.to_ptx(str(mod), arch)
    out = {(s, d): (len(_work(ptx, f"each_{k}")) / per, len(_work(ptx, f"pairs_{k}")) / per)
           for s, d, per, k in names}
    return out, ptx


@needs_nvptx
def test_pairs_are_fewer_instructions_in_ptx():
    counts, ptx = per_code_counts("sm_90")
    assert "lop3.b32" in ptx and "prmt.b32" in ptx and "add.rn.f16x2" in ptx and "mul.rn.f16x2" in ptx
    for s, d, most in PER_CODE:
        before, after = counts[(s, d)]
        assert after <= most and after < before, (s, d, before, after)


@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_pair_decoding_assembles(arch):
    mod = ir.Module(name="unpack_all")
    mod.triple = T.TRIPLE
    for k, (src, dst, sat) in enumerate(CASES):
        if not sat:
            _kernel(mod, f"k{k}", src, dst, True)
    ptx = T.to_ptx(str(mod), arch)
    assert "lop3.b32" in ptx and "prmt.b32" in ptx
    assert ("fma.rn.bf16x2" if arch == "sm_80" else "add.rn.bf16x2") in ptx
    T.ptxas_check(ptx, arch)


# ----------------------------------------------------------------------------------- kernels
QMATMUL = ROOT / "stdlib" / "kernels" / "qmatmul.vm"
CAST_VM = """
kernel cast_f16<BN = 512>(w: int4[N] global, y: f16[N] global) grid(cdiv(N, BN)) warps(4) {
    store(y[block.x * BN : +BN], cast(load(w[block.x * BN : +BN]), f16));
}
"""


def _kernel_ptx(path_or_src, consts, facts, arch, paired: bool, monkeypatch) -> str:
    import vmlang as vm
    k = vm.load(path_or_src)
    kernel = k._lower(dict(k.ir(**consts).consts), tuple(facts))
    with monkeypatch.context() as m:
        if not paired:
            m.setattr(U, "cast_packed", lambda *a, **kw: None)
        _, module, _ = launch.lower_program(kernel, None, arch)
        return T.to_ptx(str(module), arch)


def _count(ptx: str) -> int:
    lines = (s.strip() for s in ptx.splitlines())
    return sum(1 for s in lines if s and not s.startswith((".", "//", "$", "{", "}", ")")))


@needs_ptxas
@pytest.mark.parametrize("which", ["qmatmul", "cast"])
def test_kernels_decode_in_pairs(which, tmp_path, monkeypatch):
    """The stdlib qmatmul (T=float4_e2m1, X=float16, DOT=1: codes cast to f32 through bf16 lanes) and
    ``y = cast(load(w), f16)`` decode with lop3 and f16x2/bf16x2 arithmetic, in fewer instructions than the
    per-code path, and assemble for sm_90 and sm_80."""
    if which == "qmatmul":
        src = QMATMUL
        consts = dict(T=D.float4_e2m1, S=D.float16, X=D.float16, G=32, DOT=1, BM=16, BN=16, BK=32, W=4)
        facts = [("N", 128), ("K", 128)]
    else:
        src = tmp_path / "cast_f16.vm"
        src.write_text(CAST_VM)
        consts, facts = {}, [("N", 128)]
    new = _kernel_ptx(src, consts, facts, "sm_90", True, monkeypatch)
    old = _kernel_ptx(src, consts, facts, "sm_90", False, monkeypatch)
    assert "lop3.b32" in new and re.search(r"\.(b)?f16x2", new)
    assert "lop3.b32" not in old
    assert _count(new) < _count(old), (_count(new), _count(old))
    T.ptxas_check(new, "sm_90")
    T.ptxas_check(_kernel_ptx(src, consts, facts, "sm_80", True, monkeypatch), "sm_80")


# ------------------------------------------------------------------------------------------ on the device
RUN_VM = """
kernel k(w: {s}[R, C] global, y: {d}[R, C] global) grid(1) warps(4) {{
    assume(C % 128 == 0);
    store(y[0 : +16, 0 : +256], cast(load(w[0 : +16, 0 : +256]), {d}));
}}"""
RUN_CASES = [(s, d) for s, d, sat in CASES if not sat]


@pytest.mark.parametrize("src, dst", RUN_CASES, ids=[f"{s.name}-{d.name}" for s, d in RUN_CASES])
def test_run_vector_loaded_casts(src, dst, backend):
    """``cast(load(w), D)`` of a 16 x 256 tile (128-bit loads: the pair path) on the backend, bit for bit
    against the VM, every finite code of the source at random positions (``--backend ptx`` on a GPU)."""
    import vmlang as vm
    from support import run_kernel
    if backend not in ("numpy", "ptx"):
        pytest.skip("the pair decoding is the ptx backend's")
    rng = np.random.default_rng(11)
    finite = np.flatnonzero(np.isfinite(src.decode(np.arange(1 << src.nbits))))
    w = vm.Tensor.from_codes(rng.choice(finite, (16, 256)), src)
    y = vm.Tensor.from_codes(np.zeros((16, 256), np.int64), dst)
    run_kernel(backend, vm.compile_source(RUN_VM.format(s=src.name, d=dst.name), "t.vm", {}), w, y)
