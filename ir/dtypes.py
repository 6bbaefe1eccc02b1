"""Element types as data: integers, binary floats and codebooks.

Every dtype is a frozen, hashable value described by numbers, never by a per-name branch:

* ``IntType(bits, signed)``: two's complement (signed) or plain binary (unsigned);
* ``FloatType(exp, man, flavor, signed=True)``: a binary float (see :mod:`vmlang.ir.floatcodec`
  for the flavors and the exact codec);
* ``CodebookType(name, values)``: a table of real values indexed by an unsigned code (``nf4``).

All dtypes share one interface: ``name``, ``nbits``, ``is_float``, ``is_signed``, ``is_int``,
``min``, ``max`` (largest finite), ``decode(codes) -> float64`` and
``encode(values, saturate=False) -> codes``. Codes are unsigned integers holding the bit pattern
(``uint8`` for types of at most 8 bits, ``uint16``/``uint32`` for wider ones).

>>> from vmlang.ir.dtypes import dtype
>>> dtype("float4_e2m1").decode([0b0111, 0b1001]).tolist()
[6.0, -0.5]
>>> dtype("int3").encode([-4, 3, 2.5]).tolist()   # two's complement codes; 2.5 rounds half to even
[4, 3, 2]
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import floatcodec as fc
from .errors import DTypeError


class DType:
    """Common interface of every element type (see the module docstring)."""

    __slots__ = ()

    # -- describing ---------------------------------------------------------------------------
    @property
    def name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def nbits(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    is_float: bool = False
    is_int: bool = False
    is_codebook: bool = False

    @property
    def is_signed(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def code_dtype(self) -> np.dtype:
        """The NumPy unsigned integer type that holds one code."""
        return np.dtype(np.uint8 if self.nbits <= 8 else np.uint16 if self.nbits <= 16 else np.uint32)

    @property
    def is_subbyte(self) -> bool:
        return self.nbits < 8

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"vmlang.{self.name}"

    # -- annotations of @vm.jit kernels --------------------------------------------------------
    def __getitem__(self, dims) -> "TensorSpec":
        """``vm.f16["M", "K"]``: the annotation of a tensor parameter (a :class:`TensorSpec`)."""
        return TensorSpec(self, dims if isinstance(dims, tuple) else (dims,))

    __iter__ = None  # __getitem__ must not make a dtype iterable

    # -- codecs -------------------------------------------------------------------------------
    def _check_codes(self, codes) -> np.ndarray:
        c = np.asarray(codes)
        if c.dtype == np.bool_:
            c = c.astype(np.uint8)
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"{self.name}.decode expects integer codes (bit patterns), got dtype {c.dtype}")
        if c.size:
            lo, hi = int(c.min()), int(c.max())
            if lo < 0 or hi >= (1 << self.nbits):
                bad = lo if lo < 0 else hi
                raise ValueError(f"code {bad} does not fit in the {self.nbits} bits of {self.name} "
                                 f"(codes are unsigned bit patterns in [0, {(1 << self.nbits) - 1}])")
        return c

    def decode(self, codes) -> np.ndarray:
        """Bit patterns -> float64 values (exact)."""
        c = self._check_codes(codes)
        return self._decode(c)

    def encode(self, values, saturate: bool = False) -> np.ndarray:
        """float values -> bit patterns (round to nearest, ties to even).

        Values outside ``[min, max]`` raise ``ValueError`` naming the dtype and the value unless
        ``saturate=True`` (clamp to the range).
        """
        v = np.asarray(values, dtype=np.float64)
        return self._encode(v, saturate).astype(self.code_dtype)

    @property
    def values(self) -> np.ndarray:
        """All ``2**nbits`` decoded values indexed by code (types of at most 16 bits)."""
        if self.nbits > 16:
            raise DTypeError(f"{self.name} has too many codes to tabulate")
        return _value_table(self)


@dataclass(frozen=True)
class TensorSpec:
    """``dtype[dims]`` as written in a ``@vm.jit`` parameter annotation (``vm.f16["M", "K"]``).

    The front end reads annotations from the source; this object only lets them evaluate when the
    ``def`` runs. ``dims`` holds what was written: strings of size expressions, ints or names.
    """

    dtype: DType
    dims: tuple

    def __repr__(self) -> str:
        return f"{self.dtype!r}[{', '.join(map(repr, self.dims))}]"


@lru_cache(maxsize=None)
def _value_table(dt: DType) -> np.ndarray:
    t = dt._decode(np.arange(1 << dt.nbits, dtype=np.int64))
    t.setflags(write=False)
    return t


_INT_BITS = tuple(range(1, 9)) + (16, 32)


@dataclass(frozen=True, slots=True, repr=False)
class IntType(DType):
    """An integer type of ``bits`` bits, two's complement when ``signed``.

    >>> IntType(3, True).min, IntType(3, True).max
    (-4, 3)
    """

    bits: int
    signed: bool
    is_int = True

    def __post_init__(self):
        if self.bits not in _INT_BITS:
            raise DTypeError(f"integer types have 1..8, 16 or 32 bits, not {self.bits}")

    @property
    def name(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @property
    def nbits(self) -> int:
        return self.bits

    @property
    def is_signed(self) -> bool:
        return self.signed

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def _decode(self, c: np.ndarray) -> np.ndarray:
        c = c.astype(np.int64)
        if self.signed:
            c = np.where(c >= (1 << (self.bits - 1)), c - (1 << self.bits), c)
        return c.astype(np.float64)

    def _encode(self, v: np.ndarray, saturate: bool) -> np.ndarray:
        if np.isnan(v).any():
            raise ValueError(f"cannot encode NaN as {self.name}")
        r = np.rint(v)
        bad = (r < self.min) | (r > self.max)
        if bad.any():
            if not saturate:
                raise ValueError(f"value {float(v[bad][0])!r} is out of range for {self.name} "
                                 f"[{self.min}, {self.max}]; pass saturate=True to clamp")
            r = np.clip(r, self.min, self.max)
        return r.astype(np.int64) & ((1 << self.bits) - 1)


# Names of the float formats that are not plain ``float{N}_e{E}m{M}`` finite formats.
_FLOAT_NAMES = {
    (4, 3, fc.FN, True): "float8_e4m3",
    (5, 2, fc.IEEE, True): "float8_e5m2",
    (8, 0, fc.SCALE, False): "float8_e8m0",
    (5, 10, fc.IEEE, True): "float16",
    (8, 7, fc.IEEE, True): "bfloat16",
    (8, 23, fc.IEEE, True): "float32",
}


@dataclass(frozen=True, slots=True, repr=False)
class FloatType(DType):
    """A binary float with ``exp`` exponent and ``man`` mantissa bits (bias ``2**(exp-1) - 1``).

    ``flavor`` says how the top binade is used: ``"finite"`` (no Inf/NaN, OCP fp4/fp6 style),
    ``"fn"`` (no Inf, one NaN pattern: e4m3fn), ``"ieee"`` (Inf and NaN) or ``"scale"`` (the
    unsigned e8m0 scale: no zero, no subnormals, 0xFF = NaN).

    >>> FloatType(3, 2).name, FloatType(3, 2).max
    ('float6_e3m2', 28.0)
    """

    exp: int
    man: int
    flavor: str = fc.FINITE
    signed: bool = True
    is_float = True

    def __post_init__(self):
        if self.flavor not in fc.FLAVORS:
            raise DTypeError(f"unknown float flavor {self.flavor!r} (one of {', '.join(fc.FLAVORS)})")
        if self.exp < 1 or self.man < 0:
            raise DTypeError(f"a float needs exp >= 1 and man >= 0 (got e{self.exp}m{self.man})")
        key = (self.exp, self.man, self.flavor, self.signed)
        if self.flavor == fc.FINITE:
            if not self.signed or self.nbits > 7:
                raise DTypeError(f"finite float formats are signed with at most 7 bits "
                                 f"(got e{self.exp}m{self.man}, {self.nbits} bits)")
        elif key not in _FLOAT_NAMES:
            raise DTypeError(f"no {self.flavor} float format e{self.exp}m{self.man} is defined; the defined "
                             f"ones are {', '.join(sorted(_FLOAT_NAMES.values()))}")

    @property
    def name(self) -> str:
        if self.flavor == fc.FINITE:
            return f"float{self.nbits}_e{self.exp}m{self.man}"
        return _FLOAT_NAMES[(self.exp, self.man, self.flavor, self.signed)]

    @property
    def nbits(self) -> int:
        return self.exp + self.man + (1 if self.signed else 0)

    @property
    def is_signed(self) -> bool:
        return self.signed

    @property
    def bias(self) -> int:
        return fc.bias(self.exp)

    @property
    def has_inf(self) -> bool:
        return self.flavor == fc.IEEE

    @property
    def has_nan(self) -> bool:
        return self.flavor != fc.FINITE

    @property
    def has_subnormals(self) -> bool:
        return self.flavor != fc.SCALE

    @property
    def max(self) -> float:
        return float(self._decode(np.array([fc.max_magnitude_code(self.exp, self.man, self.flavor)]))[0])

    @property
    def min(self) -> float:
        """The most negative finite value (``-max``), or the smallest value of an unsigned format."""
        return -self.max if self.signed else float(self._decode(np.array([0]))[0])

    @property
    def smallest_positive(self) -> float:
        """The smallest positive value (the smallest subnormal where the format has subnormals)."""
        return float(self._decode(np.array([1 if self.has_subnormals else 0]))[0])

    @property
    def smallest_subnormal(self) -> float | None:
        """The smallest positive subnormal, or None for formats without subnormals (M = 0, e8m0)."""
        return self.smallest_positive if self.has_subnormals and self.man > 0 else None

    @property
    def smallest_normal(self) -> float:
        return math.ldexp(1.0, 1 - self.bias if self.has_subnormals else -self.bias)

    def _decode(self, c: np.ndarray) -> np.ndarray:
        return fc.decode(c, self.exp, self.man, self.flavor, self.signed)

    def _encode(self, v: np.ndarray, saturate: bool) -> np.ndarray:
        return fc.encode(v, self.exp, self.man, self.flavor, self.signed, saturate, self.name)


@dataclass(frozen=True, slots=True, repr=False)
class CodebookType(DType):
    """A codebook: code ``i`` means ``values[i]`` (exact float32 values, sorted ascending).

    Encoding picks the nearest entry; a value exactly between two entries takes the lower code
    (as bitsandbytes does for nf4).

    >>> nf4.decode([0, 7, 15]).tolist()
    [-1.0, 0.0, 1.0]
    """

    cb_name: str
    entries: tuple = field(repr=False)
    is_float = True
    is_codebook = True

    def __post_init__(self):
        n = len(self.entries)
        if n < 2 or n > 256 or n & (n - 1):
            raise DTypeError(f"a codebook has a power-of-two number of entries in 2..256, not {n}")
        vals = np.asarray(self.entries, dtype=np.float64)
        if not np.all(np.diff(vals) > 0) or not np.all(np.isfinite(vals)):
            raise DTypeError(f"codebook {self.cb_name} entries must be finite and strictly increasing")
        if not np.array_equal(vals.astype(np.float32).astype(np.float64), vals):
            raise DTypeError(f"codebook {self.cb_name} entries must be exact float32 values")

    @property
    def name(self) -> str:
        return self.cb_name

    @property
    def nbits(self) -> int:
        return (len(self.entries) - 1).bit_length()

    @property
    def is_signed(self) -> bool:
        return self.entries[0] < 0

    @property
    def min(self) -> float:
        return float(self.entries[0])

    @property
    def max(self) -> float:
        return float(self.entries[-1])

    def _decode(self, c: np.ndarray) -> np.ndarray:
        return np.asarray(self.entries, dtype=np.float64)[c.astype(np.int64)]

    def _encode(self, v: np.ndarray, saturate: bool) -> np.ndarray:
        if np.isnan(v).any():
            raise ValueError(f"cannot encode NaN as {self.name}")
        t = np.asarray(self.entries, dtype=np.float64)
        bad = (v < t[0]) | (v > t[-1])
        if bad.any() and not saturate:
            raise ValueError(f"value {float(v[bad][0])!r} is out of range for {self.name} "
                             f"[{t[0]!r}, {t[-1]!r}]; pass saturate=True to clamp")
        mids = (t[:-1] + t[1:]) / 2  # exact: float32 entries
        return np.searchsorted(mids, v, side="left").astype(np.int64)


#: The NormalFloat-4 codebook of bitsandbytes (QLoRA), exact float32 values.
NF4_VALUES = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)
nf4 = CodebookType("nf4", NF4_VALUES)


def _build_registry() -> dict[str, DType]:
    reg: dict[str, DType] = {}
    for signed in (True, False):
        for b in _INT_BITS:
            t = IntType(b, signed)
            reg[t.name] = t
    for e in range(1, 7):
        for m in range(0, 7 - e):
            t = FloatType(e, m)
            reg[t.name] = t
    for (e, m, flavor, signed) in _FLOAT_NAMES:
        t = FloatType(e, m, flavor, signed)
        reg[t.name] = t
    reg[nf4.name] = nf4
    return reg


_REGISTRY: dict[str, DType] = _build_registry()
_ALIASES = {
    "f16": "float16", "fp16": "float16", "half": "float16",
    "bf16": "bfloat16",
    "f32": "float32", "fp32": "float32",
    "float8_e4m3fn": "float8_e4m3", "float8_e8m0fnu": "float8_e8m0",
    "fp4": "float4_e2m1", "float4_e2m1fn": "float4_e2m1",
    "float6_e3m2fn": "float6_e3m2", "float6_e2m3fn": "float6_e2m3",
    "i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32", "u16": "uint16", "u32": "uint32",
}


def dtype(name) -> DType:
    """Look a dtype up by name (or alias such as ``f16``); a DType passes through.

    >>> dtype("f16") is dtype("float16")
    True
    """
    if isinstance(name, DType):
        return name
    if not isinstance(name, str):
        raise DTypeError(f"expected a dtype or a dtype name, got {type(name).__name__}")
    key = _ALIASES.get(name, name)
    try:
        return _REGISTRY[key]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY) + list(_ALIASES), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DTypeError(f"unknown dtype {name!r}{hint}") from None


def all_dtypes() -> list[DType]:
    """Every named dtype, in table order (ints, unsigned ints, small floats, named floats, codebooks)."""
    return list(_REGISTRY.values())


def aliases() -> dict[str, str]:
    return dict(_ALIASES)


globals().update(_REGISTRY)
