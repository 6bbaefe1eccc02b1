"""The core of the Triton code generator: names, padded shapes, masks, the rule registry, the kernel
signature and the assembly of the generated module.

Representation of IR values in the generated Triton code:

* a **scalar** is a 0-d tensor; a **tile** of static shape ``S`` is a tensor of the *padded* shape
  ``P(S)`` (every dimension rounded up to a power of two, as Triton's block shapes must be). Lanes
  outside ``S`` ("padding lanes") hold unspecified values: every rule that could observe them
  (reductions, dot, stores, gathers, views) masks or clamps them.
* element types ("repr", see :mod:`.reprs`): f16 and f32 as themselves, **bf16 as float32** holding
  bfloat16-exact values (each operation is computed in f32 and rounded to bfloat16, which is exact for
  + - * / sqrt), the compute integers as themselves, bool as ``int1``, and every storage type
  (sub-byte ints, small floats, fp8, e8m0, codebooks) as its ``uint8`` code.

Rules are registered per instruction class with ``@rule(Cls)`` (one per instruction, in the
``rules_*`` modules); a missing rule fails naming the instruction.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Callable

from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError
from vmlang.ir.registry import registrar
from vmlang.ir.types import BOOL, GlobalType

from . import lib
from . import reprs as R

RULES: dict[type, Callable] = {}


rule = registrar(RULES)


def pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def padded(shape) -> tuple[int, ...]:
    return tuple(pow2(d) for d in shape)


def shape_text(shape) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(map(str, shape)) + ")"


def expand(expr: str, axis: int, rank: int) -> str:
    """``expr`` (1-d) indexed to lie along ``axis`` of a rank-``rank`` tensor."""
    if rank == 1:
        return expr
    items = ["None"] * rank
    items[axis] = ":"
    return f"{expr}[{', '.join(items)}]"


_RESERVED = set(keyword.kwlist) | {"tl", "triton", "range", "min", "max", "abs", "float", "int", "len",
                                   "print", "True", "False", "None"}


def safe(name: str) -> str:
    name = re.sub(r"\W", "_", name) or "v"
    if name[0].isdigit():
        name = "v" + name
    if name in _RESERVED or name.startswith("vm_"):
        name += "_"
    return name


# ----------------------------------------------------------------------------------- signature
@dataclass
class Signature:
    """The generated kernel's arguments, in order (shared by the code generator and the launcher)."""
    tensors: list = field(default_factory=list)   # (param, pointer arg, [shape args], [stride args])
    sizes: list = field(default_factory=list)     # (symbol, arg name)
    scalars: list = field(default_factory=list)   # (param, arg name)

    def arg_names(self) -> list[str]:
        out = [t[1] for t in self.tensors]
        for _, _, shapes, strides in self.tensors:
            out += shapes + strides
        out += [a for _, a in self.sizes]
        out += [a for _, a in self.scalars]
        return out


def signature(kernel: N.Kernel) -> Signature:
    sig = Signature()
    scalar_names = {p.name for p in kernel.params if not isinstance(p.type, GlobalType)}
    used: set[str] = set()

    def unique(name: str) -> str:
        while name in used:
            name += "_"
        used.add(name)
        return name

    symbols = set()
    for p in kernel.params:
        if isinstance(p.type, GlobalType):
            base = safe(p.name)
            rank = len(p.type.dims)
            sig.tensors.append((p, unique(base + "_ptr"), [unique(f"{base}_shape{a}") for a in range(rank)],
                                [unique(f"{base}_stride{a}") for a in range(rank - 1)]))
            for d in p.type.dims:
                symbols |= d.symbols()
    for ins in N.walk(kernel.body):
        if isinstance(ins, N.SizeOf):
            symbols.add(ins.symbol)
    for s in sorted(symbols - scalar_names):
        sig.sizes.append((s, unique(safe(s))))
    for p in kernel.params:
        if not isinstance(p.type, GlobalType):
            sig.scalars.append((p, unique(safe(p.name))))
    return sig


