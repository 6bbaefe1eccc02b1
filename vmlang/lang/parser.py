"""The parser of the ``.vm`` kernel language: source text -> :mod:`vmlang.lang.ast`.

``parse(source, filename)`` returns an :class:`~vmlang.lang.ast.Module`; ``parse_expr(text, filename)``
parses a single expression (for tests and tools). Both raise :class:`~vmlang.ir.errors.VMSyntaxError` and
nothing else, whatever the input: lark's exceptions are translated into messages that name the offending
token, with its location and a readable list of what was expected there.

The grammar (``grammar.lark``, next to this file) is LALR(1) with a basic lexer, so every reserved word is
a keyword everywhere. It accepts a few things that this module rejects with better messages than a parser
could give: comparison chains, positional arguments after keyword arguments, ``None`` outside an index,
calls of anything but a plain name, statements that are not calls, too many grid()/range() arguments, and
malformed number literals.
"""
from __future__ import annotations

import functools
import importlib.resources
import re
from typing import Optional, Union

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from vmlang.ir.errors import SourceLoc, VMSyntaxError
from vmlang.lang import ast as A

__all__ = ["parse", "parse_expr", "RESERVED_WORDS", "MAX_NESTING"]

RESERVED_WORDS = frozenset(
    "kernel grid warps for in range if else and or not true false None global shared register layout".split())

#: deepest nesting of expressions / blocks the parser accepts (keeps every later recursive pass safe)
MAX_NESTING = 200


@functools.lru_cache(maxsize=None)
def _lark() -> Lark:
    """The lark parser, built once (LALR tables for both start symbols)."""
    text = importlib.resources.files("vmlang.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", lexer="basic", start=["start", "expr_only"],
                propagate_positions=True, maybe_placeholders=False)


# ----------------------------------------------------------------------------------------- public API
def parse(source: str, filename: str = "<string>") -> A.Module:
    """Parse a ``.vm`` file holding one or more kernels."""
    tree = _run_lark(source, filename, "start")
    b = _Builder(filename, source)
    try:
        kernels = tuple(b.kernel(k) for k in tree.children)
    except RecursionError:  # pragma: no cover - MAX_NESTING should stop this first
        raise VMSyntaxError("program is nested too deeply", loc=None, source=source) from None
    return A.Module(kernels, source=source, filename=filename, loc=SourceLoc(filename, 1, 1))


def parse_expr(text: str, filename: str = "<string>") -> A.Expr:
    """Parse a single expression (``None`` is rejected, as everywhere outside an index)."""
    tree = _run_lark(text, filename, "expr_only")
    b = _Builder(filename, text)
    try:
        return b.expr(tree.children[0])
    except RecursionError:  # pragma: no cover
        raise VMSyntaxError("expression is nested too deeply", loc=None, source=text) from None


def _run_lark(source: str, filename: str, start: str) -> Tree:
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, not {type(source).__name__}")
    try:
        return _lark().parse(source, start=start)
    except UnexpectedInput as e:
        err = _translate(e, source, filename, start)
    except LarkError as e:  # pragma: no cover - every parse error is an UnexpectedInput
        err = VMSyntaxError(f"syntax error: {e}", loc=None, source=source)
    raise err from None


# ----------------------------------------------------------------------------------------- error messages
_NAMED = {
    "IDENT": "name",
    "NUMBER": "number",
    "STRING": "string",
    "AUGOP": "augmented assignment ('+=', '-=', ...)",
    "$END": "end of file",
}
_EXPR_START = frozenset({"IDENT", "NUMBER", "LPAR", "LSQB", "MINUS", "TILDE", "TRUE", "FALSE", "NONE"})
_STMT_START = frozenset({"FOR", "IF"})
_BINOPS = frozenset({"OR", "AND", "EQ", "NE", "LT", "LE", "GT", "GE", "VBAR", "CIRCUMFLEX", "AMPERSAND",
                     "SHL", "SHR", "PLUS", "MINUS", "STAR", "SLASH", "PERCENT"})
_POSTFIX = frozenset({"LPAR", "LSQB", "DOT"})


