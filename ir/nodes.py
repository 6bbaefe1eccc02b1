"""IR nodes: values, instructions and kernels.

The IR is in SSA form with structured control flow: a :class:`Kernel` owns a :class:`Block` of
instructions; :class:`For` and :class:`If` own nested blocks and pass values in and out explicitly
(loop-carried values and branch results), like MLIR's ``scf`` dialect. Every node is a frozen,
slotted dataclass with structural equality (source locations do not take part) and a validating
constructor that raises :class:`VMTypeError` naming the problem.

Each instruction's docstring states its semantics; the NumPy VM (:mod:`vmlang.backends.numpy`)
implements exactly that text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from . import dtypes as D
from .errors import SourceLoc, VMTypeError
from .types import BOOL, GLOBAL, INDEX, GlobalType, ScalarType, TileType, Type, is_compute


@dataclass(frozen=True, slots=True)
class Value:
    """An SSA value: a unique id, a type and a name hint (from the source, for printing)."""
    id: int
    type: Type
    name: str = field(default="", compare=False)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.type, ScalarType)

    @property
    def is_tile(self) -> bool:
        return isinstance(self.type, TileType)

    @property
    def is_global(self) -> bool:
        return isinstance(self.type, GlobalType)

    @property
    def dtype(self) -> D.DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape


def _fail(loc, msg):
    raise VMTypeError(msg, loc)


def _need(cond: bool, loc, msg: str):
    if not cond:
        _fail(loc, msg)


def _desc(v: Value) -> str:
    return str(v.type)


@dataclass(frozen=True, slots=True)
class Instr:
    """Base of every instruction. ``results`` are the values it defines; ``operands`` those it uses."""
    loc: Optional[SourceLoc] = field(default=None, compare=False, kw_only=True)

    @property
    def results(self) -> tuple[Value, ...]:
        out = getattr(self, "out", None)
        return (out,) if out is not None else ()

    @property
    def operands(self) -> tuple[Value, ...]:
        vals = []
        for name in self.__dataclass_fields__:
            if name in ("out", "loc"):
                continue
            x = getattr(self, name)
            if isinstance(x, Value):
                vals.append(x)
            elif isinstance(x, tuple):
                for y in x:
                    if isinstance(y, Value):
                        vals.append(y)
                    elif isinstance(y, IndexItem):
                        vals.extend(y.values())
        return tuple(vals)

    def blocks(self) -> tuple["Block", ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Block:
    instrs: tuple[Instr, ...]


# ------------------------------------------------------------------------------------------ leaves
@dataclass(frozen=True, slots=True)
class Const(Instr):
    """``out = value``: a scalar constant of ``out``'s dtype (exactly representable)."""
    out: Value
    value: Union[int, float, bool]

    def __post_init__(self):
        _need(self.out.is_scalar, self.loc, "a constant is a scalar")


@dataclass(frozen=True, slots=True)
class BlockIdx(Instr):
    """``out = block.{x,y,z}``: this block's index along grid axis 0, 1 or 2 (int32)."""
    out: Value
    axis: int

    def __post_init__(self):
        _need(self.axis in (0, 1, 2), self.loc, "block index axis is 0, 1 or 2 (x, y, z)")
        _need(self.out.type == ScalarType(INDEX), self.loc, "block index is an int32 scalar")


@dataclass(frozen=True, slots=True)
class SizeOf(Instr):
    """``out = <size symbol>``: the launch-time value of a size symbol (int32 scalar)."""
    out: Value
    symbol: str

    def __post_init__(self):
        _need(self.out.type == ScalarType(INDEX), self.loc, "a size is an int32 scalar")


# ------------------------------------------------------------------------------------------ memory
class IndexItem:
    __slots__ = ()

    def values(self) -> tuple[Value, ...]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class At(IndexItem):
    """Select position ``index`` of an axis and drop the axis."""
    index: Value

    def values(self):
        return (self.index,)


@dataclass(frozen=True, slots=True)
class Range(IndexItem):
    """Select ``length`` (static) consecutive positions starting at ``start`` and keep the axis."""
    start: Value
    length: int

    def values(self):
        return (self.start,)


