"""``quantize``: a float weight ``[N, K]`` -> :class:`QuantizedWeight`, the scheme chosen from the dtype.

The element dtype picks the scheme (the formulas of :mod:`vmlang.stdlib.quant.weight`); everything below is
read from the dtype's data (``max``, ``nbits``, ``encode``), never from its name:

========================  ========  ============================================================================
dtype                     scheme    per group of ``group_size`` elements along K
========================  ========  ============================================================================
``int2`` .. ``int8``      int       symmetric: ``s = absmax / dtype.max``, ``q = clamp(rne(w / s), min, max)``
``uint1`` .. ``uint8``    uint      asymmetric: ``s = (hi - lo) / (2^b - 1)``, ``z = rne(-lo / s)``,
                                    ``q = clamp(rne(w / s) + z, 0, 2^b - 1)``, value ``(q - z) * s``
``float{N}_e{E}m{M}``,    float     ``s = absmax / dtype.max``, ``q = dtype.encode(w / s, saturate=True)``
``float8_e4m3/_e5m2``               (round to nearest even, as the format does)
``nf4``                   nf4       ``s = absmax`` (float32), ``q`` = the nearest nf4 table entry of ``w / s``
``"mxfp4"``               mxfp4     float4_e2m1 elements, blocks of 32, ``s = 2^e`` stored as float8_e8m0 with
                                    ``e = floor(log2(amax)) - 2`` (OCP MX: 2 = emax of e2m1), clamped to
                                    [-127, 127]; an all-zero block gets ``e = -127``
========================  ========  ============================================================================

Rules shared by the schemes:

* **Scales are rounded up** into ``scale_dtype`` *before* the codes are computed, and the codes use that
  stored scale, so :meth:`QuantizedWeight.dequantize` is the best representation given the stored scale:
  every code is a nearest grid point of ``w / s``. Rounding up (not to nearest) keeps the group inside the
  grid, so nothing saturates: the error is at most half the gap between the two grid values around
  ``w / s``, times ``s`` (``s / 2`` for ints). Two exceptions: uint's extreme values may sit up to half a
  step beyond the grid's ends (``z`` is rounded), still within ``s / 2``; and mxfp4, whose OCP rule puts
  ``amax / 2^e`` in ``[4, 8)``, so values above 6 saturate to 6.
* ``scale_dtype`` defaults to float16 (as GPTQ/AWQ), float32 for nf4 (as bitsandbytes' absmax) and for the
  float formats whose range makes float16 unable to hold the scale of a group of absmax 1 as a normal
  number (``1 / dtype.max`` below float16's smallest normal: float8_e5m2, float6_e5m0, float7_e5m1,
  float7_e6m0); mxfp4 always uses float8_e8m0.
* **uint includes zero in the range**: ``lo = min(min(w), 0)``, ``hi = max(max(w), 0)``. An integer zero
  point in ``[0, 2^b - 1]`` always puts 0 on the grid ``(q - z) * s``, so the grid covers the group only if
  the range holds 0 (as GPTQ does); then ``z`` needs no clamp and the error is at most ``s / 2``.
  A group of one repeated value ``c != 0`` gets ``s = |c|`` and ``q - z = sign(c)``: exact whenever ``c``
  is a ``scale_dtype`` value.
* An all-zero group gets scale 1 (zero point 0) and zero codes; no division by zero ever happens.
* A scale above ``scale_dtype``'s largest value, or one so small that rounding it up (to a coarse subnormal)
  would keep the group's extreme value from rounding to the top of the grid (see :func:`_top_slack`),
  raises :class:`ArgumentError` naming the group and suggesting ``scale_dtype="float32"``: no scale is ever
  silently 0 or inf.
* ``group_size=None`` means ``K`` (one scale per output row, "per-channel"). When ``group_size`` is left at
  its default it is 128, except 64 for ``nf4`` (bitsandbytes' blocksize) and 32 for ``mxfp4`` (the only
  size mxfp4 accepts); a default larger than ``K`` becomes ``K`` (one short group per row).
* Idempotence: ``quantize(qw.dequantize(), ...)`` returns the same codes, scales and zero points for the
  int, float, nf4 and mxfp4 schemes; for uint when every group uses both codes 0 and ``2^b - 1``.

Worked example (int4, one group of 4): absmax 1.4, ``s = 1.4 / 7 = 0.2``, rounded up to the float16
``0.2000732421875``; ``w / s = [0.9996, -2.4991, 6.9974, 0.2499]`` -> codes ``[1, -2, 7, 0]``:

>>> import numpy as np
>>> from vmlang.stdlib.quant.schemes import quantize
>>> qw = quantize(np.array([[0.2, -0.5, 1.4, 0.05]]), "int4")
>>> qw.codes.values().tolist(), qw.scales.tolist()
([[1.0, -2.0, 7.0, 0.0]], [[0.2000732421875]])

uint2 (``2^b - 1 = 3`` steps) over ``[-1, 2]``: ``s = 3 / 3 = 1``, ``z = 1``, codes ``w / s + z``:

>>> qw = quantize(np.array([[-1.0, 0.0, 0.9, 2.0]]), "uint2")
>>> qw.codes.values().tolist(), qw.zeros.tolist(), qw.dequantize().tolist()
([[0.0, 1.0, 2.0, 3.0]], [[1]], [[-1.0, 0.0, 1.0, 2.0]])

mxfp4: amax 10 -> ``e = floor(log2 10) - 2 = 1``; ``w / 2^e = [5, -0.3, 0, ...]``; 5 is a tie between the e2m1
values 4 and 6 and rounds to 4 (even mantissa), -0.3 to -0.5; times ``2^e``: ``[8, -1, 0, ...]``:

>>> w = np.zeros((1, 32)); w[0, :2] = [10.0, -0.6]
>>> qw = quantize(w, "mxfp4")
>>> qw.scale_values().tolist(), qw.dequantize()[0, :2].tolist()
([[2.0]], [8.0, -1.0])
"""
from __future__ import annotations

