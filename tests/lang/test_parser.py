"""The .vm parser: source text -> vmlang.lang.ast (structure, precedence, locations)."""
from __future__ import annotations

import pytest

from vmlang.ir.errors import SourceLoc, VMSyntaxError
from vmlang.lang import ast as A
from vmlang.lang.parser import RESERVED_WORDS, parse, parse_expr

from lang_support import EXAMPLE  # noqa: E402

# AST equality ignores locations, so expected trees can be built with a dummy one
_L = SourceLoc("<test>", 0, 0)


def N(i):
    return A.Name(i, loc=_L)


def I(v):  # noqa: E743
    return A.Int(v, loc=_L)


def F(v):
    return A.Float(v, loc=_L)


def B(op, a, b):
    return A.BinOp(op, a, b, loc=_L)


def U(op, a):
    return A.UnaryOp(op, a, loc=_L)


def C(f, *args, **kw):
    return A.Call(f, tuple(args), tuple(A.Keyword(k, v, loc=_L) for k, v in kw.items()), loc=_L)


def kbody(stmts: str) -> tuple:
    return parse("kernel k() grid(1) {\n" + stmts + "\n}\n").kernels[0].body


def at(node) -> tuple:
    return node.loc.line, node.loc.column


# ------------------------------------------------------------------------------------------- example
@pytest.fixture(scope="module")
def example() -> A.Module:
    return parse(EXAMPLE, "gemv.vm")


def test_example_module(example):
    assert example.source == EXAMPLE and example.filename == "gemv.vm"
    (k,) = example.kernels
    assert k.name == "gemv_w4a16"
    assert k.consts == (A.ConstParam("BN", I(128), loc=_L), A.ConstParam("G", I(128), loc=_L))
    assert [p.name for p in k.params] == ["x", "w", "s", "y", "n"]
    x, w, s, y, n = (p.type for p in k.params)
    assert (x.dtype, x.dims, x.space, x.layout) == ("f16", (N("M"), N("K")), "global", None)
    assert (w.dtype, w.space) == ("int4", "global")
    assert s.dims == (B("/", N("K"), N("G")), N("N")) and s.space is None
    assert (n.dtype, n.dims, n.space) == ("int32", None, None)
    assert k.grid == (C("cdiv", N("N"), N("BN")), N("M"))
    assert k.warps == I(4)
    assert [type(st).__name__ for st in k.body] == ["Assign", "Assign", "Assign", "For", "ExprStmt", "ExprStmt"]


def test_example_statements(example):
    acc, t, u, loop, assume, store = example.kernels[0].body
    assert acc == A.Assign("acc", C("zeros", N("f32"), A.ListExpr((N("BN"),), loc=_L)), loc=_L)
    assert t.annot == A.TypeAnnot(space="shared", loc=_L)
    assert t.value == C("load", A.Index(N("w"), (A.Slice(start=I(0), length=N("G"), loc=_L), A.Slice(loc=_L)),
                                        loc=_L))
    assert u.annot == A.TypeAnnot("f32", (N("BN"),), "register", "(32,4):(1,32)", loc=_L)
    assert u.annot.layout_loc == SourceLoc("gemv.vm", 8, 32, 47)
    assert u.value == N("acc")

    assert (loop.var, loop.start, loop.stop, loop.step) == ("k0", I(0), N("K"), N("G"))
    xt, aug, cond = loop.body
    block_y = A.Attr(N("block"), "y", loc=_L)
    assert xt.value == C("load", A.Index(N("x"), (A.Point(block_y, loc=_L),
                                                  A.Slice(start=N("k0"), length=N("G"), loc=_L)), loc=_L),
                         fill=F(0.0))
    assert isinstance(aug, A.AugAssign) and (aug.target, aug.op) == ("acc", "+")
    xt_bcast = A.Index(N("xt"), (A.Slice(loc=_L), A.NewAxis(loc=_L)), loc=_L)
    assert aug.value == B("*", C("sum", B("*", C("cast", N("wt"), N("f32")), xt_bcast), axis=I(0)), N("st"))

    assert cond.cond == B("and", B(">", N("k0"), I(0)), U("not", B("==", N("k0"), I(8))))
    assert cond.then == (A.Assign("acc", B("*", N("acc"), F(2.0)), loc=_L),)
    (elif_,) = cond.orelse
    assert isinstance(elif_, A.If) and elif_.cond == B("<", N("k0"), I(0))
    assert elif_.then == (A.Assign("acc", U("-", N("acc")), loc=_L),)
    assert elif_.orelse == ()

    assert assume == A.ExprStmt(C("assume", B("==", B("%", N("K"), I(128)), I(0))), loc=_L)
    block_x = A.Attr(N("block"), "x", loc=_L)
    assert store.expr == C("store", A.Index(N("y"), (A.Point(block_y, loc=_L),
                                                     A.Slice(start=B("*", block_x, N("BN")), length=N("BN"),
                                                             loc=_L)), loc=_L),
                           C("cast", N("acc"), N("f16"), saturate=A.Bool(True, loc=_L)))


