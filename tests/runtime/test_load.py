"""vm.load: .vm files as launchable kernels."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import vmlang as vm

TWO = """
kernel inc(x: int32[N] global) grid(cdiv(N, 8)) {
    i = block.x * 8;
    store(x[i : +8], load(x[i : +8]) + 1);
}
kernel dbl(x: int32[N] global) grid(cdiv(N, 8)) {
    i = block.x * 8;
    store(x[i : +8], load(x[i : +8]) * 2);
}
"""


def test_file_with_several_kernels(tmp_path):
    p = tmp_path / "two.vm"
    p.write_text(TWO)
    mod = vm.load(p)
    assert sorted(k.name for k in mod) == ["dbl", "inc"]
    x = np.arange(13, dtype=np.int32)
    mod.inc(x)
    mod["dbl"](x)
    np.testing.assert_array_equal(x, (np.arange(13) + 1) * 2)
    only = vm.load(p, kernel="dbl")
    only(x)
    np.testing.assert_array_equal(x, (np.arange(13) + 1) * 4)
    with pytest.raises(AttributeError, match="has no kernel mul"):
        mod.mul
    with pytest.raises(vm.VMError, match="has no kernel named mul"):
        vm.load(p, kernel="mul")


def test_load_errors(tmp_path):
    with pytest.raises(vm.VMError, match="cannot read"):
        vm.load(tmp_path / "missing.vm")
    bad = tmp_path / "bad.vm"
    bad.write_text("kernel k(x: f32[N] global) grid(1) {\n    y = ;\n}\n")
    with pytest.raises(vm.VMSyntaxError) as info:
        vm.load(bad)
    assert f"{bad}:2:9" in info.value.render()
    typed = tmp_path / "typed.vm"
    typed.write_text("kernel k(x: f32[N] global) grid(1) {\n    store(x[0 : +4], 1 << 2.5);\n}\n")
    k = vm.load(typed)                       # type errors surface when the kernel is first compiled
    with pytest.raises(vm.VMTypeError) as info:
        k(np.zeros(4, np.float32))
    assert f"{typed}:2:" in info.value.render() and "^" in info.value.render()


def test_reserved_parameter_name(tmp_path):
    for name in ("backend", "options"):
        p = tmp_path / "r.vm"
        p.write_text(f"kernel k({name}: f32[N] global) grid(1) {{\n}}\n")
        with pytest.raises(vm.VMError, match=f"'{name}' is reserved"):
            vm.load(p)


def test_options_for_one_call(tmp_path):
    """``kernel(..., options={...})`` sets CompileOptions fields for that call only: the compiled kernel's key
    carries them where they change code (ptx), the kernel's own options are untouched, and an unknown field
    is an error naming the known ones."""
    p = tmp_path / "two.vm"
    p.write_text(TWO)
    k = vm.load(p, kernel="inc")
    x = np.arange(13, dtype=np.int32)
    k(x, backend="numpy", options={"stage_loads": "x", "pipeline_stages": 2})
    np.testing.assert_array_equal(x, np.arange(13) + 1)
    o = k.resolve_options("ptx", {"stage_loads": "x", "pipeline_stages": 2})
    assert (o.stage_loads, o.pipeline_stages, o.backend) == ("x", 2, "ptx")
    assert o.key() == {**k.resolve_options("ptx").key(), "stage_loads": "x", "pipeline_stages": 2}
    assert k.resolve_options("numpy", {"stage_loads": "x"}).key() == k.resolve_options("numpy").key()
    assert k.options is None and k.resolve_options("ptx").stage_loads == ""
    with pytest.raises(vm.ArgumentError, match=r"options has no field 'stages' \(CompileOptions fields: .*"
                                               r"pipeline_stages"):
        k(x, backend="numpy", options={"stages": 2})
    with pytest.raises(vm.ArgumentError, match="the backend is its own argument"):
        k(x, options={"backend": "numpy"})


def test_ir_for_constants():
    from vmlang.ir.printer import print_kernel
    k = vm.load(pathlib.Path(__file__).resolve().parents[2] / "examples" / "vector_add.vm")
    assert "BLOCK = 64" in print_kernel(k.ir(BLOCK=64))
    with pytest.raises(vm.ArgumentError, match="no compile-time parameter WIDTH"):
        k.ir(WIDTH=3)
