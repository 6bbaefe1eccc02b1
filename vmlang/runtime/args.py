"""Checking and binding a kernel's arguments, shared by every backend.

Every argument is checked before anything runs: dtype, rank, shape against the declared symbols, device,
contiguity, writability of outputs, packed byte length. A mismatch raises :class:`vmlang.ArgumentError`
naming the parameter, what was expected and what was given. Nothing is written to any output on a
rejected call.

Accepted objects for a tensor parameter of dtype ``dt`` (see :mod:`.storage` for the canonical storage):

- ``vm.Tensor`` of exactly ``dt`` (NumPy or torch data underneath);
- NumPy arrays and torch tensors (CPU or CUDA) of the native dtype (f16, f32, int8..32, uint8..32, bf16 as
  ``torch.bfloat16`` / ``ml_dtypes.bfloat16`` / uint16 codes, fp8 as ``float8_e4m3fn`` / ``float8_e5m2`` /
  ``float8_e8m0fnu`` or uint8 codes, ``bool`` for ``uint1``);
- for dtypes below 8 bits, uint8 arrays of packed bytes (LSB-first along the last axis): the element count
  of the last axis comes from the other arguments, or from the byte count when that is exact.

Backends read each :class:`TensorArg` either as host codes (``codes()`` / ``write_codes()``, the NumPy VM)
or as canonical storage on a device (``torch_storage(device)`` then :meth:`Binding.commit`, compiled
backends): zero-copy when the caller's object already is that storage, else a copy that is written back
into the caller's object only by ``commit`` after a successful launch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import ArgumentError
from vmlang.ir.packing import pack, packed_length, unpack
from vmlang.ir.symexpr import SymVar
from vmlang.ir.types import BOOL, GlobalType

from . import storage as S
from .tensor import Tensor


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _torch_dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


@dataclass(eq=False)
class TensorArg:
    """One tensor argument after checking: canonical storage plus how to reach the caller's object."""
    name: str
    dtype: D.DType
    shape: tuple[int, ...]                 # logical, in elements
    storage: object                        # np.ndarray or torch.Tensor, canonical (see .storage)
    device: str                            # "cpu" or "cuda:N"
    #: writes new canonical storage into the caller's object when ``storage`` is a converted copy
    write_into: Callable[[object], None] | None = field(default=None, repr=False)
    _dev: object = field(default=None, repr=False)

    # --------------------------------------------------------------- host view (the NumPy VM)
    def host_storage(self) -> np.ndarray:
        s = self.storage
        if is_torch(s):
            import torch
            s = s.detach()
            if s.dtype == torch.bfloat16:
                s = s.view(torch.int16)
            s = s.cpu().numpy()
            s = s.view(S.host_dtype(self.dtype)) if s.dtype.itemsize == np.dtype(S.host_dtype(self.dtype)).itemsize \
                else s
        return s

    def codes(self) -> np.ndarray:
        """A host copy of the element codes (logical shape, unsigned code dtype)."""
        return S.storage_to_codes(self.dtype, self.host_storage(), self.shape[-1])

    def write_codes(self, codes: np.ndarray) -> None:
        """Overwrite the caller's tensor with new element codes (logical shape)."""
        self._write_host(S.codes_to_storage(self.dtype, codes).reshape(S.storage_shape(self.dtype, self.shape)))

    def _write_host(self, new: np.ndarray) -> None:
        s = self.storage
        if is_torch(s):
            s.copy_(_host_to_torch(self.dtype, new, s.device))
        else:
            np.copyto(s, new.view(s.dtype))
        if self.write_into is not None:
            self.write_into(s)

    # --------------------------------------------------------------- device view (compiled backends)
    def torch_storage(self, device: str = "cpu"):
        """The canonical storage as a contiguous torch tensor on ``device`` (zero-copy when possible)."""
        import torch
        s = self.storage
        if is_torch(s) and str(s.device) == str(torch.device(device)):
            return s
        if self._dev is None or str(self._dev.device) != str(torch.device(device)):
            if is_torch(s):
                self._dev = s.to(device).contiguous()
            else:
                self._dev = _host_to_torch(self.dtype, s, device)
        return self._dev

    def commit(self) -> None:
        """Copy a device copy made by :meth:`torch_storage` back into the caller's object."""
        if self._dev is None:
            return
        s = self.storage
        if is_torch(s):
            s.copy_(self._dev)
            if self.write_into is not None:
                self.write_into(s)
        else:
            import torch
            d = self._dev.detach()
            if d.dtype == torch.bfloat16:
                d = d.view(torch.int16)
            self._write_host(d.cpu().numpy().view(s.dtype))
        self._dev = None


