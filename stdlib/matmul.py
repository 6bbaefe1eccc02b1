"""``qmatmul(x, qw)``: ``x @ W.T`` for a quantized weight ``W``, by kernels written in vmlang.

``x`` is ``[M, K]`` (or ``[..., K]``) float16 or bfloat16 -- a NumPy array (``ml_dtypes.bfloat16`` for
bf16) or a torch tensor on the CPU or a GPU --, ``qw`` a :class:`~vmlang.stdlib.quant.weight.QuantizedWeight`
``[N, K]`` of any scheme; the result is ``[M, N]`` (``[..., N]``) of x's dtype, of the same kind as ``x``
(NumPy in, NumPy out; torch in, torch out on x's device). It equals ``x @ qw.dequantize().T`` with the
products and the sum in float32 and one final rounding to x's dtype.

Both paths run ``stdlib/kernels/qmatmul.vm``, one kernel generic over the code dtype, the scale dtype, the
activation dtype and the group size (compile-time parameters), compiled once per combination:

* **GEMV** (``M < DOT_MIN_M``): blocks of up to 8 rows of ``x`` by 16 outputs (ptx: 16 to 64 and 4
  warps, from ``PTX_GEMV_TILES``); each ``16 x BK`` slab of weights (``BK`` up to 256; ptx: up to 1024) is decoded to
  float32 once and stays in registers while the rows pass over it, the products of each run of ``C``
  codes (ptx: a thread's run in the layout, ``PTX_GEMV_TILES``) summed in float32 and scaled into a
  partial sum that lives through the whole K loop; the partials are added across threads once, after it.
  On ptx, M = 1 with an int width in ``PTX_MMA_GEMV_TILES`` (2-6 and 8 bits) runs on tensor cores instead
  (the exact dot, weights never rounded, each step's 8 groups as the dot's rows), and a GEMV with too few
  output tiles to fill the GPU splits K (``PTX_GEMV_MIN_BLOCKS``): f32 partial sums, added here in a fixed
  order and rounded once.
* **dot** (``M >= DOT_MIN_M``): ``BM x BN`` output tiles (16..64 x 64, 128 x 128 from 65 rows on); each
  ``BN x BK`` slab of weights is decoded and scaled in float32, rounded to x's dtype and multiplied with
  ``dot`` (``tl.dot``, tensor cores) into a float32 accumulator. The rounding of the weights to f16/bf16
  before the dot is the one difference from the GEMV path (at most one unit roundoff of the output
  dtype, relative to ``sum |x * w|``).

``DOT_MIN_M = 4``, measured on an H100 (Triton 3.6, N = K = 8192, kernel time with a cold L2): at M = 1
the GEMV path is 1.0-2x faster than the dot path for every format (int4 g128 86 vs 137 us, nf4 209 vs
348, mxfp4 135 vs 230, fp8 per-channel 92 vs 122, int3 220 vs 440); at M = 2 it still wins or ties
except uint4; at M = 4 the paths are within 10% for nf4/fp8/mxfp4 while int4/uint4 prefer dot; from
M = 8 on the dot path wins everywhere but int3 (whose GEMV wins up to 8). The GEMV's time grows with
the rows (the reduction per row), the dot path's barely does below 32 rows.

Group sizes: the kernel takes power-of-two groups (a slab of BK codes then holds whole groups or lies in
one). Another group size ``g`` is rewritten exactly before the launch: ``g >= K`` (per-channel) becomes
one group of the next power of two >= K; otherwise the scales (and zero points) are repeated ``g / p``
times for ``p`` the largest power of two dividing ``g`` (``k // g == (k // p) // (g / p)``), which costs
memory for odd ``g`` (``p == 1``: one scale per weight).

>>> import numpy as np, vmlang as vm
>>> from vmlang.stdlib.quant.weight import QuantizedWeight
>>> qw = QuantizedWeight(vm.Tensor.from_values([[1, -2, 3], [0, 1, 1]], vm.int3),
...                      np.array([[0.5], [2.0]], np.float32), None, "int", 3)
>>> qmatmul(np.array([[1, 1, 1]], np.float16), qw, backend="numpy").tolist()
[[1.0, 4.0]]
"""
from __future__ import annotations

import functools

