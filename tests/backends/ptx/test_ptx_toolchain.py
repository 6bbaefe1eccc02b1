"""The PTX toolchain (llvmlite NVPTX -> PTX -> ptxas) and driver layer, on a hand-written kernel.

The CPU tests need llvmlite with the NVPTX target (and ptxas for the assembler checks); the ``gpu`` test
launches the kernel through :mod:`vmlang.backends.ptx.driver` on torch CUDA tensors.
"""
from __future__ import annotations

import ctypes
import enum
import importlib
import os
import sys

import pytest
from llvmlite import ir
from vmlang.ir.errors import BackendError

# by module name: the package's ``toolchain()`` (the backend contract) may shadow the submodule attribute
toolchain = importlib.import_module("vmlang.backends.ptx.toolchain")
driver = importlib.import_module("vmlang.backends.ptx.driver")

needs_nvptx = pytest.mark.skipif(not toolchain.nvptx_available(),
                                 reason="this llvmlite has no NVPTX target")
needs_ptxas = pytest.mark.skipif(not toolchain.ptxas_available(),
                                 reason="ptxas (CUDA toolkit) is not installed")

I32 = ir.IntType(32)
F32 = ir.FloatType()
GPTR = ir.PointerType(addrspace=1)


def scale_kernel(name: str = "scale2", max_threads: int | None = None) -> ir.Module:
    """``y[i] = x[i] * 2`` for ``i = ctaid.x * ntid.x + tid.x < n`` (f32, global pointers)."""
    m = ir.Module(name="scale")
    m.triple = toolchain.TRIPLE
    sreg = {}
    for s in ("tid.x", "ctaid.x", "ntid.x"):
        sreg[s] = ir.Function(m, ir.FunctionType(I32, []), f"llvm.nvvm.read.ptx.sreg.{s}")
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), [GPTR, GPTR, I32]), name)
    toolchain.mark_kernel(fn, max_threads=max_threads)
    x, y, n = fn.args
    x.name, y.name, n.name = "x", "y", "n"
    entry, body, done = fn.append_basic_block("entry"), fn.append_basic_block("body"), fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    i = b.add(b.mul(b.call(sreg["ctaid.x"], []), b.call(sreg["ntid.x"], [])), b.call(sreg["tid.x"], []), name="i")
    b.cbranch(b.icmp_signed("<", i, n), body, done)
    b.position_at_end(body)
    v = b.load(b.gep(x, [i], source_etype=F32), typ=F32)
    b.store(b.fmul(v, ir.Constant(F32, 2.0)), b.gep(y, [i], source_etype=F32))
    b.branch(done)
    b.position_at_end(done)
    b.ret_void()
    return m


# ----------------------------------------------------------------------------------- LLVM -> PTX
@needs_nvptx
def test_target_machine_is_cached_per_arch():
    assert toolchain.target_machine("sm_90") is toolchain.target_machine("sm_90")
    assert toolchain.target_machine("sm_80") is not toolchain.target_machine("sm_90")


@needs_nvptx
@pytest.mark.parametrize("arch,version", [("sm_80", (7, 0)), ("sm_90", (7, 8))])
def test_to_ptx_emits_an_entry(arch, version):
    ptx = toolchain.to_ptx(scale_kernel(), arch)
    assert ".entry scale2(" in ptx
    assert f".target {arch}" in ptx
    line = next(s for s in ptx.splitlines() if s.startswith(".version"))
    major, minor = map(int, line.split()[1].split("."))
    assert (major, minor) >= version
    assert "%tid.x" in ptx and "%ctaid.x" in ptx
    assert "ld.global" in ptx and "st.global" in ptx


@needs_nvptx
def test_to_ptx_newer_isa_and_launch_bounds():
    ptx = toolchain.to_ptx(scale_kernel(max_threads=128), "sm_90", ptx=80)
    assert ".version 8.0" in ptx
    assert ".maxntid 128" in ptx


@needs_nvptx
def test_to_ptx_takes_text_and_optimises():
    text = str(scale_kernel())
    # a stack slot the -O3 pipeline removes (mem2reg/SROA); at -O0 it stays as local memory
    text = text.replace('%"i" = add', '%"slot" = alloca i32\n  %"i" = add')
    assert toolchain.to_ptx(text, "sm_90") == toolchain.to_ptx(scale_kernel(), "sm_90")
    assert "alloca" not in toolchain.to_ptx(text, "sm_90")
    assert ".entry scale2(" in toolchain.to_ptx(text, "sm_90", opt=0)


