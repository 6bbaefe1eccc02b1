"""Programs the @vm.jit front end rejects, and a fuzz test that it never fails any other way.

Every rejection is checked for the exact file:line:col, the text under the caret (so a wrong expectation
cannot pass by accident), the substance of the message (and hint) and the rendering ``file:line:col: error:``
+ source line + caret. The fuzz test mutates valid jit sources token by token and requires that
parse_function (and the lowering after it) raises nothing but VMError subclasses.
"""
from __future__ import annotations

import builtins
import io
import linecache
import pathlib
import random
import re
import textwrap
import tokenize
import types
import warnings
from dataclasses import dataclass

import pytest

import vmlang
import vmlang as vm
from vmlang.ir.errors import VMError, VMSyntaxError, VMTypeError
from vmlang.lang.lower import lower_kernel
from vmlang.lang.pyfront import parse_function

from lang_support import import_file, write_file  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
def load(tmp_path: pathlib.Path, text: str):
    path = write_file(tmp_path, text, "kernels")
    return path, import_file(path)


# ------------------------------------------------------------------------------------------ rejections
HEAD = '''import vmlang as vm

LIMIT = [1, 2]


@vm.jit(grid=lambda N: (N,))
def k(x: vm.f32["N"], y: vm.f32["N"]):
'''   # the body starts at line 8


@dataclass
class Case:
    id: str
    text: str
    line: int
    col: int
    caret: str          # the source text that must start at the caret
    pattern: str        # regex searched in the message (and the hint)
    cls: type = VMSyntaxError


def body(id, code, line, col, caret, pattern, cls=VMSyntaxError):
    return Case(id, HEAD + textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n",
                line, col, caret, pattern, cls)


def source(id, code, line, col, caret, pattern, cls=VMSyntaxError):
    return Case(id, textwrap.dedent(code).lstrip("\n"), line, col, caret, pattern, cls)