def _host_to_torch(dt: D.DType, arr: np.ndarray, device):
    import torch
    arr = np.ascontiguousarray(arr)
    if dt == D.bfloat16:
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_numpy(arr).to(device)


@dataclass
class Binding:
    sizes: dict[str, int]
    tensors: dict[int, TensorArg]
    scalars: dict[int, object]
    grid: tuple[int, int, int]
    #: "cpu" or the one CUDA device every CUDA argument is on
    device: str = "cpu"

    def commit(self, vids) -> None:
        """After a successful launch: write device copies of the written tensors back to the caller."""
        for vid in vids:
            self.tensors[vid].commit()


# ----------------------------------------------------------------------------------- dtype inference
def infer_dtype(x) -> D.DType | None:
    """The vmlang dtype an argument object holds, where it says (uint8 data says uint8)."""
    if isinstance(x, Tensor):
        return x.dtype
    name = _torch_dtype_name(x) if is_torch(x) else getattr(getattr(x, "dtype", None), "name", None)
    if name is None:
        return None
    if name in S.FOREIGN_FLOATS:
        return S.FOREIGN_FLOATS[name]
    if name == "bool":
        return D.uint1
    for dt, np_t in S.NATIVE_HOST.items():
        if np.dtype(np_t).name == name:
            return dt
    return None


# ----------------------------------------------------------------------------------- preparing one argument
def _describe(x) -> str:
    if is_torch(x):
        return f"a torch tensor of {_torch_dtype_name(x)} on {x.device}"
    if isinstance(x, np.ndarray):
        return f"a NumPy array of {x.dtype}"
    return type(x).__name__


def _prepare(name: str, dt: D.DType, x, written: bool):
    """-> (storage, logical shape or None when it must be inferred from bytes, device, write_into)."""
    if isinstance(x, Tensor):
        if x.dtype != dt:
            raise ArgumentError(f"argument {name}: expected a {dt} tensor, got a vm.Tensor of {x.dtype}")
        data = x.data
        if not S.is_packed(dt):   # codes -> the canonical dtype (a zero-copy view, NumPy or torch)
            if isinstance(data, np.ndarray):
                data = data.view(S.host_dtype(dt))
            elif S.torch_dtype_name(dt) != _torch_dtype_name(data):
                import torch
                data = data.view(getattr(torch, S.torch_dtype_name(dt)))
        return _prepare_raw(name, dt, data, written, x.shape, "vm.Tensor")
    if not (is_torch(x) or isinstance(x, np.ndarray)):
        raise ArgumentError(f"argument {name}: expected a tensor of {dt} (NumPy array, torch tensor or "
                            f"vm.Tensor), got {type(x).__name__}")
    return _prepare_raw(name, dt, x, written, None, None)


