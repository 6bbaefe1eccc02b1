"""Argument checking before launch: every bad call raises vm.ArgumentError naming the parameter, what was
expected and what was given, and leaves the output untouched.

The kernel (mix.vm) takes f16, int3 (packed), float8_e4m3 codes, bf16, a f32 scalar and writes f32:
    y[m, k] = (f32(a[m, k]) * f32(w[k]) + f32(e[k])) * scale + f32(b[m])
Every operation is one f32 rounding in the VM, so a float32 NumPy computation in the same order is an exact
reference.
"""
from __future__ import annotations

import pathlib

import ml_dtypes
import numpy as np
import pytest
import torch

import vmlang as vm

HERE = pathlib.Path(__file__).parent
M, K = 3, 17


@pytest.fixture(scope="module")
def mix():
    return vm.load(HERE / "mix.vm")


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K)).astype(np.float16)
    w = vm.Tensor.from_codes(rng.integers(0, 8, K), vm.int3)
    w.codes()[0] or w.set_codes(np.r_[1, w.codes()[1:]])          # never all zeros
    e = vm.Tensor.from_values(rng.uniform(-4, 4, K), vm.float8_e4m3)
    b = rng.standard_normal(M).astype(ml_dtypes.bfloat16)
    y = np.full((M, K), 7.0, np.float32)
    return dict(a=a, w=w, e=e, b=b, scale=0.75, y=y)


def reference(d):
    w = d["w"].values().astype(np.float32)
    e = d["e"].values().astype(np.float32)
    a = d["a"].astype(np.float32)
    b = d["b"].astype(np.float32)
    return (a * w + e) * np.float32(d["scale"]) + b[:, None]


def test_good_call_is_exact(mix):
    d = inputs()
    mix(**d)
    np.testing.assert_array_equal(d["y"], reference(d))


def test_good_call_with_torch_tensors_and_packed_bytes(mix):
    d = inputs(1)
    yt = torch.zeros(M, K)
    mix(torch.from_numpy(d["a"]), d["w"].data, torch.from_numpy(d["e"].data).view(torch.float8_e4m3fn),
        torch.from_numpy(d["b"].view(np.uint16).astype(np.int16)).view(torch.bfloat16), torch.tensor(0.75), yt)
    np.testing.assert_array_equal(yt.numpy(), reference(d))


def _bad(**changes):
    d = inputs()
    d.update(changes)
    return d


def _noncontig_a():
    big = np.zeros((M, 2 * K), np.float16)
    return big[:, ::2]


def _readonly_y():
    y = np.zeros((M, K), np.float32)
    y.setflags(write=False)
    return y


