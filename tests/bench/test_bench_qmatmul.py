"""bench/qmatmul.py runs end to end (``--smoke``: tiny shapes, on this machine's default backend) and its
table reports every kernel with a small error against the float64 reference. Timings are not checked
here: they come from the GPU run recorded in bench/RESULTS.md."""
import pathlib
import runpy

import pytest

pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_smoke_run_prints_a_row_per_kernel(capsys):
    bench = runpy.run_path(str(ROOT / "bench" / "qmatmul.py"))
    assert bench["main"](["--smoke", "--formats", "int3,nf4"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 24x40")]
    impls = [ln.split("|")[3].strip() for ln in lines]
    for m in (1, 16):
        assert [i for i, ln in zip(impls, lines) if ln.split("|")[2].strip() == str(m)] == \
            ["cuBLAS fp16", "vmlang int3", "vmlang nf4"]
    for ln in lines:
        err = float(ln.split("|")[8])
        assert 0 < err < 2e-3, ln      # f16 output rounding (2**-11 relative) dominates
