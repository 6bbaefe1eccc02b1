"""Print a kernel as .vm text that parses back to the same IR (``vm compile --target ir``).

Every value becomes a variable with a full type annotation (``v3: f32[128] = a2 + b1;``); constants
are statements of their own (``c0: f16 = 2.0;``); a loop-carried value keeps one name before, inside
and after its loop, and is re-assigned at the end of the body. Names come from the source's variable
names plus a number in definition order, so printing, parsing and printing again gives the same text.
Parameters keep their names.

Printing is registered per instruction class (``@rule(Cls)``); a missing rule fails naming the class.
"""
from __future__ import annotations

import re
from typing import Callable

from . import nodes as N
from .errors import BackendError
from .registry import registrar
from .types import AUTO, ScalarType, TileType

RULES: dict[type, Callable] = {}
_BINOPS = {N.Add: "+", N.Sub: "-", N.Mul: "*", N.Div: "/", N.Mod: "%", N.And: "&", N.Or: "|", N.Xor: "^",
           N.Shl: "<<", N.Shr: ">>", N.Eq: "==", N.Ne: "!=", N.Lt: "<", N.Le: "<=", N.Gt: ">", N.Ge: ">="}
_CALL1 = {N.Exp: "exp", N.Exp2: "exp2", N.Log: "log", N.Sqrt: "sqrt", N.Rsqrt: "rsqrt", N.Abs: "abs"}
_REDUCE = {N.Sum: "sum", N.ReduceMax: "max", N.ReduceMin: "min"}


rule = registrar(RULES)