def test_example_locations(example):
    k = example.kernels[0]
    assert k.loc == SourceLoc("gemv.vm", 2, 1, None)  # spans lines: no end column
    assert at(k.consts[1]) == (2, 29)
    assert k.params[1].loc == SourceLoc("gemv.vm", 3, 26, 46)
    assert at(k.params[1].type) == (3, 29)
    assert k.grid[0].loc == SourceLoc("gemv.vm", 5, 8, 19)
    assert at(k.warps) == (5, 30)
    acc, t, u, loop, assume, store = k.body
    assert acc.loc == SourceLoc("gemv.vm", 6, 5, 28)
    assert at(t.annot) == (7, 8)
    assert at(loop) == (9, 5)
    xt, aug, cond = loop.body
    idx = xt.value.args[0]
    assert at(idx) == (10, 19) and at(idx.items[0]) == (10, 21) and at(idx.items[1]) == (10, 30)
    assert xt.value.kwargs[0].loc == SourceLoc("gemv.vm", 10, 40, 48)
    mul = aug.value                       # BinOp: at its left operand, not at the operator
    assert mul.loc == SourceLoc("gemv.vm", 11, 16, 61)
    assert at(mul.left.args[0]) == (11, 20)
    assert at(cond) == (12, 9) and at(cond.orelse[0]) == (12, 63)
    assert at(cond.cond) == (12, 12) and at(cond.cond.right) == (12, 23)
    assert at(store.expr.args[1].kwargs[0].value) == (15, 67)
    assert all(n.loc.file == "gemv.vm" for n in (k, acc, loop, store.expr))


