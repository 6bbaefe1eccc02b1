"""Argument checks and 32-bit word <-> byte-stream views shared by the converters.

Every converter accepts NumPy arrays or CPU torch tensors and hands back NumPy arrays; the checks here
raise :class:`vmlang.ir.errors.ArgumentError` with the argument's name and what was wrong with it.

A little-endian 32-bit word stream and the LSB-first byte stream of :mod:`vmlang.ir.packing` are the
same bits: bit ``i`` of word ``w`` is bit ``i % 8`` of byte ``4 * w + i // 8``. So a row of codes packed
LSB-first into int32 words (GPTQ) is the byte view of those words:

>>> words_to_bytes(np.array([[0x76543210]], np.int32)).tolist()
[[16, 50, 84, 118]]
>>> hex(int(bytes_to_words(np.array([[0x10, 0x32, 0x54, 0x76]], np.uint8))[0, 0]))
'0x76543210'
"""
from __future__ import annotations

import numpy as np
from vmlang.ir.errors import ArgumentError

from vmlang.runtime.args import is_torch
from vmlang.runtime.tensor import Tensor


def dtype_name(a) -> str:
    """``"int32"``, ``"float16"``, ... for a NumPy array or a torch tensor."""
    return str(a.dtype).removeprefix("torch.")


def host(a, name: str, dtypes: tuple[str, ...]) -> np.ndarray:
    """``a`` (NumPy array or torch tensor) as a NumPy array, after checking its dtype is one of ``dtypes``."""
    if a is None:
        raise ArgumentError(f"{name} is missing")
    if not hasattr(a, "dtype") or not hasattr(a, "shape"):
        raise ArgumentError(f"{name} must be a NumPy array or a torch tensor, got {type(a).__name__}")
    got = dtype_name(a)
    if got not in dtypes:
        raise ArgumentError(f"{name} must have dtype {' or '.join(dtypes)}, got {got}")
    if is_torch(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def word_packed_inputs(fmt: str, qweight, qzeros, scales):
    """The three arrays of a GPTQ/AWQ layer on the host: int32 ``qweight`` and ``qzeros``, float16 ``scales``,
    ``qweight`` and ``scales`` 2-d (the format-specific shapes are checked by the caller)."""
    qweight = host(qweight, f"{fmt} qweight", ("int32",))
    qzeros = host(qzeros, f"{fmt} qzeros", ("int32",))
    scales = host(scales, f"{fmt} scales", ("float16",))
    if qweight.ndim != 2 or scales.ndim != 2:
        raise ArgumentError(f"{fmt} qweight and scales must be 2-d, got shapes {list(qweight.shape)} and "
                            f"{list(scales.shape)}")
    return qweight, qzeros, scales


def host_int(a, name: str) -> np.ndarray:
    """An integer index array (any integer dtype), as int64."""
    if a is None or not hasattr(a, "dtype"):
        raise ArgumentError(f"{name} must be an integer NumPy array or torch tensor")
    got = dtype_name(a)
    if not got.startswith(("int", "uint")):
        raise ArgumentError(f"{name} must have an integer dtype, got {got}")
    a = a.detach().cpu().numpy() if is_torch(a) else np.asarray(a)
    return a.astype(np.int64)


def expect_shape(a: np.ndarray, name: str, want, what: str) -> None:
    """Raise unless ``a.shape == want``; ``what`` explains the expected shape in words."""
    if tuple(a.shape) != tuple(want):
        raise ArgumentError(f"{name} must have shape {list(want)} ({what}), got {list(a.shape)}")


def check_int(v, name: str, allowed) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) not in allowed:
        raise ArgumentError(f"{name} must be one of {sorted(allowed)}, got {v!r}")
    return int(v)


def words_to_bytes(words: np.ndarray) -> np.ndarray:
    """``[..., W]`` int32 words -> ``[..., 4 * W]`` uint8, little-endian (the LSB-first stream)."""
    w = np.ascontiguousarray(words, dtype="<i4")
    return w.view(np.uint8).reshape(w.shape[:-1] + (4 * w.shape[-1],))


def bytes_to_words(b: np.ndarray) -> np.ndarray:
    """Inverse of :func:`words_to_bytes`: ``[..., 4 * W]`` uint8 -> ``[..., W]`` int32."""
    b = np.ascontiguousarray(b, dtype=np.uint8)
    return b.view("<i4").reshape(b.shape[:-1] + (b.shape[-1] // 4,)).astype(np.int32)


def group_size_of(K: int, G: int, group_size, fmt: str) -> int:
    """The group size of a format that stores ``G`` groups per row of ``K`` but not the group size.

    ``group_size=None`` means ``K // G``, allowed only when ``G`` divides ``K`` (otherwise several group
    sizes give ``G`` groups and the caller must say which).
    """
    if group_size is None:
        if G < 1 or K % G:
            raise ArgumentError(f"{fmt}: {G} groups do not split K={K} evenly, so the group size is "
                                f"ambiguous; pass group_size=")
        return K // G
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or not 1 <= group_size <= K:
        raise ArgumentError(f"{fmt}: group_size must be an integer in 1..K={K}, got {group_size!r}")
    if -(-K // int(group_size)) != G:
        raise ArgumentError(f"{fmt}: group_size={group_size} gives {-(-K // int(group_size))} groups for "
                            f"K={K}, but the scales hold {G} groups")
    return int(group_size)


def float_scales(qw, fmt: str, to: str) -> np.ndarray:
    """``qw``'s scales ``[N, G]`` converted to the format's float dtype ``to``, refusing any rounding."""
    s = qw.scales
    if isinstance(s, Tensor):
        raise ArgumentError(f"{fmt}: scales must be a float array, not a vm.Tensor of {s.dtype}")
    if dtype_name(s) not in ("float16", "bfloat16", "float32", "float64"):
        raise ArgumentError(f"{fmt}: scales must be a float array, got dtype {dtype_name(s)}")
    v = qw.scale_values() if dtype_name(s) == "bfloat16" else host(s, "scales", (dtype_name(s),))
    out = v.astype(to)
    same = (out.astype(np.float64) == v.astype(np.float64)) | (np.isnan(out) & np.isnan(v))
    if not same.all():
        bad = tuple(int(i) for i in np.argwhere(~same)[0])
        raise ArgumentError(f"{fmt} stores {to} scales, and scale {float(v[bad])!r} at {list(bad)} is not "
                            f"exactly representable in {to}")
    return out


def uint_codes(qw, fmt: str, bits: tuple[int, ...]) -> tuple[int, np.ndarray]:
    """``(bits, packed bytes [N, ceil(K * bits / 8)])`` of a ``uint`` scheme weight with zero points."""
    if qw.scheme != "uint":
        raise ArgumentError(f"{fmt} stores unsigned codes with zero points (scheme 'uint'), got scheme "
                            f"{qw.scheme!r}")
    dt = qw.dtype
    if dt.name not in tuple(f"uint{b}" for b in bits):
        raise ArgumentError(f"{fmt} stores codes of {', '.join(f'uint{b}' for b in bits)}, got {dt.name}")
    return dt.nbits, np.asarray(qw.codes.host_data())


def zero_points(qw) -> np.ndarray:
    """``qw``'s zero points as int64 ``[N, G]``."""
    z = qw.zeros
    return (z.detach().cpu().numpy() if is_torch(z) else np.asarray(z)).astype(np.int64)
