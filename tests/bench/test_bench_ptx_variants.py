"""bench/ptx_variants.py: its PTX rewrites on a real kernel's PTX (ptxas must accept them and honour the
register cap), and its command line (the patched driver, the script run with its own arguments). The
measurements it exists for need a GPU (bench/RESULTS.md, session 14)."""
import importlib
import pathlib
import re
import runpy
import subprocess

import pytest

import vmlang as vm
from vmlang.ir import dtypes as D

ROOT = pathlib.Path(__file__).resolve().parents[2]
toolchain = importlib.import_module("vmlang.backends.ptx.toolchain")
launch = importlib.import_module("vmlang.backends.ptx.launch")
needs_ptxas = pytest.mark.skipif(not (toolchain.nvptx_available() and toolchain.ptxas_available()),
                                 reason="needs llvmlite's NVPTX target and ptxas (CUDA toolkit)")
PV = runpy.run_path(str(ROOT / "bench" / "ptx_variants.py"))


def _gemv_ptx() -> str:
    """The int2 tensor-core GEMV of the stdlib (R = 8, 2 warps), for 128 x 1024 weights."""
    k = vm.load(str(ROOT / "stdlib" / "kernels" / "qmatmul.vm"))
    consts = dict(T=D.int2, Y=D.float16, X=D.float16, S=D.float16, G=128, DOT=1, EXACT=1, BN=16, BK=128, W=2, R=8)
    kern = k._lower(dict(k.ir(**consts).consts), (("N", 128), ("K", 1024)))
    _, module, _ = launch.lower_program(kern, None, "sm_90")
    return toolchain.to_ptx(str(module), "sm_90")


def _registers(ptx: str, tmp_path) -> int:
    src = tmp_path / "k.ptx"
    src.write_text(ptx)
    r = subprocess.run(["ptxas", "-arch=sm_90", "-v", str(src), "-o", str(tmp_path / "k.cubin")],
                       capture_output=True, text=True, check=True)
    return int(re.search(r"Used (\d+) registers", r.stderr).group(1))


@needs_ptxas
def test_register_cap_is_what_ptxas_allocates(tmp_path):
    ptx = _gemv_ptx()
    assert ".maxntid 64" in ptx and ".minnctapersm" not in ptx
    capped = PV["with_min_blocks"](ptx, 64)
    assert ".maxntid 64\n.minnctapersm 16" in capped                     # 65536 // (64 * 64)
    assert _registers(capped, tmp_path) <= 64 < _registers(ptx, tmp_path)


@needs_ptxas
def test_constant_parameters_assemble(tmp_path):
    ptx = _gemv_ptx()
    loads = re.findall(r"ld\.param\.b32 \t%r\d+, \[\w+_param_(\d+)\];", ptx)
    assert loads
    values = {int(i): 1024 + int(i) for i in loads}
    fixed = PV["with_constants"](ptx, values)
    assert "ld.param.b32" not in fixed and all(f", {v};" in fixed for v in values.values())
    _registers(fixed, tmp_path)                                             # ptxas accepts it


def test_command_line_runs_the_script_with_its_arguments(tmp_path, monkeypatch, capsys):
    from vmlang.backends.ptx import driver
    monkeypatch.setattr(driver, "load_module", driver.load_module)        # restored after the test
    monkeypatch.setattr(driver, "launch", driver.launch)
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint('ARGS', sys.argv[1:])\n")
    before = driver.load_module
    PV["main"](["--max-registers", "96", "--constants", str(script), "--formats", "int2"])
    assert "ARGS ['--formats', 'int2']" in capsys.readouterr().out
    assert driver.load_module is not before                                 # patched
