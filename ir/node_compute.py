"""IR nodes: elementwise arithmetic, comparisons and ``where``, and the conversions (cast, view, lookup).
:mod:`vmlang.ir.nodes` re-exports them."""
from __future__ import annotations

from dataclasses import dataclass

from .types import BOOL, is_compute
from .node_base import Value, Instr, _need, _elementwise_shape, _result_like


# ------------------------------------------------------------------------------------------ elementwise
@dataclass(frozen=True, slots=True)
class Unary(Instr):
    """Base of unary elementwise ops on compute dtypes (subclasses name the function)."""
    out: Value
    x: Value
    kinds = "any"   # "float", "int" or "any": which operand dtypes are accepted

    def __post_init__(self):
        shape = _elementwise_shape(self.loc, self.x)
        dt = self.x.dtype
        name = type(self).__name__.lower()
        _need(is_compute(dt) or (dt == BOOL and self.kinds == "int"), self.loc,
              f"{name} needs a compute dtype; {dt} is a storage type: cast it first")
        _need(self.kinds != "float" or dt.is_float, self.loc, f"{name} needs a float operand, got {dt}")
        _need(self.kinds != "int" or dt.is_int, self.loc, f"{name} needs an integer operand, got {dt}")
        _result_like(self.out, shape, dt, self.loc, name)


@dataclass(frozen=True, slots=True)
class Binary(Instr):
    """Base of binary elementwise ops: operands share one dtype (cast first) and one shape (or are
    scalars, which broadcast)."""
    out: Value
    a: Value
    b: Value
    kinds = "any"
    compare = False

    def __post_init__(self):
        shape = _elementwise_shape(self.loc, self.a, self.b)
        name = type(self).__name__.lower()
        da, db = self.a.dtype, self.b.dtype
        _need(da == db, self.loc, f"{name} operands have different dtypes {da} and {db}: cast one")
        ok = is_compute(da) or (da == BOOL and (self.kinds == "int" or type(self).__name__ in ("Eq", "Ne")))
        _need(ok, self.loc, f"{name} needs a compute dtype; {da} is a storage type: cast it first")
        _need(self.kinds != "int" or da.is_int, self.loc, f"{name} needs integer operands, got {da}")
        _result_like(self.out, shape, BOOL if self.compare else da, self.loc, name)


class Neg(Unary):
    """``-x``."""
    __slots__ = ()


class Abs(Unary):
    """``|x|``."""
    __slots__ = ()


class Invert(Unary):
    """``~x`` (bitwise not; on bool, logical not)."""
    __slots__ = ()
    kinds = "int"


class Exp(Unary):
    """``e**x``, correctly rounded to the dtype (the VM computes in float64 and rounds once)."""
    __slots__ = ()
    kinds = "float"


class Exp2(Unary):
    """``2**x``."""
    __slots__ = ()
    kinds = "float"


class Log(Unary):
    """natural logarithm (``log(0) = -inf``, negative -> NaN)."""
    __slots__ = ()
    kinds = "float"


class Sqrt(Unary):
    """square root."""
    __slots__ = ()
    kinds = "float"


class Rsqrt(Unary):
    """``1 / sqrt(x)``."""
    __slots__ = ()
    kinds = "float"


class Add(Binary):
    """``a + b`` (ints wrap around in two's complement; floats round to nearest even)."""
    __slots__ = ()


class Sub(Binary):
    """``a - b``."""
    __slots__ = ()


class Mul(Binary):
    """``a * b``."""
    __slots__ = ()


class Div(Binary):
    """``a / b``: true division for floats; for ints, truncation toward zero (C), and division by
    zero is an error."""
    __slots__ = ()


class Mod(Binary):
    """``a % b``: for ints the C remainder (sign of ``a``); for floats ``fmod``."""
    __slots__ = ()


class Minimum(Binary):
    """``min(a, b)``; with one NaN operand, the other (IEEE minNum, as PTX ``min.f32``)."""
    __slots__ = ()


class Maximum(Binary):
    """``max(a, b)``; with one NaN operand, the other."""
    __slots__ = ()


class And(Binary):
    """``a & b`` (bitwise; logical on bool)."""
    __slots__ = ()
    kinds = "int"


class Or(Binary):
    """``a | b``."""
    __slots__ = ()
    kinds = "int"


class Xor(Binary):
    """``a ^ b``."""
    __slots__ = ()
    kinds = "int"