def _prepare_raw(name, dt, x, written, shape, wrapper):
    torch_in = is_torch(x)
    what = wrapper or _describe(x)
    if torch_in:
        import torch
        if x.layout != torch.strided:
            raise ArgumentError(f"argument {name}: sparse or non-strided torch tensors are not supported")
        if not x.is_contiguous():
            raise ArgumentError(f"argument {name}: expected a contiguous (row-major) tensor, got strides "
                                f"{tuple(x.stride())} for shape {tuple(x.shape)}; pass x.contiguous()")
        device = str(x.device)
        if device.startswith("cuda") and ":" not in device:
            device = f"cuda:{x.device.index or 0}"
        tname = _torch_dtype_name(x)
    else:
        if not x.flags.c_contiguous:
            raise ArgumentError(f"argument {name}: expected a contiguous (row-major) array, got strides "
                                f"{x.strides} for shape {x.shape}; pass np.ascontiguousarray(x)")
        if written and not x.flags.writeable:
            raise ArgumentError(f"argument {name}: the kernel writes this tensor, but the array is read-only")
        device = "cpu"
        tname = x.dtype.name
    if device != "cpu" and not device.startswith("cuda"):
        raise ArgumentError(f"argument {name}: tensors on {device} are not supported (cpu or cuda)")

    def view_u8(t):
        if torch_in:
            import torch
            return t.view(torch.uint8)
        return t.view(np.uint8)

    # --- the canonical form already, or a zero-copy view of it
    want = S.torch_dtype_name(dt) if torch_in else np.dtype(S.host_dtype(dt)).name
    if tname == want:
        if S.is_packed(dt) or shape is not None:
            return x, shape, device, None
        return x, tuple(x.shape), device, None
    if S.FOREIGN_FLOATS.get(tname) is not None:
        if S.FOREIGN_FLOATS[tname] != dt:
            raise ArgumentError(f"argument {name}: expected {dt}, got {what} ({tname} is "
                                f"{S.FOREIGN_FLOATS[tname]})")
        if dt == D.bfloat16:          # NumPy ml_dtypes bfloat16 -> uint16 codes
            return x.view(np.uint16), tuple(x.shape), device, None
        return view_u8(x), tuple(x.shape), device, None
    if dt == D.uint1 and tname == "bool":   # one bool per element -> packed bits (a copy)
        host = x.detach().cpu().numpy() if torch_in else x
        packed = pack(host.astype(np.uint8), 1)
        n = host.shape[-1]

        def back(storage, x=x, n=n):
            bits = unpack(np.asarray(storage), 1, n).astype(bool)
            if torch_in:
                import torch
                x.copy_(torch.from_numpy(bits).to(x.device))
            else:
                np.copyto(x, bits)
        return packed, tuple(host.shape), device, back
    if dt.nbits > 8 or dt in S.NATIVE_HOST:
        raise ArgumentError(f"argument {name}: expected {dt} data ({want}), got {what}")
    raise ArgumentError(f"argument {name}: {dt} data must be given as uint8 "
                        f"{'packed bytes' if S.is_packed(dt) else 'codes'} or as vm.Tensor, got {what}")


# ----------------------------------------------------------------------------------- binding
def written_params(kernel: N.Kernel) -> set[int]:
    """The ids of the tensor parameters the kernel stores to."""
    return {i.dst.id for i in N.walk(kernel.body) if isinstance(i, (N.Store, N.AtomicAdd))}


def bind_args(kernel: N.Kernel, args: tuple, kwargs: dict | None = None) -> Binding:
    """Check ``args`` (and keyword arguments by parameter name) against ``kernel``'s parameters."""
    params = kernel.params
    args = _merge_keywords(kernel, tuple(args), dict(kwargs or {}))
    written = written_params(kernel)
    sizes: dict[str, int] = {}
    scalars: dict[int, object] = {}
    prepared = {}
    for p, a in zip(params, args):
        if not isinstance(p.type, GlobalType):
            scalars[p.id] = _scalar(p, a)
            if p.dtype.is_int:
                sizes[p.name] = int(scalars[p.id])
            continue
        prepared[p.id] = _prepare(p.name, p.dtype, a, p.id in written)
    devices = {d for (_, _, d, _) in prepared.values() if d != "cpu"}
    if len(devices) > 1:
        raise ArgumentError(f"{kernel.name}: arguments are on several devices ({', '.join(sorted(devices))})")

    def bind_symbols(p, shape):
        dims = p.type.dims
        if len(shape) != len(dims):
            raise ArgumentError(f"argument {p.name}: expected {len(dims)} dimensions "
                                f"[{', '.join(map(str, dims))}], got shape {list(shape)}")
        for d, n in zip(dims, shape):
            if isinstance(d, SymVar) and d.name not in sizes:
                sizes[d.name] = int(n)

    shapes: dict[int, tuple] = {}
    for p in params:               # shapes given in elements bind the size symbols first
        if p.id in prepared and prepared[p.id][1] is not None:
            shapes[p.id] = tuple(int(s) for s in prepared[p.id][1])
            bind_symbols(p, shapes[p.id])
    for p in params:               # packed bytes: the last axis's element count from the sizes or the bytes
        if p.id in prepared and prepared[p.id][1] is None:
            shapes[p.id] = _packed_shape(p, prepared[p.id][0], sizes)
            bind_symbols(p, shapes[p.id])
    tensors: dict[int, TensorArg] = {}
    for p in params:               # every axis against its declaration, now that every symbol is bound
        if p.id not in prepared:
            continue
        data, given, device, back = prepared[p.id]
        shape = shapes[p.id]
        for axis, (d, n) in enumerate(zip(p.type.dims, shape)):
            if d.symbols() - set(sizes):
                continue
            want = d.evaluate(sizes)
            if want != n:
                raise ArgumentError(f"argument {p.name}: axis {axis} is declared {d} = {want} but has size {n} "
                                    f"(shape {list(shape)})")
        if given is not None:
            want_storage = S.storage_shape(p.dtype, shape)
            if tuple(data.shape) != want_storage:
                raise ArgumentError(f"argument {p.name}: {p.dtype}{list(shape)} is stored as "
                                    f"{list(want_storage)} bytes, got data of shape {list(data.shape)}")
        tensors[p.id] = TensorArg(p.name, p.dtype, tuple(shape), data, device, back)
    try:
        grid = [g.evaluate(sizes) for g in kernel.grid]
    except Exception as e:  # noqa: BLE001
        raise ArgumentError(f"cannot evaluate the grid of {kernel.name}: {e}") from None
    for g, expr in zip(grid, kernel.grid):
        if g < 0:
            raise ArgumentError(f"grid size {expr} = {g} is negative")
    grid += [1] * (3 - len(grid))
    return Binding(sizes, tensors, scalars, tuple(grid), devices.pop() if devices else "cpu")


