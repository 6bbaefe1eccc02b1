"""The Triton code generator: one rule per instruction, readable self-contained source, the backend
contract (files, load, toolchain), and that the generated code compiles for a GPU (sm_90, on the CPU)."""
from __future__ import annotations

import inspect
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

import vmlang as vm
from vmlang.ir import nodes as N
from vmlang.ir.symexpr import SymConst

T = vm.backend("triton")
ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.vm"))


def concrete_instructions():
    abstract = {N.Instr, N.Unary, N.Binary, N.Reduce}
    return [c for c in vars(N).values()
            if inspect.isclass(c) and issubclass(c, N.Instr) and c not in abstract]


def test_every_instruction_has_a_rule():
    from vmlang.backends.triton.codegen import RULES
    missing = [c.__name__ for c in concrete_instructions() if c not in RULES]
    assert not missing, f"no triton rule for {missing}"


@dataclass(frozen=True, slots=True)
class Frobnicate(N.Instr):
    """An instruction no backend knows."""


def test_a_missing_rule_fails_naming_the_instruction():
    k = N.Kernel("k", (), (), (SymConst(1),), 4, N.Block((Frobnicate(),)))
    with pytest.raises(vm.BackendError, match="the triton backend has no rule for Frobnicate"):
        T.generate_source(k)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_generated_source_is_self_contained_and_readable(path):
    k = vm.compile_file(path)
    src = T.generate_source(k)
    compile(src, "kernel_triton.py", "exec")
    assert src.count("@triton.jit") == 1 + len(re.findall(r"^def vm_", src, re.M))
    assert f"def {k.name}(" in src and "# load " in src and "# store " in src
    for p in k.params:                      # every parameter is named, with its type, in the signature
        assert f"# {p.name}: {p.type}" in src or f"{p.name}: {p.dtype}" in src
    for helper in set(re.findall(r"\b(vm_\w+)\(", src)):
        assert re.search(rf"^def {helper}\(", src, re.M), f"{helper} is called but not defined"


def test_compiled_kernel_contract_and_reload_from_files():
    k = vm.compile_file(ROOT / "examples" / "vector_add.vm", {"BLOCK": 64})
    ck = T.compile(k)
    assert ck.backend == "triton" and ck.kernel is k
    assert set(ck.files) == {"kernel_triton.py"} and "def vector_add(" in ck.files["kernel_triton.py"]
    again = T.load(k, dict(ck.files))
    x = np.arange(100, dtype=np.float16)
    z = np.zeros(100, np.float16)
    again(x, x, z)
    np.testing.assert_array_equal(z, x + x)
    with pytest.raises(vm.BackendError):
        T.load(k, {"kernel_triton.py": "not this kernel"})
    tc = T.toolchain()
    assert {"triton", "torch"} <= set(tc)


def test_launch_through_the_runtime_with_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VMLANG_CACHE_DIR", str(tmp_path))
    add = vm.load(ROOT / "examples" / "vector_add.vm")
    x = np.arange(300, dtype=np.float16)
    z = np.zeros(300, np.float16)
    add(x, x, z, backend="triton")
    np.testing.assert_array_equal(z, x + x)
    assert any(p.name == "kernel_triton.py" for p in tmp_path.rglob("*.py"))   # the entry keeps the source


def test_torch_tensors_in_place():
    torch = pytest.importorskip("torch")
    k = vm.compile_file(ROOT / "examples" / "vector_add.vm")
    dev = "cuda" if vm.api.cuda_available() and not T.interpreting() else "cpu"
    x = torch.arange(100, dtype=torch.float16, device=dev)
    z = torch.zeros(100, dtype=torch.float16, device=dev)
    T.compile(k)(x, x, z)
    assert torch.equal(z.cpu(), (x + x).cpu())


def _can_compile_for_gpu() -> bool:
    try:
        from triton.backends.nvidia import compiler  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


DOC = ROOT / "docs" / "language.md"


def test_kernels_compile_for_sm90(tmp_path):
    """Every example and the language reference's kernels go through Triton's compiler to a cubin for
    sm_90 (LLVM and ptxas run on the CPU): what the interpreter accepts, the compiler must too."""
    if not _can_compile_for_gpu():
        pytest.skip("triton's NVIDIA compiler is not available")
    files = [str(p) for p in EXAMPLES]
    blocks = re.findall(r"```vm\n(.*?)```", DOC.read_text(), re.S)
    for n, b in enumerate(blocks):
        f = tmp_path / f"doc{n}.vm"
        f.write_text(b)
        files.append(str(f))
    env = dict(os.environ, TRITON_INTERPRET="0")
    r = subprocess.run([sys.executable, "-m", "vmlang.backends.triton.check", *files], capture_output=True,
                       text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert r.stdout.count(": ok") >= len(files)