CASES = [
    # ---- statements
    body("while", """
        while x:
            pass""", 8, 5, "while", r"while loops are not supported .*no while.*for i in range"),
    body("for_else", """
        for i in range(3):
            pass
        else:
            pass""", 10, 5, "else", "for-else is not supported"),
    body("for_over_list", """
        for i in [1, 2]:
            pass""", 8, 14, "[1, 2]", r"can only iterate over range\(\.\.\.\)"),
    body("for_tuple_target", """
        for i, j in range(3):
            pass""", 8, 9, "i, j", "binds a single name"),
    body("range_keyword", """
        for i in range(stop=3):
            pass""", 8, 20, "stop=3", "takes no keyword arguments"),
    body("range_four_args", """
        for i in range(0, 1, 2, 3):
            pass""", 8, 29, "3", r"range\(\) takes 1 to 3 arguments, got 4"),
    body("range_outside_for", "t = range(4)", 8, 9, "range(4)", "only valid as the iterable of a for loop"),
    body("try", """
        try:
            pass
        except Exception:
            pass""", 8, 5, "try", "try statements are not supported"),
    body("with", """
        with x:
            pass""", 8, 5, "with", "with statements are not supported"),
    body("class", """
        class A:
            pass""", 8, 5, "class", "class definitions are not supported"),
    body("nested_def", """
        def f():
            pass""", 8, 5, "def", "nested function definitions.*cannot define or call Python functions"),
    body("lambda", "t = lambda: 1", 8, 9, "lambda", "lambda is not supported"),
    body("return_value", "return 1", 8, 5, "return 1", "cannot return a value.*vm.store"),
    body("early_return", """
        return
        t = 1""", 8, 5, "return", "only allowed as the last statement"),
    body("global", "global LIMIT", 8, 5, "global", "global declarations are not supported"),
    body("del", "del x", 8, 5, "del", "del is not supported"),
    body("import", "import math", 8, 5, "import", "import statements are not supported.*module level"),
    body("assert", "assert x", 8, 5, "assert", r"assert is not supported.*vm\.assume"),
    body("raise", "raise ValueError", 8, 5, "raise", "raise is not supported"),
    body("break", """
        for i in range(2):
            break""", 9, 9, "break", "break is not supported"),
    body("tuple_assignment", "a, b = 1, 2", 8, 5, "a, b", "tuple assignment is not supported"),
    body("chained_assignment", "a = b = 1", 8, 9, "b", "chained assignment"),
    body("index_assignment", "x[0] = 1.0", 8, 5, "x[0]", r"cannot assign to an index.*vm\.store"),
    body("attribute_assignment", "x.data = 1.0", 8, 5, "x.data", "cannot assign to an attribute"),
    body("annotation_without_value", "t: vm.f32", 8, 5, "t: vm.f32", "needs a value"),
    body("constexpr_in_body", "t: vm.constexpr = 3", 8, 8, "vm.constexpr", "only valid as the annotation of a kernel parameter"),
    body("string_statement", """
        t = 1
        'not a docstring'""", 9, 5, "'not a docstring'", "a string is not a statement"),
    body("expression_statement", "x + 1", 8, 5, "x + 1", "only a call can stand alone"),
    body("yield", "yield 1", 8, 5, "yield 1", "yield is not supported"),
    body("aug_floordiv", """
        t = 7
        t //= 2""", 9, 7, "//=", r"'//=' is not supported.*'/'.*truncates toward zero"),
    # ---- expressions
    body("floordiv", "t = vm.load(x[0:+4]) // 2", 8, 26, "//", r"'//' is not supported.*truncates toward zero.*C remainder"),
    body("power", "t = vm.load(x[0:+4]) ** 2", 8, 26, "**", r"'\*\*' \(power\) is not supported"),
    body("matmul", "t = x @ y", 8, 11, "@", r"'@'.*vm\.dot"),
    body("conditional_expression", "t = 1.0 if x else 2.0", 8, 9, "1.0 if x", r"conditional expression.*vm\.where"),
    body("chained_comparison", "t = 1 < 2 < 3", 8, 15, "<", "cannot be chained.*a < b and b < c"),
    body("is", "t = x is None", 8, 11, "is", "'is' is not supported.*=="),
    body("in", "t = 1 in x", 8, 11, "in", "'in' is not supported"),
    body("unary_plus", "t = +1", 8, 9, "+", r"unary '\+' is only valid after ':' in a slice"),
    body("slice_step", "t = vm.load(x[0:8:2])", 8, 23, "2", "slice steps are not supported"),
    body("empty_index", "t = vm.load(x[()])", 8, 19, "()", "needs at least one item"),
    body("starred_argument", "vm.store(y[0:+4], *x)", 8, 23, "*x", "unpacking of arguments"),
    body("double_star_argument", "vm.store(y[0:+4], **x)", 8, 23, "**x", "unpacking of keyword arguments"),
    body("list_comprehension", "t = [i for i in x]", 8, 9, "[i for i", "list comprehensions are not supported"),
    body("f_string", "t = f'{x}'", 8, 9, "f'{x}'", "f-strings are not supported"),
    body("walrus", "t = (u := 1)", 8, 10, "u := 1", "assignment expressions"),
    body("dict", "t = {}", 8, 9, "{}", "dicts are not supported"),
    body("tuple_value", "t = (1, 2)", 8, 9, "(1, 2)", "a tuple is only valid as a call argument"),
    body("none_value", "t = None", 8, 9, "None", "None is only allowed as an index item"),
    body("string_value", "t = 'f16'", 8, 9, "'f16'", "strings are only valid as type annotations"),
    body("attribute_of_variable", "t = x.shape", 8, 9, "x.shape", r"attribute access on kernel variable x \(\.shape\)"),
    body("undefined_name", "t = nothing", 8, 9, "nothing", "name 'nothing' is not defined"),
    body("bare_builtin_name", "t = cast(x, vm.f32)", 8, 9, "cast", r"name 'cast' is not defined.*write vm\.cast"),
    body("python_list", "t = LIMIT", 8, 9, "LIMIT", "LIMIT is a Python list; a kernel can only use ints", VMTypeError),
    body("python_builtin_call", "t = len(x)", 8, 9, "len", r"Python builtin len\(\) is not available"),
    body("call_a_variable", "t = x(1)", 8, 9, "x", "x is a kernel variable, not a function"),
    body("call_a_dtype", "t = vm.f16(x)", 8, 9, "vm.f16", r"use vm\.cast\(x, vm\.f16\)", VMTypeError),
    body("call_a_subscript", "t = x[0](1)", 8, 9, "x[0]", "only vm builtins can be called"),
    body("missing_vm_attribute", "t = vm.nothing(1)", 8, 9, "vm.nothing", "module vmlang has no attribute 'nothing'"),
    body("block_attribute", "t = vm.block.w", 8, 9, "vm.block.w", r"vm\.block has no attribute 'w' \(use x, y or z\)"),
    body("block_value", "t = vm.block", 8, 9, "vm.block", r"vm\.block is not a value"),
    body("uncalled_builtin", "t = vm.cast", 8, 9, "vm.cast", r"vm\.cast is a function: call it"),
    body("module_value", "t = vm", 8, 9, "vm", "module vm is not a value"),
    body("deep_expression", "t = " + " + ".join(["x"] * 250), 8, 9, "x + x", "nested too deeply"),
    # ---- signature, annotations, grid
    source("default_without_constexpr", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], n: vm.int32 = 3):
            pass
        """, 4, 37, "3", r"has a default value, but only vm\.constexpr parameters"),
    source("missing_annotation", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], y):
            pass
        """, 4, 23, "y", "parameter y needs an annotation"),
    source("python_type_annotation", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], n: int):
            pass
        """, 4, 26, "int", r"annotation int is not a vmlang dtype.*vm\.int32", VMTypeError),
    source("star_args", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], *rest):
            pass
        """, 4, 24, "rest", r"\*args parameters are not supported"),
    source("star_star_kwargs", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], **options):
            pass
        """, 4, 25, "options", r"\*\*kwargs parameters are not supported"),
    source("return_annotation", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"]) -> int:
            pass
        """, 4, 26, "int", "a kernel returns nothing"),
    source("async_def", """
        import vmlang as vm

        @vm.jit(grid=1)
        async def k(x: vm.f32["N"]):
            pass
        """, 4, 1, "async def k", "cannot be an async def"),
    source("bad_dimension_string", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N +"]):
            pass
        """, 4, 21, '"', "unexpected end of the string; expected an expression"),
    source("bad_type_string", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: "f32[N] sharde"):
            pass
        """, 4, 18, "sharde", "unexpected name 'sharde'"),
    source("slice_in_type_string", """
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: "f32[N:4]"):
            pass
        """, 4, 15, "N:4", "a dimension is a size expression, not a slice"),
    source("unknown_dtype_future", """
        from __future__ import annotations
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f17[N]):
            pass
        """, 5, 10, "vm.f17", "module vmlang has no attribute 'f17'"),
    source("constexpr_default_list", """
        import vmlang as vm
        SIZES = [64, 128]

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], B: vm.constexpr = SIZES):
            pass
        """, 5, 41, "SIZES", "default of compile-time parameter B is a Python list", VMTypeError),
    source("no_grid", """
        import vmlang as vm

        @vm.jit(warps=4)
        def k(x: vm.f32["N"]):
            pass
        """, 4, 1, "def k", r"kernel k has no grid.*@vm\.jit\(grid=lambda"),
    source("grid_lambda_unknown_parameter", """
        import vmlang as vm

        @vm.jit(grid=lambda Q: Q)
        def k(x: vm.f32["N"]):
            pass
        """, 3, 21, "Q", "grid parameter Q is not a parameter, compile-time constant or size of kernel k"),
    source("grid_four_sizes", """
        import vmlang as vm

        @vm.jit(grid=lambda N: (N, N, 1, 1))
        def k(x: vm.f32["N"]):
            pass
        """, 3, 24, "(N, N, 1, 1)", "grid takes 1 to 3 sizes, got 4"),
    source("grid_string", """
        import vmlang as vm

        @vm.jit(grid="cdiv(N 4), 1")
        def k(x: vm.f32["N"]):
            pass
        """, 3, 22, "4", "unexpected number '4'"),
    source("warps_float", """
        import vmlang as vm

        @vm.jit(grid=1, warps=4.5)
        def k(x: vm.f32["N"]):
            pass
        """, 3, 23, "4.5", "warps must be an int, a string or a lambda, not 4.5"),
    source("two_grid_decorators", """
        import vmlang as vm

        def other(**kw):
            return lambda f: f

        @other(grid=1)
        @vm.jit(grid=2)
        def k(x: vm.f32["N"]):
            pass
        """, 7, 2, "vm.jit(grid=2)", "declared by more than one decorator"),
    source("warps_tuple", """
        import vmlang as vm

        @vm.jit(grid=1, warps=(4,))
        def k(x: vm.f32["N"]):
            pass
        """, 3, 23, "(4,)", "warps must be an int, a string or a lambda, not tuple"),
]


