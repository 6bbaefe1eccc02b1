"""IR nodes: global and shared memory (load, store, atomic add, insert) and tile creation (full, arange,
codebook). :mod:`vmlang.ir.nodes` re-exports them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import dtypes as D
from .types import INDEX
from .node_base import Value, Instr, IndexItem, At, Range, _fail, _need, _desc


# ------------------------------------------------------------------------------------------ memory
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
