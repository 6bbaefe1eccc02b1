"""The Python front end of ``@vm.jit``: a Python function -> the same .vm AST the ``.vm`` parser produces.

>>> import vmlang as vm
>>> from vmlang.lang.pyfront import parse_function
>>> src = parse_function(some_kernel)            # doctest: +SKIP
>>> src.kernel.name, src.filename, src.text      # doctest: +SKIP

The function's source is read (``linecache``, as :mod:`inspect` does) and parsed with :mod:`ast`; its body
is never executed. The result lowers through :func:`vmlang.lang.lower.lower_kernel` exactly like a kernel
parsed from a ``.vm`` file. Every error is a :class:`~vmlang.ir.errors.VMSyntaxError` (or a
:class:`~vmlang.ir.errors.VMTypeError` for an annotation that is not a type) located in real file
coordinates, with ``source`` set to the file's text so that ``err.render()`` shows the line and a caret.

The language is described in ``docs/jit.md``.
"""
from __future__ import annotations

import ast
import inspect
import re
import types
from dataclasses import dataclass

from vmlang.ir.errors import SourceLoc, VMError, VMSyntaxError, VMTypeError
from vmlang.lang import ast as A
from vmlang.lang.parser import parse_expr
from vmlang.lang.pyexpr import Translator
from vmlang.lang.pynames import Scope, bound_names, classify, describe, in_string, split_commas
from vmlang.lang.pystmt import BodyTranslator
from vmlang.lang.pysource import SourceFile, find_function, find_lambda, relocate
from vmlang.lang.stubs import ConstExpr, constexpr

__all__ = ["parse_function", "constexpr", "ConstExpr", "JitSource"]


@dataclass(frozen=True)
class JitSource:
    """What the front end makes of one ``@vm.jit`` function."""

    kernel: A.Kernel      #: the kernel's AST (``kernel.name == fn.__name__``)
    source: str           #: the full text of the function's file (error rendering)
    filename: str         #: the function's file
    text: str             #: the function's own source lines, decorators included (a cache fingerprint)


def parse_function(fn, grid=None, warps=None) -> JitSource:
    """Translate a Python kernel function into a :class:`JitSource`.

    ``grid`` and ``warps`` are the values given to ``vm.jit``; when the decorator that declares them is
    written in the function's source, the source is translated instead (with real locations). ``grid``
    may be a lambda, an int, a tuple of ints or strings, or a string in .vm syntax (``"cdiv(N, BN), M"``);
    ``warps`` an int, a string or a lambda.
    """
    try:
        return _Front(fn, grid, warps).run()
    except VMError:
        raise
    except RecursionError:
        raise VMSyntaxError("the kernel is nested too deeply", loc=None) from None
    except Exception as e:  # noqa: BLE001 - never let a Python exception escape the front end
        raise VMSyntaxError(f"internal error in the @vm.jit front end ({type(e).__name__}: {e}); "
                            f"please report it", loc=None) from e


_NO_VALUE = object()
_FORMS = {"grid": "a lambda, an int, a tuple of sizes or a string", "warps": "an int, a string or a lambda"}
_DEF_RE = re.compile(r"(async\s+)?def\s+\w+")