def _merge_keywords(kernel: N.Kernel, args: tuple, kwargs: dict) -> tuple:
    names = [p.name for p in kernel.params]
    if len(args) > len(names):
        raise ArgumentError(f"{kernel.name} takes {len(names)} arguments ({', '.join(names)}), got {len(args)}")
    out = list(args) + [None] * (len(names) - len(args))
    given = [True] * len(args) + [False] * (len(names) - len(args))
    for k, v in kwargs.items():
        if k not in names:
            raise ArgumentError(f"{kernel.name} has no parameter {k} (it has {', '.join(names)})")
        i = names.index(k)
        if given[i]:
            raise ArgumentError(f"{kernel.name}: argument {k} given twice")
        out[i], given[i] = v, True
    missing = [n for n, g in zip(names, given) if not g]
    if missing:
        raise ArgumentError(f"{kernel.name} takes {len(names)} arguments ({', '.join(names)}); "
                            f"missing {', '.join(missing)}")
    return tuple(out)


def _packed_shape(p, data, sizes) -> tuple[int, ...]:
    dims = p.type.dims
    if data.ndim != len(dims):
        raise ArgumentError(f"argument {p.name}: expected {len(dims)} dimensions, got shape {list(data.shape)}")
    last = dims[-1]
    nbytes = int(data.shape[-1])
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
    return tuple(int(s) for s in data.shape[:-1]) + (n,)


def _scalar(p: N.Value, a):
    dt = p.dtype
    if a is None:
        raise ArgumentError(f"argument {p.name}: expected a {dt} scalar, got None")
    if is_torch(a) or isinstance(a, np.ndarray):
        n = a.numel() if is_torch(a) else a.size
        if n != 1:
            raise ArgumentError(f"argument {p.name}: expected a {dt} scalar, got an array of shape "
                                f"{list(a.shape)}")
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


def scalar_bits(dt, value) -> int:
    """The int32 kernel argument that carries a scalar parameter of ``dt`` on the compiled backends: its bit
    pattern (ints wrapped to their width, f32/f16 IEEE bits, bf16 and storage dtypes their code), as a signed
    int32."""
    if dt == BOOL:
        return int(bool(value))
    if dt.is_int and not dt.is_codebook:
        code = int(value) & ((1 << dt.nbits) - 1)
    elif dt == D.float32:
        code = int(np.asarray(value, np.float64).astype(np.float32).view(np.uint32))
    elif dt == D.float16:
        code = int(np.asarray(value, np.float64).astype(np.float16).view(np.uint16))
    else:
        code = int(dt.encode(np.asarray([float(value)]))[0])
    return code - (1 << 32) if code >= (1 << 31) else code


def word_aligned_copy(t):
    """A copy of the uint8 torch tensor ``t`` at a 16-byte aligned address with 8 zero bytes of slack after
    it: sub-byte stores of the compiled backends merge 32-bit words, and vector stores need the 16-byte
    aligned base the vectorize pass assumes. Copy it back after the launch."""
    import torch
    buf = torch.zeros(t.numel() + 24, dtype=torch.uint8, device=t.device)
    off = (-buf.data_ptr()) % 16
    al = buf[off:off + t.numel()].view(t.shape)
    al.copy_(t)
    return al


def storage_strides(shape, storage_last: int) -> list[int]:
    """Strides (in storage elements: bytes for packed dtypes) of the leading axes of a row-major tensor of
    logical ``shape`` whose last axis takes ``storage_last`` storage elements."""
    storage = list(shape[:-1]) + [storage_last] if shape else []
    return [int(np.prod(storage[a + 1:])) for a in range(len(shape) - 1)]