# ------------------------------------------------------------------------------------------- expressions
@pytest.mark.parametrize("text, tree", [
    ("a + b * c", B("+", N("a"), B("*", N("b"), N("c")))),
    ("a * b + c", B("+", B("*", N("a"), N("b")), N("c"))),
    ("a - b - c", B("-", B("-", N("a"), N("b")), N("c"))),
    ("a / b % c * d", B("*", B("%", B("/", N("a"), N("b")), N("c")), N("d"))),
    ("x << 1 + 2", B("<<", N("x"), B("+", I(1), I(2)))),
    ("x >> 1 << 2", B("<<", B(">>", N("x"), I(1)), I(2))),
    ("a & b << c", B("&", N("a"), B("<<", N("b"), N("c")))),
    ("a | b ^ c & d", B("|", N("a"), B("^", N("b"), B("&", N("c"), N("d"))))),
    ("a | b == c", B("==", B("|", N("a"), N("b")), N("c"))),
    ("not a == b", U("not", B("==", N("a"), N("b")))),
    ("not not a", U("not", U("not", N("a")))),
    ("a or b and c", B("or", N("a"), B("and", N("b"), N("c")))),
    ("a and not b or c", B("or", B("and", N("a"), U("not", N("b"))), N("c"))),
    ("-a * b", B("*", U("-", N("a")), N("b"))),
    ("-x[0]", U("-", A.Index(N("x"), (A.Point(I(0), loc=_L),), loc=_L))),
    ("~a & - -b", B("&", U("~", N("a")), U("-", U("-", N("b"))))),
    ("(a + b) * c", B("*", B("+", N("a"), N("b")), N("c"))),
    ("a.b.c", A.Attr(A.Attr(N("a"), "b", loc=_L), "c", loc=_L)),
    ("f(x)[0]", A.Index(C("f", N("x")), (A.Point(I(0), loc=_L),), loc=_L)),
    ("f()", C("f")),
    ("f(a, b, k=1, j=c + 1,)", C("f", N("a"), N("b"), k=I(1), j=B("+", N("c"), I(1)))),
    ("[a, [1, 2],]", A.ListExpr((N("a"), A.ListExpr((I(1), I(2)), loc=_L)), loc=_L)),
    ("[]", A.ListExpr((), loc=_L)),
    ("true != false", B("!=", A.Bool(True, loc=_L), A.Bool(False, loc=_L))),
    ("a <= b", B("<=", N("a"), N("b"))),
    ("(a < b) < c", B("<", B("<", N("a"), N("b")), N("c"))),
    ("iffy + kernel_x + None_", B("+", B("+", N("iffy"), N("kernel_x")), N("None_"))),
])
def test_expressions(text, tree):
    assert parse_expr(text) == tree


@pytest.mark.parametrize("text", ["a < b < c", "a == b != c", "a < b >= c"])
def test_comparison_chains_are_rejected(text):
    with pytest.raises(VMSyntaxError, match="cannot be chained"):
        parse_expr(text)


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("1_000_000", 1000000), ("0x1F", 31), ("0XfF", 255), ("0x_ff_ff", 65535),
    ("0b101", 5), ("0B1_0000", 16), ("007", 7), ("123456789012345678901234567890", 123456789012345678901234567890),
])
def test_integers(text, value):
    node = parse_expr(text)
    assert type(node) is A.Int and node.value == value


@pytest.mark.parametrize("text, value", [
    ("1.0", 1.0), ("1e-3", 1e-3), (".5", 0.5), ("2.", 2.0), ("1.5e+10", 1.5e10), ("3E2", 300.0),
    ("1_000.25", 1000.25), ("0.0", 0.0), (".5e1", 5.0),
])
def test_floats(text, value):
    node = parse_expr(text)
    assert type(node) is A.Float and node.value == value


def test_number_edges_lex_as_expected():
    assert parse_expr("0x1e-3") == B("-", I(0x1E), I(3))   # hex has no exponent
    assert parse_expr("2e-3-1") == B("-", F(2e-3), I(1))
    assert parse_expr("x[1:-1]").items == (A.Slice(start=I(1), stop=U("-", I(1)), loc=_L),)
    for bad in ["0x", "0b2", "1__0", "1_", "1e", "1e+", "2k", "0x1g", "1.2e3.4"]:
        with pytest.raises(VMSyntaxError):
            parse_expr(bad)