def _literal(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        r = repr(x)
        return r if ("." in r or "e" in r or "n" in r) else r + ".0"
    return str(x)


def type_text(t) -> str:
    if isinstance(t, ScalarType):
        return t.dtype.name
    s = f"{t.dtype.name}[{', '.join(map(str, t.shape))}]"
    if isinstance(t, TileType):
        if t.space != AUTO:
            s += f" {t.space}"
        if t.layout is not None:
            s += f' layout("{t.layout}")'
    else:
        s += " global"
    return s


class Printer:
    def __init__(self):
        self.names: dict[int, str] = {}
        self.counter = 0
        self.lines: list[str] = []
        self.indent = 1

    def name(self, v: N.Value) -> str:
        return self.names[v.id]

    def define(self, v: N.Value, same_as: N.Value | None = None) -> str:
        if same_as is not None:
            self.names[v.id] = self.names[same_as.id]
            return self.names[v.id]
        base = re.sub(r"_\d+$", "", v.name or "") or "v"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", base):
            base = "v"
        n = f"{base}_{self.counter}"
        self.counter += 1
        self.names[v.id] = n
        return n

    def emit(self, text: str):
        self.lines.append("    " * self.indent + text)

    def assign(self, v: N.Value, rhs: str):
        self.emit(f"{self.define(v)}: {type_text(v.type)} = {rhs};")

    def index(self, items) -> str:
        parts = []
        for it in items:
            if isinstance(it, N.At):
                parts.append(self.name(it.index))
            else:
                parts.append(f"{self.name(it.start)} : +{it.length}")
        return ", ".join(parts)

    def block(self, block: N.Block):
        for ins in block.instrs:
            fn = RULES.get(type(ins))
            if fn is None:
                raise BackendError(f"the IR printer has no rule for {type(ins).__name__}")
            fn(self, ins)


@rule(N.Const)
def _const(p, i):
    p.assign(i.out, _literal(i.value))


@rule(N.BlockIdx)
def _bid(p, i):
    p.assign(i.out, "block." + "xyz"[i.axis])


@rule(N.SizeOf)
def _size(p, i):
    p.assign(i.out, i.symbol)


@rule(N.Load)
def _load(p, i):
    kws = ""
    if i.src.is_global:
        if i.fill is not None:
            kws += f", fill={p.name(i.fill)}"
        if not i.masked:
            kws += ", masked=false"
        p.assign(i.out, f"load({p.name(i.src)}[{p.index(i.index)}]{kws})")
    else:
        p.assign(i.out, f"{p.name(i.src)}[{p.index(i.index)}]")


@rule(N.Store, N.AtomicAdd)
def _store(p, i):
    fn = "store" if isinstance(i, N.Store) else "atomic_add"
    kws = "" if i.masked else ", masked=false"
    p.emit(f"{fn}({p.name(i.dst)}[{p.index(i.index)}], {p.name(i.value)}{kws});")


@rule(N.Insert)
def _insert(p, i):
    p.assign(i.out, f"insert({p.name(i.dst)}[{p.index(i.index)}], {p.name(i.value)})")


@rule(N.Full)
def _full(p, i):
    t = i.out.type
    shape = ", ".join(map(str, t.shape))
    if i.value is None:
        p.assign(i.out, f"empty({t.dtype.name}, [{shape}])")
    else:
        p.assign(i.out, f"full({t.dtype.name}, [{shape}], {p.name(i.value)})")


@rule(N.Arange)
def _arange(p, i):
    p.assign(i.out, f"arange({i.out.shape[0]})")


@rule(N.Codebook)
def _codebook(p, i):
    p.assign(i.out, f"codebook({i.of.name}, {i.out.dtype.name})")


@rule(*_BINOPS)
def _binop(p, i):
    p.assign(i.out, f"{p.name(i.a)} {_BINOPS[type(i)]} {p.name(i.b)}")


@rule(N.Minimum, N.Maximum)
def _minmax(p, i):
    p.assign(i.out, f"{'min' if isinstance(i, N.Minimum) else 'max'}({p.name(i.a)}, {p.name(i.b)})")


@rule(N.Neg, N.Invert)
def _neg(p, i):
    p.assign(i.out, f"{'-' if isinstance(i, N.Neg) else '~'}{p.name(i.x)}")


@rule(*_CALL1)
def _call1(p, i):
    p.assign(i.out, f"{_CALL1[type(i)]}({p.name(i.x)})")


@rule(N.Where)
def _where(p, i):
    p.assign(i.out, f"where({p.name(i.cond)}, {p.name(i.a)}, {p.name(i.b)})")


@rule(N.Cast)
def _cast(p, i):
    sat = ", saturate=true" if i.saturate else ""
    p.assign(i.out, f"cast({p.name(i.x)}, {i.out.dtype.name}{sat})")


@rule(N.View)
def _view(p, i):
    p.assign(i.out, f"view({p.name(i.x)}, {i.out.dtype.name})")


@rule(N.Lookup)
def _lookup(p, i):
    p.assign(i.out, f"lookup({p.name(i.table)}, {p.name(i.codes)})")


@rule(N.Broadcast)
def _broadcast(p, i):
    p.assign(i.out, f"broadcast({p.name(i.x)}, [{', '.join(map(str, i.out.shape))}])")


@rule(N.ExpandDims)
def _expand(p, i):
    items = [":"] * len(i.x.shape)
    items.insert(i.axis, "None")
    p.assign(i.out, f"{p.name(i.x)}[{', '.join(items)}]")


@rule(N.Reshape)
def _reshape(p, i):
    p.assign(i.out, f"reshape({p.name(i.x)}, [{', '.join(map(str, i.out.shape))}])")


@rule(N.Permute)
def _permute(p, i):
    p.assign(i.out, f"permute({p.name(i.x)}, [{', '.join(map(str, i.perm))}])")


@rule(N.ConvertLayout)
def _convert(p, i):
    p.assign(i.out, p.name(i.x))


@rule(*_REDUCE)
def _reduce(p, i):
    p.assign(i.out, f"{_REDUCE[type(i)]}({p.name(i.x)}, axis={i.axis})")


@rule(N.Dot)
def _dot(p, i):
    p.assign(i.out, f"dot({p.name(i.a)}, {p.name(i.b)}, {p.name(i.acc)})")


@rule(N.Assume)
def _assume(p, i):
    p.emit(f"assume({p.name(i.cond)});")


@rule(N.Barrier)
def _barrier(p, i):
    p.emit("barrier();")


@rule(N.For)
def _for(p, i):
    for init, c, o in zip(i.inits, i.carried, i.outs):
        n = p.define(c)
        p.names[o.id] = n
        p.emit(f"{n}: {type_text(c.type)} = {p.name(init)};")
    var = p.define(i.var)
    p.emit(f"for {var} in range({p.name(i.start)}, {p.name(i.stop)}, {p.name(i.step)}) {{")
    p.indent += 1
    p.block(i.body)
    for c, y in zip(i.carried, i.yields):
        p.emit(f"{p.name(c)}: {type_text(c.type)} = {p.name(y)};")
    p.indent -= 1
    p.emit("}")


@rule(N.If)
def _if(p, i):
    names = [p.define(o) for o in i.outs]
    p.emit(f"if {p.name(i.cond)} {{")
    for blk, ys, last in ((i.then, i.then_yields, "} else {"), (i.orelse, i.else_yields, "}")):
        p.indent += 1
        p.block(blk)
        for n, o, y in zip(names, i.outs, ys):
            p.emit(f"{n}: {type_text(o.type)} = {p.name(y)};")
        p.indent -= 1
        p.emit(last)


def print_kernel(k: N.Kernel) -> str:
    p = Printer()
    for v in k.params:
        p.names[v.id] = v.name
    consts = ""
    if k.consts:
        consts = "<" + ", ".join(f"{n} = {_literal(v)}" for n, v in k.consts) + ">"
    params = ",\n".join(f"    {v.name}: {type_text(v.type)}" for v in k.params)
    grid = ", ".join(map(str, k.grid))
    head = f"kernel {k.name}{consts}(\n{params},\n) grid({grid}) warps({k.warps}) {{"
    p.block(k.body)
    return head + "\n" + "\n".join(p.lines) + ("\n" if p.lines else "") + "}\n"
