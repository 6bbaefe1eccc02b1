import pathlib

import numpy as np

import vmlang as vm
from vmlang.cli import main

ADD = pathlib.Path(__file__).resolve().parents[2] / "examples" / "vector_add.vm"


def test_cache_show_list_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VMLANG_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VMLANG_BACKEND", "numpy")
    assert main(["cache"]) == 0
    assert "0 compiled kernel(s)" in capsys.readouterr().out
    k = vm.load(ADD)
    x = np.ones(20, np.float16)
    k(x, x, np.zeros_like(x))
    k(x[:16], x[:16], np.zeros(16, np.float16))
    assert main(["cache", "--list"]) == 0
    out = capsys.readouterr().out
    assert "2 compiled kernel(s)" in out and out.count("vector_add") == 2 and "[kernel.vm]" in out
    assert main(["cache", "--clear"]) == 0
    assert "cleared 2 kernel(s)" in capsys.readouterr().out
    assert main(["cache"]) == 0
    assert "0 compiled kernel(s)" in capsys.readouterr().out