# ----------------------------------------------------------------------------------- emitter
class Codegen:
    def __init__(self, kernel: N.Kernel):
        self.kernel = kernel
        self.sig = signature(kernel)
        self.lines: list[str] = []
        self.indent = 1
        self.names: dict[int, str] = {}
        self.consts: dict[int, object] = {}      # value id -> Python value of a constant
        self.producers: dict[int, N.Instr] = {}  # value id -> defining instruction
        self.loop_vars: dict[int, tuple] = {}    # loop variable id -> (start, step) values
        self.helpers: set[str] = set()
        self.extra_helpers: dict[str, str] = {}  # generated helpers (codebooks): name -> source
        self.taken: set[str] = set(self.sig.arg_names())
        self.counter = 0
        self.tensor_args = {p.id: (ptr, shapes, strides) for p, ptr, shapes, strides in self.sig.tensors}

    # -- names ------------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        base = safe(re.sub(r"_\d+$", "", hint or "") or "t")
        while True:
            n = f"{base}_{self.counter}"
            self.counter += 1
            if n not in self.taken:
                self.taken.add(n)
                return n

    def name(self, v: N.Value) -> str:
        try:
            return self.names[v.id]
        except KeyError:
            raise BackendError(f"triton codegen: value {v.name or v.id} is used before it is defined") from None

    def define(self, v: N.Value, expr: str | None = None) -> str:
        n = self.fresh(v.name or "v")
        self.names[v.id] = n
        if expr is not None:
            if v.is_scalar and v.dtype == BOOL and not expr.startswith("tl.full(("):
                expr = f"{self.use('vm_bool')}({expr})"
            self.emit(f"{n} = {expr}")
        return n

    def tmp(self, expr: str, hint: str = "t") -> str:
        n = self.fresh(hint)
        self.emit(f"{n} = {expr}")
        return n

    def emit(self, text: str):
        self.lines.append("    " * self.indent + text)

    def comment(self, text: str):
        self.emit("# " + text)

    def use(self, helper: str) -> str:
        if helper not in lib.HELPERS:
            raise BackendError(f"triton codegen: no helper {helper}")
        self.helpers.add(helper)
        return helper

    # -- values -----------------------------------------------------------------------------
    def const_of(self, v: N.Value):
        """The compile-time value of ``v`` if it is a constant, else None."""
        return self.consts.get(v.id)

    def pshape(self, v: N.Value) -> tuple[int, ...]:
        return padded(v.shape) if v.is_tile else ()

    def lane_mask(self, shape) -> str | None:
        """An expression for the lanes of a padded tile of logical ``shape`` that lie inside it, or
        None when the shape needs no padding."""
        P = padded(shape)
        parts = [expand(f"(tl.arange(0, {p}) < {s})", a, len(shape))
                 for a, (s, p) in enumerate(zip(shape, P)) if s != p]
        if not parts:
            return None
        return self.tmp(" & ".join(parts), "lanes")

    def index_pos(self, item: N.IndexItem, length_axis: int | None, rank: int) -> str:
        """Positions selected by an index item: a scalar (At) or a 1-d range expanded along output
        axis ``length_axis`` of a rank-``rank`` result."""
        if isinstance(item, N.At):
            return self.name(item.index)
        start = self.name(item.start)
        ar = f"tl.arange(0, {pow2(item.length)})"
        c = self.const_of(item.start)
        e = ar if c == 0 else f"{start} + {ar}"
        if rank > 1:
            e = expand(f"({e})", length_axis, rank)
        return e

    # -- blocks -----------------------------------------------------------------------------
    def block(self, block: N.Block):
        start = len(self.lines)
        for ins in block.instrs:
            fn = RULES.get(type(ins))
            if fn is None:
                raise BackendError(f"the triton backend has no rule for {type(ins).__name__}")
            for r in ins.results:
                self.producers[r.id] = ins
            fn(self, ins)
        if len(self.lines) == start:
            self.emit("pass")

    # -- the module -------------------------------------------------------------------------
    def prologue(self):
        """Turn the raw arguments into typed 0-d values (sizes are int32; scalars arrive as their
        bit patterns and are reinterpreted here)."""
        for p, ptr, _, _ in self.sig.tensors:
            if p.dtype in R.REINTERPRETED_POINTERS:   # passed as signed torch storage
                self.emit(f"{ptr} = {ptr}.to(tl.pointer_type({R.storage_type(p.dtype)}), bitcast=True)")
        for sym, arg in self.sig.sizes:
            self.emit(f"{arg} = {arg} + tl.zeros((), tl.int32)")
        for p, arg in self.sig.scalars:
            self.names[p.id] = arg
            self.emit(f"{arg} = {R.scalar_from_bits(p.dtype, arg)}")

    def generate(self) -> str:
        k = self.kernel
        self.prologue()
        self.block(k.body)
        body = "\n".join(self.lines)
        consts = ", ".join(f"{n}={v!r}" for n, v in k.consts)
        head = [
            f"# Triton kernel generated by vmlang from kernel {k.name}"
            + (f"<{consts}>" if consts else "") + (f" ({k.loc.file})" if k.loc and k.loc.file else ""),
            "# Tiles are padded to power-of-two shapes; bf16 values live in float32 registers; storage",
            "# dtypes (sub-byte ints, small floats, fp8, e8m0, codebooks) are uint8 codes. Sub-byte",
            "# tensors are LSB-first bit streams along their last axis, rows padded to whole bytes.",
            "import triton",
            "import triton.language as tl",
            "",
            "",
        ]
        dns = [a for _, a in self.sig.scalars]
        deco = f"@triton.jit(do_not_specialize={dns!r})" if dns else "@triton.jit"
        params = []
        for p, ptr, shapes, strides in self.sig.tensors:
            params.append(f"    {ptr},  # {p.name}: {p.type}")
        for p, ptr, shapes, strides in self.sig.tensors:
            params.append("    " + ", ".join(shapes + strides) + ",")
        if self.sig.sizes:
            params.append("    " + ", ".join(a for _, a in self.sig.sizes) + ",  # size symbols")
        for p, arg in self.sig.scalars:
            params.append(f"    {arg},  # {p.name}: {p.dtype} (bit pattern)")
        fn = [deco, f"def {safe(k.name)}(", *params, "):", body]
        tail = []
        helpers = [lib.helper_source(h).rstrip() for h in lib.closure(self.helpers)]
        extra = []
        for g, lines in lib.GLOBALS.items():
            if any(re.search(rf"\b{g}\b", h) for h in helpers):
                extra += lines
        imports = [line for line in extra if line.startswith(("import ", "from "))]
        head[4:6] = (sorted(line for line in imports if line.startswith("import ")) + head[4:6]
                     + sorted(line for line in imports if line.startswith("from ")))
        consts_lines = [line for line in extra if line not in imports]
        if consts_lines:
            head[-2:-2] = [""] + consts_lines
        for h in helpers:
            tail += ["", "", h]
        for name, src in sorted(self.extra_helpers.items()):
            tail += ["", "", src.rstrip()]
        return "\n".join(head + fn + tail) + "\n"


def generate(kernel: N.Kernel) -> str:
    # the rule modules register themselves on import
    from . import rules_cast, rules_compute, rules_control, rules_memory, rules_shape  # noqa: F401
    return Codegen(kernel).generate()
