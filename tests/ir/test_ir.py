"""IR nodes, verifier and printer."""
import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.ir.printer import print_kernel
from vmlang.ir.types import ScalarType, TileType
from vmlang.ir.verify import verify

PROGRAM = """
kernel mix<BN = 16>(x: f16[M, K] global, y: f32[M, cdiv(K, 2)] global, n: int32) grid(M, 2) warps(2) {
    acc = zeros(f32, [BN]);
    t = empty(f32, [BN]);
    t = insert(t[0 : +8], zeros(f32, [8]));
    store(t[8 : +8], full(f32, [8], 1.5));
    for k0 in range(0, K, BN) {
        xt = load(x[block.x, k0 : +BN], fill=0.0);
        if k0 < n { acc += cast(xt, f32); } else { acc = max(acc, cast(xt, f32) * 2.0); }
    }
    m = sum(acc[None, :], axis=1);
    sel = where(arange(BN) % 2 == 0, acc, t);
    v = view(cast(sel, uint8, saturate=true), int4);
    r = reshape(permute(reshape(sel, [4, BN / 4]), [1, 0]), [BN]);
    if block.y == 0 { store(y[block.x, 0 : +BN], r + m); }
}
"""


def test_print_parse_fixed_point_and_verify():
    k = vm.compile_source(PROGRAM, "mix.vm")
    text = print_kernel(k)
    k2 = vm.compile_source(text, "printed.vm")
    assert print_kernel(k2) == text
    verify(k2)
    # same instruction sequence (classes) after the round trip
    assert [type(i) for i in N.walk(k.body)] == [type(i) for i in N.walk(k2.body)]


def test_structural_equality_and_hash():
    a = vm.compile_source(PROGRAM, "a.vm")
    b = vm.compile_source(PROGRAM, "b.vm")      # locations differ, structure does not
    assert a == b and hash(a) == hash(b)
    c = vm.compile_source(PROGRAM, "a.vm", consts={"BN": 8})
    assert a != c


def _f32(i, shape=(4,)):
    return N.Value(i, TileType(vm.f32, shape))


def test_verifier_rejects_use_before_definition_and_redefinition():
    x, y = _f32(0), _f32(1)
    body = N.Block((N.Add(y, x, x),))
    k = N.Kernel("bad", (), (), (vm.ir.symexpr.SymConst(1),), 1, body)
    with pytest.raises(vm.VerifyError, match="before it is defined"):
        verify(k)
    zero = N.Value(2, ScalarType(vm.f32))
    body = N.Block((N.Const(zero, 0.0), N.Full(x, zero), N.Full(x, zero)))
    with pytest.raises(vm.VerifyError, match="defined twice"):
        verify(N.Kernel("bad", (), (), (vm.ir.symexpr.SymConst(1),), 1, body))


def test_verifier_rejects_values_escaping_a_loop():
    i32 = ScalarType(vm.int32)
    s, var, inner = N.Value(0, i32), N.Value(1, i32), N.Value(2, i32)
    loop = N.For(var, s, s, s, (), (), N.Block((N.Add(inner, var, var),)), (), ())
    after = N.Value(3, i32)
    body = N.Block((N.Const(s, 1), loop, N.Add(after, inner, inner)))
    with pytest.raises(vm.VerifyError, match="outside its scope"):
        verify(N.Kernel("bad", (), (), (vm.ir.symexpr.SymConst(1),), 1, body))


def test_constructors_validate():
    x = _f32(0)
    with pytest.raises(vm.VMTypeError, match="different dtypes"):
        N.Add(_f32(1), x, N.Value(2, TileType(vm.f16, (4,))))
    with pytest.raises(vm.VMTypeError, match="one shape"):
        N.Mul(_f32(1), x, _f32(2, (8,)))
    with pytest.raises(vm.VMTypeError, match="storage type"):
        N.Exp(N.Value(1, TileType(vm.int4, (4,))), N.Value(2, TileType(vm.int4, (4,))))
    with pytest.raises(vm.VMTypeError, match="bits"):
        N.View(N.Value(1, TileType(vm.int3, (5,))), N.Value(2, TileType(vm.uint8, (2,))))
    with pytest.raises(vm.VMTypeError, match="accumulator"):
        a = N.Value(1, TileType(vm.f16, (4, 8)))
        N.Dot(_f32(3, (4, 4)), a, N.Value(2, TileType(vm.f16, (8, 4))), N.Value(4, TileType(vm.f16, (4, 4))))
    with pytest.raises(vm.VMTypeError, match="tile lives in"):
        TileType(vm.f32, (4,), space="global")


def test_layout_annotation_round_trips_and_runs():
    import numpy as np
    src = """kernel k(x: f32[N] global, y: f32[N] global) grid(1) {
      a: f32[16, 8] register layout("((4,8),(2,2)):((32,1),(16,8)) -> (16,8)") = reshape(load(x[0 : +128]), [16, 8]);
      store(y[0 : +128], reshape(a, [128]));
    }"""
    k = vm.compile_source(src)
    text = print_kernel(k)
    assert 'layout("((4,8),(2,2)):((32,1),(16,8)) -> (16,8)")' in text
    assert print_kernel(vm.compile_source(text)) == text
    x = np.arange(1, 129, dtype=np.float32)
    y = np.zeros(128, np.float32)
    vm.backend("numpy").compile(k)(x, y)
    np.testing.assert_array_equal(x, y)


def test_printing_a_bool_literal_is_a_fixed_point():
    """(found by the fuzzer) the literal true lowered to the int 1 of uint1, printed as 'uint1 = 1', which
    re-parses as true: print -> parse -> print was not a fixed point."""
    src = """
kernel k(x: f32[N] global, y: f32[N] global) grid(1) {
    t = load(x[0 : +4]);
    store(y[0 : +4], where(true, t, 0.0));
}"""
    text = print_kernel(vm.compile_source(src))
    assert "uint1 = true" in text
    assert print_kernel(vm.compile_source(text)) == text


