"""What the compiler knows about block-uniform integer scalars: divisibility, bounds, source text.

* **divisibility** (:meth:`ScalarFacts.divisor`): a number every run-time value is a multiple of.
  ``assume(K % 32 == 0)`` makes the size ``K`` a multiple of 32; products multiply, sums take the gcd,
  a loop variable of ``range(0, K, 64)`` is a multiple of 64.
* **bounds** (:meth:`ScalarFacts.upper`): an inclusive upper bound as a linear form over the size
  symbols (:class:`Lin`), from the grid (``block.x <= cdiv(N, 128) - 1``, which is ``N / 128 - 1``
  when ``N % 128 == 0`` is known) and loop ranges (``k0 <= K - 64`` for ``range(0, K, 64)`` when
  ``K % 64 == 0``). :meth:`ScalarFacts.fits` proves ``start + length <= dim``: the test that lets
  a load drop its mask.

>>> import vmlang as vm
>>> k = vm.compile_source('''
... kernel t(x: f16[M, K] global) grid(cdiv(K, 128), M) {
...     assume(K % 128 == 0);
...     for k0 in range(0, K, 64) { v = load(x[block.y, k0 : +64]); }
...     w = load(x[block.y, block.x * 128 : +128]);
... }''')
>>> from vmlang.ir import nodes as N
>>> f = ScalarFacts(k)
>>> loads = [i for i in N.walk(k.body) if isinstance(i, N.Load)]
>>> [f.text(i.index[1].start) for i in loads], [f.divisor(i.index[1].start) for i in loads]
(['k0', 'block.x * 128'], [64, 128])
>>> [f.fits(i.index[1].start, i.index[1].length, k.params[0].type.dims[1]) for i in loads]
[True, True]
>>> f.fits(loads[0].index[0].index, 1, k.params[0].type.dims[0])       # block.y < M from the grid
True
"""
from __future__ import annotations

import math
from fractions import Fraction

from vmlang.ir import nodes as N
from vmlang.ir.symexpr import SymConst, SymExpr, SymOp, SymVar
from vmlang.ir.types import GlobalType

CAP = 1 << 20          # "a multiple of everything" (the constant 0) is capped here


class Lin:
    """``const + sum(coef[s] * s)`` over size symbols, with rational coefficients."""
    __slots__ = ("const", "coef")

    def __init__(self, const=0, coef=None):
        self.const = Fraction(const)
        self.coef = {k: Fraction(v) for k, v in (coef or {}).items() if v}

    def __add__(self, o: "Lin") -> "Lin":
        c = dict(self.coef)
        for k, v in o.coef.items():
            c[k] = c.get(k, 0) + v
        return Lin(self.const + o.const, c)

    def scale(self, f) -> "Lin":
        return Lin(self.const * f, {k: v * f for k, v in self.coef.items()})

    def __sub__(self, o: "Lin") -> "Lin":
        return self + o.scale(-1)

    def __repr__(self) -> str:
        return f"Lin({self.const}, {self.coef})"