class _Front:
    def __init__(self, fn, grid, warps):
        self.fn0 = fn
        self.grid_arg = grid
        self.warps_arg = warps

    # ------------------------------------------------------------------------------------- driver
    def run(self) -> JitSource:
        fn = self.fn0
        if isinstance(fn, (staticmethod, classmethod)):
            fn = fn.__func__
        try:
            fn = inspect.unwrap(fn)
        except ValueError:
            pass
        if not isinstance(fn, types.FunctionType):
            raise VMSyntaxError(f"@vm.jit needs a Python function defined with def, got {type(fn).__name__}",
                                loc=None)
        code = fn.__code__
        name = fn.__name__
        if code.co_name == "<lambda>":
            raise VMSyntaxError("@vm.jit needs a function defined with def, not a lambda", loc=None)
        sf, node = find_function(code, fn.__globals__)
        if sf is None:
            raise VMSyntaxError(f"cannot read the source of {fn.__qualname__} (file {code.co_filename!r}): "
                                f"@vm.jit kernels must be defined in a file", loc=None)
        if node is None:
            raise VMSyntaxError(f"cannot find 'def {code.co_name}' at line {code.co_firstlineno} of "
                                f"{code.co_filename} (was the file changed after it was imported?)",
                                loc=SourceLoc(sf.filename, code.co_firstlineno, 1), source=sf.text)
        self.sf, self.node, self.fn, self.name = sf, node, fn, name
        self.scope = Scope(fn)
        self.def_loc = self._def_loc()
        if isinstance(node, ast.AsyncFunctionDef):
            raise sf.error("a kernel cannot be an async def", self.def_loc)

        consts, params, symbols = self.signature()
        kernel_names = {c.name for c in consts} | {p.name for p in params} | symbols | bound_names(node.body)
        self.kernel_names = kernel_names
        self.const_names = {c.name for c in consts}
        body_tr = BodyTranslator(sf, self.scope, kernel_names, "body", self.const_names)
        body = body_tr.stmts(node.body, top=True)
        grid = self.grid()
        warps = self.warps()
        kernel = A.Kernel(name, consts, params, grid, warps, body, loc=self.def_loc)
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        text = "\n".join(sf.lines[first - 1:node.end_lineno]) + "\n"
        return JitSource(kernel, sf.text, sf.filename, text)

    def _def_loc(self) -> SourceLoc:
        node, sf = self.node, self.sf
        loc = sf.loc(node)
        if 1 <= node.lineno <= len(sf.lines):
            m = _DEF_RE.match(sf.lines[node.lineno - 1], loc.column - 1)
            if m:
                return SourceLoc(sf.filename, node.lineno, loc.column, m.end() + 1)
        return SourceLoc(sf.filename, loc.line, loc.column, loc.column + 3)

    # ------------------------------------------------------------------------------------- parameters
    def signature(self):
        sf, args = self.sf, self.node.args
        if args.vararg is not None:
            raise sf.error("*args parameters are not supported in a kernel", args.vararg)
        if args.kwarg is not None:
            raise sf.error("**kwargs parameters are not supported in a kernel", args.kwarg)
        positional = args.posonlyargs + args.args
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
        if self.node.returns is not None and not (isinstance(self.node.returns, ast.Constant)
                                                  and self.node.returns.value is None):
            raise sf.error("a kernel returns nothing: drop the return annotation (or write -> None)",
                           self.node.returns)

        probe = Translator(sf, self.scope, mode="python")
        is_const = [a.annotation is not None and probe.is_constexpr(a.annotation) for a, _ in pairs]
        const_names = {a.arg for (a, _), c in zip(pairs, is_const) if c}
        param_names = {a.arg for (a, _), c in zip(pairs, is_const) if not c}

        consts, params = [], []
        defaults_tr = Translator(sf, self.scope, mode="python")
        dims_tr = Translator(sf, self.scope, const_names | param_names, "dims", const_names)
        for (a, default), c in zip(pairs, is_const):
            loc = sf.loc(a)
            if c:
                if default is None or (isinstance(default, ast.Constant) and default.value is None):
                    consts.append(A.ConstParam(a.arg, None, loc=loc))
                else:
                    consts.append(A.ConstParam(a.arg, self.const_default(defaults_tr, a.arg, default), loc=loc))
                continue
            if default is not None:
                raise sf.error(f"parameter {a.arg} has a default value, but only vm.constexpr parameters "
                               f"can have one", default,
                               hint=f"annotate a compile-time constant: {a.arg}: vm.constexpr = ...")
            if a.annotation is None:
                raise sf.error(f"parameter {a.arg} needs an annotation", a,
                               hint="x: vm.f16['M', 'K'] for a tensor, n: vm.int32 for a scalar, "
                                    "BN: vm.constexpr = 128 for a compile-time constant")
            t = dims_tr.type_annot(a.annotation)
            if t.dims is not None and t.space is None:
                t = A.TypeAnnot(t.dtype, t.dims, "global", t.layout, t.layout_loc, loc=t.loc)
            params.append(A.Param(a.arg, t, loc=loc))
        symbols: set[str] = set()
        for p in params:
            for d in p.type.dims or ():
                _collect_names(d, symbols)
        return tuple(consts), tuple(params), symbols - const_names - param_names

    def const_default(self, tr: Translator, name: str, node):
        """A compile-time parameter's default: the value Python computed when the def ran (it may use
        names of an enclosing function that the body does not see), else the source expression."""
        value = self.evaluated_defaults().get(name, _NO_VALUE)
        if value is _NO_VALUE:
            return tr.expr(node)
        kind, val = classify(value)
        if kind in ("const", "dtype"):
            spelled = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            return tr.value_of(kind, val, spelled, node)
        raise self.sf.error(f"the default of compile-time parameter {name} is {describe(value)}; it must be "
                            f"an int, a float or a dtype", node, cls=VMTypeError)

    def evaluated_defaults(self) -> dict:
        if hasattr(self, "_defaults"):
            return self._defaults
        out: dict = {}
        args, fn = self.node.args, self.fn
        positional = [a.arg for a in args.posonlyargs + args.args]
        values = fn.__defaults__ or ()
        if len(values) == len(args.defaults):
            out.update(zip(positional[len(positional) - len(values):], values))
        kw = fn.__kwdefaults__ or {}
        for a, d in zip(args.kwonlyargs, args.kw_defaults):
            if d is not None and a.arg in kw:
                out[a.arg] = kw[a.arg]
        self._defaults = out
        return out

    # ------------------------------------------------------------------------------------- grid / warps
    def decorator_values(self) -> dict[str, ast.AST]:
        found = [d for d in self.node.decorator_list
                 if isinstance(d, ast.Call) and any(k.arg in ("grid", "warps") for k in d.keywords)]
        if len(found) > 1:
            raise self.sf.error("grid/warps are declared by more than one decorator", found[1])
        if not found:
            return {}
        return {k.arg: k.value for k in found[0].keywords if k.arg in ("grid", "warps")
                and not (isinstance(k.value, ast.Constant) and k.value.value is None)}

    def grid(self) -> tuple:
        node = self.decorator_values().get("grid")
        if node is not None:
            items = self.from_source(node, self.grid_arg, "grid")
        elif self.grid_arg is not None:
            items = self.from_object(self.grid_arg, "grid", None)
        else:
            raise self.sf.error(f"kernel {self.name} has no grid", self.def_loc,
                                hint="declare it in the decorator: @vm.jit(grid=lambda N, BN: "
                                     "(vm.cdiv(N, BN),), warps=4)")
        return items

    def warps(self):
        node = self.decorator_values().get("warps")
        if node is not None:
            return self.from_source(node, self.warps_arg, "warps")[0]
        if self.warps_arg is not None:
            return self.from_object(self.warps_arg, "warps", None)[0]
        return None

    def check_count(self, items, what, at):
        if what == "grid" and not 1 <= len(items) <= 3:
            raise self._err_at(f"grid takes 1 to 3 sizes, got {len(items)}", at)
        if what == "warps" and len(items) != 1:
            raise self._err_at("warps is a single compile-time integer", at)
        return tuple(items)

    def _err_at(self, msg, at, hint=None):
        if isinstance(at, tuple):  # (SourceFile, node)
            return at[0].error(msg, at[1], hint)
        return self.sf.error(msg, at if at is not None else self.def_loc, hint)

    def from_source(self, node, passed, what: str) -> tuple:
        """grid=/warps= as written in the decorator."""
        sf = self.sf
        tr = Translator(sf, self.scope, self.kernel_names, "python", self.const_names)
        if isinstance(node, ast.Lambda):
            scope = self.scope
            pc = getattr(passed, "__code__", None)
            if pc is not None and pc.co_name == "<lambda>" and pc.co_firstlineno == node.lineno \
                    and pc.co_filename == self.fn.__code__.co_filename:
                scope = Scope(passed)
            return self.lambda_items(sf, node, scope, what)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.check_count(self.string_items(tr, node, what), what, node)
        if isinstance(node, ast.Constant):
            if type(node.value) is not int:
                raise sf.error(f"{what} must be {_FORMS[what]}, not {node.value!r}", node)
            return (tr.literal(node.value, node),)
        if isinstance(node, (ast.Tuple, ast.List)) and what == "grid":
            items = []
            for e in node.elts:
                if isinstance(e, ast.Constant) and isinstance(e.value, str):
                    items.append(tr.string_expr(e, e.value, 0))
                else:
                    items.append(tr.expr(e))
            return self.check_count(items, what, node)
        if isinstance(node, (ast.Name, ast.Attribute)):
            try:
                kind, val, _ = tr.resolve(node)
            except VMError:
                kind, val = "missing", None
            if kind == "const" and type(val) is int:
                return (tr.literal(val, node),)
            if passed is None and kind == "other":
                passed = val
        if passed is not None:
            return self.from_object(passed, what, node)
        raise sf.error(f"{what} must be written as {_FORMS[what]}", node,
                       hint="as in grid=lambda N, BN, M: (vm.cdiv(N, BN), M), warps=4")

    def from_object(self, obj, what: str, at) -> tuple:
        """grid/warps given as Python values (vm.jit(grid=...)(fn) at run time)."""
        anchor = self.sf.loc(at) if at is not None else self.def_loc
        place = (lambda loc: anchor)  # noqa: E731 - every node of a value without source sits at `anchor`
        if isinstance(obj, bool):
            raise self._err_at(f"{what} must be an int, not a bool", at)
        if isinstance(obj, int):
            return (A.Int(obj, loc=anchor),)
        if isinstance(obj, str):
            return self.check_count(tuple(relocate(e, place) for e in _parse_text(obj, what)), what, at)
        if isinstance(obj, (tuple, list)) and what == "grid":
            items = []
            for x in obj:
                if isinstance(x, bool) or not isinstance(x, (int, str)):
                    raise self._err_at(f"a grid tuple holds ints or strings, not {type(x).__name__}", at)
                items.append(A.Int(x, loc=anchor) if isinstance(x, int)
                             else relocate(_parse_text(x, what, single=True)[0], place))
            return self.check_count(items, what, at)
        if isinstance(obj, types.FunctionType):
            sf, node, why = find_lambda(obj)
            if node is None:
                raise self._err_at(f"cannot locate the source of the {what} function ({why})", at,
                                   hint=f"write {what} in the decorator (@vm.jit({what}=lambda ...)) or as a "
                                        f"string such as \"cdiv(N, BN), M\"")
            return self.lambda_items(sf, node, Scope(obj), what)
        raise self._err_at(f"{what} must be {_FORMS[what]}, not {type(obj).__name__}", at)

    def string_items(self, tr, node, what):
        return tr.string_exprs(node) if what == "grid" else (tr.string_expr(node, node.value, 0),)

    def lambda_items(self, sf: SourceFile, lam, scope: Scope, what: str) -> tuple:
        args = lam.args
        if args.vararg or args.kwarg or args.defaults or any(d is not None for d in args.kw_defaults):
            raise sf.error(f"the {what} lambda takes plain parameters (no defaults, *args or **kwargs)", lam)
        params = args.posonlyargs + args.args + args.kwonlyargs
        for p in params:
            if p.arg not in self.kernel_names:
                raise sf.error(f"{what} parameter {p.arg} is not a parameter, compile-time constant or size "
                               f"of kernel {self.name}", p)
        if isinstance(lam, ast.Lambda):
            body = lam.body
        else:  # a def whose body is a single return
            stmts = [s for s in lam.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            if len(stmts) != 1 or not isinstance(stmts[0], ast.Return) or stmts[0].value is None:
                raise sf.error(f"a {what} function must consist of a single return statement", lam)
            body = stmts[0].value
        tr = Translator(sf, scope, self.kernel_names | {p.arg for p in params}, "body", self.const_names)
        elts = body.elts if isinstance(body, (ast.Tuple, ast.List)) else [body]
        items = tuple(tr.expr(e) for e in elts)
        return self.check_count(items, what, (sf, body))


def _parse_text(text: str, what: str, single: bool = False) -> tuple:
    """A grid/warps string given as a value (no source location): its expressions."""
    name = f"<{what}>"
    pieces = [(0, len(text))] if single or what != "grid" else split_commas(text)
    if isinstance(pieces, int):
        raise VMSyntaxError(f"empty expression in the {what} string", loc=SourceLoc(name, 1, pieces + 1),
                            source=text)
    out = []
    for a, b in pieces:
        try:
            e = parse_expr(text[a:b], name)
        except VMSyntaxError as err:
            loc = err.loc
            if loc is not None and loc.line == 1:
                loc = SourceLoc(name, 1, loc.column + a, None if loc.end_column is None else loc.end_column + a)
            raise VMSyntaxError(in_string(err.message), loc=loc, source=text, hint=err.hint) from None
        out.append(e)
    return tuple(out)


def _collect_names(e, out: set) -> None:
    if isinstance(e, A.Name):
        out.add(e.id)
    elif isinstance(e, A.Node):
        for v in vars(e).values():
            if isinstance(v, (A.Node, tuple)):
                _collect_names(v, out)
    elif isinstance(e, tuple):
        for v in e:
            _collect_names(v, out)