def test_there_are_enough_rejections():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rejected(tmp_path, case: Case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        path, mod = load(tmp_path, case.text)
    fn = mod.k
    with pytest.raises(VMError) as info:
        parse_function(fn, **getattr(fn, "__vm_jit__", {}))
    err = info.value
    assert type(err) is case.cls, err.render()
    assert err.loc is not None and err.loc.file == str(path)
    assert (err.loc.line, err.loc.column) == (case.line, case.col), err.render()
    src_line = case.text.splitlines()[case.line - 1]
    assert src_line[case.col - 1:].startswith(case.caret), err.render()
    text = err.message + ("\n" + err.hint if err.hint else "")
    assert re.search(case.pattern, text, re.S), f"{text!r} does not match {case.pattern!r}"
    if err.loc.end_column is not None:
        assert err.loc.end_column > err.loc.column
    rendered = err.render().splitlines()
    assert rendered[0] == f"{path}:{case.line}:{case.col}: error: {err.message}"
    assert rendered[1] == f"  {src_line}"
    assert rendered[2].index("^") == 2 + case.col - 1
    assert set(rendered[2].strip()) <= {"^", "~"}
    assert err.source == path.read_text(encoding="utf-8")


def test_bare_return_at_the_end_is_allowed(tmp_path):
    _, mod = load(tmp_path, HEAD + "    vm.store(y[0:+4], 1.0)\n    return\n")
    src = parse_function(mod.k)
    assert len(src.kernel.body) == 1


# ------------------------------------------------------------------------------------------ fuzz
FUZZ_BASES = [
    (ROOT / "examples" / "jit_examples.py").read_text(encoding="utf-8"),
    '''from __future__ import annotations
import vmlang as vm
from vmlang import cast, f32

HALF = 32


@vm.jit(grid="cdiv(N, BN), 1", warps=lambda W: W)
def k(x: vm.f16[N], w: "T[K, N]", s: vm.f32[vm.cdiv(K, 64), N], y: 'f32[N] global', n: vm.int32,
      BN: vm.constexpr = 64, T: vm.constexpr = vm.int4, W: vm.constexpr = 2):
    """doc"""
    t: "f32[64] shared" = cast(vm.load(x[vm.block.x * BN:+HALF * 2], fill=0.0), f32)
    acc = vm.zeros(vm.f32, (BN,))
    for k0 in range(0, K, 64):
        q = vm.cast(vm.load(w[k0:+64, vm.block.x * BN:+BN]), f32)
        sc = vm.load(s[k0 / 64, vm.block.x * BN:+BN])
        if n > 0 and not n == 3:
            acc += max(q, axis=0) * sc
        elif n < -1:
            acc = vm.where(acc < 0.0, -acc, acc)
        else:
            acc -= abs(sum(q, axis=0))
    vm.store(y[vm.block.x * BN:+BN], acc + t[:] * t[None, :][0, :])
    return
''',
]

_POOL = ["//", "**", "@", "lambda", "None", "if", "else", "while", "yield", "+", ":", "(", ")", "[", "]", ",",
         "'f16[N'", '"x]"', "'f32[4] shared'", "vm", ".", "x", "0", "-1", "1.5", "True", "not", "and", "=",
         "vm.block", "range", "vm.constexpr", "print", "*", "**kw", "1e999", "'é'"]


def _mutants(text: str, rng: random.Random, count: int):
    toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING)]
    starts = [0]
    for line in text.splitlines(True):
        starts.append(starts[-1] + len(line))
    spans = [(starts[t.start[0] - 1] + t.start[1], starts[t.end[0] - 1] + t.end[1], t.string) for t in toks]
    pool = sorted({t.string for t in toks}) + _POOL
    for _ in range(count):
        out = text
        for _ in range(rng.choice([1, 1, 1, 2])):
            a, b, s = spans[rng.randrange(len(spans))]
            r = rng.random()
            if r < 0.3:                                   # delete a token
                out = out[:a] + out[b:]
            elif r < 0.5:                                 # duplicate it
                out = out[:a] + s + " " + out[a:]
            elif r < 0.8:                                 # replace it
                out = out[:a] + rng.choice(pool) + out[b:]
            else:                                         # swap two tokens
                a2, b2, s2 = spans[rng.randrange(len(spans))]
                if a2 < a:
                    a, b, s, a2, b2, s2 = a2, b2, s2, a, b, s
                if b <= a2:
                    out = out[:a] + s2 + out[b:a2] + s + out[b2:]
        yield out


