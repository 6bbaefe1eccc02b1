"""The worked examples of docs/layouts.md and of the module docstrings run as doctests."""
import doctest
import importlib
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODULES = ["inttuple", "core", "algebra", "composition", "divide", "bits", "swizzle", "tv", "analysis", "text"]


def test_docs_layouts_md():
    path = os.path.join(ROOT, "docs", "layouts.md")
    assert os.path.exists(path), "docs/layouts.md is missing"
    res = doctest.testfile(path, module_relative=False, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 40


@pytest.mark.parametrize("name", MODULES + ["vmlang.show"])
def test_module_docstrings(name):
    mod = importlib.import_module(name if "." in name else f"vmlang.ir.layout.{name}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0


def test_pictures_of_the_docs_exist():
    text = open(os.path.join(ROOT, "docs", "layouts.md")).read()
    import re
    for pic in re.findall(r"\(img/([^)]+)\)", text):
        assert os.path.exists(os.path.join(ROOT, "docs", "img", pic)), pic