import numpy as np
from vmlang.ir import dtypes as D
from vmlang.ir.errors import ArgumentError

from vmlang.runtime.args import infer_dtype
from vmlang.runtime.args import is_torch as _is_torch
from vmlang.runtime.tensor import Tensor

from .quant.weight import QuantizedWeight

#: from this many rows of x on, qmatmul takes the tiled ``dot`` path (below: the GEMV path)
DOT_MIN_M = 4

_ACT = (D.float16, D.bfloat16)
_SCALES = (D.float16, D.bfloat16, D.float32, D.float8_e8m0)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _dtype_name(a) -> str:
    return str(getattr(a, "dtype", type(a).__name__)).removeprefix("torch.")


# ------------------------------------------------------------------------------------------ checks
def _check_codes(qw: QuantizedWeight) -> D.DType:
    dt, scheme = qw.dtype, qw.scheme
    ok = {
        "int": dt.is_int and dt.is_signed and 2 <= dt.nbits <= 8,
        "uint": dt.is_int and not dt.is_signed and dt.nbits <= 8,
        "float": dt.is_float and not dt.is_codebook and dt.nbits <= 8 and dt != D.float8_e8m0,
        "nf4": dt.is_codebook,
        "mxfp4": dt.is_float and not dt.is_codebook and dt.nbits <= 8 and dt != D.float8_e8m0,
    }[scheme]
    if not ok:
        raise ArgumentError(f"qmatmul: scheme {scheme!r} cannot have codes of {dt} (int: int2..int8, uint: "
                            f"uint1..uint8, float: float2..float8 formats but float8_e8m0, nf4: nf4, "
                            f"mxfp4: a float format with float8_e8m0 scales)")
    return dt


def _scales(qw: QuantizedWeight):
    """-> (scales argument, its dtype)."""
    s = qw.scales
    if isinstance(s, Tensor):
        dt = s.dtype
    else:
        dt = infer_dtype(s)
        if dt is None and getattr(s, "dtype", None) == np.float64:
            s, dt = s.astype(np.float32), D.float32      # what dequantize() uses, exactly
    if dt not in _SCALES:
        raise ArgumentError(f"qmatmul: scales must be float16, bfloat16, float32 or float8_e8m0 codes, "
                            f"got {_dtype_name(s) if not isinstance(s, Tensor) else s.dtype}")
    if qw.scheme == "mxfp4" and dt != D.float8_e8m0:
        raise ArgumentError(f"qmatmul: mxfp4 scales must be a vm.Tensor of float8_e8m0 codes, got {dt}")
    if not isinstance(s, Tensor):
        s = s.contiguous() if _is_torch(s) else np.ascontiguousarray(s)
    return s, dt


#: the 1 x 1 uint8 dummy zero points per torch device: made once, not per call (a fill kernel of ~1 us,
#: counted in every GEMV's GPU time, 2026-12-06 H100 profile)
_DUMMY_Z: dict = {}


def _torch_dummy(device):
    z = _DUMMY_Z.get(str(device))
    if z is None:
        import torch
        z = _DUMMY_Z[str(device)] = torch.zeros((1, 1), dtype=torch.uint8, device=device)
    return z


def _zeros(qw: QuantizedWeight, like):
    """-> (zero-points argument, HAS_Z): the uint8 zero points, or a 1 x 1 dummy the kernel never reads."""
    z = qw.zeros
    if z is None:
        if _is_torch(like):
            return _torch_dummy(like.device), 0
        return np.zeros((1, 1), np.uint8), 0
    if isinstance(z, Tensor):
        z = z.data if z.dtype == D.uint8 else z
    if infer_dtype(z) != D.uint8 or isinstance(z, Tensor):
        raise ArgumentError(f"qmatmul: zero points must be uint8, got {_dtype_name(z)}")
    return (z.contiguous() if _is_torch(z) else np.ascontiguousarray(z)), 1


def _repeat_groups(a, r: int, groups: int):
    """Each column of ``a`` ([N, G]) repeated ``r`` times, the first ``groups`` columns kept."""
    if isinstance(a, Tensor):
        return Tensor(_repeat_groups(a.data, r, groups), a.dtype)
    if _is_torch(a):
        return a.repeat_interleave(r, dim=1)[:, :groups].contiguous()
    return np.ascontiguousarray(np.repeat(a, r, axis=1)[:, :groups])


