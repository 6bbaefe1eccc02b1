"""docs/jit.md: every ```python block compiles (parse_function, then lowering with the default constants);
every ```python-error block is rejected with a VMSyntaxError or VMTypeError located in the block."""
from __future__ import annotations

import pathlib
import re
import types

import pytest

from vmlang.ir.errors import VMSyntaxError, VMTypeError
from vmlang.lang.lower import lower_kernel
from vmlang.lang.pyfront import parse_function

from lang_support import import_file  # noqa: E402

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "jit.md"
BLOCK = re.compile(r"^```(python|python-error)\n(.*?)^```", re.S | re.M)


def _blocks():
    text = DOC.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text[:m.start()].count("\n") + 2) for m in BLOCK.finditer(text)]


BLOCKS = _blocks()


def test_the_doc_has_examples():
    kinds = [k for k, _, _ in BLOCKS]
    assert kinds.count("python") >= 5 and kinds.count("python-error") >= 2


@pytest.mark.parametrize("kind, code, line", BLOCKS, ids=[f"line{b[2]}" for b in BLOCKS])
def test_doc_block(tmp_path, kind, code, line):
    path = tmp_path / f"doc_line{line}.py"
    path.write_text(code, encoding="utf-8")
    mod = import_file(path)
    fns = [v for v in vars(mod).values() if isinstance(v, types.FunctionType) and hasattr(v, "__vm_jit__")]
    assert fns, "the block defines no @vm.jit kernel"
    for fn in fns:
        if kind == "python":
            src = parse_function(fn, **fn.__vm_jit__)
            lower_kernel(src.kernel, {}, src.source, src.filename)
        else:
            with pytest.raises((VMSyntaxError, VMTypeError)) as info:
                src = parse_function(fn, **fn.__vm_jit__)
                lower_kernel(src.kernel, {}, src.source, src.filename)
            assert info.value.loc is not None and info.value.loc.file == str(path)
            assert "#" in code.splitlines()[info.value.loc.line - 1], "the error should be on the commented line"
