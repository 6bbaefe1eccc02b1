"""Hypothesis strategies for differential fuzzing: random *valid* .vm kernels plus random inputs.

:func:`cases` draws a :class:`Case`: the kernel as .vm **text** (so a shrunk counterexample is directly
the program to print), the launch sizes, and the codes of every argument.

The kernel is built by a small typed generator (:class:`KernelGen`) that keeps a model of every value
it defined (dtype, static shape, memory space, and a few "may" flags) and only writes programs the
language accepts; ``vm.compile_source`` must accept every one of them (the tests assert it: a rejected
kernel is a generator bug). What it draws:

* a 1-d or 2-d launch over global tensors of odd sizes (0, 1, 3, 17, 100, ...) with tile sizes that leave
  masked edges (tile 16 over N = 17; odd tiles such as 3, 5, 6, 12 too), 1 to 8 warps;
* inputs of any dtype of the whole type table (``all_dtypes()``: sub-byte ints, every
  ``float{N}_e{E}m{M}``, the fp8s, e8m0, nf4, f16/bf16/f32, int8..32, uint8..32, bool), loaded with
  shifted windows (reading before/after the tensor), literal fills and, where in bounds, ``masked=false``;
  some are packed byte/word tensors viewed as a narrower dtype (the dequantization pattern);
* chains of elementwise ops on compute dtypes (+ - * / % min max, comparisons, and/or/not, & | ^ ~,
  shifts by literals or masked amounts, neg, abs, sqrt) with weak literals and promotion, ``where`` on any dtype,
  casts between any two dtypes (with and without ``saturate=true``), ``view`` between widths whose bits
  divide the row, ``lookup`` into ``codebook(...)`` tables or loaded tables, reductions (sum/max/min over
  an axis), ``[:, None]``, ``broadcast``, ``reshape``, ``trans``, static and dynamic tile slices, element
  reads, ``insert``, ``zeros/full/arange/empty``, ``dot`` (int8 and float), ``for`` loops with carried
  values, run-time and compile-time ``if``, type and placement annotations, ``assume``, and integer
  ``atomic_add``;
* one output tensor per stored value; each block writes its own region (no two blocks write one
  element, except the commutative integer ``atomic_add``), masked at the edges.

Values whose bits conforming backends may legitimately disagree on carry flags, which the runner's
comparison uses: ``nan_loose`` (NaN payload/sign: any float arithmetic), ``zero_loose`` (sign of zero:
float min/max), and ``approx`` (exp/exp2/log/rsqrt, float ``%``, float ``sum`` and float ``dot``: the
approximate operations of the rule in tests/support.py; such a value is only ever stored, never used
further, and sums, dots and fmods store a companion ``sum(abs(x))`` / ``dot(abs(a), abs(b))`` /
``abs(dividend)`` that gives the scale of the tolerance). Raw bits (``view``, raw ``lookup`` codes) are only taken of values without those flags;
a float arithmetic result is first scrubbed with ``where(x != x, 0.0, x) + 0.0``.

Inputs: per tensor a seed, a value profile (small integers, normal-ish values, uniform codes, boundary
values, codes next to the rounding midpoints of the casts in the kernel) and a few pinned special codes
(+-max finite, smallest subnormal, -0, +-Inf and NaN where the format has them); never all zeros.

Not generated (yet): float ``atomic_add`` (its result depends on the order of the blocks), ``while``,
``barrier``, ``layout("...")`` annotations, reductions over bool, stores inside loops, scalar parameters
used as sizes.

Known VM bugs the generator steers around (each has a strict xfail in ``test_known_bugs.py``): the VM
does not keep bfloat16 NaN payloads (bf16 values count as ``nan_loose``). The generator also only makes
``codebook(of, dtype)`` tables whose values fit ``dtype`` (the others are compile-time errors now).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
from hypothesis import strategies as st

from vmlang.ir import dtypes as D
from vmlang.ir.types import BOOL, COMPUTE, promote

ALL_DTYPES: tuple = tuple(D.all_dtypes())
STORAGE_DTYPES: tuple = tuple(d for d in ALL_DTYPES if d not in COMPUTE)
SMALL_DTYPES: tuple = tuple(d for d in ALL_DTYPES if d.nbits <= 8)     # codebook() sources
NOTABLE_DTYPES: tuple = tuple(D.dtype(n) for n in (
    "float4_e2m1", "float8_e4m3", "float8_e5m2", "float8_e8m0", "nf4", "int4", "uint4", "float6_e2m3",
    "float6_e3m2", "int3", "int2", "uint1", "int1", "float3_e1m1", "int5", "int6", "int7", "uint3"))

GLOBAL_SIZES = (17, 1, 3, 16, 2, 5, 7, 8, 31, 33, 64, 100, 0)
ROW_SIZES = (3, 1, 2, 5, 8, 17, 4)
TILE_SIZES = (16, 4, 8, 1, 2, 32, 3, 5, 6, 12)
ROW_TILES = (4, 1, 2, 3, 8)
MAX_BLOCKS = 40
MAX_TILE = 1024

INT_LITS = (1, 2, 0, 3, 7, -1, 5, 100, -100, 127, -128, 255, 1000, 32767, -32768, 65535, 2 ** 31 - 1, -2 ** 31,
            2 ** 32 - 1)
FLOAT_LITS = ("1.0", "2.0", "0.5", "0.0", "3.0", "-1.5", "0.1", "-0.0", "1e-3", "0.25", "-2.0", "65504.0",
              "1e-07", "3e38", "1e10", "448.0")
#: unit roundoff of the float compute dtypes
UNIT = {D.float16: 2.0 ** -11, D.bfloat16: 2.0 ** -8, D.float32: 2.0 ** -24}


# ============================================================================================ model
@dataclass(frozen=True)
class Approx:
    """How a stored approximate value is compared (see the runner): ``kind`` is "unary", "sum" or "dot";
    ``terms`` the number of added terms; ``scale`` the name of the companion value holding the sum of the
    magnitudes of the terms."""
    kind: str
    terms: int = 1
    scale: Optional[str] = None


@dataclass(frozen=True)
class Var:
    name: str
    dt: D.DType
    shape: tuple
    space: str = "auto"
    nan_loose: bool = False     # NaN payload / sign may differ between conforming backends
    zero_loose: bool = False    # the sign of a zero may differ
    poison: bool = False        # may hold uninitialised (empty) elements
    approx: Optional[Approx] = None

    @property
    def compute(self) -> bool:
        return self.dt in COMPUTE

    @property
    def exact_bits(self) -> bool:
        """Raw bits are the same on every conforming backend (may be viewed / used as raw codes)."""
        return not (self.nan_loose or self.zero_loose or self.poison or self.approx)


@dataclass
class Param:
    """One kernel argument: a global tensor ("in", "out", "scale" = companion output) or a scalar."""
    name: str
    dt: D.DType
    role: str
    dims: Optional[tuple] = None        # dimension texts (size symbols) for tensors
    shape: Optional[tuple] = None       # launch shape (elements)
    codes: Optional[np.ndarray] = None  # unsigned codes (inputs and the initial contents of outputs)
    value: object = None                # scalars
    style: str = "tensor"               # "tensor" (vm.Tensor), "native" (numpy dtype) or "packed" (uint8)
    styles: tuple = ("tensor",)         # the styles this parameter can be passed in
    var: Optional[Var] = None           # outputs: the value stored
    hint: tuple = ()                    # inputs: dtypes the kernel casts to (for midpoint codes)


@dataclass
class Case:
    source: str
    params: list
    sizes: dict
    features: frozenset = frozenset()

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def outputs(self) -> list:
        return [p for p in self.params if p.role in ("out", "scale")]

    def __repr__(self) -> str:
        return f"Case(<{len(self.params)} params, sizes {self.sizes}>)\n" + self.source

    def _repr_pretty_(self, p, cycle):     # what Hypothesis prints for the falsifying example
        p.text("Case:\n" + self.source + self.summary())

    def summary(self) -> str:
        """Sizes and a description of every argument (for failure messages)."""
        lines = ["sizes: " + ", ".join(f"{k}={v}" for k, v in self.sizes.items())]
        for p in self.params:
            if p.role == "scalar":
                lines.append(f"  {p.name}: {p.dt.name} = {p.value!r}")
                continue
            lines.append(f"  {p.name}: {p.dt.name}{list(p.shape)} ({p.role}, passed as {p.style}) "
                         f"{describe_codes(p.dt, p.codes)}")
        return "\n".join(lines)


def describe_codes(dt, codes: np.ndarray, limit: int = 12) -> str:
    flat = np.asarray(codes).reshape(-1)
    if flat.size == 0:
        return "(empty)"
    vals = dt.decode(flat[:limit].astype(np.int64))
    items = ", ".join(f"{_fmt(v)}" for v in vals)
    more = f", ... ({flat.size} elements)" if flat.size > limit else ""
    hexes = " ".join(f"{int(c):x}" for c in flat[:limit])
    return f"values [{items}{more}] codes [{hexes}{' ...' if flat.size > limit else ''}]"


def _fmt(v: float) -> str:
    if v == 0 and math.copysign(1, v) < 0:
        return "-0.0"
    if v.is_integer() and abs(v) < 2 ** 53:
        return str(int(v))
    return repr(float(v))


# ============================================================================================ helpers
def bshape(*shapes) -> Optional[tuple]:
    """NumPy broadcasting of static shapes (``()`` = scalar); None when they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def float_lit_ok(text: str, dt) -> bool:
    v = float(text)
    try:
        r = float(dt.decode(dt.encode([v]))[0])
    except ValueError:
        return False
    return math.isfinite(r)


