"""Translation of the statements of a ``@vm.jit`` function body into the .vm AST (see docs/jit.md §4)."""
from __future__ import annotations

import ast
import re

from vmlang.ir.errors import SourceLoc
from vmlang.lang import ast as A
from vmlang.lang.pyexpr import BAD_BINOPS, BINOPS, CONSTEXPR, Translator

__all__ = ["BodyTranslator"]

_UNSUPPORTED_STMT = {
    "While": ("while loops are not supported (the vmlang language has no while)",
              "loop with for i in range(start, stop, step)", "while"),
    "AsyncFor": ("async for is not supported", "use for i in range(...)", "async"),
    "Try": ("try statements are not supported", None, "try"),
    "TryStar": ("try statements are not supported", None, "try"),
    "With": ("with statements are not supported", None, "with"),
    "AsyncWith": ("with statements are not supported", None, "async"),
    "FunctionDef": ("nested function definitions are not supported",
                    "a kernel cannot define or call Python functions; inline the code", "def"),
    "AsyncFunctionDef": ("nested function definitions are not supported", None, "async"),
    "ClassDef": ("class definitions are not supported inside a kernel", None, "class"),
    "Global": ("global declarations are not supported",
               "read module-level constants directly; a kernel cannot assign them", "global"),
    "Nonlocal": ("nonlocal declarations are not supported", None, "nonlocal"),
    "Delete": ("del is not supported", "names are SSA values: stop using it, or rebind it", "del"),
    "Import": ("import statements are not supported inside a kernel", "import at module level", "import"),
    "ImportFrom": ("import statements are not supported inside a kernel", "import at module level", "from"),
    "Assert": ("assert is not supported", "use vm.assume(cond): checked when compiling or by the VM", "assert"),
    "Raise": ("raise is not supported in a kernel", None, "raise"),
    "Break": ("break is not supported", "loops always run their whole range; use if inside the loop", "break"),
    "Continue": ("continue is not supported", "use if inside the loop", "continue"),
    "Match": ("match statements are not supported", "use if / elif / else", "match"),
}