def _group_layout(K: int, g: int, scales, zeros, has_z: int):
    """-> (G, scales, zeros) with a power-of-two group size G that maps every k to the same scale."""
    if g & (g - 1) == 0:
        return g, scales, zeros
    if g >= K:
        return _pow2_at_least(K), scales, zeros
    p = g & -g                                   # the largest power of two dividing g
    groups = -(-K // p)
    return p, _repeat_groups(scales, g // p, groups), (_repeat_groups(zeros, g // p, groups) if has_z else zeros)


def _activations(x):
    if not (_is_torch(x) or isinstance(x, np.ndarray)):
        raise ArgumentError(f"qmatmul: x must be a NumPy array or a torch tensor, got {type(x).__name__}")
    dt = infer_dtype(x)
    if dt not in _ACT:
        raise ArgumentError(f"qmatmul: x must be float16 or bfloat16, got {_dtype_name(x)} "
                            f"(cast the activations first, e.g. x.half())")
    if x.ndim < 2:
        raise ArgumentError(f"qmatmul: x must be [M, K] (or [..., K]), got shape {list(x.shape)}")
    return dt


# ------------------------------------------------------------------------------------------ entry point
def qmatmul(x, qw: QuantizedWeight, backend: str | None = None, *, path: str | None = None):
    """``x @ qw.dequantize().T`` in x's dtype, f32 accumulation (see the module docstring).

    ``backend``: a vmlang backend name; None chooses (:func:`choose_backend`): ``VMLANG_BACKEND`` if set,
    on a CUDA GPU the faster of ptx and triton for the path and code width (measured), else the NumPy VM.
    ``path``: ``"gemv"`` or ``"dot"`` forces a path (default: GEMV below ``DOT_MIN_M`` rows, dot from there
    on).
    """
    if not isinstance(qw, QuantizedWeight):
        raise ArgumentError(f"qmatmul: qw must be a QuantizedWeight, got {type(qw).__name__}")
    X = _activations(x)
    N, K = qw.shape
    lead = tuple(int(d) for d in x.shape[:-1])
    if int(x.shape[-1]) != K:
        raise ArgumentError(f"qmatmul: x has K={int(x.shape[-1])} columns (shape {list(x.shape)}) but the weight "
                            f"has K={K} (QuantizedWeight [N, K] = [{N}, {K}])")
    if path not in (None, "gemv", "dot"):
        raise ArgumentError(f"qmatmul: path must be None, 'gemv' or 'dot', got {path!r}")
    T = _check_codes(qw)
    s, S = _scales(qw)
    M = int(np.prod(lead)) if lead else 1
    x2 = x.reshape(M, K)
    if _is_torch(x2):
        import torch
        x2 = x2.contiguous()
        y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    else:
        x2 = np.ascontiguousarray(x2)
        y = np.empty((M, N), dtype=x.dtype)
    if M == 0 or N == 0 or K == 0:
        y[...] = 0
        return y.reshape(*lead, N)
    z, has_z = _zeros(qw, x2)
    G, s, z = _group_layout(K, int(qw.group_size), s, z, has_z)
    dot = path == "dot" if path else M >= DOT_MIN_M
    backend = backend or choose_backend(x2, T, dot)
    tiles = _tiles(M, N, K, dot, backend, T)
    options = None
    if not dot and backend == "ptx" and M == 1 and mma_gemv(T, X, has_z, G):
        tiles, dot = _mma_gemv_tiles(M, N, K, G, T), True
        options = _gemv_options(tiles.pop("STAGES"))
    if not dot:              # the GEMV's runs of C codes lie inside one group and one slab
        tiles["C"] = min(tiles["C"], G, tiles["BK"])
    exact = int(dot and not T.is_codebook and exact_in(T, X, has_z))
    if exact and tiles["BK"] > G:
        if G >= 16:          # one group per slab (tl.dot and mma need BK >= 16)
            tiles["BK"] = G
        else:
            exact = 0
    if not exact:
        tiles.pop("U", None)  # two slabs per iteration, groups as rows: the exact dot only
        tiles.pop("R", None)
    _launch(x2, qw.codes, s, z, y, backend, T=T, S=S, X=X, G=G, HAS_Z=has_z, LUT=int(T.is_codebook),
            DOT=int(dot), EXACT=exact, options=options, **tiles)
    return y.reshape(*lead, N)


def mma_gemv(T: D.DType, X: D.DType, has_z: int, G: int) -> bool:
    """Whether the ptx GEMV runs on tensor cores: the exact dot path with ``BM`` = 1, 2, 4 or 8 rows, which
    the ptx backend lowers as the transposed product (``vmlang.passes.mma_rows``: the weights on the mma's
    M side, each lane decoding its own run of codes into f16x2 registers, x on the N side). Needs int codes
    (the widths measured: float codes of those widths stay on the FMA GEMV), every value exact in X (the
    weights are never rounded) and groups of at least 16 codes (one mma k step)."""
    return (T.nbits in PTX_MMA_GEMV_TILES and T.is_int and not has_z and G >= 16 and exact_in(T, X, has_z))


@functools.lru_cache(maxsize=None)
def exact_in(T: D.DType, X: D.DType, has_z: int = 0) -> bool:
    """Whether every finite value of ``T`` (minus every zero point 0..255 when ``has_z``) is exact in ``X``
    -- then the dot path multiplies the codes' values and scales each slab's sums (EXACT = 1 in
    qmatmul.vm), never rounding a weight to X. Decided on the values, not the dtype names.

    >>> exact_in(D.int4, D.float16), exact_in(D.float8_e4m3, D.bfloat16), exact_in(D.nf4, D.float16)
    (True, True, False)
    """
    v = np.asarray(T.decode(np.arange(1 << T.nbits)), dtype=np.float64)
    v = v[np.isfinite(v)]
    if has_z:
        v = (v[:, None] - np.arange(256)[None, :]).ravel()
    return bool(np.all(X.decode(X.encode(v)).astype(np.float64) == v))


def choose_backend(x, T: D.DType, dot: bool) -> str:
    """The backend for ``backend=None``: ``VMLANG_BACKEND`` if set; on a CUDA GPU the faster of ptx and
    triton for this path and code width, as measured (``PTX_GEMV_TILES``); else the runtime's default.

    Measured on an H100 (2026-11-22, M = 1 on 28672x8192, bench/qmatmul.py --backend triton,ptx, tables in
    bench/RESULTS.md): the ptx GEMV beats triton's for every width (second run: int4 73 vs 373 us, int3 84 vs
    785, int2 79 vs 332, int6 102 vs 1057, int8 88 vs 99, nf4 117 vs 630, float8_e4m3 100 vs 241).
    Again on an H100 at 5020f39 (2026-12-06, session 18, one run): int2 28.8 vs 228.5 us, int3 37.8 vs 1295.8,
    int4 44.3 vs 272.0, int5 53.9 vs 1509.7, int6 63.1 vs 1519.7, int7 75.1 vs 1513.6, int8 80.8 vs 94.1.
    The dot path (M >= 4) stays on triton: the ptx dot path stages decoded weights through shared memory
    and was slower at M = 16 for every format but int3/int6/fp6 (first run)."""
    import os
    from vmlang.api import default_backend
    if os.environ.get("VMLANG_BACKEND") or not _is_torch(x) or x.device.type != "cuda":
        return default_backend()
    if dot or not _ptx_loads():
        return default_backend()
    return "ptx"


@functools.lru_cache(maxsize=None)
def _ptx_loads() -> bool:
    """Whether the ptx backend and its driver binding load here (asked once: qmatmul calls are a hot path)."""
    from vmlang.ir.errors import BackendError
    try:
        from vmlang.api import backend as get_backend
        get_backend("ptx")
        import cuda.bindings.driver  # noqa: F401  (the launcher's dependency)
        return True
    except (BackendError, ImportError):
        return False


#: ptx GEMV tiles (BN, BK, warps, C) by code width, C being qmatmul.vm's run of codes summed into one partial
#: sum (each thread's run of codes in the default layout, or half of it), measured on an H100 (M = 1,
#: 28672x8192, 2026-11-22, session 10, scratch sweeps of BN x BK x warps x C with the partial sums kept
#: through the K loop): int4 16 x 512 x 4, C = 32: 58.8 us (32 x 512 x 4: 65.8, 64 x 512 x 4: 62.9 -- its
#: scales take a shared-memory conversion); int5 16 x 512 x 4, C = 16: 76.2 (C = 32: 77.8); int6 84.2
#: (C = 32: 85.4; 32 x 512 x 4: 98.2); int7 90.6 (C = 32: 94.3); int8 93.7; int3 32 x 512 x 4, C = 32: 62.0
#: (16 x 512: 66.7); int2 64 x 512 x 4, C = 32: 59.8 (the tensor-core GEMV takes M = 1: 43.8). The same tiles
#: after session 11's addressing (H100, 2026-12-06): int3 48.3, int4 49.9, int5 64.8, int6 69.1, int7 76.0,
#: int8 87.5 us. Session 12 (H100, 2026-12-06, bench/gemv_paths.py fma:BN:BK:W:C, after the scales of a
#: 1024-wide slab load in their use's layout instead of a shared-memory conversion): slabs of 1024 codes
#: read more contiguous bytes of each row per block and iteration -- int3 16 x 1024 x 4 46.8 us (8 x 1024 x 2:
#: 46.5; 32 x 1024 x 8: 48.4; 16 x 2048 x 8: 67.8) vs 48.3; int5 58.8 vs 66.4; int4 50.0 vs 50.6 (kept: a
#: tie); int2 on the FMA GEMV 69.6-84.5 at 1024-2048 (vs 56.3: it stays on tensor cores)
#: H200 (same session): int7 16 x 1024 x 4, C = 32: 56.6 us vs 61.7 at 16 x 512 (C = 16: 61.1); int8
#: 16 x 1024 x 4, C = 16: 67.4 vs 69.8 (C = 32: 68.3), float8_e4m3 (the 8-bit entry) 78.0 vs 84.7; int6 stays
#: at 512 (58.4 vs 96.3-96.4 at 1024)
PTX_GEMV_TILES = {2: (64, 512, 4, 32), 3: (16, 1024, 4, 32), 4: (16, 512, 4, 32), 5: (16, 1024, 4, 32),
                  6: (16, 512, 4, 16), 7: (16, 1024, 4, 32), 8: (16, 1024, 4, 16)}
#: float and codebook codes of 4 bits or fewer (float4_e2m1 67.7 us, mxfp4 82.6, nf4 100.8; C = 16: 68.9,
#: 87.7, 94.4; 32 x 512: 86.9, 110.1, 115.9)
PTX_GEMV_TILES_FLOAT = (16, 512, 4, 32)


#: ptx tensor-core GEMV tiles (BN, BK, W) by code width (BK is also capped by the group size; split-K by
#: PTX_GEMV_MIN_BLOCKS), for the widths where it beats the FMA GEMV. Measured on an H100 (M = 1, 28672x8192,
#: 2026-11-22, session 9, after the pairs decoded in place and split-K): int2 128 x 128 x 2 warps in 4
#: splits 44.5 us (64 x 128 x 1..2 warps, 32 x 128 x 1: 44.9-45.3) vs 58.9 FMA; int4 65.7-67 vs 59.9 FMA,
#: int3 82 vs 64.5, int5 101 vs 79.6, int6 93 vs 90.4, int8 99.6 vs 88.5, float4_e2m1 73.6 vs 68.8 (FMA kept).
#: Re-measured on an H200 (2026-12-06, session 11, after the loop-invariant addressing and the odd widths'
#: window pairs; bench/RESULTS.md): int2 128 x 128 x 2 36.0 us (64 x 128 x 2: 43.7, 16 x 128 x 1: 52.3);
#: int3 47.1 vs 47.2 FMA (a tie: FMA kept); int4 62.8 vs 46.2, int5 63.9 vs 58.8, int6 74.9 vs 59.5, int7
#: 91.5 vs 62.8, int8 76.0 vs 70.8 (FMA kept)
#: An entry may add U, the slabs per iteration (qmatmul.vm: 2 reads two groups' slabs per step), and R, the
#: groups per step as the rows of the dot (qmatmul.vm R: a warp's load instruction then reads 128 (R = 4) or
#: 256 (R = 8) contiguous bytes of one or two rows, where R = 1 reads 32 bytes of each of 8 rows). H100
#: (2026-12-06, session 13, same calls, M = 1, 28672x8192): int2 R = 8 16 x 128 x 2 warps 32.3-32.7 us
#: (8 x 128 x 1..2: 32.7-33.5; R = 4 32 x 128 x 4: 38.8) vs 40.0-40.5 at 128 x 128 x 2 (U = 2 at W = 4: 44.9;
#: loads one step ahead in registers: 52.4); int3 R = 8 8 x 128 x 1 38.3 (16 x 128 x 4: 39.7) vs 45.7-45.9
#: FMA; int5 R = 8 16 x 128 x 4 54.1 vs 57.9 FMA; int6 62.8 vs 70.7 FMA. Then, with .maxntid and one mma
#: chain per row tile (two runs of bench/gemv_paths.py minutes apart on one H100): int2 31.6-31.7 us, int3
#: 36.7-36.8, int5 52.0 (FMA 55.5), int6 61.3 (FMA 67.9); int4 R = 8 16 x 128 x 2 43.7 (8 x 128 x 1: 45.1) vs
#: 46.8-46.9 FMA; int8 16 x 128 x 4 78.4 (16 x 128 x 2: 82.9) vs 86.4-86.6 FMA; int7 16 x 128 x 4 70.8 vs
#: 72.4-72.6 FMA (a tie: FMA kept). Only int codes take it (float codes were not measured on it).
#: An entry may add STAGES, the stage buffers of the codes' staging (backends/ptx/staging.py: each thread
#: copies its codes STAGES - 1 steps ahead into its own shared-memory slots with cp.async; 0: loaded
#: straight into registers). H100 (2026-12-06, session 15): int2 staged at 2 stages 28.5-28.9 us (72-73%),
#: at 3 stages 29.6-30.3, at 4 31.7, unstaged 31.1-31.7; staging is slower for every other width (3 stages:
#: int3 40.0 vs 36.5, int4 48.0 vs 43.4, int5 57.2 vs 52.1, int6 63.9 vs 61.1, int7 81.5 vs 72.4 FMA, int8
#: 143.9 vs 78.3; 2 stages: int3 38.1 vs 37.0, int4 44.9 vs 43.6, int5 56.7 vs 52.3, int6 63.2 vs 61.2)
PTX_MMA_GEMV_TILES: dict = {2: (16, 128, 2, 1, 8, 2), 3: (8, 128, 1, 1, 8), 4: (16, 128, 2, 1, 8),
                            5: (16, 128, 4, 1, 8), 6: (16, 128, 4, 1, 8), 8: (16, 128, 4, 1, 8)}


def _mma_gemv_tiles(M: int, N: int, K: int, G: int, T: D.DType) -> dict:
    """Tiles of the tensor-core GEMV from ``PTX_MMA_GEMV_TILES[bits]`` = (BN, BK, W[, U[, R[, STAGES]]]): U the
    slabs per iteration, R the groups per iteration as rows of the dot (qmatmul.vm; R > 1 needs U = 1 and
    one group per slab, BK = G, else R is dropped); split-K counts steps of ``U * R * BK`` codes. STAGES
    (0: none) is returned as ``"STAGES"`` beside the kernel's tiles: the codes' staging, an option of the
    compilation (:func:`_gemv_options`), not a parameter of the kernel."""
    bn, bk, w, *rest = PTX_MMA_GEMV_TILES[T.nbits]
    u, r, stages = (*rest, 1, 1, 0)[:3]
    bm, bk = min(_pow2_at_least(M), 8), max(16, min(bk, G, _pow2_at_least(K)))
    if bm > 1 or bk != G or u > 1:
        r = 1
    return {"BM": bm, "BN": bn, "BK": bk, "W": w, "U": u, "R": r, "KS": _splits(M, N, K, bm, bn, u * r * bk),
            "STAGES": stages}


def _gemv_options(stages: int) -> dict | None:
    """The compile options of a tensor-core GEMV whose codes are staged over ``stages`` buffers (ptx's
    ``stage_loads`` of ``w`` and ``pipeline_stages``), or None (the caller's options) for 0."""
    return {"stage_loads": "w", "pipeline_stages": stages} if stages >= 2 else None


#: a ptx GEMV splits K (qmatmul.vm's KS) until it has this many blocks: each block walks its slabs one
#: after another, and fewer blocks leave SMs idle -- a GEMV has only N / BN output tiles. Measured on an
#: H100 (M = 1, 28672x8192, 2026-11-22): the int2 tensor-core GEMV with 224 blocks of 128 rows, 4 warps:
#: 52.1 us in 2 splits, 44.6 in 4 (896 blocks); 2 warps in 4 splits 44.5; 8 warps 64.3 unsplit, 60.3 in
#: 4. The FMA GEMV of int4 (32 x 512, 896 blocks) is slower split in 2 (63.2 vs 59.9 us).
PTX_GEMV_MIN_BLOCKS = 896
#: ... but every split keeps at least this many slabs: the partial sums cost a workspace and two small
#: kernels (sum, round), which a short K does not win back (4096x4096 int4, 8 slabs of 512: 9.0 us
#: unsplit, 10.0-10.6 in 2..8 splits)
PTX_GEMV_MIN_SLABS = 8


def _splits(M: int, N: int, K: int, BM: int, BN: int, BK: int) -> int:
    """The split-K factor of a ptx GEMV: the smallest power of two reaching ``PTX_GEMV_MIN_BLOCKS``
    blocks while every split keeps ``PTX_GEMV_MIN_SLABS`` slabs of K.

    >>> _splits(1, 28672, 8192, 1, 128, 128), _splits(1, 28672, 8192, 1, 32, 512), _splits(1, 4096, 4096, 1, 32, 512)
    (4, 1, 1)
    """
    blocks, slabs, ks = -(-M // BM) * -(-N // BN), -(-K // BK), 1
    while blocks * ks < PTX_GEMV_MIN_BLOCKS and 2 * ks * PTX_GEMV_MIN_SLABS <= slabs:
        ks *= 2
    return ks


def _tiles(M: int, N: int, K: int, dot: bool, backend: str | None = None, T: D.DType | None = None) -> dict:
    """The tile sizes: powers of two, at least 16 where tl.dot needs it, no larger than needed."""
    BK = max(_pow2_at_least(K), 16)
    if not dot and backend == "ptx" and T is not None and T.nbits >= 2:
        bn, bk, w, c = PTX_GEMV_TILES_FLOAT if T.is_float and T.nbits <= 4 else PTX_GEMV_TILES[T.nbits]
        bm, bk = min(_pow2_at_least(M), 8), min(BK, bk)
        return {"BM": bm, "BN": bn, "BK": bk, "C": c, "W": w, "KS": _splits(M, N, K, bm, bn, bk)}
    if not dot:
        return {"BM": min(_pow2_at_least(M), 8), "BN": 16, "BK": min(BK, 256), "C": 16, "W": 4}
    if M <= 64:
        return {"BM": max(_pow2_at_least(M), 16), "BN": 64, "BK": min(BK, 128), "W": 4}
    return {"BM": 128, "BN": 128, "BK": min(BK, 64), "W": 8}


def _launch(x, w, s, z, y, backend, KS: int = 1, options: dict | None = None, **consts):
    """Run stdlib/kernels/qmatmul.vm into ``y`` [M, N] (one place, so tests can watch which specialisation
    runs), compiled with ``options`` (CompileOptions fields for this call; None: the runtime's). ``KS > 1`` (split-K): the kernel writes the splits' f32 partial sums to a ``[KS, M, N]`` workspace,
    added up here in f32 (in one fixed order: the result does not depend on which block finished first)
    and rounded once to y's dtype."""
    from .kernels import kernel
    M, N = int(y.shape[0]), int(y.shape[1])
    torch_y = _is_torch(y)
    if KS == 1:
        out, Y = (y.view(1, M, N) if torch_y else y.reshape(1, M, N)), consts["X"]
    elif torch_y:
        import torch
        out, Y = torch.empty((KS, M, N), dtype=torch.float32, device=y.device), D.float32
    else:
        out, Y = np.empty((KS, M, N), dtype=np.float32), D.float32
    kernel("qmatmul")(x, w, s, z, out, backend=backend, Y=Y, KS=KS, options=options, **consts)
    if KS > 1:
        if torch_y:
            y.copy_(out.sum(0))
        else:
            y[...] = out.sum(0, dtype=np.float32).astype(y.dtype)