import numpy as np
from vmlang.ir.dtypes import DType, FloatType, all_dtypes
from vmlang.ir.dtypes import dtype as _dtype
from vmlang.ir.errors import ArgumentError, DTypeError

from vmlang.runtime.tensor import Tensor

from .weight import QuantizedWeight, _host

__all__ = ["quantize", "scheme_of", "supported_dtypes"]

#: the OCP MX element format, block size and scale format of "mxfp4"
_MX_ELEMENT, _MX_BLOCK, _MX_SCALE = "float4_e2m1", 32, "float8_e8m0"
_SCALE_DTYPES = ("float16", "bfloat16", "float32")


class _DefaultGroup(int):
    """The default ``group_size`` (128): an int that :func:`quantize` can tell from an explicit 128."""

    def __repr__(self):
        return int.__repr__(self)


DEFAULT_GROUP_SIZE = _DefaultGroup(128)
#: group sizes that differ from 128 when the caller leaves group_size at its default
_DEFAULT_GROUP = {"nf4": 64, "mxfp4": _MX_BLOCK}


def scheme_of(dt: DType) -> str | None:
    """The scheme that quantizes to ``dt``, or None where none does (wide types, int1, e8m0, ...).

    >>> scheme_of(_dtype("int4")), scheme_of(_dtype("uint3")), scheme_of(_dtype("float6_e3m2"))
    ('int', 'uint', 'float')
    >>> scheme_of(_dtype("float16")) is None
    True
    """
    if dt.nbits > 8:
        return None
    if dt.is_int:
        # symmetric needs a positive max (int1 has none)
        return ("int" if dt.max > 0 else None) if dt.is_signed else "uint"
    if dt.is_codebook:
        return dt.name if dt.name == "nf4" else None
    if isinstance(dt, FloatType) and dt.is_signed:
        return "float"
    return None


def supported_dtypes() -> list[str]:
    """Every dtype name :func:`quantize` accepts, in type-table order, then ``"mxfp4"``."""
    return [d.name for d in all_dtypes() if scheme_of(d)] + ["mxfp4"]


def _element_dtype(dt) -> tuple[DType, str]:
    if isinstance(dt, str) and dt == "mxfp4":
        return _dtype(_MX_ELEMENT), "mxfp4"
    try:
        d = _dtype(dt)
    except DTypeError as e:
        raise ArgumentError(f"quantize: {e.message}; supported dtypes: {', '.join(supported_dtypes())}") from None
    scheme = scheme_of(d)
    if scheme is None:
        raise ArgumentError(f"quantize: no quantization scheme for dtype {d.name}; supported dtypes: "
                            f"{', '.join(supported_dtypes())}")
    return d, scheme


