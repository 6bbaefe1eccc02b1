"""A slab prefetched into registers one iteration ahead (``c = load(k0 + BK); ...; codes = c`` carried by the
loop): layout inference gives the prefetching loads the carried value's layout (no conversion per iteration),
the loop carries the codes as their packed 32-bit words (backends/ptx/control.py), so the next iteration
still decodes two codes per word operation, and the kernel agrees with the VM (``--backend ptx`` on a GPU)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.passes import DotPlan, pipeline
from ptx_support import launch, needs_ptxas, toolchain



PREFETCH = """
kernel prefetch<T = int2, BN = 32, BK = 128, W = 2>(x: f16[1, K] global, w: T[N, K] global, y: f32[1, N] global)
        grid(cdiv(N, BN)) warps(W) {
    n0 = block.x * BN;
    acc = zeros(f32, [1, BN]);
    codes = load(w[n0 : +BN, 0 : +BK]);
    xt = load(x[0 : +1, 0 : +BK]);
    for k0 in range(0, K, BK) {
        codes_next = load(w[n0 : +BN, k0 + BK : +BK]);     // the next slab, in flight during this one's math
        x_next = load(x[0 : +1, k0 + BK : +BK]);
        acc = dot(xt, trans(cast(codes, f16)), acc);
        codes = codes_next;
        xt = x_next;
    }
    store(y[0 : +1, n0 : +BN], acc);
}
"""


def _kernel(T):
    return vm.compile_source(PREFETCH, "prefetch.vm", {"T": T})


@pytest.mark.parametrize("T", [D.int2, D.int4, D.uint8])
def test_prefetched_loads_take_the_carried_layout(T):
    p = pipeline(_kernel(T))
    assert any(d.rows for d in p.facts.of_type(DotPlan).values())
    notes = [n.text for n in p.report if n.pass_name == "layout"]
    assert notes[-1] == "0 layout conversions inserted", notes
    assert any(t.startswith("codes_next%") and "loaded in the layout" in t for t in notes), notes


def _ptx(T, tmp_path, arch="sm_90") -> str:
    """The PTX of the kernel specialised as a call with N, K multiples of 128 is (whole 32-bit words)."""
    src = tmp_path / "prefetch.vm"
    src.write_text(PREFETCH)
    k = vm.load(src)
    kernel = k._lower(dict(k.ir(T=T).consts), (("N", 128), ("K", 128)))
    _, module, _ = launch.lower_program(kernel, None, arch)
    return toolchain.to_ptx(str(module), arch)


@needs_ptxas
@pytest.mark.parametrize("T", [D.int2, D.int4])
def test_loop_carries_the_words_and_decodes_in_pairs(T, tmp_path, monkeypatch):
    """The carried codes are one phi per 32-bit word (int2: 32 x 128 codes over 64 threads = 64 codes, 4
    words per thread), decoded with lop3 + f16x2 (the pair path of backends/ptx/unpack.py) inside the loop;
    without the words (one phi per code) the pair path cannot apply and the loop body is longer."""
    control = importlib.import_module("vmlang.backends.ptx.control")
    new = _ptx(T, tmp_path)
    body = new[new.index("$L__BB0_"):]
    assert "lop3.b32" in body and "add.rn.f16x2" in body and "mma.sync.aligned.m16n8k16" in body
    for arch in ("sm_90", "sm_80"):
        toolchain.ptxas_check(_ptx(T, tmp_path, arch), arch)
    monkeypatch.setattr(control, "_as_words", lambda i, inits: [False] * len(inits))
    old = _ptx(T, tmp_path)
    assert "add.rn.f16x2" not in old[old.index("$L__BB0_"):]
    assert len(new.splitlines()) < len(old.splitlines())


@pytest.mark.parametrize("T, N, K", [(D.int2, 17, 384), (D.int4, 100, 256), (D.uint8, 33, 128)])
def test_run_prefetched_gemv(T, N, K, backend):
    from support import run_kernel
    if backend not in ("numpy", "ptx"):
        pytest.skip("the few-row mma and the carried words are the ptx backend's")
    rng = np.random.default_rng(N + K)
    lo, hi = (-(1 << (T.nbits - 1)), 1 << (T.nbits - 1)) if T.is_signed else (0, 1 << T.nbits)
    codes = rng.integers(lo, hi, (N, K))
    w = vm.Tensor.from_values(codes, T)
    x = (rng.standard_normal((1, K)) + 0.1).astype(np.float16)
    scale = np.abs(x.astype(np.float32)) @ np.abs(codes.astype(np.float32)).T
    run_kernel(backend, _kernel(T), x, w, np.zeros((1, N), np.float32), scale=scale)