def value_literal(dt, v: float) -> str:
    """An exact literal for value ``v`` of dtype ``dt`` (bool: true/false)."""
    if dt == BOOL:
        return "true" if v else "false"
    if dt.is_int:
        return _paren(str(int(v)))
    return _paren(repr(float(v)))


def _paren(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def finite_values(dt) -> np.ndarray:
    vals = dt.values if dt.nbits <= 16 else None
    if vals is None:
        return np.array([0.0, 1.0, -1.0, 2.0, 0.5])
    return np.unique(vals[np.isfinite(vals)])


def codebook_fits(of, dt) -> bool:
    """codebook(of, dt) is computable: every entry rounds into dt (see the known CastError bug)."""
    vals = of.values
    try:
        dt.encode(vals, saturate=False)
    except ValueError:
        return False
    return True


# ============================================================================================ generator
class KernelGen:
    """Writes one random kernel; see the module docstring. ``draw`` is Hypothesis' draw function."""

    def __init__(self, draw, allow_approx: bool = True, allow_errors: bool = True, first_dtype=None):
        self.draw = draw
        self.first_dtype = first_dtype
        self.allow_approx = allow_approx
        self.allow_errors = allow_errors
        self.lines: list[str] = []
        self.indent = 1
        self.env: dict[str, Var] = {}
        self.counter = 0
        self.params: list[Param] = []
        self.sizes: dict[str, int] = {}
        self.features: set[str] = set()
        self.cast_targets: set = set()
        self.depth = 0
        self.n_sym = 0
        self.reassigned: list[str] = []     # names given new values by update(), in order
        self.used: set[str] = set()          # names some later value depends on

    # -------------------------------------------------------------------------------- drawing
    def choice(self, seq):
        seq = list(seq)
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    def flag(self, p: float) -> bool:
        """True with probability ``p``; shrinks to False."""
        return self.draw(st.integers(0, 99)) >= round(100 * (1 - p))

    def intin(self, a: int, b: int) -> int:
        return self.draw(st.integers(a, b))

    def fresh(self, prefix="v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def fresh_sym(self) -> str:
        self.n_sym += 1
        return f"P{self.n_sym}"

    def pick(self, pred: Callable[[Var], bool]) -> Optional[Var]:
        cands = [v for v in self.env.values() if pred(v)]
        if not cands:
            return None
        return cands[self.draw(st.integers(0, len(cands) - 1))]

    def any_dtype(self, compute_bias: float = 0.5):
        """A dtype: a compute dtype with probability ``compute_bias``, else one of the formats that matter
        most (fp4/fp6/fp8, e8m0, nf4, int4, ...) or any dtype of the table."""
        if self.flag(1 - compute_bias):
            if self.flag(0.4):
                return self.choice(NOTABLE_DTYPES)
            return self.choice(ALL_DTYPES)
        return self.choice((D.float32, D.float16, D.int32, D.bfloat16, D.int8, D.uint8, D.int16, D.uint16,
                            D.uint32))

    # -------------------------------------------------------------------------------- emitting
    def emit(self, text: str):
        self.lines.append("    " * self.indent + text)

    def define(self, expr: str, var: Var, annotate: bool = True) -> Var:
        """Emit ``name = expr;`` (sometimes with a type or placement annotation) and bind the var."""
        annot = ""
        if annotate and self.flag(0.1):
            self.features.add("annotation")
            if var.shape:
                annot = f": {var.dt.name}[{', '.join(map(str, var.shape))}]"
            else:
                annot = f": {var.dt.name}"
        elif annotate and var.shape and var.space == "auto" and self.flag(0.04):
            self.features.add("placement")
            space = self.choice(("shared", "register"))
            annot = f": {space}"
            var = replace(var, space=space)
        self.emit(f"{var.name}{annot} = {expr};")
        self.env[var.name] = var
        return var

    def new(self, dt, shape, deps=(), space="auto", **flags) -> Var:
        """A fresh var whose flags are the OR of its dependencies' (overridable)."""
        self.used.update(d.name for d in deps)
        nan = any(d.nan_loose for d in deps)
        zero = any(d.zero_loose for d in deps)
        poison = any(d.poison for d in deps)
        return Var(self.fresh(), dt, tuple(shape), space, flags.get("nan_loose", nan),
                   flags.get("zero_loose", zero), flags.get("poison", poison), flags.get("approx"))

    # -------------------------------------------------------------------------------- literals
    def int_lit(self, dt, nonzero=False) -> Optional[str]:
        c = [x for x in INT_LITS if dt.min <= x <= dt.max and (x != 0 or not nonzero)]
        return _paren(str(self.choice(c))) if c else None

    def float_lit(self, dt) -> str:
        return _paren(self.choice([t for t in FLOAT_LITS if float_lit_ok(t, dt)]))

    def lit_for(self, dt, nonzero=False) -> str:
        if dt == BOOL:
            return self.choice(("true", "false"))
        if dt.is_int:
            return self.int_lit(dt, nonzero)
        t = self.float_lit(dt)
        while nonzero and float(t) == 0:
            t = self.float_lit(dt)
        return t

    def storage_lit(self, dt) -> str:
        vals = finite_values(dt)
        if dt == D.float8_e8m0:
            vals = vals[vals > 0]
        return value_literal(dt, float(self.choice(vals[:64]) if len(vals) <= 64 else self.choice(vals)))

    # -------------------------------------------------------------------------------- predicates
    @staticmethod
    def usable(v: Var) -> bool:
        return v.approx is None and not v.poison

    def compat(self, shape):
        return lambda v: bshape(v.shape, shape) is not None

    # ============================================================================ kernel skeleton
    def kernel(self) -> Case:
        self.rank = self.choice((2, 1))
        N = self.choice(GLOBAL_SIZES)
        BN = self.choice(TILE_SIZES)
        if self.rank == 2:
            M = self.choice(ROW_SIZES)
            BM = self.choice(ROW_TILES)
            gy = -(-M // BM)
        else:
            M, BM, gy = None, None, 1
        gx = -(-N // BN)
        if gx * gy > MAX_BLOCKS:
            N = min(N, (MAX_BLOCKS // gy) * BN)
            gx = -(-N // BN)
        self.N, self.BN, self.M, self.BM, self.gx, self.gy = N, BN, M, BM, gx, gy
        self.sizes["N"] = N
        if self.rank == 2:
            self.sizes["M"] = M
        self.main = (BM, BN) if self.rank == 2 else (BN,)
        warps = self.choice((4, 1, 2, 8))

        # offsets
        self.emit("c0 = block.x * BN;")
        self.env["c0"] = Var("c0", D.int32, ())
        if self.rank == 2:
            self.emit("r0 = block.y * BM;")
            self.env["r0"] = Var("r0", D.int32, ())

        n_in = self.intin(1, 3)
        for i in range(n_in):
            self.input(i)
        for i in range(self.intin(0, 2)):
            self.scalar_param(i)
        if self.flag(0.1):
            self.assume()

        for _ in range(self.intin(1, 10)):
            self.statement()

        self.outputs()
        consts = f"<BN = {BN}, BM = {BM}>" if self.rank == 2 else f"<BN = {BN}>"
        params = ",\n".join(f"    {self.param_decl(p)}" for p in self.params)
        grid = "cdiv(N, BN), cdiv(M, BM)" if self.rank == 2 else "cdiv(N, BN)"
        head = f"kernel fuzz{consts}(\n{params},\n) grid({grid}) warps({warps}) {{"
        source = head + "\n" + "\n".join(self.lines) + "\n}\n"
        for p in self.params:
            if p.role == "in":
                p.hint = tuple(sorted(self.cast_targets, key=lambda d: d.name))
        return Case(source, self.params, dict(self.sizes), frozenset(self.features))

    def param_decl(self, p: Param) -> str:
        if p.role == "scalar":
            return f"{p.name}: {p.dt.name}"
        return f"{p.name}: {p.dt.name}[{', '.join(p.dims)}] global"

    def dims_for(self, last_sym: str):
        return ("M", last_sym) if self.rank == 2 else (last_sym,)

    # -------------------------------------------------------------------------------- inputs
    def input(self, i: int):
        name = f"x{i}"
        packed = i > 0 and self.flag(0.25)     # x0 binds the size symbols N (and M)
        if packed:
            # a byte/word tensor read as a narrower dtype: the last tile axis holds S elements of the
            # container, which view() turns into BN elements of the target
            target = self.choice([d for d in STORAGE_DTYPES if d.nbits < 8] + [D.uint8, D.int8, D.float16])
            conts = [c for c in (D.uint8, D.int8, D.uint16, D.int32, D.uint32, D.float16, D.float32)
                     if (self.BN * target.nbits) % c.nbits == 0]
            if not conts:
                packed = False
        if packed:
            cont = self.choice(conts)
            S = self.BN * target.nbits // cont.nbits
            sym = self.fresh_sym()
            n_elems = -(-self.N * target.nbits // cont.nbits) if self.N else 0
            if self.flag(0.2):
                n_elems = max(0, n_elems - 1)
            self.sizes[sym] = n_elems
            shape = (self.M, n_elems) if self.rank == 2 else (n_elems,)
            self.params.append(Param(name, cont, "in", self.dims_for(sym), shape))
            t = self.load(name, cont, S, col=f"block.x * {S}")
            if t is not None and self.flag(0.9):
                self.features.add("packed-view")
                v = self.new(target, t.shape[:-1] + (self.BN,), deps=(t,), space=t.space,
                             nan_loose=target == D.bfloat16)
                self.define(f"view({t.name}, {target.name})", v)
            return
        dt = self.first_dtype if i == 0 and self.first_dtype is not None else self.any_dtype(0.45)
        shape = (self.M, self.N) if self.rank == 2 else (self.N,)
        self.params.append(Param(name, dt, "in", self.dims_for("N"), shape))
        self.load(name, dt, self.BN, col="c0")

    def load(self, name: str, dt, S: int, col: str) -> Optional[Var]:
        """Load the tile of this block from input ``name`` (shifted windows, fills, unmasked loads)."""
        dr = self.choice((0, 0, 1, -1, 2)) if self.flag(0.25) else 0
        dc = self.choice((0, 1, -1, 3, -2)) if self.flag(0.3) else 0
        c = col + (f" + {dc}" if dc > 0 else f" - {-dc}" if dc < 0 else "")
        if self.rank == 2:
            r = "r0" + (f" + {dr}" if dr > 0 else f" - {-dr}" if dr < 0 else "")
            index = f"{r} : +BM, {c} : +{'BN' if S == self.BN else S}"
            shape = (self.BM, S)
        else:
            index = f"{c} : +{'BN' if S == self.BN else S}"
            shape = (S,)
        kws = ""
        has_zero = dt != D.float8_e8m0
        p = self.params[-1]
        full_last = p.shape[-1]
        in_bounds = dr == 0 and dc == 0 and full_last % S == 0 and \
            (self.rank == 1 or self.M % self.BM == 0) and self.gx * S == full_last
        if in_bounds and self.flag(0.3):
            kws = ", masked=false"
            self.features.add("unmasked-load")
        elif not has_zero or self.flag(0.3):
            if not has_zero and self.allow_errors and self.flag(0.05):
                pass   # no fill: an out-of-bounds position is a VM error
            else:
                kws = f", fill={self.storage_lit(dt) if dt not in COMPUTE else self.lit_for(dt)}"
                self.features.add("fill")
        v = Var(self.fresh("t"), dt, shape, nan_loose=dt == D.bfloat16)
        return self.define(f"load({name}[{index}]{kws})", v, annotate=False)

    def scalar_param(self, i: int):
        dt = self.choice((D.int32, D.float32, D.float16, BOOL, D.uint8, D.int16, D.bfloat16, D.uint32, D.int8,
                          D.uint16))
        name = f"s{i}"
        self.params.append(Param(name, dt, "scalar"))
        self.env[name] = Var(name, dt, (), nan_loose=dt == D.bfloat16)
        self.features.add("scalar-param")

    def assume(self):
        if self.rank == 2 and self.flag(0.5):
            self.emit("assume(BM >= 1);")          # compile-time assumption
        else:
            self.emit(f"assume(N >= {self.N});")     # checked by the VM at run time
        self.features.add("assume")

    # ============================================================================ statements
    STATEMENTS = ("arith", "cast", "compare", "where", "unary", "reduce", "expand", "bitwise", "shift",
                  "view", "lookup", "logic", "approx", "create", "slice", "reshape", "insert", "scalar",
                  "loop", "if", "dot", "cast", "arith", "reduce", "where")

    def statement(self):
        for _ in range(4):
            kind = self.choice(self.STATEMENTS)
            if kind in ("loop", "if") and self.depth >= 2:
                continue
            if getattr(self, "op_" + kind)():
                self.features.add(kind)
                return

    # -------------------------------------------------------------------------------- arithmetic
    def op_arith(self) -> bool:
        a = self.pick(lambda v: v.compute and self.usable(v))
        if a is None:
            return False
        op = self.choice(("+", "-", "*", "/", "%", "min", "max"))
        deps = [a]
        if self.flag(0.35):
            if a.dt.is_int and self.flag(0.15):
                lit, rdt = self.float_lit(D.float32), D.float32     # int with a float literal: f32
            else:
                lit, rdt = self.lit_for(a.dt, nonzero=op in ("/", "%") and a.dt.is_int), a.dt
            btext, shape = lit, a.shape
        else:
            b = self.pick(lambda v: v.compute and self.usable(v) and bshape(a.shape, v.shape) is not None)
            if b is None:
                return False
            deps.append(b)
            rdt = promote(a.dt, b.dt)
            btext = b.name
            if op in ("/", "%") and rdt.is_int and not (self.allow_errors and self.flag(0.1)):
                btext = f"({b.name} | 1)"      # never divides by zero
            shape = bshape(a.shape, b.shape)
        atext = a.name
        if self.flag(0.3) and not (op == "%" and rdt.is_float):
            atext, btext = btext, atext
            if op in ("/", "%") and rdt.is_int and len(deps) == 1 and not (self.allow_errors and self.flag(0.1)):
                btext = f"({a.name} | 1)"
        expr = f"{op}({atext}, {btext})" if op in ("min", "max") else f"{atext} {op} {btext}"
        fl = rdt.is_float
        if op == "%" and fl:
            # float fmod may be computed approximately (tests/support.py): a stored terminal value, with
            # the magnitude of the dividend as the scale of its tolerance
            if not self.allow_approx:
                return False
            scale = self.new(a.dt, shape, [a], nan_loose=True, zero_loose=True, approx=Approx("scale", 1))
            v = self.new(rdt, shape, deps, nan_loose=True, zero_loose=True, approx=Approx("fmod", 1, scale.name))
            self.define(expr, v, annotate=False)
            mag = f"abs({a.name})"
            self.define(mag if a.shape == shape else f"broadcast({mag}, [{', '.join(map(str, shape))}])", scale,
                        annotate=False)
            self.features.add("approx-fmod")
            return True
        v = self.new(rdt, shape, deps, nan_loose=fl or any(d.nan_loose for d in deps) and fl,
                     zero_loose=fl and (op in ("min", "max") or any(d.zero_loose for d in deps)))
        self.define(expr, v)
        return True

    def op_unary(self) -> bool:
        a = self.pick(lambda v: v.compute and self.usable(v))
        if a is None:
            return False
        op = self.choice(("-", "abs", "~") if a.dt.is_int else ("-", "abs", "sqrt"))
        expr = f"{op}({a.name})" if op in ("abs", "sqrt") else f"{op}{a.name}"
        fl = a.dt.is_float
        v = self.new(a.dt, a.shape, [a], space=a.space if a.shape else "auto", nan_loose=fl,
                     zero_loose=fl and a.zero_loose)
        self.define(expr, v)
        return True

    def op_approx(self) -> bool:
        if not self.allow_approx:
            return False
        a = self.pick(lambda v: v.compute and v.dt.is_float and self.usable(v))
        if a is None:
            return False
        fn = self.choice(("exp", "log", "exp2", "rsqrt"))
        v = self.new(a.dt, a.shape, [a], space=a.space if a.shape else "auto", nan_loose=True, zero_loose=True,
                     approx=Approx("unary"))
        self.define(f"{fn}({a.name})", v, annotate=False)
        self.features.add(f"approx-{fn}")
        return True

    def op_compare(self) -> bool:
        a = self.pick(lambda v: (v.compute or v.dt == BOOL) and self.usable(v))
        if a is None:
            return False
        if a.dt == BOOL:
            op = self.choice(("==", "!="))
        else:
            op = self.choice(("<", "==", ">", "<=", ">=", "!="))
        if self.flag(0.4) or a.dt == BOOL and self.flag(0.5):
            btext, shape, deps = self.lit_for(a.dt), a.shape, [a]
        else:
            b = self.pick(lambda v: self.usable(v) and bshape(a.shape, v.shape) is not None and
                          ((v.compute and a.compute) or (v.dt == BOOL and a.dt == BOOL)))
            if b is None:
                return False
            btext, shape, deps = b.name, bshape(a.shape, b.shape), [a, b]
        v = self.new(BOOL, shape, deps, nan_loose=False, zero_loose=False)
        self.define(f"{a.name} {op} {btext}", v)
        return True

    def op_logic(self) -> bool:
        a = self.pick(lambda v: v.dt == BOOL and self.usable(v))
        if a is None:
            return False
        if self.flag(0.25):
            v = self.new(BOOL, a.shape, [a], space=a.space if a.shape else "auto")
            self.define(f"not {a.name}", v)
            return True
        b = self.pick(lambda v: v.dt == BOOL and self.usable(v) and bshape(a.shape, v.shape) is not None)
        if b is None:
            return False
        op = self.choice(("and", "or", "&", "|", "^"))
        v = self.new(BOOL, bshape(a.shape, b.shape), [a, b])
        self.define(f"{a.name} {op} {b.name}", v)
        return True

    def op_bitwise(self) -> bool:
        a = self.pick(lambda v: v.compute and v.dt.is_int and self.usable(v))
        if a is None:
            return False
        op = self.choice(("&", "|", "^"))
        if self.flag(0.4):
            v = self.new(a.dt, a.shape, [a])
            self.define(f"{a.name} {op} {self.int_lit(a.dt)}", v)
            return True
        b = self.pick(lambda v: v.compute and v.dt.is_int and self.usable(v) and bshape(a.shape, v.shape) is not None)
        if b is None:
            return False
        v = self.new(promote(a.dt, b.dt), bshape(a.shape, b.shape), [a, b])
        self.define(f"{a.name} {op} {b.name}", v)
        return True

    def op_shift(self) -> bool:
        a = self.pick(lambda v: v.compute and v.dt.is_int and self.usable(v))
        if a is None:
            return False
        op = self.choice(("<<", ">>"))
        r = self.intin(0, 3)
        deps = [a]
        if r <= 1:
            amt = self.choice([k for k in range(0, a.dt.nbits + 3) if k <= a.dt.max])
            btext, shape = str(amt), a.shape
        else:
            b = self.pick(lambda v: v.compute and v.dt.is_int and self.usable(v) and
                          bshape(a.shape, v.shape) is not None)
            if b is None:
                return False
            deps.append(b)
            shape = bshape(a.shape, b.shape)
            if r == 2 or not self.allow_errors:
                mask = self.choice([m for m in (7, 15, 31, 63) if m <= b.dt.max])
                btext = f"({b.name} & {mask})"
            else:
                btext = b.name         # may be negative: >> reports it, << gives 0
        v = self.new(a.dt, shape, deps)
        self.define(f"{a.name} {op} {btext}", v)
        return True

    # -------------------------------------------------------------------------------- conversions
    def op_cast(self) -> bool:
        a = self.pick(self.usable)
        if a is None:
            return False
        dt = self.any_dtype(0.5)
        sat = self.flag(0.6) or not self.allow_errors
        self.cast_targets.add(dt)
        text = f"cast({a.name}, {dt.name}{', saturate=true' if sat else ''})"
        fl = dt.is_float
        v = self.new(dt, a.shape, [a], space=a.space if a.shape else "auto",
                     nan_loose=fl and (a.dt.is_float or dt == D.bfloat16),
                     zero_loose=fl and a.zero_loose)
        self.define(text, v)
        if dt.nbits < 8 or dt not in COMPUTE:
            self.features.add("cast-to-storage")
        return True

    def scrub(self, a: Var) -> Optional[Var]:
        """A copy of a float compute value without NaN and -0 (so its bits are the same everywhere)."""
        if a.exact_bits:
            return a
        if a.approx or a.poison or not (a.compute and a.dt.is_float):
            return None
        v = self.new(a.dt, a.shape, [a], nan_loose=False, zero_loose=False)
        v = self.define(f"where({a.name} != {a.name}, 0.0, {a.name}) + 0.0", v)   # may be placed in shared
        self.features.add("scrub")
        return v

    def op_view(self) -> bool:
        a = None
        if self.flag(0.3):       # prefer a float arithmetic result: its NaNs and -0s are scrubbed first
            a = self.pick(lambda v: v.shape and self.usable(v) and not v.exact_bits and v.compute and v.dt.is_float)
        if a is None:
            a = self.pick(lambda v: v.shape and self.usable(v) and (v.exact_bits or (v.compute and v.dt.is_float)))
        if a is None:
            return False
        bits = a.shape[-1] * a.dt.nbits
        targets = [d for d in ALL_DTYPES if bits % d.nbits == 0 and bits // d.nbits <= MAX_TILE
                   and d != a.dt]
        if not targets:
            return False
        a = self.scrub(a)
        if a is None:
            return False
        dt = self.choice(targets)
        shape = a.shape[:-1] + (bits // dt.nbits,)
        v = self.new(dt, shape, [a], space=a.space, nan_loose=dt == D.bfloat16, zero_loose=False)
        self.define(f"view({a.name}, {dt.name})", v)
        return True

    def op_lookup(self) -> bool:
        if self.flag(0.35):
            table = self.pick(lambda v: len(v.shape) == 1 and self.usable(v))
            if table is None:        # a row of a 2-d tile
                rows = self.pick(lambda v: len(v.shape) == 2 and self.usable(v))
                if rows is None:
                    return False
                table = self.new(rows.dt, rows.shape[1:], [rows])
                self.define(f"{rows.name}[{self.intin(0, rows.shape[0] - 1)}, :]", table)
            T = table.shape[0]
            codes = self.pick(lambda v: v.shape and v.compute and v.dt.is_int and self.usable(v))
            if codes is None:
                return False
            ctext = f"cast({codes.name}, uint32) % {T}"
            v = self.new(table.dt, codes.shape, [table, codes])
            self.define(f"lookup({table.name}, {ctext})", v)
            self.features.add("lookup-loaded-table")
            return True
        # a codebook table indexed by raw storage codes or by masked integers
        raw = self.pick(lambda v: v.shape and not v.compute and v.dt.nbits <= 8 and v.exact_bits)
        if raw is not None and self.flag(0.6):
            of_cands = [d for d in SMALL_DTYPES if d.nbits >= raw.dt.nbits]
            codes = raw
        else:
            codes = self.pick(lambda v: v.shape and v.compute and v.dt.is_int and self.usable(v))
            if codes is None:
                return False
            of_cands = list(SMALL_DTYPES)
        of = self.choice(of_cands)
        tdts = [d for d in (D.float32, D.float16, D.bfloat16) + tuple(d for d in ALL_DTYPES if d.is_float
                                                                     and not d.is_codebook)
                if codebook_fits(of, d)]
        tdt = self.choice(tdts)
        tname = self.fresh("cb")
        has_nan = bool(np.isnan(of.values).any())
        table = Var(tname, tdt, (1 << of.nbits,), nan_loose=has_nan or tdt == D.bfloat16)
        self.define(f"codebook({of.name}{'' if tdt == D.float32 and self.flag(0.5) else ', ' + tdt.name})",
                    table, annotate=False)
        space = codes.space
        if codes.compute:
            mask = (1 << of.nbits) - 1
            if mask <= codes.dt.max:
                ctext = f"{codes.name} & {mask}"
                space = "auto"
            else:
                ctext = f"cast({codes.name}, uint8)"
        else:
            ctext = codes.name
        v = self.new(tdt, codes.shape, [table, codes], space=space)
        self.define(f"lookup({tname}, {ctext})", v)
        self.features.add("lookup")
        return True

    def op_where(self) -> bool:
        c = self.pick(lambda v: v.dt == BOOL and self.usable(v))
        ctext = None
        if c is None or self.flag(0.5):    # an inline condition: x CMP literal
            x = self.pick(lambda v: v.compute and self.usable(v))
            if x is None:
                return False
            ctext = f"{x.name} {self.choice(('>', '<', '==', '!=', '>=', '<='))} {self.lit_for(x.dt)}"
            c = Var(ctext, BOOL, x.shape)
        a = self.pick(lambda v: self.usable(v) and bshape(c.shape, v.shape) is not None)
        if a is None:
            return False
        if (a.compute or a.dt == BOOL) and self.flag(0.35):
            btext, shape, deps, dt = self.lit_for(a.dt), bshape(c.shape, a.shape), [a], a.dt
        else:
            b = self.pick(lambda v: self.usable(v) and bshape(c.shape, a.shape, v.shape) is not None and
                          (v.dt == a.dt or (v.compute and a.compute)))
            if b is None:
                return False
            btext, shape, deps = b.name, bshape(c.shape, a.shape, b.shape), [a, b]
            dt = a.dt if a.dt == b.dt else promote(a.dt, b.dt)
        texts = [a.name, btext]
        if self.flag(0.5):
            texts.reverse()
        v = self.new(dt, shape, deps + ([c] if ctext is None else []), zero_loose=any(d.zero_loose for d in deps),
                     nan_loose=any(d.nan_loose for d in deps) or (dt.is_float and any(d.dt != dt for d in deps)))
        self.define(f"where({c.name}, {texts[0]}, {texts[1]})", v)
        return True

    # -------------------------------------------------------------------------------- reductions
    def op_reduce(self) -> bool:
        a = self.pick(lambda v: v.shape and v.compute and self.usable(v))
        if a is None:
            return False
        fn = self.choice(("sum", "max", "min"))
        if a.dt.is_float and self.allow_approx and self.flag(0.4):
            fn = "sum"
        axis = self.intin(0, len(a.shape) - 1)
        shape = a.shape[:axis] + a.shape[axis + 1:]
        if len(a.shape) == 1 and self.flag(0.5):
            ax = ""
        else:
            ax = f", axis={axis if self.flag(0.7) else axis - len(a.shape)}"
        if fn == "sum" and a.dt.is_float:
            if not self.allow_approx:
                return False
            scale = self.new(a.dt, shape, [a], nan_loose=True, zero_loose=True,
                             approx=Approx("scale", a.shape[axis]))
            v = self.new(a.dt, shape, [a], nan_loose=True, zero_loose=True,
                         approx=Approx("sum", a.shape[axis], scale.name))
            self.define(f"sum({a.name}{ax})", v, annotate=False)
            self.define(f"sum(abs({a.name}){ax})", scale, annotate=False)
            self.features.add("approx-sum")
            return True
        fl = a.dt.is_float
        v = self.new(a.dt, shape, [a], nan_loose=fl, zero_loose=fl)
        self.define(f"{fn}({a.name}{ax})", v)
        return True

    def op_dot(self) -> bool:
        x = self.pick(lambda v: len(v.shape) == 2 and self.usable(v) and max(v.shape) <= 64)
        if x is None:
            return False
        P, K = x.shape
        y = self.pick(lambda v: len(v.shape) == 2 and self.usable(v) and K in v.shape and max(v.shape) <= 64)
        if y is None:
            return False
        dt = self.choice((D.int8, D.float16, D.float32, D.bfloat16))
        if dt.is_float and not self.allow_approx:
            dt = D.int8
        sat = ", saturate=true"
        a = self.new(dt, x.shape, [x], space=x.space, nan_loose=dt.is_float)
        self.define(f"cast({x.name}, {dt.name}{sat})", a, annotate=False)
        if y.shape[0] == K:
            b = self.new(dt, y.shape, [y], space=y.space, nan_loose=dt.is_float)
            self.define(f"cast({y.name}, {dt.name}{sat})", b, annotate=False)
        else:
            b = self.new(dt, (y.shape[1], y.shape[0]), [y], space=y.space, nan_loose=dt.is_float)
            self.define(f"trans(cast({y.name}, {dt.name}{sat}))", b, annotate=False)
        Q = b.shape[1]
        acc_dt = D.int32 if dt == D.int8 else D.float32
        acc = ""
        if self.flag(0.3):
            z = self.new(acc_dt, (P, Q), [])
            self.define(f"full({acc_dt.name}, [{P}, {Q}], {self.lit_for(acc_dt)})", z, annotate=False)
            acc = f", {z.name}"
        if dt == D.int8:
            v = self.new(acc_dt, (P, Q), [a, b])
            self.define(f"dot({a.name}, {b.name}{acc})", v)
        else:
            scale = self.new(acc_dt, (P, Q), [a, b], nan_loose=True, zero_loose=True,
                             approx=Approx("scale", K + (1 if acc else 0)))
            v = self.new(acc_dt, (P, Q), [a, b], nan_loose=True, zero_loose=True,
                         approx=Approx("dot", K + (1 if acc else 0), scale.name))
            self.define(f"dot({a.name}, {b.name}{acc})", v, annotate=False)
            self.define(f"dot(abs({a.name}), abs({b.name}){', abs(' + acc[2:] + ')' if acc else ''})",
                        scale, annotate=False)
            self.features.add("approx-dot")
        return True

    # -------------------------------------------------------------------------------- shapes
    def op_expand(self) -> bool:
        a = self.pick(lambda v: self.usable(v) and len(v.shape) <= 1)
        if a is None:
            return False
        if not a.shape:
            shape = self.main if self.flag(0.7) else (self.choice(TILE_SIZES),)
            v = self.new(a.dt, shape, [a])
            self.define(f"broadcast({a.name}, [{', '.join(map(str, shape))}])", v)
            return True
        (n,) = a.shape
        if self.flag(0.5):
            v = self.new(a.dt, (n, 1), [a], space=a.space)
            self.define(f"{a.name}[:, None]", v)
        else:
            v = self.new(a.dt, (1, n), [a], space=a.space)
            self.define(f"{a.name}[None, :]", v)
        if self.flag(0.3):
            k = self.choice((self.BN, 2, 3, 1))
            shape = (n, k) if v.shape[1] == 1 else (k, n)
            w = self.new(a.dt, shape, [v], space=v.space)
            self.define(f"broadcast({v.name}, [{shape[0]}, {shape[1]}])", w)
        return True

    def op_reshape(self) -> bool:
        a = self.pick(lambda v: v.shape and self.usable(v))
        if a is None:
            return False
        n = numel(a.shape)
        if len(a.shape) == 2 and self.flag(0.5):
            v = self.new(a.dt, a.shape[::-1], [a], space=a.space)
            self.define(f"trans({a.name})" if self.flag(0.6) else f"permute({a.name}, [1, 0])", v)
            return True
        shapes = [(n,)] + [(p, n // p) for p in range(1, n + 1) if n % p == 0]
        shape = self.choice(shapes)
        v = self.new(a.dt, shape, [a], space=a.space)
        self.define(f"reshape({a.name}, [{', '.join(map(str, shape))}])", v)
        return True

    def op_slice(self) -> bool:
        a = self.pick(lambda v: v.shape and self.usable(v))
        if a is None:
            return False
        items, shape = [], []
        point_all = self.flag(0.2)
        for d in a.shape:
            kind = "point" if point_all else self.choice(("range", "all", "point", "dyn"))
            if kind == "all":
                items.append(":")
                shape.append(d)
            elif kind == "point":
                items.append(str(self.intin(0, d - 1)))
            elif kind == "range":
                k = self.intin(1, d)
                s = self.intin(0, d - k)
                items.append(f"{s} : +{k}" if self.flag(0.7) else f"{s} : {s + k}")
                shape.append(k)
            else:
                k = self.intin(1, d)
                span = d - k + 1
                items.append(f"block.x % {span} : +{k}")
                shape.append(k)
        only_colons = all(i == ":" for i in items)     # a[:, :] is a itself
        v = self.new(a.dt, tuple(shape), [a], space=a.space if only_colons else "auto")
        self.define(f"{a.name}[{', '.join(items)}]", v)
        if not shape:
            self.features.add("element-read")
        return True

    def op_insert(self) -> bool:
        t = self.pick(lambda v: v.shape and self.usable(v) and v.space == "auto")
        if t is None:
            return False
        items, region = [], []
        for d in t.shape:
            k = self.intin(1, d)
            s = self.intin(0, d - k)
            if k == 1 and self.flag(0.3):
                items.append(str(s))
            else:
                items.append(f"{s} : +{k}")
                region.append(k)
        region = tuple(region)
        if (t.compute or t.dt == BOOL) and self.flag(0.3):
            vtext, deps = self.lit_for(t.dt), [t]
        else:
            x = self.pick(lambda v: v.dt == t.dt and self.usable(v) and bshape(v.shape, region) == region
                          and (v.shape or True))
            if x is None:
                return False
            vtext, deps = x.name, [t, x]
        v = self.new(t.dt, t.shape, deps, space=t.space)
        if self.flag(0.5):
            self.define(f"insert({t.name}[{', '.join(items)}], {vtext})", v)
        else:       # the statement form rebinds a copy
            c = self.new(t.dt, t.shape, [t], space=t.space)
            self.define(f"{t.name}", c, annotate=False)
            self.emit(f"store({c.name}[{', '.join(items)}], {vtext});")
            self.env[c.name] = replace(v, name=c.name)
        self.features.add("insert")
        return True

    def op_create(self) -> bool:
        r = self.intin(0, 5)
        shape = self.main if self.flag(0.7) else (self.choice(TILE_SIZES),)
        st_ = ", ".join(map(str, shape))
        if r == 0:
            dt = self.any_dtype(0.6)
            if not dt.is_int and dt != D.float8_e8m0 and not (0.0 in finite_values(dt)):
                return False
            if dt == D.float8_e8m0:
                return False
            v = self.new(dt, shape)
            self.define(f"zeros({dt.name}, [{st_}])", v)
        elif r == 1:
            dt = self.any_dtype(0.6)
            lit = self.lit_for(dt) if dt in COMPUTE or dt == BOOL else self.storage_lit(dt)
            v = self.new(dt, shape, nan_loose=dt == D.bfloat16)
            self.define(f"full({dt.name}, [{st_}], {lit})", v)
        elif r == 2:
            v = self.new(D.int32, (shape[-1],))
            self.define(f"arange({shape[-1]})", v)
        elif r == 3:
            s = self.pick(lambda v: not v.shape and self.usable(v))
            if s is None:
                return False
            dt = self.any_dtype(0.7)
            v = self.new(dt, shape, [s], nan_loose=dt.is_float and (s.dt.is_float or dt == D.bfloat16))
            self.define(f"full({dt.name}, [{st_}], {s.name})", v)
            self.cast_targets.add(dt)
        else:
            # empty() then overwritten: entirely (clean) or, rarely, in part (poison reaches the store)
            x = self.pick(lambda v: v.shape and self.usable(v) and v.space == "auto")
            if x is None:
                return False
            e = self.fresh("e")
            self.emit(f"{e} = empty({x.dt.name}, [{', '.join(map(str, x.shape))}]);")
            partial = self.allow_errors and self.flag(0.15)
            items = []
            for d in x.shape:
                if partial and d > 1:
                    items.append(f"0 : +{d - 1}")
                    partial = False
                else:
                    items.append(f"0 : +{d}")
            region = tuple(int(i.split("+")[1]) for i in items)
            src = x.name if region == x.shape else f"{x.name}[{', '.join(f'0 : +{k}' for k in region)}]"
            v = self.new(x.dt, x.shape, [x], poison=region != x.shape)
            self.define(f"insert({e}[{', '.join(items)}], {src})", v, annotate=False)
            self.features.add("empty")
        return True

    def op_scalar(self) -> bool:
        r = self.intin(0, 3)
        if r == 0:
            axis = self.choice("xy" if self.rank == 2 else "x")
            v = Var(self.fresh(), D.int32, ())
            self.define(f"block.{axis}", v)
        elif r == 1:
            v = Var(self.fresh(), D.int32, ())
            self.define(self.choice(["N", "M"] if self.rank == 2 else ["N"]), v)
        elif r == 2:
            a = self.pick(lambda v: not v.shape and v.compute and self.usable(v))
            if a is None:
                return False
            return self.op_arith() if self.flag(0.5) else self.op_compare()
        else:
            return self.op_slice()
        return True

    # -------------------------------------------------------------------------------- control flow
    def update(self, c: Var) -> Optional[str]:
        """A statement that gives the existing variable ``c`` a new value of exactly its type."""
        text = self._update(c)
        if text is not None:
            self.reassigned.append(c.name)
        return text

    def conservative(self, mark: int):
        """After a loop or branch: every variable re-assigned inside may hold any of its values."""
        for n in self.reassigned[mark:]:
            v = self.env.get(n)
            if v is not None:
                self.env[n] = replace(v, nan_loose=v.nan_loose or v.dt.is_float,
                                      zero_loose=v.zero_loose or v.dt.is_float)

    def _update(self, c: Var) -> Optional[str]:
        shape = c.shape
        x = self.pick(lambda v: self.usable(v) and bshape(v.shape, shape) == shape and
                      (v.dt == c.dt or (v.dt.is_int or v.dt.is_float)))
        if x is None:
            return None
        xt = x.name if x.dt == c.dt else f"cast({x.name}, {c.dt.name}, saturate=true)"
        if c.compute and self.flag(0.6):
            op = self.choice(("+", "-", "*", "max", "min", "^", "|") if c.dt.is_int else ("+", "-", "*", "max", "min"))
            if op in ("max", "min"):
                return f"{c.name} = {op}({c.name}, {xt});"
            if self.flag(0.5):
                return f"{c.name} {op}= {xt};"
            return f"{c.name} = {c.name} {op} {xt};"
        cond = self.pick(lambda v: v.dt == BOOL and self.usable(v) and bshape(v.shape, shape) == shape)
        if cond is not None:
            return f"{c.name} = where({cond.name}, {xt}, {c.name});"
        if x.shape == shape and (x.space == "auto" or x.dt != c.dt and x.space == "auto"):
            return f"{c.name} = {xt};"
        return f"{c.name} = where(true, {xt}, {c.name});" if shape else None

    def carried_candidates(self):
        return [v for v in self.env.values() if self.usable(v) and v.space == "auto" and v.name not in ("c0", "r0")]

    def op_loop(self) -> bool:
        cands = self.carried_candidates()
        if not cands:
            return False
        n_car = self.intin(1, min(2, len(cands)))
        carried = []
        for _ in range(n_car):
            c = self.pick(lambda v: v in cands and v not in carried)
            if c is not None:
                carried.append(c)
        for c in carried:     # inside and after the loop the value may be any iterate: be conservative
            self.env[c.name] = replace(c, nan_loose=c.dt.is_float, zero_loose=c.dt.is_float)
        r = self.intin(0, 3)
        start = "0" if r < 3 else "block.x"
        stop = self.choice(("2", "3", "0", "1", "4", "N % 3", "block.x + 1"))
        step = "" if self.flag(0.7) else f", {self.choice(('2', '1', '3'))}"
        i = self.fresh("i")
        self.emit(f"for {i} in range({start}, {stop}{step}) {{")
        saved = dict(self.env)
        mark = len(self.reassigned)
        self.indent += 1
        self.depth += 1
        self.env[i] = Var(i, D.int32, ())
        for _ in range(self.intin(0, 3)):
            self.statement()
        for c in carried:
            u = self.update(self.env[c.name])
            if u is not None:
                self.emit(u)
        self.depth -= 1
        self.indent -= 1
        self.emit("}")
        self.env = dict(saved)
        self.conservative(mark)
        return True

    def op_if(self) -> bool:
        cands = self.carried_candidates()
        conds = [v for v in self.env.values() if v.dt == BOOL and not v.shape and self.usable(v)]
        if conds and self.flag(0.5):
            cond = self.choice(conds).name
        else:
            lhs = self.choice(("block.x", "N", "c0") + (("block.y",) if self.rank == 2 else ()))
            cond = f"{lhs} {self.choice(('==', '>', '<', '!='))} {self.choice((0, 1, 2, 16))}"
        static = self.flag(0.15)
        if static:
            cond = f"BN {self.choice(('>', '<=', '=='))} {self.choice((4, 8, 16))}"
            self.features.add("static-if")
        targets = []
        if cands:
            for _ in range(self.intin(0, min(2, len(cands)))):
                c = self.pick(lambda v: v in cands and v not in targets)
                if c is not None:
                    targets.append(c)
        saved = dict(self.env)
        mark = len(self.reassigned)
        self.emit(f"if {cond} {{")
        for branch in range(2):
            if branch == 1:
                if self.flag(0.3):
                    break
                self.emit("} else {")
            self.env = dict(saved)
            self.indent += 1
            self.depth += 1
            for _ in range(self.intin(0, 2)):
                self.statement()
            for c in targets:
                if self.flag(0.8):
                    u = self.update(self.env[c.name])
                    if u is not None:
                        self.emit(u)
            self.depth -= 1
            self.indent -= 1
        self.emit("}")
        self.env = dict(saved)
        self.conservative(mark)
        return True

    # ============================================================================ outputs
    def outputs(self):
        top = [v for v in self.env.values() if v.approx is None and not v.poison and v.name not in ("c0", "r0")]
        poisoned = [v for v in self.env.values() if v.poison]
        approx = [v for v in self.env.values() if v.approx is not None and v.approx.kind != "scale"]
        # mostly the sinks (values nothing else uses: the ends of the chains), the latest first
        sinks = [v for v in top if v.name not in self.used] or top
        chosen = []
        for _ in range(self.intin(1, 4)):
            pool = sinks if self.flag(0.75) or not top else top
            if not pool:
                break
            v = pool[len(pool) - 1 - self.draw(st.integers(0, len(pool) - 1))]
            if v not in chosen:
                chosen.append(v)
        if poisoned and self.flag(0.5):
            chosen.append(poisoned[-1])
        for a in approx:
            if self.flag(0.8):
                chosen.append(a)
                if a.approx.scale:
                    chosen.append(self.env[a.approx.scale])
        if not chosen:     # store something: an input tile (or the block offset)
            chosen.append(next(v for v in self.env.values() if v.approx is None))
        placed = {}
        for k, v in enumerate(chosen):
            like = None
            if v.approx is not None and v.approx.kind == "scale":
                like = placed.get(v.name)
            p = self.store(f"o{k}", v, like)
            if v.approx is not None and v.approx.scale:
                placed[v.approx.scale] = p
        if self.flag(0.15):
            self.atomic()

    def store(self, name: str, v: Var, like: Optional[Param] = None) -> Param:
        """Store ``v`` into a new output tensor ``name``, one region per block (``like``: the same sizes as
        that output, for a companion scale)."""
        role = "scale" if v.approx is not None and v.approx.kind == "scale" else "out"
        shape = v.shape
        G = (self.gy, self.gx) if self.rank == 2 else (self.gx,)
        syms = []
        launch = []
        if self.rank == 2:
            lead = ("block.y", "block.x")
        else:
            lead = ("block.x",)
        items = []
        full = True
        # axes of the value, placed block by block; missing leading block axes become points
        vax = list(shape)
        nb = len(lead)
        if len(vax) >= nb:
            extra = vax[:len(vax) - nb]
            tail = vax[len(vax) - nb:]
            for d in extra:
                syms.append(self.fresh_sym())
                launch.append(d)
                items.append(f"0 : +{d}")
            for b, d, g in zip(lead, tail, G):
                n = g * d
                if n > 0 and self.flag(0.35):
                    n = n - self.intin(1, d) if self.flag(0.8) else n + self.intin(1, 3)
                    n = max(n, 0)
                full = full and n == g * d
                syms.append(self.fresh_sym())
                launch.append(n)
                items.append(f"{b} * {d} : +{d}")
        else:
            pts = lead[:nb - len(vax)]
            for b, g in zip(pts, G):
                syms.append(self.fresh_sym())
                launch.append(g)
                items.append(b)
            for b, d, g in zip(lead[nb - len(vax):], vax, G[nb - len(vax):]):
                n = g * d
                if n > 0 and self.flag(0.3):
                    n = max(0, n - self.intin(1, d))
                full = full and n == g * d
                syms.append(self.fresh_sym())
                launch.append(n)
                items.append(f"{b} * {d} : +{d}")
        if like is not None:
            launch = list(like.shape)
            full = False
        for s, n in zip(syms, launch):
            self.sizes[s] = n
        masked = ", masked=false" if full and self.flag(0.3) else ""
        p = Param(name, v.dt, role, tuple(syms), tuple(launch), var=v)
        self.params.append(p)
        self.emit(f"store({name}[{', '.join(items)}], {v.name}{masked});")
        return p

    def atomic(self):
        a = self.pick(lambda v: v.compute and v.dt.is_int and self.usable(v) and v.shape)
        if a is None:
            return
        dt = self.choice((D.int32, D.uint32))
        n = numel(a.shape)
        cast = f"cast({a.name}, {dt.name})" if a.dt != dt else a.name
        name = f"a{len(self.params)}"
        sym = self.fresh_sym()
        if self.flag(0.5):
            self.emit(f"atomic_add({name}[0], sum(reshape({cast}, [{n}])));")
            self.sizes[sym] = 1
            shape = (1,)
        else:
            k = a.shape[-1]
            row = cast
            if len(a.shape) == 2:
                row = self.fresh()
                self.emit(f"{row} = {cast}[0, :];")
            self.emit(f"atomic_add({name}[0 : +{k}], {row});")
            self.sizes[sym] = k
            shape = (k,)
        self.params.append(Param(name, dt, "out", (sym,), shape, var=Var(name, dt, shape)))
        self.features.add("atomic_add")


# ============================================================================================ inputs
PROFILES = ("small", "values", "codes", "boundary", "midpoint", "special")


def special_codes(dt) -> list[int]:
    """Boundary codes of ``dt``: +-max finite, smallest subnormal/normal, +-0, +-1, Inf/NaN where present."""
    if dt.is_int:
        vals = [dt.min, dt.max, 0, 1, -1 if dt.is_signed else 2, dt.min + 1, dt.max - 1]
        return sorted({int(dt.encode([v])[0]) for v in vals if dt.min <= v <= dt.max})
    if dt.is_codebook:
        return [0, len(dt.entries) - 1, int(dt.encode([0.0])[0]), 1]
    n = dt.nbits
    sign = 1 << (n - 1) if dt.is_signed else 0
    codes = {0, sign, 1, sign | 1}
    mx = int(dt.encode([dt.max])[0])
    codes |= {mx, mx | sign, mx - 1}
    try:
        codes.add(int(dt.encode([dt.smallest_normal])[0]))
        codes.add(int(dt.encode([1.0])[0]))
        codes.add(int(dt.encode([-1.0])[0]) if dt.is_signed else 0)
    except ValueError:
        pass
    if dt.has_inf:
        inf = int(dt.encode([math.inf])[0])
        codes |= {inf, inf | sign}
    if dt.has_nan:
        codes.add(int(dt.encode([math.nan])[0]))
        codes.add((1 << n) - 1)
    return sorted(c for c in codes if 0 <= c < (1 << n))


def midpoint_codes(src, dst, rng: np.random.Generator, k: int = 16) -> np.ndarray:
    """Codes of ``src`` whose values lie exactly on (or one code next to) a rounding midpoint of ``dst``."""
    if dst.nbits <= 8 or (dst.is_int and dst.nbits <= 16):
        vals = finite_values(dst)
    else:
        codes = rng.integers(0, 1 << min(dst.nbits, 16), size=k).astype(np.int64)
        if dst.nbits == 32:
            codes = codes << 16
        vals = np.unique(dst.decode(codes))
        vals = vals[np.isfinite(vals)]
        nxt = dst.decode(np.minimum(dst.encode(vals, saturate=True).astype(np.int64) + 1, (1 << dst.nbits) - 1))
        vals = np.unique(np.concatenate([vals, nxt[np.isfinite(nxt)]]))
    vals = np.sort(vals)
    if len(vals) < 2:
        return np.zeros(0, np.int64)
    mids = (vals[:-1] + vals[1:]) / 2
    step = vals[-1] - vals[-2]
    mids = np.concatenate([mids, [vals[-1] + step / 2, vals[0] - (vals[1] - vals[0]) / 2]])
    mids = rng.choice(mids, size=min(k, len(mids)), replace=False)
    try:
        codes = src.encode(mids, saturate=True).astype(np.int64)
    except ValueError:
        return np.zeros(0, np.int64)
    exact = src.decode(codes) == mids
    codes = codes[exact]
    top = (1 << src.nbits) - 1
    out = np.concatenate([codes, np.clip(codes + 1, 0, top), np.clip(codes - 1, 0, top)])
    return out


@st.composite
def input_codes(draw, dt, shape, hints=(), allow_special=True):
    """Codes for one input tensor (see the module docstring); never all zeros."""
    n = numel(shape)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    profile = draw(st.sampled_from(PROFILES))
    pins = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 63)), max_size=4))
    if n == 0:
        return np.zeros(shape, dt.code_dtype)
    rng = np.random.default_rng(seed)
    top = 1 << dt.nbits
    specials = special_codes(dt)
    if not allow_special:
        specials = [c for c in specials if np.isfinite(dt.decode([c])[0])]
    if profile == "codes" or dt.nbits <= 2:
        codes = rng.integers(0, top, size=n, dtype=np.int64)
    elif profile == "small":
        lo, hi = (max(dt.min, -8), min(dt.max, 8)) if not dt.is_codebook else (-1, 1)
        vals = rng.integers(int(math.floor(lo)), int(math.floor(hi)) + 1, size=n).astype(np.float64)
        if dt.is_float and not dt.is_int:
            vals = vals / rng.choice([1, 2, 4], size=n)
        codes = dt.encode(vals, saturate=True).astype(np.int64)
    elif profile in ("values", "midpoint"):
        vals = rng.standard_normal(n) * np.exp2(rng.integers(-3, 6, size=n))
        if dt.is_int:
            vals = vals * (2.0 ** (dt.nbits // 2))
        codes = dt.encode(vals, saturate=True).astype(np.int64)
        if profile == "midpoint":
            pool = [midpoint_codes(dt, h, rng) for h in hints if h != dt] if hints else []
            if not pool:
                pool = [midpoint_codes(dt, h, rng) for h in (D.float16, D.bfloat16, D.float8_e4m3, D.int8)
                        if h != dt]
            pool = np.concatenate(pool) if pool else np.zeros(0, np.int64)
            if pool.size:
                take = rng.random(n) < 0.7
                codes = np.where(take, rng.choice(pool, size=n), codes)
    else:   # boundary / special: a mix of boundary codes and random codes
        p = 0.5 if profile == "boundary" else 0.3
        pick = rng.choice(np.asarray(specials, np.int64), size=n)
        codes = np.where(rng.random(n) < p, pick, rng.integers(0, top, size=n, dtype=np.int64))
    if not allow_special and dt.is_float:
        bad = ~np.isfinite(dt.decode(codes))
        codes = np.where(bad, dt.encode([1.0])[0] if dt.min < 1 < dt.max else 0, codes)
    flat = codes.reshape(-1)
    for pos, which in pins:
        flat[pos % n] = specials[which % len(specials)]
    vals = dt.decode(flat)
    if not np.any(vals != 0) and not np.isnan(vals).any():
        nz = [c for c in specials if dt.decode([c])[0] != 0]
        flat[int(rng.integers(0, n))] = nz[int(rng.integers(0, len(nz)))] if nz else 1
    return flat.reshape(shape).astype(dt.code_dtype)


def scalar_value(draw, dt):
    if dt == BOOL:
        return draw(st.booleans())
    if dt.is_int:
        return draw(st.one_of(st.integers(-3, 8).filter(lambda x: dt.min <= x <= dt.max),
                              st.sampled_from([dt.min, dt.max, 0, 1]), st.integers(dt.min, dt.max)))
    code = draw(st.one_of(st.sampled_from(special_codes(dt)), st.integers(0, (1 << dt.nbits) - 1)))
    return float(dt.decode([code])[0])


@st.composite
def cases(draw, allow_approx: bool = True, allow_errors: bool = True, styles: tuple = ("tensor", "native", "packed"),
          first_dtype=None):
    """A :class:`Case`: a random valid kernel with its launch sizes and argument codes (``first_dtype``: the
    dtype of the first input, for sweeps over the type table)."""
    gen = KernelGen(draw, allow_approx, allow_errors, first_dtype)
    case = gen.kernel()
    for p in case.params:
        if p.role == "scalar":
            p.value = scalar_value(draw, p.dt)
            continue
        if p.role == "in":
            p.codes = draw(input_codes(p.dt, p.shape, p.hint, allow_special=True))
        else:   # outputs start with random codes: positions no block writes must keep them
            seed = draw(st.integers(0, 2 ** 32 - 1))
            rng = np.random.default_rng(seed)
            p.codes = rng.integers(0, 1 << p.dt.nbits, size=p.shape, dtype=np.int64).astype(p.dt.code_dtype)
        ok = ["tensor"]
        if p.dt in (D.float16, D.float32, D.int8, D.int16, D.int32, D.uint8, D.uint16, D.uint32, BOOL):
            ok.append("native")
        if p.dt not in COMPUTE and p.dt != BOOL and (p.dt.nbits == 8 or (p.shape and p.shape[-1] * p.dt.nbits % 8 == 0)):
            ok.append("packed")
        ok = [s for s in ok if s in styles] or ["tensor"]
        p.styles = tuple(ok)
        p.style = ok[draw(st.integers(0, len(ok) - 1))]
    return case