def _weight(w) -> np.ndarray:
    """The weight as float64 ``[N, K]``, checked: 2-d, floating, non-empty, finite."""
    if isinstance(w, Tensor):
        raise ArgumentError("quantize: w must be a float array (numpy or torch), not a vm.Tensor")
    try:
        a = _host(w)
    except Exception as e:  # noqa: BLE001 - anything that is not an array
        raise ArgumentError(f"quantize: w must be a numpy array or torch tensor, got {type(w).__name__} ({e})")
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        raise ArgumentError(f"quantize: w must be a floating-point array, got dtype {getattr(a, 'dtype', type(w))}")
    if a.ndim != 2:
        raise ArgumentError(f"quantize: w must be 2-d [N, K] (out x in), got shape {list(a.shape)}")
    if 0 in a.shape:
        raise ArgumentError(f"quantize: w is empty (shape {list(a.shape)})")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        n, k = (int(i) for i in np.argwhere(bad)[0])
        raise ArgumentError(f"quantize: w[{n}, {k}] = {a[n, k]!r} is not finite; weights must be finite")
    return a


def _group_size(group_size, K: int, scheme: str) -> int:
    if group_size is DEFAULT_GROUP_SIZE:
        return min(_DEFAULT_GROUP.get(scheme, int(group_size)), K)
    if group_size is None:
        gs = K
    elif isinstance(group_size, (bool, np.bool_)) or not isinstance(group_size, (int, np.integer)):
        raise ArgumentError(f"quantize: group_size must be a positive int or None, got {group_size!r}")
    else:
        gs = int(group_size)
        if not 1 <= gs <= K:
            raise ArgumentError(f"quantize: group_size must be in 1..K={K} (or None for K), got {gs}")
    if scheme == "mxfp4" and gs != min(_MX_BLOCK, K):
        raise ArgumentError(f"quantize: mxfp4 uses blocks of {_MX_BLOCK} elements (OCP MX); group_size={gs} is "
                            f"not supported: leave group_size at its default")
    return gs