def _functions(text: str, filename: str):
    """The functions (and lambdas) defined at the top level of a module, without running any of it."""
    code = compile(text, filename, "exec")
    g = {"__name__": "fuzzed", "vm": vm, "vmlang": vmlang, "__builtins__": builtins,
         "cast": vm.cast, "f32": vm.f32, "HALF": 32}
    return [types.FunctionType(c, g) for c in code.co_consts if isinstance(c, types.CodeType)]


@pytest.mark.parametrize("base", range(len(FUZZ_BASES)))
def test_fuzzed_sources_only_raise_vm_errors(base):
    rng = random.Random(1234 + base)
    counts = {"python_syntax": 0, "rejected": 0, "parsed": 0, "lowered": 0}
    for i, text in enumerate(_mutants(FUZZ_BASES[base], rng, (400, 700)[base])):
        filename = f"<fuzz {base}-{i}>.py"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fns = _functions(text, filename)
        except (SyntaxError, ValueError):       # not Python at all: Python's own error, before the front end
            counts["python_syntax"] += 1
            continue
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        try:
            for fn in fns:
                try:
                    src = parse_function(fn)
                except (VMSyntaxError, VMTypeError) as e:
                    assert "internal error" not in e.message, (e.message, text)
                    e.render()
                    counts["rejected"] += 1
                    continue
                counts["parsed"] += 1
                try:
                    lower_kernel(src.kernel, {}, src.source, src.filename)
                    counts["lowered"] += 1
                except VMError as e:
                    e.render()
        finally:
            del linecache.cache[filename]
    # the campaign exercises every outcome
    assert min(counts.values()) > 20, counts


def test_string_pieces_never_escape(tmp_path):
    """Random text in every place a string is parsed (dimensions, type strings, grid, warps)."""
    rng = random.Random(7)
    alphabet = list("NMK0123456789+-*/%()[],: .\"'_xyz") + ["cdiv", "shared", "layout(\"(4):(1)\")", "None",
                                                            "global", "f16", "é"]
    _, mod = load(tmp_path, HEAD + "    pass\n")
    for _ in range(400):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        text = HEAD.replace('vm.f32["N"]', repr(s), 1).replace("lambda N: (N,)", repr(s)) + "    pass\n"
        for version in (text, HEAD.replace('x: vm.f32["N"]', f"x: {s!r}") + "    pass\n"):
            try:
                path, mod = load(tmp_path, version)
            except SyntaxError:
                continue
            for grid in (None, s):
                try:
                    src = parse_function(mod.k, grid=grid, warps=s or None)
                except (VMSyntaxError, VMTypeError) as e:
                    assert "internal error" not in e.message, (e.message, s)
                    e.render()
                    continue
                try:
                    lower_kernel(src.kernel, {}, src.source, src.filename)
                except VMError:
                    pass
