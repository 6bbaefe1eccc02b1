"""vm check / run / compile on the examples, and their error handling."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from vmlang.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEMV = str(ROOT / "examples" / "gemv_w4a16.vm")


def test_run_prints_summary_and_saves(tmp_path, capsys):
    out = tmp_path / "o.npz"
    assert main(["run", GEMV, "-D", "M=3", "-D", "N=100", "-D", "K=300", "--seed", "1", "--save", str(out),
                 "--backend", "numpy"]) == 0
    text = capsys.readouterr().out
    assert "gemv_w4a16 on numpy" in text and "y: float16[3, 100]" in text
    saved = np.load(out)
    x, w, s, y = (saved[n] for n in ("x", "w", "s", "y"))
    assert w.shape == (300, 100) and s.shape == (3, 100)
    ref = x.astype(np.float64) @ (w * np.repeat(s.astype(np.float64), 128, axis=0)[:300])
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max())
    # same seed, same inputs and outputs
    out2 = tmp_path / "o2.npz"
    assert main(["run", GEMV, "-D", "M=3", "-D", "N=100", "-D", "K=300", "--seed", "1", "--save", str(out2),
                 "--backend", "numpy"]) == 0
    np.testing.assert_array_equal(np.load(out2)["y"], y)


def test_compile_ir_reparses(tmp_path, capsys):
    assert main(["compile", GEMV, "--target", "ir", "-D", "BN=64"]) == 0
    text = capsys.readouterr().out
    assert "kernel gemv_w4a16<BN = 64, G = 128>" in text
    p = tmp_path / "printed.vm"
    p.write_text(text)
    assert main(["check", str(p)]) == 0
    assert "kernel gemv_w4a16: ok" in capsys.readouterr().out
    assert main(["compile", str(p), "--target", "ir"]) == 0
    assert capsys.readouterr().out == text


def test_compile_triton_prints_the_generated_source(capsys):
    pytest.importorskip("vmlang.backends.triton")
    assert main(["compile", GEMV, "--target", "triton", "-D", "BN=64"]) == 0
    text = capsys.readouterr().out
    assert "@triton.jit" in text and "def gemv_w4a16(" in text and "import triton.language as tl" in text
    assert "# load w[" in text and "\ndef vm_" in text           # readable: comments, named helpers
    compile(text, "kernel_triton.py", "exec")                     # valid Python


def test_run_on_triton(capsys):
    pytest.importorskip("vmlang.backends.triton")
    assert main(["run", GEMV, "-D", "M=2", "-D", "N=100", "-D", "K=300", "--backend", "triton"]) == 0
    text = capsys.readouterr().out
    assert "gemv_w4a16 on triton" in text and "y: float16[2, 100]" in text


def test_run_default_backend_follows_the_gpu(capsys, monkeypatch):
    import vmlang.api as api
    monkeypatch.delenv("VMLANG_BACKEND", raising=False)
    assert main(["run", GEMV, "-D", "M=1", "-D", "N=8", "-D", "K=8"]) == 0
    want = "triton" if api.cuda_available() and api.importlib.util.find_spec("triton") else "numpy"
    assert f"gemv_w4a16 on {want}" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["run", GEMV, "-D", "M=1", "-D", "N=64"], "size K of parameter x is not given: pass -D K="),
    (["run", GEMV, "-D", "M=oops"], "-D M: 'oops' is not a number"),
    (["run", "/nonexistent.vm"], "cannot read /nonexistent.vm"),
    (["run", GEMV, "-D", "M=1", "-D", "N=8", "-D", "K=8", "--backend", "cuda"], "unknown backend 'cuda'"),
])
def test_cli_errors(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_runtime_error_points_at_source(tmp_path):
    f = tmp_path / "oob.vm"
    f.write_text("kernel k(x: f32[N] global) grid(1) {\n    a = load(x[0 : +8], masked=false);\n"
                 "    store(x[0 : +8], a);\n}\n")
    r = subprocess.run([sys.executable, "-m", "vmlang", "run", str(f), "-D", "N=5", "--backend", "numpy"],
                       capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{f}:2:9: error: out-of-bounds read of x[5] (shape [5])" in r.stderr
    assert "masked=false" in r.stderr  # the source line is shown


def test_compile_to_ptx_prints_the_ptx(capsys):
    """`vm compile --target ptx` prints PTX that ptxas can assemble (no GPU needed)."""
    import importlib
    tc = importlib.import_module("vmlang.backends.ptx.toolchain")
    if not (tc.nvptx_available() and tc.ptxas_available()):
        pytest.skip("needs llvmlite's NVPTX target and ptxas")
    assert main(["compile", GEMV, "-D", "BN=64", "--target", "ptx"]) == 0
    out = capsys.readouterr().out
    assert ".entry gemv_w4a16(" in out and ".target sm_" in out
    tc.ptxas_check(out, out.split(".target ")[1].split()[0])
