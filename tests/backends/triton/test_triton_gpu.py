"""The Triton backend on a CUDA GPU (skipped elsewhere): compiled, not interpreted; CUDA tensors used in
place; realistic sizes against the VM; the default backend."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import vmlang as vm

pytestmark = pytest.mark.gpu
ROOT = pathlib.Path(__file__).resolve().parents[3]
T = vm.backend("triton")


def test_compiled_for_the_gpu_and_the_default_backend(monkeypatch):
    monkeypatch.delenv("VMLANG_BACKEND", raising=False)
    assert not T.interpreting(), "TRITON_INTERPRET is set on a GPU machine"
    assert T.toolchain()["mode"] == "cuda"
    assert vm.api.default_backend() == "triton"


def test_cuda_tensors_are_written_in_place():
    import torch
    k = vm.compile_file(ROOT / "examples" / "gemv_w4a16.vm", {"BN": 64, "G": 64})
    m, kk, n = 3, 1000, 777
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((m, kk)).astype(np.float16)).cuda()
    w = vm.Tensor.from_codes(rng.integers(0, 16, (kk, n)), vm.int4)
    w = vm.Tensor(torch.from_numpy(w.data).cuda(), vm.int4, w.shape)
    s = torch.from_numpy(rng.uniform(0.01, 0.02, (-(-kk // 64), n)).astype(np.float16)).cuda()
    y = torch.zeros((m, n), dtype=torch.float16, device="cuda")
    ptr = y.data_ptr()
    T.compile(k)(x, w, s, y)
    torch.cuda.synchronize()
    assert y.data_ptr() == ptr and bool(torch.isfinite(y).all()) and bool((y != 0).any())


def _examples_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("examples_for_gpu", ROOT / "tests" / "examples" / "test_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name, consts, sizes", [
    ("gemv_w4a16", {}, (4, 1000, 4096)),
    ("gemv_nf4", {}, (2, 1000, 4096)),
    ("mxfp4_gemv", {}, (2, 1000, 4096)),
    ("matmul_f16", {}, (200, 130, 520)),
    ("dequant_int3", {}, (100, 1000, 32)),
    ("softmax", {"BN": 1024}, (64, 3000)),
    ("vector_add", {}, (1_000_003,)),
])
def test_examples_at_realistic_sizes(name, consts, sizes):
    """The examples' own runners (tests/examples) at GPU sizes: the triton output agrees with the VM by
    the rule of tests/support.py and with the float64 reference by the examples' rule."""
    TE = _examples_module()
    TE.BACKEND = "triton"
    k = TE.compile_example(name, **consts)
    if name == "dequant_int3":
        sizes = sizes[:2] + (dict(k.consts)["G"],)
    TE.check(*TE.RUNNERS[name](k, TE.rng_for("gpu", name), *sizes))
