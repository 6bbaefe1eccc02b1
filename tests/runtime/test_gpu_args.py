"""Arguments on a CUDA device (run on the GPU machine; skipped elsewhere)."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.runtime.args import bind_args

pytestmark = pytest.mark.gpu
HERE = pathlib.Path(__file__).parent


def test_cuda_tensors_on_the_numpy_backend():
    import torch
    from test_args import inputs, reference   # the same kernel and oracle as the CPU tests
    d = inputs(4)
    y = torch.full((3, 17), 7.0, device="cuda")
    w = vm.Tensor(torch.from_numpy(d["w"].data).cuda(), vm.int3, d["w"].shape)
    k = vm.load(HERE / "mix.vm")
    k(torch.from_numpy(d["a"]).cuda(), w, d["e"], torch.from_numpy(d["b"].view(np.int16)).cuda().view(torch.bfloat16),
      0.75, y, backend="numpy")
    assert y.device.type == "cuda"
    np.testing.assert_array_equal(y.cpu().numpy(), reference(d))


def test_cuda_storage_is_used_in_place():
    import torch
    k = vm.load(HERE / "mix.vm").ir()
    a = torch.zeros(2, 5, dtype=torch.float16, device="cuda")
    w = vm.Tensor(torch.zeros(2, dtype=torch.uint8, device="cuda"), vm.int3, (5,))
    e = torch.zeros(5, dtype=torch.uint8, device="cuda")
    b = torch.zeros(2, dtype=torch.bfloat16, device="cuda")
    y = torch.zeros(2, 5, device="cuda")
    binding = bind_args(k, (a, w, e, b, 1.0, y))
    assert binding.device == "cuda:0"
    ys = binding.tensors[k.params[-1].id].torch_storage("cuda:0")
    assert ys.data_ptr() == y.data_ptr()
    ws = binding.tensors[k.params[1].id].torch_storage("cuda:0")
    assert ws.data_ptr() == w.data.data_ptr()


def test_numpy_arrays_copied_to_the_device_and_back():
    import torch
    k = vm.load(HERE / "mix.vm").ir()
    a = np.ones((2, 5), np.float16)
    y = np.zeros((2, 5), np.float32)
    binding = bind_args(k, (a, vm.Tensor.from_codes(np.ones(5, np.uint8), vm.int3),
                            vm.Tensor.from_codes(np.ones(5, np.uint8), vm.float8_e4m3), np.zeros(2, np.uint16), 1.0, y))
    arg = binding.tensors[k.params[-1].id]
    dev = arg.torch_storage("cuda:0")
    assert dev.device.type == "cuda"
    dev.fill_(3.0)
    assert not y.any()                    # nothing written before the commit
    binding.commit([k.params[-1].id])
    assert (y == 3.0).all()


def test_device_is_part_of_the_specialisation():
    import torch
    from vmlang.runtime import device as DEV
    info = DEV.describe("triton", "cuda:0")
    assert info["kind"] == "cuda" and info["arch"].startswith("sm_")
    assert torch.cuda.get_device_name(0) in DEV.label(info)