class BodyTranslator(Translator):
    """Translates a function body (and everything in it)."""

    def stmts(self, body, top: bool = False) -> tuple:
        out = []
        for i, s in enumerate(body):
            if top and i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) \
                    and isinstance(s.value.value, str):
                continue  # docstring
            if isinstance(s, ast.Pass):
                continue
            if isinstance(s, ast.Return) and s.value is None and top and i == len(body) - 1:
                continue  # a bare return at the very end does nothing
            out.append(self.stmt(s))
        return tuple(out)

    def stmt(self, s):
        method = getattr(self, "s_" + type(s).__name__, None)
        if method is None:
            msg, hint, kw = _UNSUPPORTED_STMT.get(type(s).__name__,
                                                  (f"{type(s).__name__} statements are not supported", None, None))
            raise self.err(msg, s, hint=hint, width=len(kw) if kw else None)
        return method(s)

    def target(self, t) -> str:
        if isinstance(t, ast.Name):
            return t.id
        if isinstance(t, (ast.Tuple, ast.List)):
            raise self.err("tuple assignment is not supported", t, hint="assign one name per statement")
        if isinstance(t, ast.Subscript):
            raise self.err("cannot assign to an index", t, hint="write memory with vm.store(x[...], value)")
        if isinstance(t, ast.Attribute):
            raise self.err("cannot assign to an attribute", t)
        raise self.err("only a plain name can be assigned to", t)

    def s_Assign(self, s: ast.Assign):
        if len(s.targets) > 1:
            raise self.err("chained assignment 'a = b = ...' is not supported", s.targets[1],
                           hint="assign one name per statement")
        name = self.target(s.targets[0])
        return A.Assign(name, self.expr(s.value), loc=self.loc(s))

    def s_AnnAssign(self, s: ast.AnnAssign):
        name = self.target(s.target)
        if s.value is None:
            raise self.err(f"the annotation of {name} needs a value", s,
                           hint=f"as in {name}: vm.f32 = 0.0 (a kernel has no declarations)")
        annot = self.type_annot(s.annotation)
        if annot is CONSTEXPR:
            raise self.err("vm.constexpr is only valid as the annotation of a kernel parameter", s.annotation)
        return A.Assign(name, self.expr(s.value), annot, loc=self.loc(s))

    def s_AugAssign(self, s: ast.AugAssign):
        name = self.target(s.target)
        bad = BAD_BINOPS.get(type(s.op))
        if bad is not None:
            text, msg, hint = bad
            raise self.err(msg.replace(f"'{text}'", f"'{text}='"),
                           self.between(s.target, s.value, re.escape(text) + "=", s), hint=hint)
        return A.AugAssign(name, BINOPS[type(s.op)], self.expr(s.value), loc=self.loc(s))

    def s_Expr(self, s: ast.Expr):
        v = s.value
        if isinstance(v, ast.Call):
            return A.ExprStmt(self.expr(v), loc=self.loc(s))
        if type(v).__name__ in ("Yield", "YieldFrom", "Await"):
            return self.expr(v)  # raises
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            raise self.err("a string is not a statement (a docstring must come first)", s)
        raise self.err("this expression is not a statement: only a call can stand alone", s,
                       hint="assign it (name = ...) or call a builtin (vm.store(...))")

    def s_Return(self, s: ast.Return):
        if s.value is not None:
            raise self.err("a kernel cannot return a value", s,
                           hint="write results to an output tensor with vm.store(y[...], value)")
        raise self.err("return is only allowed as the last statement of a kernel (there is no early exit)",
                       s, hint="use if / else")

    def s_For(self, s: ast.For):
        if s.orelse:
            raise self.err("for-else is not supported", self.else_loc(s), hint="put the code after the loop")
        if not isinstance(s.target, ast.Name):
            raise self.err("a for loop binds a single name", s.target)
        it = s.iter
        ok = isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and not self.kernel_name(it.func.id) \
            and self.resolve_name(it.func)[:2] == ("pybuiltin", "range")
        if not ok:
            raise self.err("for loops can only iterate over range(...)", it,
                           hint="for i in range(stop), range(start, stop) or range(start, stop, step)")
        if it.keywords:
            raise self.err("range() takes no keyword arguments", it.keywords[0])
        for a in it.args:
            if isinstance(a, ast.Starred):
                raise self.err("'*' unpacking of arguments is not supported", a)
        if not 1 <= len(it.args) <= 3:
            raise self.err(f"range() takes 1 to 3 arguments, got {len(it.args)}",
                           it.args[3] if len(it.args) > 3 else it,
                           hint="range(stop), range(start, stop) or range(start, stop, step)")
        exprs = [self.expr(a) for a in it.args]
        if len(exprs) == 1:
            start, stop, step = A.Int(0, loc=self.loc(it)), exprs[0], None
        else:
            start, stop, step = exprs[0], exprs[1], (exprs[2] if len(exprs) == 3 else None)
        return A.For(s.target.id, start, stop, step, self.stmts(s.body), loc=self.loc(s, 3))

    def else_loc(self, s) -> SourceLoc:
        first = s.orelse[0]
        last_body = s.body[-1]
        lo = getattr(last_body, "end_lineno", last_body.lineno)
        for line in range(first.lineno, lo - 1, -1):
            if 1 <= line <= len(self.sf.lines):
                text = self.sf.lines[line - 1]
                m = re.match(r"\s*else\s*:", text)
                if m:
                    col = len(text) - len(text.lstrip()) + 1
                    return SourceLoc(self.sf.filename, line, col, col + 4)
        return self.loc(first)

    def s_If(self, s: ast.If):
        return A.If(self.expr(s.test), self.stmts(s.body), self.stmts(s.orelse), loc=self.loc(s, 2))