class ScalarFacts:
    """Facts about the integer scalars of one kernel (see the module docstring)."""

    def __init__(self, kernel: N.Kernel):
        self.kernel = kernel
        self.defs: dict = {}
        self.params = {p.id: p for p in kernel.params if not isinstance(p.type, GlobalType)}
        self.sizes = {s for s, _, _ in kernel.symbols}
        self.sym_div: dict[str, int] = {}
        self.val_div: dict[int, int] = {}
        self.assumed: dict[str, str] = {}       # symbol -> "K % 32 == 0" (text of the assume)
        for ins in N.walk(kernel.body):
            if isinstance(ins, N.For):
                self.defs[ins.var.id] = ins
            for r in ins.results:
                self.defs[r.id] = ins
        for ins in N.walk(kernel.body):
            if isinstance(ins, N.Assume):
                self._assume(ins.cond)
        self._div: dict[int, int] = {}

    # -- assume ------------------------------------------------------------------------------
    def _assume(self, cond: N.Value):
        d = self.defs.get(cond.id)
        if isinstance(d, N.And):
            self._assume(d.a)
            self._assume(d.b)
            return
        if not isinstance(d, N.Eq):
            return
        for lhs, rhs in ((d.a, d.b), (d.b, d.a)):
            m = self.defs.get(lhs.id)
            if isinstance(m, N.Mod) and self.const(rhs) == 0 and (c := self.const(m.b)) and c > 0:
                name = self.symbol(m.a)
                if name is not None:
                    self.sym_div[name] = math.lcm(self.sym_div.get(name, 1), c)
                    self.assumed[name] = f"{name} % {self.sym_div[name]} == 0"
                else:
                    self.val_div[m.a.id] = math.lcm(self.val_div.get(m.a.id, 1), c)

    def symbol(self, v: N.Value) -> str | None:
        """The size symbol or scalar parameter ``v`` reads, if any."""
        d = self.defs.get(v.id)
        if isinstance(d, N.SizeOf):
            return d.symbol
        if v.id in self.params:
            return self.params[v.id].name
        if isinstance(d, N.Cast) and d.x.is_scalar:
            return self.symbol(d.x)
        return None

    def const(self, v: N.Value):
        d = self.defs.get(v.id)
        if isinstance(d, N.Const) and not isinstance(d.value, bool) and float(d.value).is_integer():
            return int(d.value)
        if isinstance(d, N.Cast) and d.x.is_scalar:
            return self.const(d.x)
        return None

    # -- divisibility ----------------------------------------------------------------------------
    def divisor(self, v: N.Value) -> int:
        """A positive number every value of ``v`` is a multiple of (1 when nothing is known)."""
        if v.id not in self._div:
            self._div[v.id] = 1                       # cycles (loop-carried scalars) stay 1
            self._div[v.id] = min(CAP, math.lcm(self._divisor(v), self.val_div.get(v.id, 1)))
        return self._div[v.id]

    def _divisor(self, v: N.Value) -> int:
        c = self.const(v)
        if c is not None:
            return abs(c) if c else CAP
        name = self.symbol(v)
        if name is not None:
            return self.sym_div.get(name, 1)
        d = self.defs.get(v.id)
        if isinstance(d, N.Mul):
            return self.divisor(d.a) * self.divisor(d.b)
        if isinstance(d, (N.Add, N.Sub, N.Mod, N.Minimum, N.Maximum)):
            return math.gcd(self.divisor(d.a), self.divisor(d.b))
        if isinstance(d, N.Shl) and (s := self.const(d.b)) is not None and 0 <= s < 31:
            return self.divisor(d.a) << s
        if isinstance(d, N.Div) and (c := self.const(d.b)) and c > 0:
            a = self.divisor(d.a)
            return a // c if a % c == 0 else 1
        if isinstance(d, N.Cast) and v.is_scalar and d.x.dtype.is_int:
            return self.divisor(d.x)
        if isinstance(d, N.For) and v.id == d.var.id:
            return math.gcd(self.divisor(d.start), self.divisor(d.step))
        return 1

    def sym_divisor(self, e: SymExpr) -> int:
        """A number every value of the shape expression ``e`` is a multiple of."""
        if isinstance(e, SymConst):
            return abs(e.value) if e.value else CAP
        if isinstance(e, SymVar):
            return self.sym_div.get(e.name, 1)
        if isinstance(e, SymOp):
            a, b = self.sym_divisor(e.left), self.sym_divisor(e.right)
            if e.op == "*":
                return min(CAP, a * b)
            if e.op in ("+", "-", "min", "max"):
                return math.gcd(a, b)
            if e.op in ("/", "cdiv") and isinstance(e.right, SymConst) and e.right.value > 0:
                c = e.right.value
                return a // c if a % c == 0 else 1
        return 1

    # -- bounds ----------------------------------------------------------------------------------
    def nonneg(self, v: N.Value) -> bool:
        c = self.const(v)
        if c is not None:
            return c >= 0
        d = self.defs.get(v.id)
        if isinstance(d, (N.SizeOf, N.BlockIdx)):
            return True
        if isinstance(d, (N.Mul, N.Add, N.Minimum, N.Maximum)):
            return self.nonneg(d.a) and self.nonneg(d.b)
        if isinstance(d, (N.Div, N.Shr, N.Mod)):
            return self.nonneg(d.a) and self.nonneg(d.b)
        if isinstance(d, N.Cast) and v.is_scalar:
            return self.nonneg(d.x) and d.x.dtype.nbits <= v.dtype.nbits
        if isinstance(d, N.For) and v.id == d.var.id:
            return self.nonneg(d.start)
        return False

    def exact(self, v: N.Value) -> Lin | None:
        c = self.const(v)
        if c is not None:
            return Lin(c)
        d = self.defs.get(v.id)
        if isinstance(d, N.SizeOf):
            return Lin(0, {d.symbol: 1})
        if isinstance(d, (N.Add, N.Sub)):
            # linear in the sizes (``K - KS * BK``: a loop that stops one step early stays exact)
            a, b = self.exact(d.a), self.exact(d.b)
            return None if a is None or b is None else (a + b if isinstance(d, N.Add) else a - b)
        if isinstance(d, N.Mul):
            for a, b in ((d.a, d.b), (d.b, d.a)):
                c, e = self.const(a), self.exact(b)
                if c is not None and e is not None:
                    return e.scale(c)
        return None

    def upper(self, v: N.Value) -> Lin | None:
        """An inclusive upper bound of ``v``, or None."""
        e = self.exact(v)
        if e is not None:
            return e
        d = self.defs.get(v.id)
        if isinstance(d, N.BlockIdx):
            g = self.sym_lin(self.kernel.grid[d.axis], "upper") if d.axis < len(self.kernel.grid) else None
            return None if g is None else g - Lin(1)
        if isinstance(d, N.Mul):
            for a, b in ((d.a, d.b), (d.b, d.a)):
                c = self.const(a)
                if c is not None and c >= 0 and self.nonneg(b) and (u := self.upper(b)) is not None:
                    return u.scale(c)
            return None
        if isinstance(d, N.Add):
            ua, ub = self.upper(d.a), self.upper(d.b)
            return None if ua is None or ub is None else ua + ub
        if isinstance(d, N.Sub):
            ua, lb = self.upper(d.a), self.exact(d.b)
            return None if ua is None or lb is None else ua - lb
        if isinstance(d, N.Div) and (c := self.const(d.b)) and c > 0 and self.nonneg(d.a):
            ua = self.upper(d.a)
            return None if ua is None else ua.scale(Fraction(1, c))
        if isinstance(d, N.Minimum):
            return self.upper(d.a) or self.upper(d.b)
        if isinstance(d, N.Cast) and v.is_scalar and d.x.dtype.is_int:
            return self.upper(d.x)
        if isinstance(d, N.For) and v.id == d.var.id:
            # every value is a multiple of g (start and step are): below a stop that g divides, the
            # largest is stop - g (range(block.z * BK, K, KS * BK) with K % BK == 0: K - BK)
            stop, step, g = self.exact(d.stop), self.const(d.step), self.divisor(v)
            if stop is not None and step and step > 0 and self.sym_divisor_of_lin(stop) % g == 0:
                return stop - Lin(g)
            us = self.upper(d.stop)
            return None if us is None else us - Lin(1)
        return None

    def sym_divisor_of_lin(self, e: Lin) -> int:
        if any(v.denominator != 1 for v in e.coef.values()) or e.const.denominator != 1:
            return 1
        g = int(abs(e.const)) if e.const else CAP
        for s, v in e.coef.items():
            g = math.gcd(g, int(abs(v)) * self.sym_div.get(s, 1))
        return g

    def sym_lin(self, e: SymExpr, bound: str) -> Lin | None:
        """``e`` as a Lin: ``bound`` is "exact", "upper" or "lower" (a bound where a division rounds)."""
        if isinstance(e, SymConst):
            return Lin(e.value)
        if isinstance(e, SymVar):
            return Lin(0, {e.name: 1})
        if not isinstance(e, SymOp):
            return None
        other = {"upper": "lower", "lower": "upper", "exact": "exact"}[bound]
        if e.op == "+":
            a, b = self.sym_lin(e.left, bound), self.sym_lin(e.right, bound)
            return None if a is None or b is None else a + b
        if e.op == "-":
            a, b = self.sym_lin(e.left, bound), self.sym_lin(e.right, other)
            return None if a is None or b is None else a - b
        if e.op == "*" and isinstance(e.left, SymConst) or e.op == "*" and isinstance(e.right, SymConst):
            c, x = (e.left.value, e.right) if isinstance(e.left, SymConst) else (e.right.value, e.left)
            if c < 0:
                return None
            a = self.sym_lin(x, bound)
            return None if a is None else a.scale(c)
        if e.op in ("/", "cdiv") and isinstance(e.right, SymConst) and e.right.value > 0:
            c = e.right.value
            a = self.sym_lin(e.left, bound)
            if a is None:
                return None
            q = a.scale(Fraction(1, c))
            if self.sym_divisor(e.left) % c == 0:
                return q
            if e.op == "cdiv":
                return q + Lin(Fraction(c - 1, c)) if bound == "upper" else (q if bound == "lower" else None)
            return q if bound == "upper" else (q - Lin(Fraction(c - 1, c)) if bound == "lower" else None)
        return None

    def nonneg_lin(self, e: Lin) -> bool:
        """Whether ``e >= 0`` for every size (size symbols are >= 0; other symbols must cancel)."""
        if any(v < 0 or (v and s not in self.sizes) for s, v in e.coef.items()):
            return False
        return e.const >= 0

    def fits(self, start: N.Value, length: int, dim: SymExpr) -> bool:
        """Whether ``0 <= start`` and ``start + length <= dim`` on every run.

        ``a / c : +L`` inside ``cdiv(E, c)`` follows from ``a + c*L - c + 1 <= E`` (floor division
        on both sides), which keeps e.g. the scale row ``k0 / G`` of ``s[cdiv(K, G), N]`` inside.
        """
        d = self.defs.get(start.id)
        if (isinstance(dim, SymOp) and dim.op == "cdiv" and isinstance(dim.right, SymConst)
                and isinstance(d, N.Div) and self.const(d.b) == dim.right.value and dim.right.value > 0):
            c = dim.right.value
            if self.nonneg(d.a) and self._fits(d.a, c * length - c + 1, dim.left):
                return True
        return self._fits(start, length, dim)

    def _fits(self, start: N.Value, length: int, dim: SymExpr) -> bool:
        if not self.nonneg(start):
            return False
        u = self.upper(start)
        D = self.sym_lin(dim, "lower")
        if u is None or D is None:
            return False
        return self.nonneg_lin(D - u - Lin(length))

    # -- text ------------------------------------------------------------------------------------
    def text(self, v: N.Value, depth: int = 0) -> str:
        c = self.const(v)
        if c is not None:
            return str(c)
        name = self.symbol(v)
        if name is not None:
            return name
        d = self.defs.get(v.id)
        if isinstance(d, N.BlockIdx):
            return f"block.{'xyz'[d.axis]}"
        if isinstance(d, N.For) and v.id == d.var.id:
            return v.name or f"%{v.id}"
        ops = {N.Add: "+", N.Sub: "-", N.Mul: "*", N.Div: "/", N.Mod: "%", N.Shl: "<<", N.Shr: ">>"}
        if type(d) in ops and depth < 4:
            a, b = self.text(d.a, depth + 1), self.text(d.b, depth + 1)
            if depth:
                return f"({a} {ops[type(d)]} {b})"
            return f"{a} {ops[type(d)]} {b}"
        if isinstance(d, N.Cast) and v.is_scalar:
            return self.text(d.x, depth)
        return v.name or f"%{v.id}"
