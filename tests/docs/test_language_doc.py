"""Every ```vm block of docs/language.md compiles; every ```vm-error block is rejected with a VMError."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import vmlang

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
_FENCE = re.compile(r"^```(vm|vm-error)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def _blocks(tag: str) -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in _FENCE.finditer(text) if m.group(1) == tag]


def test_doc_has_examples():
    assert len(_blocks("vm")) >= 10
    assert _blocks("vm-error")


@pytest.mark.parametrize("line,source", _blocks("vm"), ids=lambda x: f"line{x}" if isinstance(x, int) else "")
def test_vm_block_compiles(line, source):
    kernel = vmlang.compile_source(source, "language.md")
    assert kernel.name


@pytest.mark.parametrize("line,source", _blocks("vm-error"),
                         ids=lambda x: f"line{x}" if isinstance(x, int) else "")
def test_vm_error_block_is_rejected(line, source):
    with pytest.raises(vmlang.VMError):
        vmlang.compile_source(source, "language.md")