@functools.lru_cache(maxsize=None)
def _terminal_info() -> tuple[dict[str, str], frozenset[str]]:
    """(display spelling of every terminal, names of the reserved-word terminals)."""
    shown, keywords = dict(_NAMED), set()
    for t in _lark().terminals:
        if isinstance(t.pattern, PatternStr):
            shown.setdefault(t.name, f"'{t.pattern.value}'")
            if t.pattern.value in RESERVED_WORDS:
                keywords.add(t.name)
    return shown, frozenset(keywords)


def _expected_phrase(accepts: set[str]) -> str:
    shown, _ = _terminal_info()
    acc = set(accepts)
    groups: list[str] = []
    if _EXPR_START <= acc:
        acc -= _EXPR_START | {"NOT"}
        if _STMT_START <= acc:
            acc -= _STMT_START
            groups.append("a statement")
        else:
            groups.append("an expression")
    if len(acc & _BINOPS) >= 3:
        acc -= _BINOPS | _POSTFIX
        groups.append("an operator")
    items = sorted(shown.get(a, a) for a in acc) + groups
    if not items:
        return "nothing can follow here"
    if len(items) == 1:
        return f"expected {items[0]}"
    if len(items) == 2:
        return f"expected {items[0]} or {items[1]}"
    return "expected one of: " + ", ".join(items)


def _describe(tok: Token) -> str:
    if tok.type == "IDENT":
        return f"name '{tok}'"
    if tok.type == "NUMBER":
        return f"number '{tok}'"
    if tok.type == "STRING":
        return f"string {tok}"
    return f"'{tok}'"


def _tok_loc(filename: str, tok: Token) -> SourceLoc:
    end = tok.end_column if tok.end_line == tok.line else None
    return SourceLoc(filename, tok.line, tok.column, end)


def _tokens_before(source: str, pos: Optional[int]) -> Optional[Token]:
    """The last token that ends at or before ``pos`` (the last token at all if ``pos`` is None)."""
    prev = None
    try:
        for tok in _lark().lex(source):
            if pos is not None and tok.end_pos > pos:
                break
            prev = tok
    except LarkError:
        pass
    return prev


def _translate(e: UnexpectedInput, source: str, filename: str, start: str = "start") -> VMSyntaxError:
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream
        ch = source[pos] if pos is not None and 0 <= pos < len(source) else "?"
        loc = SourceLoc(filename, e.line, e.column, e.column + 1)
        if ch == '"':
            end = source.find("\n", pos)
            end = len(source) if end < 0 else end
            return VMSyntaxError("unterminated string", loc=SourceLoc(filename, e.line, e.column,
                                                                      e.column + (end - pos)),
                                 source=source, hint="a string must close with '\"' on the same line")
        shown = repr(ch)
        if not (ch.isascii() and ch.isprintable()):
            shown += f" (U+{ord(ch):04X})"
        return VMSyntaxError(f"unexpected character {shown}", loc=loc, source=source)

    if isinstance(e, UnexpectedToken):
        tok = e.token
        try:
            accepts = set(e.accepts or e.expected or ())
        except LarkError:  # pragma: no cover
            accepts = set(e.expected or ())
        at_end = tok.type == "$END"
        prev = _tokens_before(source, None if at_end else tok.start_pos)
        _, keywords = _terminal_info()
        if at_end:
            if prev is None:
                what = "empty file: expected a 'kernel' definition" if start == "start" else "empty expression"
                return VMSyntaxError(what, loc=SourceLoc(filename, 1, 1), source=source)
            loc = SourceLoc(filename, prev.end_line, prev.end_column, prev.end_column + 1)
            what = "end of file"
        else:
            loc = _tok_loc(filename, tok)
            what = _describe(tok)
        if "SEMICOLON" in accepts and prev is not None and (at_end or tok.line > prev.end_line):
            return VMSyntaxError("missing ';' at end of statement",
                                 loc=SourceLoc(filename, prev.end_line, prev.end_column, prev.end_column + 1),
                                 source=source, hint=f"the next token is {what}")
        if tok.type == "ELSE":
            return VMSyntaxError("'else' without a matching 'if'", loc=loc, source=source)
        if tok.type == "EQUAL" and "SEMICOLON" in accepts:
            return VMSyntaxError(f"unexpected '='; {_expected_phrase(accepts)}", loc=loc, source=source,
                                 hint="only a plain name can be assigned to; write to memory with store(...)")
        if tok.type in keywords and "IDENT" in accepts:
            return VMSyntaxError(f"'{tok}' is a reserved word and cannot be used as a name", loc=loc,
                                 source=source, hint=_expected_phrase(accepts))
        return VMSyntaxError(f"unexpected {what}; {_expected_phrase(accepts)}", loc=loc, source=source)

    line, col = getattr(e, "line", None), getattr(e, "column", None)  # pragma: no cover
    loc = SourceLoc(filename, line, col) if isinstance(line, int) and isinstance(col, int) else None
    return VMSyntaxError("syntax error", loc=loc, source=source)  # pragma: no cover