def _check_index(src: Value, index: tuple, loc) -> tuple[int, ...]:
    """Validate an index against ``src`` and return the shape of the selected region."""
    _need(len(index) == len(src.shape), loc,
          f"indexing {_desc(src)} needs {len(src.shape)} index items, got {len(index)}")
    shape = []
    for axis, it in enumerate(index):
        if isinstance(it, At):
            _need(it.index.is_scalar and it.index.dtype.is_int, it.index and loc,
                  f"index of axis {axis} must be an integer scalar")
        elif isinstance(it, Range):
            _need(isinstance(it.length, int) and it.length >= 1, loc,
                  f"slice length of axis {axis} must be a positive static integer")
            _need(it.start.is_scalar and it.start.dtype.is_int, loc,
                  f"slice start of axis {axis} must be an integer scalar")
            shape.append(it.length)
        else:
            _fail(loc, f"bad index item {it!r}")
    return tuple(shape)


@dataclass(frozen=True, slots=True)
class Load(Instr):
    """``out = src[index]``: read a region of a global tensor or of a tile.

    For a global ``src`` with ``masked`` (the default), positions outside the declared shape read
    ``fill`` (a scalar of ``out``'s dtype; when None, reading such a position is an error) and never
    touch memory. Without ``masked`` every position must be inside the shape (the compiler may drop
    bounds checks after ``assume``); an access outside is reported by the VM. Reading a tile outside
    its shape is always an error.
    """
    out: Value
    src: Value
    index: tuple[IndexItem, ...]
    fill: Optional[Value] = None
    masked: bool = True

    def __post_init__(self):
        _need(self.src.is_global or self.src.is_tile, self.loc, "load reads a global tensor or a tile")
        shape = _check_index(self.src, self.index, self.loc)
        if not shape:
            _need(self.out.is_scalar, self.loc, "a load of single elements gives a scalar")
        else:
            _need(self.out.is_tile and self.out.shape == shape, self.loc,
                  f"load result shape {self.out.shape} does not match the index shape {shape}")
        _need(self.out.dtype == self.src.dtype, self.loc, "load keeps the dtype")
        if self.fill is not None:
            _need(self.fill.is_scalar and self.fill.dtype == self.src.dtype, self.loc,
                  f"fill value must be a {self.src.dtype} scalar")


@dataclass(frozen=True, slots=True)
class Store(Instr):
    """``dst[index] = value``: write a region of a global tensor; positions outside the declared
    shape are skipped when ``masked`` (the default) and reported by the VM otherwise."""
    dst: Value
    index: tuple[IndexItem, ...]
    value: Value
    masked: bool = True

    def __post_init__(self):
        _need(self.dst.is_global, self.loc, "store writes a global tensor (use insert for tiles)")
        _store_check(self.dst, self.index, self.value, self.loc)


def _store_check(dst, index, value, loc):
    shape = _check_index(dst, index, loc)
    _need(value.dtype == dst.dtype, loc, f"cannot store {value.dtype} values into {dst.dtype} memory")
    _need(value.shape == shape, loc, f"stored value has shape {value.shape}, the region has {shape}")


@dataclass(frozen=True, slots=True)
class AtomicAdd(Instr):
    """``dst[index] += value`` atomically (masked like :class:`Store`); dst is f16/bf16/f32/int32/uint32."""
    dst: Value
    index: tuple[IndexItem, ...]
    value: Value
    masked: bool = True

    def __post_init__(self):
        _need(self.dst.is_global, self.loc, "atomic_add writes a global tensor")
        _need(self.dst.dtype in (D.float16, D.bfloat16, D.float32, D.int32, D.uint32), self.loc,
              f"atomic_add supports f16, bf16, f32, int32, uint32, not {self.dst.dtype}")
        _store_check(self.dst, self.index, self.value, self.loc)


@dataclass(frozen=True, slots=True)
class Insert(Instr):
    """``out = copy of tile dst with dst[index] = value`` (the functional form of a tile store)."""
    out: Value
    dst: Value
    index: tuple[IndexItem, ...]
    value: Value

    def __post_init__(self):
        _need(self.dst.is_tile, self.loc, "insert updates a tile")
        _store_check(self.dst, self.index, self.value, self.loc)
        _need(self.out.type == self.dst.type, self.loc, "insert keeps the tile type")


