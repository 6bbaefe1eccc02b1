"""bench/matmul.py runs end to end (``--smoke``: a tiny shape; the NumPy VM on a CPU machine) and reports each
kernel with a small error against the float64 reference. Timings come from the GPU run in bench/RESULTS.md."""
import pathlib
import runpy

import pytest

torch = pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_smoke_run_prints_a_row_per_kernel(capsys):
    bench = runpy.run_path(str(ROOT / "bench" / "matmul.py"))
    assert bench["main"](["--smoke"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 40x24x40")]
    names = [ln.split("|")[2].strip().split()[0] for ln in lines]
    # one vmlang row per backend: the NumPy VM on a CPU machine, triton and ptx on a GPU
    assert names[0] == "cuBLAS" and names[1:] == ["vmlang"] * (2 if torch.cuda.is_available() else 1), names
    for ln in lines:
        err = float(ln.split("|")[6])
        assert 0 < err < 2e-3, ln      # f16 output rounding (2**-11 relative) dominates


def test_stage_suffix_and_repeat(capsys):
    """A tile's ``sS`` compiles it with ``pipeline_stages = S`` and ``m`` with ``wgmma = False`` (both named
    in the row; the NumPy VM accepts and ignores them), ``--repeat 2`` prints the
    table twice; a malformed tile is an error naming the expected form."""
    import doctest
    bench = runpy.run_path(str(ROOT / "bench" / "matmul.py"))
    assert bench["main"](["--smoke", "--tiles", "16x16x16s2,16x16x16m", "--repeat", "2", "--backend", "numpy"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 40x24x40")]
    assert [ln.split("|")[2].strip() for ln in lines] == ["cuBLAS fp16", "vmlang numpy 16x16x16 s2",
                                                          "vmlang numpy 16x16x16 mma.sync"] * 2
    with pytest.raises(SystemExit, match=r"is not BMxBNxBK\[xW\]\[sS\]\[m\]"):
        bench["parse_tile"]("16x16s")
    with pytest.raises(SystemExit, match=r"is not BMxBNxBK\[xW\]\[sS\]\[m\]"):
        bench["parse_tile"]("16x16x16xs2")
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_matmul", ROOT / "bench" / "matmul.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert doctest.testmod(mod).failed == 0
