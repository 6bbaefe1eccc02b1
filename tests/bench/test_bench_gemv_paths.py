"""bench/gemv_paths.py runs end to end (``--smoke``: a tiny shape on this machine's default backend, where every
path is the same kernel) and prints one row per (format, path) with a small error against the float64
reference, leaving the stdlib's tensor-core table as it found it. Timings come from the GPU runs in
bench/RESULTS.md."""
import os
import pathlib
import runpy

import pytest

pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_smoke_run_prints_a_row_per_format_and_path(capsys):
    from vmlang.stdlib import matmul as MM
    before = dict(MM.PTX_MMA_GEMV_TILES)
    bench = runpy.run_path(str(ROOT / "bench" / "gemv_paths.py"))
    paths = ("default", "fma", "mma:32:128:1", "default+l2", "mma:16:128:2:1:8:2+st+l2")
    assert bench["main"](["--smoke", "--formats", "int3,int5", "--paths", ",".join(paths)]) == 0
    rows = [ln.split("|") for ln in capsys.readouterr().out.splitlines() if ln.startswith("| 24x256")]
    assert [(r[2].strip(), r[3].strip()) for r in rows] == [(f, p) for f in ("int3", "int5") for p in paths]
    for r in rows:
        assert 0 < float(r[6]) < 2e-3, r
    assert MM.PTX_MMA_GEMV_TILES == before
    assert "VMLANG_L2_PREFETCH" not in os.environ and "VMLANG_STAGE_LOADS" not in os.environ


def test_unknown_path_suffix_is_an_error():
    bench = runpy.run_path(str(ROOT / "bench" / "gemv_paths.py"))
    with pytest.raises(SystemExit, match=r"unknown path suffix in 'default\+l3': known l2, st"):
        bench["main"](["--smoke", "--formats", "int3", "--paths", "default+l3"])
    assert "VMLANG_L2_PREFETCH" not in os.environ