# ------------------------------------------------------------------------------------------ creation
@dataclass(frozen=True, slots=True)
class Full(Instr):
    """``out = a tile whose elements are all ``value`` (a scalar of out's dtype)``; ``value=None``
    gives an uninitialised tile (``empty``), whose elements poison anything computed from them."""
    out: Value
    value: Optional[Value] = None

    def __post_init__(self):
        _need(self.out.is_tile, self.loc, "full creates a tile")
        if self.value is not None:
            _need(self.value.is_scalar and self.value.dtype == self.out.dtype, self.loc,
                  f"fill value must be a {self.out.dtype} scalar")


@dataclass(frozen=True, slots=True)
class Arange(Instr):
    """``out = [0, 1, ..., n-1]`` as an int32 tile of shape ``[n]``."""
    out: Value

    def __post_init__(self):
        _need(self.out.is_tile and len(self.out.shape) == 1 and self.out.dtype == INDEX, self.loc,
              "arange makes a 1-d int32 tile")


@dataclass(frozen=True, slots=True)
class Codebook(Instr):
    """``out = the value table of a codebook or small dtype`` (``out[i] = decode(i)`` rounded to
    out's dtype), shape ``[2**bits]``."""
    out: Value
    of: D.DType

    def __post_init__(self):
        _need(self.of.nbits <= 8, self.loc, f"codebook() needs a dtype of at most 8 bits, not {self.of}")
        _need(self.out.is_tile and self.out.shape == (1 << self.of.nbits,), self.loc,
              "codebook table shape is [2**bits]")
        _need(self.out.dtype.is_float and not self.out.dtype.is_codebook, self.loc,
              "codebook table has a float dtype")


# ------------------------------------------------------------------------------------------ elementwise
def _elementwise_shape(loc, *xs: Value):
    shapes = {x.shape for x in xs if x.is_tile}
    _need(all(x.is_tile or x.is_scalar for x in xs), loc, "elementwise operands are tiles or scalars")
    _need(len(shapes) <= 1, loc,
          "elementwise operands must have one shape (broadcast first): " + ", ".join(_desc(x) for x in xs))
    return shapes.pop() if shapes else ()


def _result_like(out: Value, shape, dtype, loc, what: str):
    if shape:
        _need(out.is_tile and out.shape == shape, loc, f"{what} result must be a tile of shape {shape}")
    else:
        _need(out.is_scalar, loc, f"{what} of scalars is a scalar")
    _need(out.dtype == dtype, loc, f"{what} result dtype must be {dtype}, not {out.dtype}")


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


# ------------------------------------------------------------------------------------------ shapes
@dataclass(frozen=True, slots=True)
class Broadcast(Instr):
    """``out = x`` repeated along its size-1 axes to out's shape (same rank); a scalar x fills the tile."""
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.out.is_tile and self.out.dtype == self.x.dtype, self.loc, "broadcast keeps the dtype")
        if self.x.is_tile:
            xs, os_ = self.x.shape, self.out.shape
            _need(len(xs) == len(os_) and all(a in (1, b) for a, b in zip(xs, os_)), self.loc,
                  f"cannot broadcast shape {list(xs)} to {list(os_)}")


@dataclass(frozen=True, slots=True)
class ExpandDims(Instr):
    """``out = x`` with a new axis of size 1 inserted at position ``axis``."""
    out: Value
    x: Value
    axis: int

    def __post_init__(self):
        _need(self.x.is_tile, self.loc, "expand_dims needs a tile")
        s = list(self.x.shape)
        _need(0 <= self.axis <= len(s), self.loc, f"axis {self.axis} out of range")
        s.insert(self.axis, 1)
        _need(self.out.is_tile and self.out.shape == tuple(s) and self.out.dtype == self.x.dtype, self.loc,
              "expand_dims result type")


@dataclass(frozen=True, slots=True)
class Reshape(Instr):
    """``out = x`` with the same elements in row-major order and a new shape."""
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.x.is_tile and self.out.is_tile and self.out.dtype == self.x.dtype, self.loc,
              "reshape keeps the dtype")
        _need(self.x.type.numel == self.out.type.numel, self.loc,
              f"cannot reshape {list(self.x.shape)} ({self.x.type.numel} elements) to "
              f"{list(self.out.shape)} ({self.out.type.numel} elements)")