class Shl(Binary):
    """``a << b``: bits shifted past the width are lost; a shift by >= the width or < 0 gives 0."""
    __slots__ = ()
    kinds = "int"


class Shr(Binary):
    """``a >> b``: arithmetic for signed, logical for unsigned; a shift by >= the width gives 0 (or
    -1 for a negative signed value); a negative shift is an error."""
    __slots__ = ()
    kinds = "int"


class Eq(Binary):
    """``a == b`` -> bool."""
    __slots__ = ()
    compare = True


class Ne(Binary):
    """``a != b`` -> bool (NaN != NaN)."""
    __slots__ = ()
    compare = True


class Lt(Binary):
    """``a < b`` -> bool."""
    __slots__ = ()
    compare = True


class Le(Binary):
    """``a <= b`` -> bool."""
    __slots__ = ()
    compare = True


class Gt(Binary):
    """``a > b`` -> bool."""
    __slots__ = ()
    compare = True


class Ge(Binary):
    """``a >= b`` -> bool."""
    __slots__ = ()
    compare = True


@dataclass(frozen=True, slots=True)
class Where(Instr):
    """``out = cond ? a : b`` elementwise; cond is bool; a and b share a dtype (any dtype)."""
    out: Value
    cond: Value
    a: Value
    b: Value

    def __post_init__(self):
        shape = _elementwise_shape(self.loc, self.cond, self.a, self.b)
        _need(self.cond.dtype == BOOL, self.loc, f"where needs a bool condition, got {self.cond.dtype}")
        _need(self.a.dtype == self.b.dtype, self.loc,
              f"where branches have different dtypes {self.a.dtype} and {self.b.dtype}")
        _result_like(self.out, shape, self.a.dtype, self.loc, "where")


# ------------------------------------------------------------------------------------------ conversions
@dataclass(frozen=True, slots=True)
class Cast(Instr):
    """``out = x converted to out's dtype``.

    float -> float and int -> float round to nearest even; float -> int rounds to nearest even;
    int -> int wraps modulo ``2**bits``. Out-of-range values clamp to the target range when
    ``saturate``; otherwise a float overflow becomes +-Inf where the target has Inf, and is an error
    (reported by the VM) where it has not, as is NaN into a format without NaN. A codebook source
    (nf4) decodes through its table; a codebook target takes the nearest entry.
    """
    out: Value
    x: Value
    saturate: bool = False

    def __post_init__(self):
        _need(self.x.is_tile or self.x.is_scalar, self.loc, "cast converts a tile or a scalar")
        _need(self.out.shape == self.x.shape and type(self.out.type) is type(self.x.type), self.loc,
              "cast keeps the shape")


@dataclass(frozen=True, slots=True)
class View(Instr):
    """``out = the packed bit stream of x's last axis read as out's dtype``.

    Each row of ``x`` (last axis, ``n`` elements of ``a`` bits) is the LSB-first stream of ``n*a`` bits;
    ``out`` reads it as ``n*a/b`` elements of ``b`` bits. Legal when ``n*a`` is a multiple of ``b``
    (e.g. uint8[.., 3k] <-> int3[.., 8k]). The leading axes are unchanged.
    """
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.x.is_tile and self.out.is_tile, self.loc, "view reinterprets a tile")
        xs, os_ = self.x.shape, self.out.shape
        a, b = self.x.dtype.nbits, self.out.dtype.nbits
        _need(xs[:-1] == os_[:-1], self.loc, "view keeps every axis but the last")
        _need(xs[-1] * a == os_[-1] * b, self.loc,
              f"view of {xs[-1]} x {a} bits = {xs[-1] * a} bits as {self.out.dtype} gives "
              f"{os_[-1]} x {b} = {os_[-1] * b} bits")


@dataclass(frozen=True, slots=True)
class Lookup(Instr):
    """``out[i...] = table[codes[i...]]``: table is a 1-d tile; codes are integers (or a codebook /
    storage dtype, whose raw codes are used); a code outside the table is an error."""
    out: Value
    table: Value
    codes: Value

    def __post_init__(self):
        _need(self.table.is_tile and len(self.table.shape) == 1, self.loc, "lookup table is a 1-d tile")
        _need(self.codes.is_tile, self.loc, "lookup codes are a tile")
        _need(self.codes.dtype.is_int or self.codes.dtype.nbits <= 8, self.loc,
              f"lookup codes must be integers or 8-bit-or-narrower codes, not {self.codes.dtype}")
        _result_like(self.out, self.codes.shape, self.table.dtype, self.loc, "lookup")