@needs_nvptx
def test_no_fma_contraction_without_flags():
    m = ir.Module()
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), [GPTR, F32, F32, F32]), "k")
    toolchain.mark_kernel(fn)
    b = ir.IRBuilder(fn.append_basic_block())
    p, a, c, d = fn.args
    b.store(b.fadd(b.fmul(a, c), d), p)
    b.ret_void()
    ptx = toolchain.to_ptx(m, "sm_90")
    assert "fma" not in ptx and "mul.rn.f32" in ptx and "add.rn.f32" in ptx


@needs_nvptx
def test_parse_error_shows_the_line():
    bad = "define void @f() {\n  %x = add i32 1, \n  ret void\n}\n"
    with pytest.raises(BackendError) as e:
        toolchain.to_ptx(bad, "sm_90")
    msg = str(e.value)
    assert "does not parse" in msg and "line 3" in msg and ">    3 |   ret void" in msg


@needs_nvptx
def test_verifier_error_shows_the_instruction():
    bad = "define void @f(i32 %a) {\n  %x = add i32 %y, 1\n  %y = add i32 %a, 1\n  ret void\n}\n"
    with pytest.raises(BackendError) as e:
        toolchain.to_ptx(bad, "sm_90")
    msg = str(e.value)
    assert "LLVM verifier" in msg and "does not dominate" in msg
    assert "%y = add i32 %a, 1" in msg and "at line 3" in msg


@needs_nvptx
@pytest.mark.parametrize("arch,why", [("sm_99", "does not know"), ("sm_60", "sm_70 and newer"),
                                      ("compute_90", "not a GPU architecture")])
def test_bad_arch(arch, why):
    with pytest.raises(BackendError, match=why):
        toolchain.target_machine(arch)


def test_default_arch_without_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert toolchain.default_arch() == "sm_90"


