"""Text grids, pictures and the `vm show` command."""
import sys

import pytest

import vmlang
from vmlang.cli import main
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import MMA_M16N8K16_A, Layout, MemLayout, TVLayout, grid, parse_any, render_text


def test_parse_any_forms():
    assert parse_any("(4,8):(8,1)") == Layout((4, 8), (8, 1))
    assert isinstance(parse_any("Sw<3,4,3> o (8,64):(64,1) @16b"), MemLayout)
    assert isinstance(parse_any("(4,8):(8,1) @ 3b"), MemLayout)
    assert parse_any(str(MMA_M16N8K16_A)) == MMA_M16N8K16_A == parse_any("mma.m16n8k16.a")
    with pytest.raises(LayoutError):
        parse_any("(4,8):(8,1) -> ")


def test_grids():
    g = grid(MMA_M16N8K16_A)
    assert (g.rows, g.cols) == (16, 16) and g.labels[0][:3] == ("t0:v0", "t0:v1", "t1:v0")
    assert g.labels[8][8] == "t0:v6" and g.key_kind == "thread"
    g = grid(MemLayout.parse("Sw<3,4,3> o (8,64):(64,1) @16b"))
    assert g.key_kind == "bank" and g.labels[1][0] == "72" and g.keys[1][0] == 72 * 2 // 4 % 32
    g = grid(Layout((8, 8), (8, 1)), elem_bits=3)               # int3: bytes not whole elements
    assert g.labels[0][:2] == ("0", "1") and g.key_kind == "offset"
    g = grid(Layout(6, 2))
    assert (g.rows, g.cols) == (1, 6) and g.labels[0][5] == "10"
    r = grid(TVLayout(Layout((2, 1), (0, 0)), (2,)))             # replicated and empty cells
    assert r.labels == (("t0:v0+1", "."),)


def test_render_text_cuts_large_grids():
    txt = render_text(Layout((100, 100)), max_rows=4, max_cols=3)
    assert txt.splitlines()[0] == "(100,100):(1,100)" and "showing 4 x 3" in txt


def test_show_writes_png_and_svg(tmp_path):
    before = set(sys.modules)
    assert vmlang.show("(2,3):(3,1)").startswith("(2,3):(3,1)")
    png = vmlang.show(MMA_M16N8K16_A, tmp_path / "a.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    svg = vmlang.show("Sw<3,4,3> o (8,8):(8,1) @128b", tmp_path / "s.svg")
    text = open(svg).read()
    assert "<svg" in text and ">72<" not in text and "Sw&lt;3,4,3&gt;" in text
    assert "matplotlib.pyplot" not in set(sys.modules) - before
    with pytest.raises(LayoutError, match=".png"):
        vmlang.show(Layout(4), tmp_path / "x.jpg")


def test_vm_show_cli(tmp_path, capsys):
    out = tmp_path / "tile.png"
    assert main(["show", "((4,8),(2,2,2)):((32,1),(16,8,128)) -> (16,16)", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["show", "(2,4):(4,1)"]) == 0
    assert "  1 4 5 6 7" in capsys.readouterr().out
    assert main(["show", "(4,8):(1,2"]) == 1                       # a diagnostic, not a traceback
    assert "cannot parse" in capsys.readouterr().err
    assert main(["show", "(8,8):(8,1)", "--shared"]) == 1
    assert main(["show", "(8,8):(8,1)", "--bits", "16", "--shared", "-o", str(tmp_path / "b.svg")]) == 0