@dataclass(frozen=True, slots=True)
class Permute(Instr):
    """``out = x`` with axes reordered: ``out.shape[i] == x.shape[perm[i]]``."""
    out: Value
    x: Value
    perm: tuple[int, ...]

    def __post_init__(self):
        _need(self.x.is_tile, self.loc, "permute needs a tile")
        _need(sorted(self.perm) == list(range(len(self.x.shape))), self.loc,
              f"{list(self.perm)} is not a permutation of the {len(self.x.shape)} axes")
        _need(self.out.shape == tuple(self.x.shape[p] for p in self.perm) and self.out.dtype == self.x.dtype,
              self.loc, "permute result type")


@dataclass(frozen=True, slots=True)
class ConvertLayout(Instr):
    """``out = x``, moved to out's memory space / layout (no change of value)."""
    out: Value
    x: Value

    def __post_init__(self):
        _need(self.x.is_tile and self.out.is_tile, self.loc, "convert_layout moves a tile")
        _need(self.x.dtype == self.out.dtype and self.x.shape == self.out.shape, self.loc,
              "convert_layout keeps dtype and shape")


# ------------------------------------------------------------------------------------------ reductions
@dataclass(frozen=True, slots=True)
class Reduce(Instr):
    """Base of reductions of tile ``x`` along ``axis`` (the axis is removed; a 1-d tile gives a scalar)."""
    out: Value
    x: Value
    axis: int

    def __post_init__(self):
        name = type(self).__name__.lower()
        _need(self.x.is_tile, self.loc, f"{name} reduces a tile")
        _need(0 <= self.axis < len(self.x.shape), self.loc, f"axis {self.axis} out of range for {_desc(self.x)}")
        _need(is_compute(self.x.dtype), self.loc,
              f"{name} needs a compute dtype; {self.x.dtype} is a storage type: cast it first")
        shape = self.x.shape[:self.axis] + self.x.shape[self.axis + 1:]
        _result_like(self.out, shape, self.x.dtype, self.loc, name)


class Sum(Reduce):
    """Sum along the axis. The VM computes the exactly rounded sum (math.fsum; integers exactly, then
    wrapped) and rounds once to the dtype; compiled backends may add in any order (compare within the
    reduction tolerance)."""
    __slots__ = ()


class ReduceMax(Reduce):
    """Largest element along the axis (NaN only if all are NaN)."""
    __slots__ = ()


class ReduceMin(Reduce):
    """Smallest element along the axis."""
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Dot(Instr):
    """``out = a @ b + acc`` for a ``[M, K]``, b ``[K, N]``, acc ``[M, N]``. a and b are f16, bf16,
    f32 or int8 (same dtype); acc is f32 (floats) or int32 (int8). The VM computes the exact sum of
    the products and acc (products are exact in float64; the sum is exactly rounded with fsum) and
    rounds once to acc's dtype; compiled backends may accumulate in any order."""
    out: Value
    a: Value
    b: Value
    acc: Value

    def __post_init__(self):
        _need(self.a.is_tile and self.b.is_tile and self.acc.is_tile, self.loc, "dot multiplies tiles")
        _need(len(self.a.shape) == 2 and len(self.b.shape) == 2, self.loc, "dot needs 2-d tiles")
        (m, k), (k2, n) = self.a.shape, self.b.shape
        _need(k == k2, self.loc, f"dot inner sizes differ: {_desc(self.a)} @ {_desc(self.b)}")
        _need(self.a.dtype == self.b.dtype, self.loc, f"dot operands differ in dtype: {self.a.dtype}, {self.b.dtype}")
        _need(self.a.dtype in (D.float16, D.bfloat16, D.float32, D.int8), self.loc,
              f"dot takes f16, bf16, f32 or int8 operands, not {self.a.dtype}")
        want = D.int32 if self.a.dtype == D.int8 else D.float32
        _need(self.acc.dtype == want and self.acc.shape == (m, n), self.loc,
              f"dot accumulator must be {want}[{m}, {n}], got {_desc(self.acc)}")
        _need(self.out.is_tile and self.out.shape == (m, n) and self.out.dtype == want, self.loc,
              "dot result type")