@pytest.mark.parametrize("text, items", [
    ("x[i]", (A.Point(N("i"), loc=_L),)),
    ("x[a : +n]", (A.Slice(start=N("a"), length=N("n"), loc=_L),)),
    ("x[a:+n*2]", (A.Slice(start=N("a"), length=B("*", N("n"), I(2)), loc=_L),)),
    ("x[a : b]", (A.Slice(start=N("a"), stop=N("b"), loc=_L),)),
    ("x[a : (-n)]", (A.Slice(start=N("a"), stop=U("-", N("n")), loc=_L),)),
    ("x[:]", (A.Slice(loc=_L),)),
    ("x[a :]", (A.Slice(start=N("a"), loc=_L),)),
    ("x[: b]", (A.Slice(stop=N("b"), loc=_L),)),
    ("x[: +n]", (A.Slice(length=N("n"), loc=_L),)),
    ("x[None]", (A.NewAxis(loc=_L),)),
    ("x[:, None, i,]", (A.Slice(loc=_L), A.NewAxis(loc=_L), A.Point(N("i"), loc=_L))),
    ("x[i + 1 : +4, j]", (A.Slice(start=B("+", N("i"), I(1)), length=I(4), loc=_L), A.Point(N("j"), loc=_L))),
])
def test_index_items(text, items):
    node = parse_expr(text)
    assert isinstance(node, A.Index) and node.value == N("x")
    assert node.items == items


def test_unary_plus_exists_only_as_slice_length():
    with pytest.raises(VMSyntaxError):
        parse_expr("+a")
    with pytest.raises(VMSyntaxError):
        parse_expr("x[(+a)]")
    with pytest.raises(VMSyntaxError):
        parse_expr("x[a : + + n]")


def test_none_only_in_index():
    for text in ["None", "f(None)", "x[None + 1]", "x[None : 2]", "x[1 : None]", "[None]"]:
        with pytest.raises(VMSyntaxError, match="only allowed as an index item"):
            parse_expr(text)
    assert parse_expr("x[(None)]").items == (A.NewAxis(loc=_L),)   # parentheses are transparent


def test_calls_need_a_plain_name_and_positional_first():
    with pytest.raises(VMSyntaxError, match="plain name"):
        parse_expr("a.b(1)")
    with pytest.raises(VMSyntaxError, match="plain name"):
        parse_expr("f(1)(2)")
    with pytest.raises(VMSyntaxError, match="positional argument after keyword"):
        parse_expr("f(a, k=1, b)")
    with pytest.raises(VMSyntaxError, match="given twice"):
        parse_expr("f(k=1, k=2)")


def test_expression_locations():
    e = parse_expr("a +\n  b * c", "e.vm")
    assert e.loc == SourceLoc("e.vm", 1, 1, None)          # spans two lines
    assert e.right.loc == SourceLoc("e.vm", 2, 3, 8)
    e = parse_expr("  (a + b) * c")
    assert at(e) == (1, 3) and at(e.left) == (1, 4)
    e = parse_expr("x[i : +4]")
    assert e.loc.end_column == 10 and at(e.items[0]) == (1, 3) and at(e.items[0].length) == (1, 8)
    assert parse_expr("f(k=2)").kwargs[0].loc == SourceLoc("<string>", 1, 3, 6)


# ------------------------------------------------------------------------------------------- statements
def test_statement_forms():
    body = kbody("""
    a = 1;
    b: f32[4, 8,] shared layout("(4,8):(8,1)") = zeros(f32, [4, 8]);
    c: register = a;
    d: layout("(32):(1)") = a;
    e: i8 = a;
    a += 1; a -= 1; a *= 2; a /= 2; a %= 3; a &= 1; a |= 1; a ^= 1; a <<= 1; a >>= 1;
    barrier();
    """)
    assert body[0] == A.Assign("a", I(1), loc=_L)
    assert body[1].annot == A.TypeAnnot("f32", (I(4), I(8)), "shared", "(4,8):(8,1)", loc=_L)
    assert body[2].annot == A.TypeAnnot(space="register", loc=_L)
    assert body[3].annot == A.TypeAnnot(layout="(32):(1)", loc=_L)
    assert body[3].annot.layout_loc.column == 15
    assert body[4].annot == A.TypeAnnot("i8", loc=_L)
    assert [s.op for s in body[5:15]] == ["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"]
    assert body[15] == A.ExprStmt(C("barrier"), loc=_L)


