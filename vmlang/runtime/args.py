"""Checking and binding a kernel's arguments, shared by every backend.

Every argument is checked before anything runs: dtype, rank, shape against the declared symbols,
packed byte length. A mismatch raises :class:`vmlang.ArgumentError` naming the parameter, what was
expected and what was given. Nothing is written to any output on a rejected call.

Global tensors are handed to backends as :class:`HostArg`: the element bit patterns (unsigned codes,
logical shape) plus a function that writes new codes back into the caller's object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import ArgumentError
from vmlang.ir.packing import packed_length
from vmlang.ir.symexpr import SymVar
from vmlang.ir.types import GlobalType

from .tensor import Tensor

_NATIVE = {D.float16: np.float16, D.float32: np.float32, D.int8: np.int8, D.int16: np.int16,
           D.int32: np.int32, D.uint8: np.uint8, D.uint16: np.uint16, D.uint32: np.uint32,
           D.uint1: np.bool_}
#: ml_dtypes / torch names of our 8- and 16-bit formats (their arrays are viewed as raw codes)
_FOREIGN = {"bfloat16": D.bfloat16, "float8_e4m3fn": D.float8_e4m3, "float8_e5m2": D.float8_e5m2,
            "float8_e8m0fnu": D.float8_e8m0}


@dataclass
class HostArg:
    """A global tensor argument: its codes (logical shape) and how to write results back."""
    dtype: D.DType
    codes: np.ndarray
    writeback: Callable[[np.ndarray], None] = field(repr=False)


@dataclass
class Binding:
    sizes: dict[str, int]
    tensors: dict[int, HostArg]
    scalars: dict[int, object]
    grid: tuple[int, int, int]

    def writeback(self, codes_by_id: dict[int, np.ndarray]) -> None:
        for vid, codes in codes_by_id.items():
            self.tensors[vid].writeback(codes)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _torch_to_numpy(t, name):
    import torch
    if t.dtype == torch.bfloat16:
        return t.detach().cpu().contiguous().view(torch.int16).numpy().view(np.uint16), "bfloat16"
    return t.detach().cpu().contiguous().numpy(), None


def _host_arg(name: str, dt: D.DType, x):
    """Returns (codes or packed bytes, logical shape or None if to be inferred, packed?, writeback)."""
    if isinstance(x, Tensor):
        if x.dtype != dt:
            raise ArgumentError(f"argument {name}: expected a {dt} tensor, got a vm.Tensor of {x.dtype}")
        return x.codes(), x.shape, (lambda c: x.set_codes(c))
    torch_obj = None
    foreign = None
    if _is_torch(x):
        torch_obj = x
        x, foreign = _torch_to_numpy(x, name)
    if not isinstance(x, np.ndarray):
        raise ArgumentError(f"argument {name}: expected an array of {dt}, got {type(x).__name__}")
    foreign = foreign or (x.dtype.name if x.dtype.name in _FOREIGN else None)

    def back_numpy(arr_codes_to_container):
        def wb(codes):
            new = arr_codes_to_container(codes)
            if torch_obj is not None:
                import torch
                src = torch.from_numpy(np.ascontiguousarray(new))
                if foreign == "bfloat16":
                    src = src.view(torch.bfloat16)
                torch_obj.copy_(src.reshape(torch_obj.shape))
            else:
                np.copyto(x, new.view(x.dtype) if new.dtype.itemsize == x.dtype.itemsize and
                          new.dtype != x.dtype and foreign else new, casting="unsafe")
        return wb

    if foreign:
        want = _FOREIGN[foreign]
        if want != dt:
            raise ArgumentError(f"argument {name}: expected {dt}, got an array of {foreign}")
        codes = x.view(np.uint16 if dt.nbits == 16 else np.uint8)
        return codes, x.shape, back_numpy(lambda c: c.astype(codes.dtype))
    if dt in _NATIVE:
        if x.dtype != np.dtype(_NATIVE[dt]):
            raise ArgumentError(f"argument {name}: expected dtype {np.dtype(_NATIVE[dt]).name} ({dt}), got {x.dtype}")
        codes = x.view(dt.code_dtype) if dt != D.uint1 else x.astype(np.uint8)
        return codes.copy(), x.shape, back_numpy(
            lambda c: c.astype(dt.code_dtype).view(_NATIVE[dt]) if dt != D.uint1 else c.astype(bool))
    # storage types without a NumPy dtype: raw uint8 codes (8-bit) or packed bytes (sub-byte)
    if x.dtype != np.uint8:
        raise ArgumentError(f"argument {name}: {dt} data must be given as uint8 "
                            f"{'packed bytes' if dt.nbits < 8 else 'codes'} or as vm.Tensor, got {x.dtype}")
    if dt.nbits == 8 or dt.nbits > 8:
        return x.copy(), x.shape, back_numpy(lambda c: c.astype(np.uint8))
    from vmlang.ir.packing import pack
    return x, None, back_numpy(lambda c: pack(c, dt.nbits))


def bind_args(kernel: N.Kernel, args: tuple) -> Binding:
    params = kernel.params
    if len(args) != len(params):
        raise ArgumentError(f"{kernel.name} takes {len(params)} arguments "
                            f"({', '.join(p.name for p in params)}), got {len(args)}")
    sizes: dict[str, int] = {}
    scalars: dict[int, object] = {}
    prepared = {}
    # pass 1: scalars and every tensor whose shape is known in elements
    for p, a in zip(params, args):
        if not isinstance(p.type, GlobalType):
            scalars[p.id] = _scalar(p, a)
            if p.dtype.is_int:
                sizes[p.name] = int(scalars[p.id])
            continue
        prepared[p.id] = _host_arg(p.name, p.dtype, a)
    def bind_shape(p, shape):
        dims = p.type.dims
        if len(shape) != len(dims):
            raise ArgumentError(f"argument {p.name}: expected {len(dims)} dimensions "
                                f"[{', '.join(map(str, dims))}], got shape {list(shape)}")
        for axis, (d, n) in enumerate(zip(dims, shape)):
            if isinstance(d, SymVar) and d.name not in sizes:
                sizes[d.name] = int(n)
        for axis, (d, n) in enumerate(zip(dims, shape)):
            want = d.evaluate(sizes)
            if want != n:
                raise ArgumentError(f"argument {p.name}: axis {axis} is declared {d} = {want} but has size {n} "
                                    f"(shape {list(shape)})")
    for p in params:
        if p.id in prepared and prepared[p.id][1] is not None:
            bind_shape(p, prepared[p.id][1])
    tensors: dict[int, HostArg] = {}
    for p in params:
        if p.id not in prepared:
            continue
        data, shape, wb = prepared[p.id]
        if shape is None:  # packed sub-byte bytes: find the element count of the last axis
            dims = p.type.dims
            if data.ndim != len(dims):
                raise ArgumentError(f"argument {p.name}: expected {len(dims)} dimensions, got shape {list(data.shape)}")
            last = dims[-1]
            nbytes = data.shape[-1]
            if not last.symbols() - set(sizes):
                n = last.evaluate(sizes)
            elif isinstance(last, SymVar) and (nbytes * 8) % p.dtype.nbits == 0:
                n = nbytes * 8 // p.dtype.nbits
            else:
                raise ArgumentError(f"argument {p.name}: {nbytes} packed bytes of {p.dtype} do not determine the "
                                    f"element count of the last axis ({last}); pass vm.Tensor(data, "
                                    f"vm.{p.dtype.name}, shape)")
            if packed_length(n, p.dtype.nbits) != nbytes:
                raise ArgumentError(f"argument {p.name}: {n} elements of {p.dtype} pack into "
                                    f"{packed_length(n, p.dtype.nbits)} bytes per row, got {nbytes}")
            shape = data.shape[:-1] + (n,)
            bind_shape(p, shape)
            from vmlang.ir.packing import unpack
            data = unpack(data, p.dtype.nbits, n)
        tensors[p.id] = HostArg(p.dtype, np.asarray(data), wb)
    try:
        grid = [g.evaluate(sizes) for g in kernel.grid]
    except Exception as e:  # noqa: BLE001
        raise ArgumentError(f"cannot evaluate the grid of {kernel.name}: {e}") from None
    for g, expr in zip(grid, kernel.grid):
        if g < 0:
            raise ArgumentError(f"grid size {expr} = {g} is negative")
    grid += [1] * (3 - len(grid))
    return Binding(sizes, tensors, scalars, tuple(grid))


def _scalar(p: N.Value, a):
    dt = p.dtype
    if _is_torch(a) or isinstance(a, np.ndarray):
        if getattr(a, "ndim", 1) != 0 and getattr(a, "numel", lambda: 2)() != 1:
            raise ArgumentError(f"argument {p.name}: expected a {dt} scalar, got an array")
        a = a.item()
    if isinstance(a, np.generic):
        a = a.item()
    if dt == D.uint1:
        if not isinstance(a, bool):
            raise ArgumentError(f"argument {p.name}: expected a bool, got {a!r}")
        return a
    if dt.is_int:
        if isinstance(a, bool) or not isinstance(a, int):
            raise ArgumentError(f"argument {p.name}: expected an integer ({dt}), got {a!r}")
        if not dt.min <= a <= dt.max:
            raise ArgumentError(f"argument {p.name}: {a} does not fit in {dt} [{dt.min}, {dt.max}]")
        return a
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        raise ArgumentError(f"argument {p.name}: expected a number ({dt}), got {a!r}")
    return float(a)