# ------------------------------------------------------------------------------------------ control
@dataclass(frozen=True, slots=True)
class Assume(Instr):
    """A fact the compiler may rely on (``assume(K % 128 == 0)``); the VM checks it and reports a
    violation as an error."""
    cond: Value

    def __post_init__(self):
        _need(self.cond.is_scalar and self.cond.dtype == BOOL, self.loc, "assume needs a bool scalar")


@dataclass(frozen=True, slots=True)
class Barrier(Instr):
    """Synchronise the threads of the block (orders shared-memory accesses; no value semantics)."""


@dataclass(frozen=True, slots=True)
class For(Instr):
    """``for var in range(start, stop, step)``: ``inits`` seed the loop-carried ``carried`` values;
    each iteration runs ``body`` and its ``yields`` become the next ``carried``; after the loop,
    ``outs`` hold the last values (the inits when the loop runs zero times). ``step`` must be > 0."""
    var: Value
    start: Value
    stop: Value
    step: Value
    inits: tuple[Value, ...]
    carried: tuple[Value, ...]
    body: Block
    yields: tuple[Value, ...]
    outs: tuple[Value, ...]

    def __post_init__(self):
        for v in (self.start, self.stop, self.step):
            _need(v.is_scalar and v.dtype == INDEX, self.loc, "range bounds are int32 scalars")
        _need(self.var.type == ScalarType(INDEX), self.loc, "loop variable is int32")
        _need(len(self.inits) == len(self.carried) == len(self.yields) == len(self.outs), self.loc,
              "loop-carried value counts differ")
        for i, c, y, o in zip(self.inits, self.carried, self.yields, self.outs):
            _need(i.type == c.type == o.type, self.loc, f"loop-carried {c.name or c.id} has inconsistent types")
            _need(y.type == c.type, self.loc,
                  f"loop-carried variable {c.name or c.id} changes type from {c.type} to {y.type} in the loop body")

    @property
    def results(self):
        return self.outs

    @property
    def operands(self):
        return (self.start, self.stop, self.step) + self.inits

    def blocks(self):
        return (self.body,)


@dataclass(frozen=True, slots=True)
class If(Instr):
    """``if cond { then } else { orelse }`` on a bool scalar; ``outs[i]`` is ``then_yields[i]`` or
    ``else_yields[i]`` depending on the branch taken."""
    cond: Value
    then: Block
    orelse: Block
    then_yields: tuple[Value, ...]
    else_yields: tuple[Value, ...]
    outs: tuple[Value, ...]

    def __post_init__(self):
        _need(self.cond.is_scalar and self.cond.dtype == BOOL, self.loc,
              "if needs a bool scalar condition (for tiles use where)")
        _need(len(self.then_yields) == len(self.else_yields) == len(self.outs), self.loc, "branch result counts differ")
        for a, b, o in zip(self.then_yields, self.else_yields, self.outs):
            _need(a.type == b.type == o.type, self.loc,
                  f"variable {o.name or o.id} has type {a.type} in one branch and {b.type} in the other")

    @property
    def results(self):
        return self.outs

    @property
    def operands(self):
        return (self.cond,)

    def blocks(self):
        return (self.then, self.orelse)


# ------------------------------------------------------------------------------------------ kernel
@dataclass(frozen=True, slots=True)
class Kernel:
    """A program for one thread block of ``warps * 32`` threads, launched on ``grid`` blocks.

    ``params`` are the arguments in call order (global tensors and scalars); ``consts`` the
    compile-time parameters with the values this IR was built for; ``grid`` holds 1-3 symbolic
    sizes (over the size symbols and scalar parameters); ``symbols`` names each size symbol's first
    binding as (param index, axis).
    """
    name: str
    params: tuple[Value, ...]
    consts: tuple[tuple[str, object], ...]
    grid: tuple[object, ...]
    warps: int
    body: Block
    symbols: tuple[tuple[str, int, int], ...] = ()
    loc: Optional[SourceLoc] = field(default=None, compare=False)

    def param(self, name: str) -> Value:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def walk(block: Block):
    """Yield every instruction of ``block`` and its nested blocks, in program order."""
    for ins in block.instrs:
        yield ins
        for b in ins.blocks():
            yield from walk(b)