CASES = {
    # name: (positional args or kwargs builder, message fragments)
    "too few": (lambda d: ((d["a"], d["w"]), {}), ["takes 6 arguments", "missing e, b, scale, y"]),
    "too many": (lambda d: ((*d.values(), 1), {}), ["takes 6 arguments", "got 7"]),
    "f32 for f16": (lambda d: ((), _bad(a=d["a"].astype(np.float32))), ["argument a", "float16", "float32"]),
    "rank": (lambda d: ((), _bad(a=d["a"][0])), ["argument a", "2 dimensions", "[17]"]),
    "y shape": (lambda d: ((), _bad(y=np.zeros((M, K + 1), np.float32))),
                ["argument y", "axis 1", "K = 17", "18"]),
    "packed length": (lambda d: ((), _bad(w=np.zeros(8, np.uint8) + 1)),
                      ["argument w", "17 elements of int3 pack into 7 bytes", "got 8"]),
    "int8 for packed": (lambda d: ((), _bad(w=np.ones(7, np.int8))), ["argument w", "uint8", "int8"]),
    "wrong vm.Tensor dtype": (lambda d: ((), _bad(w=vm.Tensor.from_codes(np.ones(K, np.uint8), vm.int4))),
                              ["argument w", "int3", "vm.Tensor of int4"]),
    "e5m2 for e4m3": (lambda d: ((), _bad(e=torch.ones(K, dtype=torch.float8_e5m2))),
                      ["argument e", "float8_e4m3", "float8_e5m2"]),
    "f32 for bf16": (lambda d: ((), _bad(b=np.ones(M, np.float32))), ["argument b", "bfloat16", "float32"]),
    "non-contiguous numpy": (lambda d: ((), _bad(a=_noncontig_a())), ["argument a", "contiguous", "strides"]),
    "non-contiguous torch": (lambda d: ((), _bad(a=torch.zeros(K, M, dtype=torch.float16).t())),
                             ["argument a", "contiguous", "strides (1, 3)"]),
    "read-only output": (lambda d: ((), _bad(y=_readonly_y())), ["argument y", "read-only"]),
    "string scalar": (lambda d: ((), _bad(scale="0.5")), ["argument scale", "number", "'0.5'"]),
    "array scalar": (lambda d: ((), _bad(scale=np.ones(2))), ["argument scale", "scalar", "[2]"]),
    "list for tensor": (lambda d: ((), _bad(a=[[1.0] * K] * M)), ["argument a", "tensor of float16", "list"]),
    "inconsistent K": (lambda d: ((), _bad(e=vm.Tensor.from_codes(np.ones(16, np.uint8), vm.float8_e4m3))),
                       ["argument e", "K = 17", "16"]),
    "unknown keyword": (lambda d: ((), {**d, "z": 1}), ["no parameter or compile-time parameter z"]),
    "given twice": (lambda d: ((d["a"],), d), ["argument a given twice"]),
    "bad constexpr": (lambda d: ((), {**d, "BK": "wide"}), ["BK='wide'", "not a number or a dtype"]),
    "meta device": (lambda d: ((), _bad(a=torch.empty(M, K, dtype=torch.float16, device="meta"))),
                    ["argument a", "meta", "not supported"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_call(mix, case):
    build, fragments = CASES[case]
    d = inputs()
    y_before = d["y"].copy()
    args, kwargs = build(d)
    y = kwargs.get("y", d["y"])
    before = np.array(y, copy=True) if isinstance(y, np.ndarray) else None
    with pytest.raises(vm.ArgumentError) as info:
        mix(*args, **kwargs)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    np.testing.assert_array_equal(d["y"], y_before)      # never partially written
    if before is not None:
        np.testing.assert_array_equal(y, before)


def test_at_least_fifteen_bad_calls():
    assert len(CASES) >= 15


def test_runtime_error_leaves_outputs_untouched(tmp_path):
    """A launch that fails inside the kernel (false assume) writes nothing, although earlier blocks ran."""
    src = tmp_path / "k.vm"
    src.write_text("""
kernel k(x: f32[N] global, y: f32[N] global) grid(N) {
    i = block.x;
    store(y[i : +1], load(x[i : +1]) + 1.0);
    assume(i < 2);
}""")
    k = vm.load(src)
    x = np.arange(5, dtype=np.float32)
    y = np.zeros(5, np.float32)
    with pytest.raises(vm.VMRuntimeError):
        k(x, y)
    assert not y.any()
    k(x[:2], y[:2])
    np.testing.assert_array_equal(y, [1, 2, 0, 0, 0])


@pytest.mark.parametrize("dt", ["int8", "float8_e4m3", "uint8"])
def test_vm_tensor_of_8_bit_codes_in_torch_storage(tmp_path, dt):
    """A vm.Tensor keeps 8-bit codes as uint8 (torch or NumPy); the launcher views them as the dtype's
    canonical storage (int8 for int8) without a copy, for torch data as for NumPy data."""
    f = tmp_path / "k.vm"
    f.write_text(f"kernel k(w: {dt}[N] global, y: f32[N] global) grid(1) {{\n"
                 f"    store(y[0 : +7], cast(load(w[0 : +7]), f32));\n}}\n")
    k = vm.load(f)
    values = np.array([1, -2, 3, -128 if dt == "int8" else 4, 127, 0.5 if dt != "int8" and dt != "uint8" else 5, 6])
    if dt == "uint8":
        values = np.abs(values)
    codes = vm.Tensor.from_values(values, dt).data
    want = vm.dtype(dt).decode(codes).astype(np.float32)
    for w in (vm.Tensor(codes, dt), vm.Tensor(torch.from_numpy(codes.copy()), dt)):
        y = np.zeros(7, np.float32)
        k(w, y, backend="numpy")
        np.testing.assert_array_equal(y, want)
