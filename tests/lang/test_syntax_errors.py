"""Syntax errors: every bad program in tests/lang/bad/ fails where and how its first line says.

Each file starts with ``// expect: LINE:COL REGEX``; the parser must raise VMSyntaxError at that line and
column with a message matching REGEX (``re.search``), and ``render()`` must show the source line with the
caret under that column. A fuzz test checks that mutated programs never raise anything else.
"""
from __future__ import annotations

import pathlib
import random
import re

import pytest

from vmlang.ir.errors import VMSyntaxError
from vmlang.lang.parser import MAX_NESTING, parse, parse_expr

BAD = pathlib.Path(__file__).parent / "bad"
BAD_FILES = sorted(BAD.glob("*.vm"))
EXPECT = re.compile(r"//\s*expect:\s*(\d+):(\d+)\s+(.*?)\s*$")


def _expectation(path: pathlib.Path):
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    m = EXPECT.match(first)
    assert m, f"{path.name}: first line must be '// expect: LINE:COL REGEX'"
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_there_are_enough_bad_programs():
    assert len(BAD_FILES) >= 20


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_program(path: pathlib.Path):
    line, col, pattern = _expectation(path)
    source = path.read_text(encoding="utf-8")
    with pytest.raises(VMSyntaxError) as info:
        parse(source, path.name)
    err = info.value
    assert err.loc is not None
    assert (err.loc.file, err.loc.line, err.loc.column) == (path.name, line, col), err.render()
    assert re.search(pattern, err.message), f"{err.message!r} does not match {pattern!r}"
    if err.loc.end_column is not None:
        assert err.loc.end_column > err.loc.column

    rendered = err.render().splitlines()
    assert rendered[0].startswith(f"{path.name}:{line}:{col}: error: ")
    assert err.message in rendered[0]
    src_line = source.splitlines()[line - 1]
    assert rendered[1] == f"  {src_line}"
    caret = rendered[2]
    assert caret.index("^") == 2 + col - 1, "\n".join(rendered)
    assert set(caret.strip()) <= {"^", "~"}


def test_empty_string_and_whitespace():
    for text in ("", "   \n\t\n", "// nothing\n"):
        with pytest.raises(VMSyntaxError) as info:
            parse(text, "e.vm")
        assert (info.value.loc.line, info.value.loc.column) == (1, 1)
        assert "empty file" in info.value.message


def test_error_carries_source_and_file():
    src = "kernel k() grid(1) {\n    a = ;\n}\n"
    with pytest.raises(VMSyntaxError) as info:
        parse(src, "x.vm")
    e = info.value
    assert e.source == src
    assert str(e.loc) == "x.vm:2:9"
    assert e.message == "unexpected ';'; expected an expression"
    assert e.loc.end_column == 10


def test_no_lark_names_leak_into_messages():
    bad = ["kernel k() grid(1) { a = f(1, ; }", "kernel k(x: f16[N] global) grid(1) { a = x[0 0]; }",
           "kernel k() grid(1) { a += ; }", "kernel k<A = >() grid(1) {}", "kernel k() grid(1) { a = [1 2]; }"]
    for text in bad:
        with pytest.raises(VMSyntaxError) as info:
            parse(text)
        msg = info.value.message
        assert not re.search(r"\b(RPAR|LPAR|IDENT|NUMBER|SEMICOLON|COMMA|RSQB|__ANON\w*|\$END)\b", msg), msg


def test_parse_expr_errors():
    with pytest.raises(VMSyntaxError, match="empty expression"):
        parse_expr("  // just a comment")
    for text, col in [("a +", 4), ("(a", 3), ("a b", 3), ("None", 1), ("a < b > c", 7), ("", 1)]:
        with pytest.raises(VMSyntaxError) as info:
            parse_expr(text)
        if info.value.loc is not None and text:
            assert info.value.loc.column == col, (text, info.value.render())


@pytest.mark.parametrize("text", [
    "-" * 3000 + "a",
    "f(" * 1000 + "a" + ")" * 1000,
    "[" * 1000 + "]" * 1000,
    "x" + "[0]" * 1000,
    "a" + ".b" * 1000,
    "a" + " + a" * 3000,
], ids=["unary", "calls", "lists", "indexes", "attrs", "long-sum"])
def test_deep_nesting_is_a_syntax_error_not_a_crash(text):
    with pytest.raises(VMSyntaxError) as info:
        parse_expr(text)
    assert "nested too deeply" in info.value.message or "too long" in info.value.message


def test_deep_nesting_of_blocks():
    deep = "kernel k() grid(1) {" + "if a {" * 1000 + "}" * 1000 + "}"
    with pytest.raises(VMSyntaxError):
        parse(deep)
    chain = "kernel k() grid(1) {" + "if a {} else " * 1000 + "{}" + "}"
    with pytest.raises(VMSyntaxError):
        parse(chain)
    ok = "kernel k() grid(1) {" + "if a {" * (MAX_NESTING // 2) + "}" * (MAX_NESTING // 2) + "}"
    parse(ok)


# ------------------------------------------------------------------------------------------- fuzzing
from lang_support import EXAMPLE  # noqa: E402
TOKEN = re.compile(r"\w+|\s+|//[^\n]*|\S")
JUNK = list('(){}[]<>=+-*/%&|^~!:;,."$@#\\\'\x00\t\n é0123456789_xeE') + [
    "None", "kernel", "else", "if", "for", "range", "grid", "layout", "global", "<<=", "==", "//", "0x", "1e",
    "+", ": +", '"', "not", "and"]


def _mutate(rng: random.Random, s: str) -> str:
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        p = rng.randrange(len(s) + 1)
        if op == 0 and s:                                    # delete a character
            s = s[:p] + s[p + 1:]
        elif op == 1:                                        # insert junk
            s = s[:p] + rng.choice(JUNK) + s[p:]
        elif op == 2 and s:                                  # duplicate a run of characters
            q = min(len(s), p + rng.randint(1, 12))
            s = s[:p] + s[p:q] * 2 + s[q:]
        elif op == 3 and len(s) > 1:                         # swap two characters
            a, b = rng.randrange(len(s)), rng.randrange(len(s))
            chars = list(s)
            chars[a], chars[b] = chars[b], chars[a]
            s = "".join(chars)
        elif op in (4, 5) and s:                             # delete, duplicate or swap tokens
            toks = TOKEN.findall(s)
            i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
            if op == 4:
                toks[i] = "" if rng.random() < 0.5 else toks[j]
            else:
                toks[i], toks[j] = toks[j], toks[i]
            s = "".join(toks)
        elif op == 6:                                        # truncate
            s = s[:p]
    return s


def test_mutated_programs_parse_or_raise_syntax_errors():
    rng = random.Random(20261122)
    parse(EXAMPLE, "example.vm")
    outcomes = {"parsed": 0, "error": 0}
    for _ in range(300):
        text = _mutate(rng, EXAMPLE)
        try:
            parse(text, "m.vm")
            outcomes["parsed"] += 1
        except VMSyntaxError as e:
            outcomes["error"] += 1
            assert e.message
            assert e.loc is None or (e.loc.line >= 1 and e.loc.column >= 1)
            e.render()
    assert outcomes["error"] > 100 and outcomes["parsed"] > 10, outcomes


def test_random_garbage_raises_only_syntax_errors():
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice(JUNK) for _ in range(rng.randint(0, 40)))
        for fn in (parse, parse_expr):
            try:
                fn(text)
            except VMSyntaxError as e:
                e.render()