def test_for_range_forms():
    f1, f2, f3 = kbody("for i in range(n) { } for i in range(a, b) {} for i in range(a, b, 2,) { x = i; }")
    assert (f1.start, f1.stop, f1.step) == (I(0), N("n"), None)
    assert f1.start.loc == SourceLoc("<string>", 2, 10, 18)   # range(a): start Int(0) at range's loc
    assert (f2.start, f2.stop, f2.step, f2.body) == (N("a"), N("b"), None, ())
    assert (f3.start, f3.stop, f3.step) == (N("a"), N("b"), I(2))
    assert f3.body == (A.Assign("x", N("i"), loc=_L),)


def test_if_else_chains():
    (s,) = kbody("if a { x = 1; } else if b { x = 2; } else if c { } else { x = 3; }")
    assert s.cond == N("a")
    (s2,) = s.orelse
    assert s2.cond == N("b") and s2.then == (A.Assign("x", I(2), loc=_L),)
    (s3,) = s2.orelse
    assert s3.cond == N("c") and s3.then == () and s3.orelse == (A.Assign("x", I(3), loc=_L),)
    (plain,) = kbody("if a {}")
    assert plain.then == () and plain.orelse == ()


def test_only_calls_are_expression_statements():
    for stmt in ["a;", "a + 1;", "x[0];", "(f(1));x = 1;"]:
        try:
            body = kbody(stmt)
        except VMSyntaxError as e:
            assert "not a statement" in e.message
        else:  # a parenthesized call is still a call
            assert isinstance(body[0], A.ExprStmt) and body[0].expr == C("f", I(1))


# ------------------------------------------------------------------------------------------- kernels
def test_multiple_kernels_and_trailing_commas():
    m = parse("""
kernel a<T,>(x: f16[N,] global,) grid(1, 2, 3,) warps(8,) { }
// between kernels
kernel b() grid(n) {}
kernel c<>(s: shared, l: layout("(2):(1)"), r: register layout("(1):(0)")) grid(1) { f(x,); }
""")
    a, b, c = m.kernels
    assert a.consts == (A.ConstParam("T", None, loc=_L),)
    assert a.params == (A.Param("x", A.TypeAnnot("f16", (N("N"),), "global", loc=_L), loc=_L),)
    assert a.grid == (I(1), I(2), I(3)) and a.warps == I(8) and a.body == ()
    assert (b.name, b.consts, b.params, b.grid, b.warps) == ("b", (), (), (N("n"),), None)
    assert c.consts == ()
    assert [p.type.space for p in c.params] == ["shared", None, "register"]
    assert [p.type.layout for p in c.params] == [None, "(2):(1)", "(1):(0)"]
    assert c.body == (A.ExprStmt(C("f", N("x")), loc=_L),)
    assert [at(k) for k in m.kernels] == [(2, 1), (4, 1), (5, 1)]


def test_const_defaults_are_expressions_without_comparisons():
    (k,) = parse("kernel k<A = 4 * 32, B = A >> 1, C = (A > 2), D = -1>() grid(1) {}").kernels
    assert [c.default for c in k.consts] == [B("*", I(4), I(32)), B(">>", N("A"), I(1)),
                                             B(">", N("A"), I(2)), U("-", I(1))]


def test_comments_and_whitespace():
    m = parse("// head\r\nkernel k() grid(1) { // trailing\r\n\ta = 1; // a/b\n}// end")
    assert m.kernels[0].body == (A.Assign("a", I(1), loc=_L),)
    assert at(m.kernels[0].body[0]) == (3, 2)


@pytest.mark.parametrize("word", sorted(RESERVED_WORDS))
def test_reserved_words_are_not_names(word):
    with pytest.raises(VMSyntaxError):
        parse(f"kernel k() grid(1) {{ {word} = 1; }}")
    with pytest.raises(VMSyntaxError):
        parse(f"kernel {word}() grid(1) {{ }}")


def test_parse_is_deterministic_and_cached():
    assert parse(EXAMPLE) == parse(EXAMPLE)
    assert parse_expr("a+b") == parse_expr(" a + b ")