# ----------------------------------------------------------------------------------------- tree -> AST
_Elem = Union[Tree, Token]

_BINOP_RULES = frozenset({"or_expr", "and_expr", "cmp_expr", "bor_expr", "bxor_expr", "band_expr",
                          "shift_expr", "arith_expr", "term"})

_DIG = r"[0-9](?:_?[0-9])*"
_INT_RE = re.compile(r"0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|" + _DIG)
_FLOAT_RE = re.compile(rf"(?:(?:{_DIG})?\.{_DIG}|{_DIG}\.(?:{_DIG})?)(?:[eE][+-]?{_DIG})?|{_DIG}[eE][+-]?{_DIG}")


class _Builder:
    """Turns lark's tree into AST nodes, checking what the grammar leaves open."""

    def __init__(self, filename: str, source: str):
        self.filename = filename
        self.source = source
        self.depth = 0

    # -------------------------------------------------------------------------- helpers
    def error(self, message: str, loc: SourceLoc, hint: Optional[str] = None) -> VMSyntaxError:
        return VMSyntaxError(message, loc=loc, source=self.source, hint=hint)

    @staticmethod
    def _span(x: _Elem) -> tuple[int, int, int, int]:
        if isinstance(x, Token):
            return x.line, x.column, x.end_line, x.end_column
        m = x.meta
        return m.line, m.column, m.end_line, m.end_column

    def loc(self, x: _Elem) -> SourceLoc:
        line, col, end_line, end_col = self._span(x)
        return SourceLoc(self.filename, line, col, end_col if end_line == line else None)

    def loc_from(self, start: _Elem, end: _Elem) -> SourceLoc:
        line, col, _, _ = self._span(start)
        _, _, end_line, end_col = self._span(end)
        return SourceLoc(self.filename, line, col, end_col if end_line == line else None)

    def enter(self, x: _Elem) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nested too deeply (more than {MAX_NESTING} levels)", self.loc(x))

    # -------------------------------------------------------------------------- kernel level
    def kernel(self, t: Tree) -> A.Kernel:
        name = t.children[0]
        consts: tuple[A.ConstParam, ...] = ()
        params: tuple[A.Param, ...] = ()
        grid: tuple[A.Expr, ...] = ()
        warps = None
        body: tuple[A.Stmt, ...] = ()
        for c in t.children[1:]:
            if c.data == "consts":
                consts = tuple(self.const_item(ci) for ci in c.children)
            elif c.data == "params":
                params = tuple(self.param(p) for p in c.children)
            elif c.data == "grid":
                if len(c.children) > 3:
                    raise self.error(f"grid() takes 1 to 3 expressions, got {len(c.children)}",
                                     self.loc(c.children[3]))
                grid = tuple(self.expr(g) for g in c.children)
            elif c.data == "warps":
                warps = self.expr(c.children[0])
            elif c.data == "block":
                body = self.block(c)
        return A.Kernel(str(name), consts, params, grid, warps, body, loc=self.loc(t))

    def const_item(self, t: Tree) -> A.ConstParam:
        name = t.children[0]
        default = self.expr(t.children[1]) if len(t.children) > 1 else None
        return A.ConstParam(str(name), default, loc=self.loc(t))

    def param(self, t: Tree) -> A.Param:
        name, annot = t.children
        return A.Param(str(name), self.type_annot(annot), loc=self.loc(t))

    def type_annot(self, t: Tree) -> A.TypeAnnot:
        dtype = dims = space = layout = layout_loc = None
        for c in t.children:
            if isinstance(c, Token):
                dtype = str(c)
            elif c.data == "dims":
                dims = tuple(self.expr(d) for d in c.children)
            elif c.data == "space":
                space = str(c.children[0])
            elif c.data == "layout":
                s = c.children[0]
                layout, layout_loc = str(s)[1:-1], self.loc(s)
        return A.TypeAnnot(dtype, dims, space, layout, layout_loc, loc=self.loc(t))

    # -------------------------------------------------------------------------- statements
    def block(self, t: Tree) -> tuple[A.Stmt, ...]:
        self.enter(t)
        try:
            return tuple(self.stmt(s) for s in t.children)
        finally:
            self.depth -= 1

    def stmt(self, t: Tree) -> A.Stmt:
        kind, ch = t.data, t.children
        loc = self.loc(t)
        if kind == "assign":
            return A.Assign(str(ch[0]), self.expr(ch[1]), loc=loc)
        if kind == "annassign":
            return A.Assign(str(ch[0]), self.expr(ch[2]), self.type_annot(ch[1]), loc=loc)
        if kind == "augassign":
            return A.AugAssign(str(ch[0]), str(ch[1])[:-1], self.expr(ch[2]), loc=loc)
        if kind == "exprstmt":
            e = self.expr(ch[0])
            if not isinstance(e, A.Call):
                raise self.error("this expression is not a statement: only a call can stand alone", e.loc,
                                 hint="assign it ('name = ...;') or call a function ('store(...);')")
            return A.ExprStmt(e, loc=loc)
        if kind == "for_stmt":
            var, rng, body = ch
            bounds = rng.children
            if len(bounds) > 3:
                raise self.error(f"range() takes 1 to 3 arguments, got {len(bounds)}", self.loc(bounds[3]),
                                 hint="range(stop), range(start, stop) or range(start, stop, step)")
            exprs = [self.expr(b) for b in bounds]
            if len(exprs) == 1:
                start, stop, step = A.Int(0, loc=self.loc(rng)), exprs[0], None
            else:
                start, stop, step = exprs[0], exprs[1], (exprs[2] if len(exprs) == 3 else None)
            return A.For(str(var), start, stop, step, self.block(body), loc=loc)
        if kind == "if_stmt":
            cond = self.expr(ch[0])
            then = self.block(ch[1])
            orelse: tuple[A.Stmt, ...] = ()
            if len(ch) == 3:
                other = ch[2]
                if other.data == "block":
                    orelse = self.block(other)
                else:
                    self.enter(other)
                    try:
                        orelse = (self.stmt(other),)
                    finally:
                        self.depth -= 1
            return A.If(cond, then, orelse, loc=loc)
        raise AssertionError(f"unknown statement rule {kind}")  # pragma: no cover

    # -------------------------------------------------------------------------- expressions
    def expr(self, t: Tree) -> A.Expr:
        self.enter(t)
        try:
            kind = t.data
            if kind in _BINOP_RULES:
                return self.binop(t)
            return getattr(self, "x_" + kind)(t)
        finally:
            self.depth -= 1

    def binop(self, t: Tree) -> A.Expr:
        ch = t.children
        if self.depth + len(ch) // 2 > MAX_NESTING:  # a left fold nests one level per operator
            raise self.error(f"expression too long (more than {MAX_NESTING} operators in a row)", self.loc(t),
                             hint="split it into several statements")
        if t.data == "cmp_expr" and len(ch) > 3:
            raise self.error("comparison operators cannot be chained", self.loc(ch[3]),
                             hint="write 'a < b and b < c'; parenthesize to compare a comparison")
        left = self.expr(ch[0])
        for i in range(1, len(ch), 2):
            op, right_t = ch[i], ch[i + 1]
            right = self.expr(right_t)
            end = t if i + 2 >= len(ch) else right_t
            left = A.BinOp(str(op), left, right, loc=self.loc_from(t, end))
        return left

    def x_expr_only(self, t: Tree) -> A.Expr:  # pragma: no cover - parse_expr unwraps it
        return self.expr(t.children[0])

    def x_unary(self, t: Tree) -> A.Expr:
        op, operand = t.children
        return A.UnaryOp(str(op), self.expr(operand), loc=self.loc(t))

    def x_name(self, t: Tree) -> A.Expr:
        return A.Name(str(t.children[0]), loc=self.loc(t))

    def x_true(self, t: Tree) -> A.Expr:
        return A.Bool(True, loc=self.loc(t))

    def x_false(self, t: Tree) -> A.Expr:
        return A.Bool(False, loc=self.loc(t))

    def x_none(self, t: Tree) -> A.Expr:
        raise self.error("'None' is only allowed as an index item, where it inserts a new axis", self.loc(t),
                         hint="as in xt[:, None]")

    def x_number(self, t: Tree) -> A.Expr:
        tok = t.children[0]
        text = str(tok)
        loc = self.loc(t)
        if _INT_RE.fullmatch(text):
            digits = text.replace("_", "")
            if digits[:2] in ("0x", "0X"):
                value = int(digits[2:], 16)
            elif digits[:2] in ("0b", "0B"):
                value = int(digits[2:], 2)
            else:
                value = int(digits, 10)
            return A.Int(value, loc=loc)
        if _FLOAT_RE.fullmatch(text):
            value = float(text.replace("_", ""))
            if value == float("inf"):
                raise self.error(f"float literal '{text}' is too large", loc)
            return A.Float(value, loc=loc)
        raise self.error(f"invalid number literal '{text}'", loc,
                         hint="numbers are decimal (1_000), hex (0xff), binary (0b101) or floats "
                              "(1.0, .5, 2., 1e-3); '_' may only separate digits")

    def x_list(self, t: Tree) -> A.Expr:
        items = t.children[0].children
        return A.ListExpr(tuple(self.expr(i) for i in items), loc=self.loc(t))

    def x_attr(self, t: Tree) -> A.Expr:
        value, attr = t.children
        return A.Attr(self.expr(value), str(attr), loc=self.loc(t))

    def x_call(self, t: Tree) -> A.Expr:
        callee, args = t.children
        if not (isinstance(callee, Tree) and callee.data == "name"):
            raise self.error("only a plain name can be called", self.loc(callee),
                             hint="calls look like 'f(x, key=value)'; methods do not exist")
        pos: list[A.Expr] = []
        kws: list[A.Keyword] = []
        for a in args.children:
            if a.data == "kwarg":
                key, value = a.children
                if any(k.name == str(key) for k in kws):
                    raise self.error(f"keyword argument '{key}' given twice", self.loc(key))
                kws.append(A.Keyword(str(key), self.expr(value), loc=self.loc(a)))
            else:
                if kws:
                    raise self.error("positional argument after keyword argument", self.loc(a),
                                     hint="put positional arguments first: f(a, b, key=value)")
                pos.append(self.expr(a))
        return A.Call(str(callee.children[0]), tuple(pos), tuple(kws), loc=self.loc(t))

    def x_index(self, t: Tree) -> A.Expr:
        value, items = t.children
        return A.Index(self.expr(value), tuple(self.index_item(i) for i in items.children), loc=self.loc(t))

    def index_item(self, t: Tree) -> A.IndexItem:
        loc = self.loc(t)
        if t.data == "point":
            e = t.children[0]
            if e.data == "none":
                return A.NewAxis(loc=loc)
            return A.Point(self.expr(e), loc=loc)
        start = stop = length = None
        for c in t.children:
            if c.data == "slice_len":
                length = self.expr(c.children[1])
            elif c.data == "slice_stop":
                stop = self.expr(c.children[0])
            else:
                start = self.expr(c)
        return A.Slice(start, stop, length, loc=loc)