def _grouped(a: np.ndarray, gs: int) -> np.ndarray:
    """``[N, K] -> [N, G, gs]``; a short last group is padded by repeating its last element (so group
    min, max and absmax are unchanged)."""
    N, K = a.shape
    G = -(-K // gs)
    if G * gs != K:
        a = np.pad(a, ((0, 0), (0, G * gs - K)), mode="edge")
    return a.reshape(N, G, gs)


def _round_up(s: np.ndarray, sdt: DType) -> np.ndarray:
    """Each positive finite ``s`` rounded up to a value of the float format ``sdt`` (float64 result)."""
    codes = sdt.encode(s).astype(np.int64)
    v = sdt.decode(codes)
    low = v < s  # positive sign-magnitude floats: the next code is the next larger value
    codes[low] += 1
    return sdt.decode(codes)


def _top_slack(dt: DType) -> float:
    """How far a stored scale may exceed the ideal one, as a ratio, before the group's extreme value no longer
    rounds to the top of the grid: ``top / (top - h)``, ``h`` half the gap below the top grid value.

    >>> _top_slack(_dtype("int4")), _top_slack(_dtype("uint2")), _top_slack(_dtype("float4_e2m1"))  # 7/6.5, 3/2.5, 6/5
    (1.0769230769230769, 1.2, 1.2)
    """
    v = dt.values
    top = dt.max
    below = v[np.isfinite(v) & (v < top)].max()
    return float(top / (top - (top - below) / 2))


def _checked_scales(ideal: np.ndarray, sdt: DType, slack: float) -> np.ndarray:
    """Ideal scales (0: an all-zero group) -> the stored ones: rounded up into sdt, 1 for all-zero groups.

    Refuses a scale above sdt's range and one so small that rounding it up (to a coarse subnormal) costs the
    group the top of its grid (``stored / ideal >= slack``)."""
    where = lambda m: tuple(int(i) for i in np.argwhere(m)[0])
    hint = 'pass scale_dtype="float32"' if sdt.name != "float32" else "rescale the weight"
    over = ideal > sdt.max
    if over.any():
        n, g = where(over)
        raise ArgumentError(f"quantize: the scale of row {n}, group {g} is {ideal[n, g]:.6g}, above the largest "
                            f"{sdt.name} ({sdt.max:.6g}): the weights are too large for {sdt.name} scales; {hint}")
    nz = ideal > 0
    stored = np.where(nz, _round_up(np.where(nz, ideal, 1.0), sdt), 1.0)
    under = nz & (stored >= slack * ideal)
    if under.any():
        n, g = where(under)
        raise ArgumentError(f"quantize: the scale of row {n}, group {g} is {ideal[n, g]:.6g}, too small for "
                            f"{sdt.name} (smallest normal {sdt.smallest_normal:.6g}): stored as {stored[n, g]:.6g} "
                            f"it would cost the group the top of its grid; {hint}")
    return stored


def _store(scales: np.ndarray, sdt: DType):
    """Stored scale values (exact in sdt) as an array of sdt: NumPy, or torch for bfloat16."""
    if sdt.name == "bfloat16":
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is installed wherever bf16 scales are wanted
            raise ArgumentError('quantize: scale_dtype="bfloat16" needs torch (NumPy has no bfloat16)') from None
        return torch.from_numpy(scales.astype(np.float32)).to(torch.bfloat16)
    return scales.astype(np.dtype(sdt.name))


def _scale_dtype(scale_dtype, scheme: str, dt: DType) -> DType:
    if scheme == "mxfp4":
        if scale_dtype is not None and _dtype_or_none(scale_dtype) != _dtype(_MX_SCALE):
            raise ArgumentError(f"quantize: mxfp4 scales are {_MX_SCALE}; got scale_dtype={scale_dtype!r}")
        return _dtype(_MX_SCALE)
    if scale_dtype is None:
        f16 = _dtype("float16")
        # float32 where float16 cannot hold the scale of a group of absmax 1 as a normal number
        return _dtype("float32" if scheme == "nf4" or 1 / dt.max < f16.smallest_normal else "float16")
    sdt = _dtype_or_none(scale_dtype)
    if sdt is None or sdt.name not in _SCALE_DTYPES:
        raise ArgumentError(f"quantize: scale_dtype must be one of {', '.join(_SCALE_DTYPES)} for the {scheme} "
                            f"scheme, got {scale_dtype!r}")
    return sdt


def _dtype_or_none(d) -> DType | None:
    try:
        return _dtype(d)
    except DTypeError:
        return None


def quantize(w, dtype, group_size=DEFAULT_GROUP_SIZE, *, scale_dtype=None) -> QuantizedWeight:
    """Quantize a float weight ``w`` ``[N, K]`` (numpy or torch, any float dtype) to ``dtype``.

    ``dtype``: a dtype or its name (see :func:`supported_dtypes`), or ``"mxfp4"``. ``group_size``: elements
    per scale along K (default 128; 64 for nf4, 32 for mxfp4; ``None``: K). ``scale_dtype``: float16
    (default), bfloat16 or float32 (nf4's default: float32); mxfp4 always uses float8_e8m0. The formulas
    and rules are in the module docstring.
    """
    dt, scheme = _element_dtype(dtype)
    a = _weight(w)
    K = a.shape[1]
    gs = _group_size(group_size, K, scheme)
    sdt = _scale_dtype(scale_dtype, scheme, dt)
    g = _grouped(a, gs)                                          # [N, G, gs]
    idx = np.arange(K) // gs
    zeros = None
    if scheme == "mxfp4":
        amax = np.abs(g).max(axis=2)
        emax = int(np.floor(np.log2(dt.max)))                    # 2 for e2m1
        lo_e, hi_e = (int(np.log2(v)) for v in (sdt.smallest_normal, sdt.max))
        with np.errstate(divide="ignore"):
            e = np.floor(np.log2(amax)) - emax                    # -inf for an all-zero block
        e = np.clip(np.where(amax > 0, e, lo_e), lo_e, hi_e).astype(np.int64)
        s = np.ldexp(1.0, e)
        codes = dt.encode(a / s[:, idx], saturate=True)
        scales = Tensor.from_codes(sdt.encode(s), sdt)
    elif scheme == "uint":
        n_steps = dt.max - dt.min                                # 2^b - 1
        lo = np.minimum(g.min(axis=2), 0.0)
        hi = np.maximum(g.max(axis=2), 0.0)
        const = g.min(axis=2) == g.max(axis=2)                   # one repeated value (0 or c)
        ideal = np.where(const, hi - lo, (hi - lo) / n_steps)
        s = _checked_scales(ideal, sdt, _top_slack(dt))
        z = np.clip(np.rint(-lo / s), dt.min, dt.max)
        codes = dt.encode(np.rint(a / s[:, idx]) + z[:, idx], saturate=True)
        scales, zeros = _store(s, sdt), z.astype(np.uint8)
    else:                                                        # int, float, nf4: absmax / dtype.max
        ideal = np.abs(g).max(axis=2) / dt.max
        s = _checked_scales(ideal, sdt, _top_slack(dt))
        codes = dt.encode(a / s[:, idx], saturate=True)
        scales = _store(s, sdt)
    return QuantizedWeight(Tensor.from_codes(codes, dt), scales, zeros, scheme, gs)
