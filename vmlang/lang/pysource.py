"""Source text of Python functions for the ``@vm.jit`` front end: finding a function's ``def`` (or a
lambda) in its file, real file locations of ``ast`` nodes, and moving ``.vm`` expressions parsed out of
string literals to where the string stands in the file.

Every location is in real file coordinates: the whole file is parsed with :func:`ast.parse`, so nothing
is dedented, and ``ast``'s UTF-8 byte columns are turned into 1-based character columns.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import linecache
import re
import warnings
from typing import Callable, Optional

from vmlang.ir.errors import SourceLoc, VMSyntaxError
from vmlang.lang import ast as A

__all__ = ["SourceFile", "source_file", "find_function", "find_lambda", "StringMap", "relocate"]


class SourceFile:
    """The text of one file, its lines, and (lazily) its Python ``ast``."""

    def __init__(self, filename: str, text: str, tree: Optional[ast.Module] = None):
        self.filename = filename
        self.text = text
        self.lines = text.splitlines()
        self._tree = tree
        self._tree_error: Optional[SyntaxError] = None

    @property
    def tree(self) -> Optional[ast.Module]:
        if self._tree is None and self._tree_error is None:
            try:
                with warnings.catch_warnings():  # Python warned about the file when it compiled it
                    warnings.simplefilter("ignore")
                    self._tree = ast.parse(self.text, self.filename)
            except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
                self._tree_error = e if isinstance(e, SyntaxError) else SyntaxError(str(e))
        return self._tree

    # ---------------------------------------------------------------------------------- locations
    def char_col(self, lineno: int, byte_col: int) -> int:
        """0-based character column of a UTF-8 byte offset into line ``lineno``."""
        if 1 <= lineno <= len(self.lines):
            line = self.lines[lineno - 1]
            if line.isascii():
                return byte_col
            return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))
        return byte_col

    def loc(self, node: ast.AST, width: Optional[int] = None) -> SourceLoc:
        """The location of a node (its first character; end column when it fits on one line).

        ``width`` limits the underline to that many characters (a keyword of a compound statement).
        """
        line = getattr(node, "lineno", None)
        if line is None:
            return SourceLoc(self.filename, 1, 1)
        col = self.char_col(line, node.col_offset) + 1
        end = None
        if width is not None:
            end = col + width
        elif getattr(node, "end_lineno", None) == line and node.end_col_offset is not None:
            end = self.char_col(line, node.end_col_offset) + 1
            if end <= col:
                end = None
        return SourceLoc(self.filename, line, col, end)

    def error(self, message: str, node, hint: Optional[str] = None, cls=VMSyntaxError, width=None):
        loc = node if isinstance(node, SourceLoc) else self.loc(node, width)
        return cls(message, loc=loc, source=self.text, hint=hint)


_CACHE: dict[tuple[str, int], SourceFile] = {}


def source_file(filename: str, module_globals: Optional[dict] = None) -> Optional[SourceFile]:
    """The current text of ``filename`` as Python sees it (``linecache``), or None if unknown."""
    try:
        lines = linecache.getlines(filename, module_globals)
        if not lines:
            linecache.checkcache(filename)
            lines = linecache.getlines(filename, module_globals)
    except Exception:  # noqa: BLE001 - a broken loader must not escape from the front end
        lines = []
    if not lines:
        return None
    text = "".join(lines)
    key = (filename, hash(text))
    sf = _CACHE.get(key)
    if sf is None or sf.text != text:
        if len(_CACHE) > 64:
            _CACHE.clear()
        sf = _CACHE[key] = SourceFile(filename, text)
    return sf


def _first_line(node: ast.AST) -> int:
    decos = getattr(node, "decorator_list", None) or []
    return min([node.lineno] + [d.lineno for d in decos])


def find_function(code, module_globals: Optional[dict]) -> tuple[Optional[SourceFile], Optional[ast.AST]]:
    """The ``def`` node of a function's code object in its file, found by name and first line.

    When the whole file does not parse (an edited file, a notebook cell with magics), the function's own
    block is parsed alone, padded so that its line and column numbers stay those of the file.
    """
    sf = source_file(code.co_filename, module_globals)
    if sf is None:
        return None, None
    want = code.co_firstlineno
    defs = (ast.FunctionDef, ast.AsyncFunctionDef)
    tree = sf.tree
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, defs) and node.name == code.co_name and _first_line(node) == want:
                return sf, node
        return sf, None
    # fallback: parse just the block that starts at the function's first line
    try:
        block = [b.rstrip("\r\n") for b in inspect.getblock(sf.text.splitlines(True)[want - 1:])]
    except Exception:  # noqa: BLE001 - tokenizer errors in a broken file
        return sf, None
    first = block[0] if block else ""
    indented = first[:1] in (" ", "\t")
    pad = "\n" * (want - 2) + "if 1:\n" if indented and want >= 2 else "\n" * (want - 1)
    if indented and want < 2:
        return sf, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = ast.parse(pad + "\n".join(block) + "\n", sf.filename)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return sf, None
    for node in ast.walk(part):
        if isinstance(node, defs) and node.name == code.co_name and _first_line(node) == want:
            return sf, node
    return sf, None


def find_lambda(fn) -> tuple[Optional[SourceFile], Optional[ast.AST], str]:
    """The ``lambda`` (or single-``return`` ``def``) node of a function object, or a reason why not."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None, None, "it has no Python code"
    sf = source_file(code.co_filename, getattr(fn, "__globals__", None))
    if sf is None or sf.tree is None:
        return sf, None, f"the source of {code.co_filename} is not available"
    argnames = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    if code.co_name != "<lambda>":
        for node in ast.walk(sf.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name \
                    and _first_line(node) == code.co_firstlineno:
                return sf, node, ""
        return sf, None, f"no 'def {code.co_name}' found at line {code.co_firstlineno}"
    cands = [n for n in ast.walk(sf.tree) if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno
             and [a.arg for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs] == argnames]
    if len(cands) > 1:  # several lambdas with these parameters on one line: use the code's positions
        try:
            pos = [(l1, c1) for (l1, l2, c1, c2) in code.co_positions()
                   if None not in (l1, l2, c1, c2) and (l2, c2) > (l1, c1)]
        except Exception:  # noqa: BLE001
            pos = []
        if pos:
            first = min(pos)
            keep = []
            for n in cands:
                b = n.body
                lo = (b.lineno, sf.char_col(b.lineno, b.col_offset))
                hi = (b.end_lineno, sf.char_col(b.end_lineno, b.end_col_offset))
                pl, pc = first
                if lo <= (pl, sf.char_col(pl, pc)) <= hi:
                    keep.append(n)
            cands = keep or cands
    if len(cands) == 1:
        return sf, cands[0], ""
    if not cands:
        return sf, None, f"no lambda with parameters ({', '.join(argnames)}) at line {code.co_firstlineno}"
    return sf, None, f"several lambdas with parameters ({', '.join(argnames)}) at line {code.co_firstlineno}"


# -------------------------------------------------------------------------------------- string literals
_STR_RE = re.compile(r"""([rRuU]?)(["'])(.*)\2\Z""", re.S)


class StringMap:
    """Maps offsets into the value of a string literal to file locations.

    Exact for a one-line literal without escapes (``"f16[M, K]"``, ``r'...'``); for any other literal
    (escapes, implicit concatenation, triple quotes) every offset maps to the whole literal.
    """

    def __init__(self, sf: SourceFile, node: ast.Constant):
        self.sf = sf
        self.node = node
        self.whole = sf.loc(node)
        self.origin: Optional[int] = None  # 0-based character column of the value's first character
        if node.lineno == getattr(node, "end_lineno", None) and 1 <= node.lineno <= len(sf.lines):
            c0 = sf.char_col(node.lineno, node.col_offset)
            c1 = sf.char_col(node.lineno, node.end_col_offset)
            m = _STR_RE.match(sf.lines[node.lineno - 1][c0:c1])
            if m and m.group(3) == node.value:
                self.origin = c0 + len(m.group(1)) + 1

    def loc(self, start: int, end: Optional[int] = None) -> SourceLoc:
        """Location of value[start:end] (0-based offsets)."""
        if self.origin is None:
            return self.whole
        col = self.origin + start + 1
        n = len(self.node.value)
        end_col = self.origin + min(end, n) + 1 if end is not None else None
        if end_col is not None and end_col <= col:
            end_col = None
        return SourceLoc(self.sf.filename, self.node.lineno, min(col, self.origin + n + 1), end_col)

    def mapper(self, offset: int) -> Callable[[SourceLoc], SourceLoc]:
        """A SourceLoc -> SourceLoc function for nodes parsed from value[offset:] as line 1."""
        def move(loc: Optional[SourceLoc]) -> Optional[SourceLoc]:
            if loc is None:
                return None
            if loc.line != 1:
                return self.whole
            start = offset + loc.column - 1
            end = offset + loc.end_column - 1 if loc.end_column is not None else None
            return self.loc(start, end)
        return move


def relocate(node, move: Callable[[Optional[SourceLoc]], Optional[SourceLoc]]):
    """A copy of a .vm AST node (and its children) with every location passed through ``move``."""
    if isinstance(node, tuple):
        return tuple(relocate(x, move) for x in node)
    if not isinstance(node, A.Node):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if f.name == "loc" or f.name == "layout_loc":
            changes[f.name] = move(v)
        elif isinstance(v, (A.Node, tuple)):
            changes[f.name] = relocate(v, move)
    return dataclasses.replace(node, **changes)
