"""Lowering of the .vm AST to the IR: name resolution, type checking, implicit casts/broadcasts and
the SSA construction of loops and branches.

Every error is a :class:`VMTypeError` (or :class:`VMSyntaxError`) with the source location of the
construct at fault. Compile-time parameters are substituted first, so tile shapes are static.
"""
from __future__ import annotations

import operator
from typing import Any

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.builder import Builder
from vmlang.ir.errors import SourceLoc, VMError, VMTypeError
from vmlang.ir.symexpr import SymConst, SymExpr, SymVar, sym_binop
from vmlang.ir.types import AUTO, BOOL, GLOBAL, INDEX, SHARED, GlobalType, ScalarType, TileType, is_compute
from vmlang.ir.verify import verify

from . import ast as A
from .values import (Weak, broadcast_shapes, broadcast_to, materialize, result_type, unify_dtypes)

_ARITH = {"+": N.Add, "-": N.Sub, "*": N.Mul, "/": N.Div, "%": N.Mod}
_BITS = {"&": N.And, "|": N.Or, "^": N.Xor, "<<": N.Shl, ">>": N.Shr}
_CMP = {"==": N.Eq, "!=": N.Ne, "<": N.Lt, "<=": N.Le, ">": N.Gt, ">=": N.Ge}


def _c_div(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a / b
    if b == 0:
        raise ZeroDivisionError
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_FOLD = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _c_div,
    "%": lambda a, b: a - b * _c_div(a, b) if isinstance(a, int) and isinstance(b, int) else __import__("math").fmod(a, b),
    "&": operator.and_, "|": operator.or_, "^": operator.xor, "<<": operator.lshift, ">>": operator.rshift,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


class Lowerer:
    """Lowers one kernel. Use :func:`lower_kernel`."""

    def __init__(self, kernel: A.Kernel, consts: dict[str, Any], source: str, filename: str):
        self.k = kernel
        self.source = source
        self.filename = filename
        self.b = Builder()
        self.consts: dict[str, Any] = {}
        self.symbols: dict[str, tuple[int, int]] = {}
        self.scalar_params: set[str] = set()
        self.env: dict[str, Any] = {}
        self._given = dict(consts)

    # ----------------------------------------------------------------------------- errors
    def error(self, msg: str, loc: SourceLoc | None, hint: str | None = None):
        raise VMTypeError(msg, loc, hint=hint)

    def not_global(self, x, loc):
        """``x`` unless it is a tensor in global memory, which no expression reads without ``load``."""
        if isinstance(x, N.Value) and x.is_global:
            self.error(f"{x.name} is a tensor in global memory: read it with load({x.name}[...])", loc)
        return x

    def fold(self, op: str, a, b, loc):
        """``a op b`` of two compile-time numbers, every failure a diagnostic at ``loc`` (shift counts
        outside 0..63 are refused before Python tries to build a huge integer)."""
        if op in ("<<", ">>") and isinstance(a, int) and isinstance(b, int) and not 0 <= b <= 63:
            self.error(f"shift count {b} of a compile-time constant is outside 0..63", loc)
        if op in ("/", "%") and b == 0:
            self.error("division by zero in a compile-time expression", loc)
        try:
            return _FOLD[op](a, b)
        except TypeError:
            self.error(f"operator {op} does not apply to {a!r} and {b!r}", loc)
        except (ArithmeticError, ValueError) as err:
            self.error(f"cannot evaluate {a!r} {op} {b!r} at compile time: {err}", loc)

    # ----------------------------------------------------------------------------- kernel
    def lower(self) -> N.Kernel:
        k = self.k
        names = set()
        for c in k.consts:
            if c.name in names:
                self.error(f"compile-time parameter {c.name} is declared twice", c.loc)
            names.add(c.name)
            if c.name in self._given:
                val = self._given.pop(c.name)
            elif c.default is not None:
                val = self.const_default(c.default)
            else:
                self.error(f"compile-time parameter {c.name} has no default and no value was given", c.loc)
            if isinstance(val, bool) or not isinstance(val, (int, float, D.DType)):
                self.error(f"compile-time parameter {c.name} must be a number or a dtype, got {val!r}", c.loc)
            self.consts[c.name] = val
        params = []
        for i, p in enumerate(k.params):
            if p.name in names:
                self.error(f"parameter {p.name} is declared twice", p.loc)
            names.add(p.name)
            params.append(self.lower_param(i, p))
        for sym in self.symbols:
            if sym in self.consts:
                self.error(f"{sym} is both a size symbol and a compile-time parameter", k.loc)
        grid = tuple(self.sym_eval(g) for g in k.grid)
        if not 1 <= len(grid) <= 3:
            self.error(f"grid takes 1 to 3 sizes, got {len(grid)}", k.loc)
        warps = 4 if k.warps is None else self.const_eval(k.warps)
        if not isinstance(warps, int) or isinstance(warps, bool) or not 1 <= warps <= 32:
            self.error(f"warps must be an integer in 1..32, got {warps!r}", k.warps.loc if k.warps else k.loc)
        self.lower_stmts(k.body)
        body = self.b.finish()
        kern = N.Kernel(k.name, tuple(params), tuple(self.consts.items()), grid, warps, body,
                        tuple((s, pi, ax) for s, (pi, ax) in self.symbols.items()), loc=k.loc)
        verify(kern)
        return kern

    def lower_param(self, index: int, p: A.Param) -> N.Value:
        t = p.type
        if t.dtype is None:
            self.error(f"parameter {p.name} needs a dtype", p.loc)
        dt = self.dtype_of(t.dtype, t.loc)
        if t.layout is not None:
            self.error("layout annotations apply to tiles, not to parameters", t.layout_loc or t.loc)
        if t.dims is None:
            if t.space not in (None,):
                self.error(f"scalar parameter {p.name} cannot be placed in {t.space} memory", t.loc)
            if not (is_compute(dt) or dt == BOOL):
                self.error(f"scalar parameter {p.name} must have a compute dtype, not {dt}", t.loc)
            v = self.b.value(ScalarType(dt), p.name)
            self.scalar_params.add(p.name)
            self.env[p.name] = v
            return v
        if t.space not in (None, GLOBAL):
            self.error(f"tensor parameter {p.name} lives in global memory, not {t.space}", t.loc)
        if not t.dims:
            self.error(f"tensor parameter {p.name} needs at least one dimension", t.loc)
        dims = []
        for axis, d in enumerate(t.dims):
            if isinstance(d, A.Name) and d.id not in self.consts and d.id not in self.symbols \
                    and d.id not in self.scalar_params:
                if d.id in self.env:
                    self.error(f"{d.id} is a tensor parameter, not a size", d.loc)
                self.symbols[d.id] = (index, axis)
                dims.append(SymVar(d.id))
            else:
                dims.append(self.sym_eval(d, bind=False))
        v = self.b.value(GlobalType(dt, tuple(dims)), p.name)
        self.env[p.name] = v
        return v

    # ----------------------------------------------------------------------------- compile time
    def const_default(self, e: A.Expr):
        """A compile-time parameter's default: a constant expression or a dtype name (``<T = int4>``)."""
        if isinstance(e, A.Name) and e.id not in self.consts:
            try:
                return D.dtype(e.id)
            except VMError:
                pass
        return self.const_eval(e)

    def dtype_of(self, name: str, loc) -> D.DType:
        if name in self.consts:
            v = self.consts[name]
            if not isinstance(v, D.DType):
                self.error(f"{name} = {v!r} is not a dtype", loc)
            return v
        try:
            return D.dtype(name)
        except VMError as e:
            raise VMTypeError(e.message, loc) from None

    def const_eval(self, e: A.Expr):
        """Evaluate an expression over literals and compile-time parameters."""
        if isinstance(e, (A.Int, A.Float, A.Bool)):
            return e.value
        if isinstance(e, A.Name):
            if e.id in self.consts:
                if isinstance(self.consts[e.id], D.DType):
                    self.error(f"{e.id} is a dtype ({self.consts[e.id]}), not a number", e.loc)
                return self.consts[e.id]
            self.error(f"{e.id} is not a compile-time constant", e.loc)
        if isinstance(e, A.UnaryOp):
            v = self.const_eval(e.operand)
            return {"-": operator.neg, "~": operator.invert, "not": operator.not_}[e.op](v)
        if isinstance(e, A.BinOp):
            a, b = self.const_eval(e.left), self.const_eval(e.right)
            if e.op in ("and", "or"):
                return (a and b) if e.op == "and" else (a or b)
            return self.fold(e.op, a, b, e.loc)
        if isinstance(e, A.Call) and e.func in ("cdiv", "min", "max") and len(e.args) == 2 and not e.kwargs:
            a, b = (self.const_eval(x) for x in e.args)
            if e.func == "cdiv":
                if b == 0:
                    self.error("division by zero in a compile-time expression", e.loc)
                return -(-a // b)
            return min(a, b) if e.func == "min" else max(a, b)
        self.error("expected a compile-time constant expression", e.loc)

    def sym_eval(self, e: A.Expr, bind: bool = False) -> SymExpr:
        """A symbolic size expression over constants, size symbols and scalar parameters."""
        if isinstance(e, A.Int):
            return SymConst(e.value)
        if isinstance(e, A.Name):
            if e.id in self.consts:
                v = self.consts[e.id]
                if not isinstance(v, int):
                    self.error(f"{e.id} = {v!r} is not an integer size", e.loc)
                return SymConst(v)
            if e.id in self.symbols or e.id in self.scalar_params:
                if e.id in self.scalar_params and not self.env[e.id].dtype.is_int:
                    self.error(f"scalar parameter {e.id} is not an integer", e.loc)
                return SymVar(e.id)
            self.error(f"unknown size {e.id} (sizes are size symbols from tensor shapes, integer "
                       f"scalar parameters or compile-time constants)", e.loc)
        if isinstance(e, A.BinOp) and e.op in ("+", "-", "*", "/", "%"):
            return sym_binop(e.op, self.sym_eval(e.left), self.sym_eval(e.right))
        if isinstance(e, A.Call) and e.func in ("cdiv", "min", "max") and len(e.args) == 2 and not e.kwargs:
            return sym_binop(e.func, self.sym_eval(e.args[0]), self.sym_eval(e.args[1]))
        self.error("expected a size expression (+ - * / %, cdiv, min, max over sizes and constants)", e.loc)

    def static_int(self, e: A.Expr, what: str) -> int:
        try:
            v = self.const_eval(e)
        except VMTypeError as err:
            raise VMTypeError(f"{what} must be a compile-time integer: {err.message}", err.loc) from None
        if isinstance(v, bool) or not isinstance(v, int):
            self.error(f"{what} must be a compile-time integer, got {v!r}", e.loc)
        return v

    # ----------------------------------------------------------------------------- statements
    def lower_stmts(self, stmts):
        for s in stmts:
            self.b.loc = s.loc
            handler = getattr(self, "stmt_" + type(s).__name__)
            handler(s)

    def bind(self, name: str, value, loc):
        if name in self.consts:
            self.error(f"cannot assign to compile-time parameter {name}", loc)
        old = self.env.get(name)
        if isinstance(old, N.Value) and old.is_global:
            self.error(f"cannot assign to tensor parameter {name} (write to it with store)", loc)
        if name in self.symbols:
            self.error(f"cannot assign to size symbol {name}", loc)
        if name == "block":
            self.error("cannot assign to block", loc)
        self.env[name] = value

    def stmt_Assign(self, s: A.Assign):
        self.b.name_hint = s.target
        mark = self.b.mark()
        v = self.expr(s.value)
        if isinstance(v, Weak) and s.annot is not None and s.annot.dtype is not None:
            from .values import const_of
            v = const_of(self, v, self.dtype_of(s.annot.dtype, s.annot.loc))
        v = materialize(self, v)
        if s.annot is not None:
            v = self.apply_annot(v, s.annot, fresh=self.b.made_since(mark, v))
        self.bind(s.target, v, s.loc)
        self.b.name_hint = ""

    def apply_annot(self, v: N.Value, t: A.TypeAnnot, fresh: bool = False) -> N.Value:
        """``v`` with annotation ``t`` checked and applied (a ``ConvertLayout`` to the annotated space or
        layout); ``fresh``: ``v`` is the result of the last instruction, made by the annotated expression
        itself (no name refers to it yet) -- a global load then takes a ``shared`` placement itself."""
        if t.dtype is not None:
            dt = self.dtype_of(t.dtype, t.loc)
            if dt != v.dtype:
                self.error(f"annotation says {dt} but the value is {v.dtype} (use cast)", t.loc)
        if t.dims is not None:
            dims = tuple(self.static_int(d, "an annotated dimension") for d in t.dims)
            if dims != tuple(v.shape):
                self.error(f"annotation says shape {list(dims)} but the value has shape {list(v.shape)}", t.loc)
        if t.space is None and t.layout is None:
            return v
        if not v.is_tile:
            self.error("placement and layout annotations apply to tiles, not scalars", t.loc)
        if t.space == GLOBAL:
            self.error("a tile cannot be placed in global memory", t.loc)
        layout = v.type.layout
        if t.layout is not None:
            layout = self.parse_layout(t.layout, t.layout_loc or t.loc)
            tile = getattr(layout, "tile", None)
            if tile is not None and tuple(tile) != tuple(v.shape):
                self.error(f"the register layout maps onto a tile of shape {list(tile)}, but the value has shape "
                           f"{list(v.shape)}", t.layout_loc or t.loc)
        new = v.type.with_(space=t.space or v.type.space, layout=layout)
        if new == v.type:
            return v
        last = self.b.last()
        if (fresh and t.space == SHARED and v.type.space == AUTO and v.type.layout is None
                and isinstance(last, N.Load) and last.src.is_global):
            # ``t: shared = load(...)``: a global load just made (nothing has used it) is placed in shared
            # memory itself -- a copy the backends may make asynchronous and pipeline -- instead of being
            # loaded into registers and then stored to shared memory
            return self.b.retype_last(v, new)
        return self.b.emit(lambda out: N.ConvertLayout(out, v, loc=t.loc), new)

    def parse_layout(self, text: str, loc):
        from vmlang.ir.layout import parse_any
        try:
            return parse_any(text)
        except VMError as e:
            raise VMTypeError(f"bad layout {text!r}: {e.message}", loc) from None
        except Exception as e:  # noqa: BLE001 - any parse failure is the user's layout text
            raise VMTypeError(f"bad layout {text!r}: {e}", loc) from None

    def stmt_AugAssign(self, s: A.AugAssign):
        if s.target not in self.env:
            self.error(f"{s.target} is not defined", s.loc)
        s2 = A.Assign(s.target, A.BinOp(s.op, A.Name(s.target, loc=s.loc), s.value, loc=s.loc), loc=s.loc)
        self.stmt_Assign(s2)

    def stmt_ExprStmt(self, s: A.ExprStmt):
        from .builtins import STATEMENTS
        call = s.expr
        if call.func not in STATEMENTS:
            self.error(f"the value of {call.func}(...) is not used (only store, atomic_add, assume and "
                       f"barrier stand alone as statements)", s.loc)
        STATEMENTS[call.func](self, call)

    def stmt_For(self, s: A.For):
        start = self.index_scalar(self.expr(s.start), s.start.loc, "range start")
        stop = self.index_scalar(self.expr(s.stop), s.stop.loc, "range stop")
        step_e = s.step
        if step_e is not None:
            try:
                sv = self.const_eval(step_e)
            except VMError:
                sv = None
            if sv is not None and (not isinstance(sv, int) or sv <= 0):
                self.error(f"range step must be a positive integer, got {sv!r}", step_e.loc)
            step = self.index_scalar(self.expr(step_e), step_e.loc, "range step")
        else:
            step = self.b.const(1, INDEX)
        carried_names = [n for n in assigned_names(s.body)
                         if isinstance(self.env.get(n), N.Value) and not self.env[n].is_global and n != s.var]
        outer = dict(self.env)
        inits = tuple(self.env[n] for n in carried_names)
        var = self.b.value(ScalarType(INDEX), s.var)
        carried = tuple(self.b.value(v.type, n) for n, v in zip(carried_names, inits))
        self.env[s.var] = var
        for n, c in zip(carried_names, carried):
            self.env[n] = c
        self.b.open_block()
        self.lower_stmts(s.body)
        body = self.b.close_block()
        yields = tuple(self.env[n] for n in carried_names)
        for n, c, y in zip(carried_names, carried, yields):
            if y.type != c.type:
                self.error(f"loop-carried variable {n} changes type from {c.type} to {y.type} in the loop "
                           f"body (cast it, or give it that type before the loop)", s.loc)
        outs = tuple(self.b.value(v.type, n) for n, v in zip(carried_names, inits))
        self.b.loc = s.loc
        self.b.append(N.For(var, start, stop, step, inits, carried, body, yields, outs, loc=s.loc))
        self.env = outer
        for n, o in zip(carried_names, outs):
            self.env[n] = o

    def stmt_If(self, s: A.If):
        cond = self.expr(s.cond)
        if isinstance(cond, Weak):  # compile-time condition: lower only the branch taken
            if not isinstance(cond.value, bool):
                self.error("if needs a bool condition", s.cond.loc)
            self.lower_stmts(s.then if cond.value else s.orelse)
            return
        if not cond.is_scalar or cond.dtype != BOOL:
            self.error(f"if needs a bool scalar condition, got {cond.type} (for tiles use where)", s.cond.loc)
        outer = dict(self.env)
        envs, blocks = [], []
        for branch in (s.then, s.orelse):
            self.env = dict(outer)
            self.b.open_block()
            self.lower_stmts(branch)
            blocks.append(self.b.close_block())
            envs.append(self.env)
        names = []
        for n in dict.fromkeys(list(assigned_names(s.then)) + list(assigned_names(s.orelse))):
            a, b_ = envs[0].get(n), envs[1].get(n)
            if not (isinstance(a, N.Value) and isinstance(b_, N.Value)) or a.is_global:
                continue
            if a is b_:
                continue
            if a.type != b_.type:
                self.error(f"variable {n} has type {a.type} in one branch and {b_.type} in the other", s.loc)
            names.append(n)
        ty = tuple(envs[0][n] for n in names)
        ey = tuple(envs[1][n] for n in names)
        outs = tuple(self.b.value(v.type, n) for n, v in zip(names, ty))
        self.b.loc = s.loc
        self.b.append(N.If(cond, blocks[0], blocks[1], ty, ey, outs, loc=s.loc))
        self.env = outer
        for n, o in zip(names, outs):
            self.env[n] = o

    # ----------------------------------------------------------------------------- expressions
    def index_scalar(self, v, loc, what: str) -> N.Value:
        if isinstance(v, Weak):
            if isinstance(v.value, bool) or not isinstance(v.value, int):
                self.error(f"{what} must be an integer, got {v.value!r}", loc)
            return materialize(self, v)
        if not v.is_scalar or not v.dtype.is_int or v.dtype == BOOL:
            self.error(f"{what} must be an integer scalar, got {v.type}", loc)
        if v.dtype != INDEX:
            from .values import cast_to
            v = cast_to(self, v, INDEX, loc)
        return v

    def expr(self, e: A.Expr):
        handler = getattr(self, "expr_" + type(e).__name__, None)
        if handler is None:
            self.error(f"{type(e).__name__} is not valid here", e.loc)
        return handler(e)

    def expr_Int(self, e):
        return Weak(e.value, e.loc)

    expr_Float = expr_Int
    expr_Bool = expr_Int

    def expr_Name(self, e: A.Name):
        if e.id in self.env:
            return self.env[e.id]
        if e.id in self.consts:
            if isinstance(self.consts[e.id], D.DType):
                self.error(f"{e.id} is a dtype ({self.consts[e.id]}), not a value", e.loc)
            return Weak(self.consts[e.id], e.loc)
        if e.id in self.symbols:
            saved = self.b.name_hint
            self.b.name_hint = e.id
            v = self.b.emit(lambda out: N.SizeOf(out, e.id, loc=e.loc), ScalarType(INDEX))
            self.b.name_hint = saved
            return v
        if e.id == "block":
            self.error("block is not a value: use block.x, block.y or block.z", e.loc)
        try:
            D.dtype(e.id)
            self.error(f"dtype {e.id} is not a value here", e.loc)
        except VMError as err:
            if isinstance(err, VMTypeError):
                raise
        self.error(f"unknown name {e.id}", e.loc)

    def expr_Attr(self, e: A.Attr):
        if isinstance(e.value, A.Name) and e.value.id == "block" and "block" not in self.env:
            axis = {"x": 0, "y": 1, "z": 2}.get(e.attr)
            if axis is None:
                self.error(f"block has no attribute {e.attr} (use x, y or z)", e.loc)
            return self.b.emit(lambda out: N.BlockIdx(out, axis, loc=e.loc), ScalarType(INDEX))
        self.error(f"unknown attribute .{e.attr}", e.loc)

    def expr_ListExpr(self, e):
        self.error("a list is only valid as a shape or permutation argument", e.loc)

    def expr_UnaryOp(self, e: A.UnaryOp):
        x = self.expr(e.operand)
        if isinstance(x, Weak):
            if isinstance(x.value, bool):
                if e.op == "-":
                    self.error("unary - does not apply to a bool", e.loc)
                return Weak(not x.value, e.loc)
            if e.op == "not":
                self.error(f"not needs a bool operand, got {x.value!r}", e.loc)
            try:
                return Weak({"-": operator.neg, "~": operator.invert}[e.op](x.value), e.loc)
            except TypeError:
                self.error(f"operator {e.op} does not apply to {x.value!r}", e.loc)
        self.not_global(x, e.loc)
        if e.op == "not":
            if x.dtype != BOOL:
                self.error(f"not needs a bool operand, got {x.dtype}", e.loc)
            cls = N.Invert
        else:
            cls = {"-": N.Neg, "~": N.Invert}[e.op]
        return self.b.emit(lambda out: cls(out, x, loc=e.loc), x.type if x.is_scalar else x.type.with_(layout=None))

    def expr_BinOp(self, e: A.BinOp):
        a, b = self.expr(e.left), self.expr(e.right)
        return self.binop(e.op, a, b, e.loc)

    def binop(self, op: str, a, b, loc):
        if isinstance(a, Weak) and isinstance(b, Weak):
            bools = isinstance(a.value, bool) + isinstance(b.value, bool)
            if bools == 1 or (bools == 2 and op not in ("and", "or", "&", "|", "^", "==", "!=")):
                self.error(f"operator {op} does not apply to {a.value!r} and {b.value!r}", loc)
            if op in ("and", "or"):
                return Weak((a.value and b.value) if op == "and" else (a.value or b.value), loc)
            return Weak(self.fold(op, a.value, b.value, loc), loc)
        for x in (a, b):
            self.not_global(x, loc)
        if op in ("and", "or"):
            cls = N.And if op == "and" else N.Or
            for x in (a, b):
                if isinstance(x, Weak) and not isinstance(x.value, bool) or \
                        isinstance(x, N.Value) and x.dtype != BOOL:
                    self.error(f"{op} needs bool operands", loc)
        elif op in _ARITH:
            cls = _ARITH[op]
        elif op in _BITS:
            cls = _BITS[op]
        elif op in _CMP:
            cls = _CMP[op]
        else:
            self.error(f"unknown operator {op}", loc)
        what = f"operator {op}"
        if op in ("<<", ">>"):
            # the shift amount takes the dtype of the shifted value
            if isinstance(a, Weak):
                a, b = unify_dtypes(self, a, b, loc, what)
            else:
                from .values import cast_to, const_of, require_compute
                require_compute(a, what, loc)
                if isinstance(b, Weak):
                    b = const_of(self, b, a.dtype)
                elif b.dtype != a.dtype:   # keep large amounts large: saturate, never wrap
                    bb = b
                    b = self.b.emit(lambda out: N.Cast(out, bb, True, loc=loc),
                                    bb.type.with_(dtype=a.dtype, layout=None) if bb.is_tile else ScalarType(a.dtype))
        else:
            a, b = unify_dtypes(self, a, b, loc, what, allow_bool=cls in (N.And, N.Or, N.Xor, N.Eq, N.Ne))
        if cls in _BITS.values() or cls in (N.And, N.Or):
            if not a.dtype.is_int:
                self.error(f"{what} needs integer (or bool) operands, got {a.dtype}", loc)
        shape = broadcast_shapes([a.shape, b.shape], loc)
        a, b = broadcast_to(self, a, shape, loc), broadcast_to(self, b, shape, loc)
        dt = BOOL if cls in _CMP.values() else a.dtype
        return self.b.emit(lambda out: cls(out, a, b, loc=loc), result_type([a, b], dt))

    def expr_Call(self, e: A.Call):
        from .builtins import EXPRESSIONS, STATEMENTS
        if e.func in EXPRESSIONS:
            return EXPRESSIONS[e.func](self, e)
        if e.func in STATEMENTS:
            self.error(f"{e.func}(...) is a statement and has no value", e.loc)
        self.error(f"unknown function {e.func}", e.loc)

    def expr_Index(self, e: A.Index):
        from .builtins import index_tile
        return index_tile(self, e)


def assigned_names(stmts) -> list[str]:
    """Names a statement list (re)binds, nested blocks included (loop variables excluded)."""
    out: dict[str, None] = {}
    for s in stmts:
        if isinstance(s, (A.Assign, A.AugAssign)):
            out[s.target] = None
        elif isinstance(s, A.ExprStmt) and s.expr.func == "store" and s.expr.args and \
                isinstance(s.expr.args[0], A.Index) and isinstance(s.expr.args[0].value, A.Name):
            out[s.expr.args[0].value.id] = None
        elif isinstance(s, A.For):
            for n in assigned_names(s.body):
                if n != s.var:
                    out[n] = None
        elif isinstance(s, A.If):
            for n in assigned_names(s.then) + assigned_names(s.orelse):
                out[n] = None
    return list(out)


def lower_kernel(kernel: A.Kernel, consts: dict | None = None, source: str = "",
                 filename: str = "<string>") -> N.Kernel:
    """Lower one AST kernel with the given compile-time parameter values (others take defaults)."""
    lw = Lowerer(kernel, consts or {}, source, filename)
    try:
        return lw.lower()
    except VMError as e:
        if e.source is None:
            e.source = source
        raise