def test_default_arch_from_device(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert toolchain.default_arch() == "sm_80"


# ----------------------------------------------------------------------------------- ptxas
@needs_nvptx
@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ptxas_accepts_the_kernel(arch):
    cubin = toolchain.ptxas_check(toolchain.to_ptx(scale_kernel(), arch), arch)
    assert os.path.isfile(cubin) and os.path.getsize(cubin) > 0


@needs_nvptx
@needs_ptxas
def test_ptxas_error_names_the_line():
    ptx = toolchain.to_ptx(scale_kernel(), "sm_90").replace("mul.rn.f32", "mul.rn.f33")
    ptx = ptx.replace("add.rn.f32", "add.rn.f33")
    with pytest.raises(BackendError) as e:
        toolchain.ptxas_check(ptx, "sm_90")
    msg = str(e.value)
    assert "ptxas -arch=sm_90 rejected" in msg and "f33" in msg and "PTX line" in msg


@needs_nvptx
@needs_ptxas
def test_ptxas_info():
    info = toolchain.ptxas_info(toolchain.to_ptx(scale_kernel(), "sm_90"), "sm_90")
    assert info["name"] == "scale2"
    assert 0 < info["registers"] <= 255
    assert info["spill_stores"] == info["spill_loads"] == info["shared"] == 0


def test_parse_ptxas_verbose():
    text = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'a' for 'sm_90'
ptxas info    : Function properties for a
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 368 bytes cmem[0]
ptxas info    : Compiling entry function 'b' for 'sm_90'
ptxas info    : Function properties for b
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers, 360 bytes cmem[0]
"""
    f = toolchain.parse_ptxas_verbose(text)
    assert f["a"] == {"name": "a", "registers": 40, "stack": 16, "spill_stores": 8, "spill_loads": 4,
                      "shared": 2048, "barriers": 1}
    assert f["b"]["registers"] == 8 and f["b"]["shared"] == 0


def test_ptxas_missing(monkeypatch):
    monkeypatch.setattr(toolchain, "ptxas_path", lambda: None)
    assert not toolchain.ptxas_available()
    with pytest.raises(BackendError, match="ptxas was not found"):
        toolchain.ptxas_check(".version 7.8\n.target sm_90\n.address_size 64\n", "sm_90")


# ----------------------------------------------------------------------------------- driver (CPU side)
def test_driver_without_cuda_python(monkeypatch):
    for name in ("cuda", "cuda.bindings", "cuda.bindings.driver", "cuda.cuda"):
        monkeypatch.setitem(sys.modules, name, None)   # makes `import cuda...` fail, also where it is loaded
    with pytest.raises(BackendError, match=r"needs cuda-python \(cuda.bindings\)"):
        driver._driver()


def test_pack_params():
    class FakeTensor:
        def data_ptr(self):
            return 0x7F0000001000

    holders, array = driver.pack_params([(ctypes.c_uint64, FakeTensor()), (ctypes.c_int32, -5),
                                         (ctypes.c_float, 1.5), ("ptr", 0x1234), ("i32", 0xFFFFFFFF)])
    assert ctypes.cast(array[0], ctypes.POINTER(ctypes.c_uint64)).contents.value == 0x7F0000001000
    assert ctypes.cast(array[1], ctypes.POINTER(ctypes.c_int32)).contents.value == -5
    assert ctypes.cast(array[2], ctypes.POINTER(ctypes.c_float)).contents.value == 1.5
    assert ctypes.cast(array[3], ctypes.POINTER(ctypes.c_uint64)).contents.value == 0x1234
    assert ctypes.cast(array[4], ctypes.POINTER(ctypes.c_int32)).contents.value == -1   # the bits of a u32
    assert len(holders) == 5


@pytest.mark.parametrize("bad,why", [([(int, 3)], "not a ctypes scalar"), ([3], "pair"),
                                     ([(ctypes.c_int32, "x")], "does not fit"),
                                     ([("i128", 1)], "unknown parameter kind")])
def test_pack_params_errors(bad, why):
    with pytest.raises(BackendError, match=why):
        driver.pack_params(bad)


def test_dim3():
    assert driver._dim3("grid", 4) == (4, 1, 1)
    assert driver._dim3("grid", (2, 3)) == (2, 3, 1)
    with pytest.raises(BackendError, match="block"):
        driver._dim3("block", (1, 2, 3, 4))
    with pytest.raises(BackendError, match="grid"):
        driver._dim3("grid", (1.5,))


class FakeDriver:
    """Stands in for ``cuda.bindings.driver``: the calls and argument forms driver.py relies on."""

    class CUresult(enum.IntEnum):
        CUDA_SUCCESS = 0
        CUDA_ERROR_INVALID_VALUE = 1
        CUDA_ERROR_INVALID_PTX = 218

    class CUjit_option(enum.IntEnum):
        CU_JIT_INFO_LOG_BUFFER = 3
        CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4
        CU_JIT_ERROR_LOG_BUFFER = 5
        CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6

    class CUfunction_attribute(enum.IntEnum):
        CU_FUNC_ATTRIBUTE_NUM_REGS = 4
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8

    class CUstream:
        def __init__(self, handle=0):
            self.handle = handle

    def __init__(self):
        self.calls = []
        self.launches = []

    def _ok(self, name, *rest):
        self.calls.append(name)
        return (self.CUresult.CUDA_SUCCESS, *rest)

    def cuInit(self, flags):
        return self._ok("cuInit")

    def cuDeviceGet(self, ordinal):
        return self._ok("cuDeviceGet", f"dev{ordinal}")

    def cuDevicePrimaryCtxRetain(self, dev):
        return self._ok("cuDevicePrimaryCtxRetain", f"ctx-{dev}")

    def cuCtxSetCurrent(self, ctx):
        return self._ok("cuCtxSetCurrent")

    def cuModuleLoadDataEx(self, image, n, keys, vals):
        assert image.endswith(b"\0") and n == len(keys) == len(vals)
        opts = dict(zip(keys, vals))
        if b"broken" in image:
            opts[self.CUjit_option.CU_JIT_ERROR_LOG_BUFFER][:12] = b"ptxas fails\0"
            return (self.CUresult.CUDA_ERROR_INVALID_PTX, None)
        return self._ok("cuModuleLoadDataEx", "module")

    def cuModuleGetFunction(self, module, name):
        if name != b"scale2":
            return (self.CUresult.CUDA_ERROR_INVALID_VALUE, None)
        return self._ok("cuModuleGetFunction", "function")

    def cuFuncSetAttribute(self, fn, attr, value):
        return self._ok(f"cuFuncSetAttribute({attr.name}={value})")

    def cuFuncGetAttribute(self, attr, fn):
        return self._ok("cuFuncGetAttribute", 12)

    def cuLaunchKernel(self, f, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        ptrs = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
        values = (ctypes.cast(ptrs[0], ctypes.POINTER(ctypes.c_uint64)).contents.value,
                  ctypes.cast(ptrs[1], ctypes.POINTER(ctypes.c_int32)).contents.value)
        self.launches.append(((gx, gy, gz), (bx, by, bz), shared, stream.handle, values, extra))
        return self._ok("cuLaunchKernel")

    def cuGetErrorName(self, err):
        return (self.CUresult.CUDA_SUCCESS, err.name.encode())

    def cuGetErrorString(self, err):
        return (self.CUresult.CUDA_SUCCESS, b"described")


def test_driver_with_a_fake_binding(monkeypatch):
    torch = pytest.importorskip("torch")
    fake = FakeDriver()
    monkeypatch.setattr(driver, "_driver", lambda: fake)
    monkeypatch.setattr(driver, "_contexts", {})
    monkeypatch.setattr(driver, "_modules", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: type("S", (), {"cuda_stream": 77})())

    mod = driver.load_module(".entry scale2")
    assert driver.load_module(".entry scale2") is mod and mod.device == 0
    assert fake.calls.count("cuModuleLoadDataEx") == 1 and fake.calls.count("cuDevicePrimaryCtxRetain") == 1
    fn = mod.function("scale2")
    assert mod.function("scale2") is fn and fn.attribute("num_regs") == 12
    driver.launch(fn, (3,), 128, 0, [("ptr", 0xABC0), (ctypes.c_int32, -3)])
    driver.launch(fn, (1, 2), (64, 2), 100_000, [(ctypes.c_uint64, 8), ("i32", 5)], stream=5)
    driver.launch(fn, (0,), 64, 0, [])                                   # empty grid: nothing
    assert fake.launches == [((3, 1, 1), (128, 1, 1), 0, 77, (0xABC0, -3), 0),
                             ((1, 2, 1), (64, 2, 1), 100_000, 5, (8, 5), 0)]
    assert "cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=100000)" in fake.calls

    with pytest.raises(BackendError, match="cuModuleGetFunction failed with CUDA_ERROR_INVALID_VALUE: described"):
        mod.function("other")
    with pytest.raises(BackendError, match=r"(?s)CUDA_ERROR_INVALID_PTX.*JIT error log:\nptxas fails"):
        driver.load_module(".entry broken")
    with pytest.raises(BackendError, match="block"):
        driver.launch(fn, 1, 0, 0, [])


# ----------------------------------------------------------------------------------- on the GPU
@pytest.mark.gpu
@needs_nvptx
def test_launch_scale_kernel_on_gpu():
    torch = pytest.importorskip("torch")
    pytest.importorskip("cuda.bindings", reason="the ptx backend runs kernels through cuda-python")
    arch = toolchain.default_arch()
    ptx = toolchain.to_ptx(scale_kernel(), arch)
    mod = driver.load_module(ptx)
    assert driver.load_module(ptx) is mod                    # cached per device and PTX
    fn = mod.function("scale2")
    n = 1000
    x = torch.arange(n, dtype=torch.float32, device="cuda") - 17.25
    y = torch.full((n + 24,), -1.0, dtype=torch.float32, device="cuda")   # tail must stay untouched
    block = 128
    driver.launch(fn, grid=((n + block - 1) // block,), block=(block,), shared_bytes=0,
                  args=[(ctypes.c_uint64, x), (ctypes.c_uint64, y), (ctypes.c_int32, n)],
                  stream=torch.cuda.current_stream())
    torch.cuda.synchronize()
    assert torch.equal(y[:n], x * 2)
    assert torch.all(y[n:] == -1.0)
    assert fn.attribute("NUM_REGS") > 0

    # more than 48 KiB of dynamic shared memory: the launcher opts the function in
    y.fill_(0)
    driver.launch(fn, grid=(8,), block=(block,), shared_bytes=64 * 1024,
                  args=[(ctypes.c_uint64, x), (ctypes.c_uint64, y), (ctypes.c_int32, n)])
    torch.cuda.synchronize()
    assert torch.equal(y[:n], x * 2)

    with pytest.raises(BackendError, match="cuModuleGetFunction"):
        mod.function("no_such_kernel")
    with pytest.raises(BackendError, match="cuModuleLoadData"):
        driver.load_module(ptx.replace("mul.rn.f32", "mul.rn.f33").replace("add.rn.f32", "add.rn.f33"))
