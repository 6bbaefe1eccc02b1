"""Rules that move elements: broadcast, expand_dims, reshape, permute, layout conversion, view (the
packed bit stream of the last axis reread in another width) and lookup (table gathers)."""
from __future__ import annotations

import math

from vmlang.ir import nodes as N
from vmlang.ir.types import BOOL

from . import reprs as R
from .codegen import expand, padded, pow2, rule, shape_text


def gather(cg, src: str, src_shape, idx: str, idx_shape, axis: int) -> str:
    """Emit ``tl.gather(src, idx, axis)`` for padded shapes ``src_shape`` and ``idx_shape`` (equal off
    ``axis``) and return the new name.

    When the index tensor is longer than the source along ``axis``, the source is first repeated
    ``f = idx_len / src_len`` times in place (``rep[j*f + r] = src[j]``) and the indices scaled by ``f``.
    Reason: Triton 3.6's OptimizeThreadLocality pass gives a gather the layout of its *source*; an
    index tensor longer than that spills its gather axis over several warps and the pass then fails
    an assertion (``isWarpLocal``) instead of compiling. Both lengths are powers of two, so ``f`` is.
    """
    s_len, i_len = src_shape[axis], idx_shape[axis]
    if i_len > s_len:
        f = i_len // s_len
        rank = len(src_shape)
        wide = list(src_shape[:axis + 1]) + [f] + list(src_shape[axis + 1:])
        merged = list(src_shape)
        merged[axis] = i_len
        cg.comment(f"gather: source repeated x{f} along axis {axis} (index longer than source)")
        rep = f"tl.broadcast_to(tl.expand_dims({src}, {axis + 1}), {shape_text(wide)})"
        src = cg.tmp(f"tl.reshape({rep}, {shape_text(merged)})", "rep")
        idx = f"({idx}) * {f}"
        assert rank == len(idx_shape)
    return cg.tmp(f"tl.gather({src}, {idx}, {axis})", "g")


def take(cg, x: str, cur: list[int], axis: int, idx1d: str, n: int) -> str:
    """Gather tensor ``x`` (padded shape ``cur``) along ``axis`` at the ``n`` positions ``idx1d`` (a
    1-d int32 expression, already clamped into range); returns the new name."""
    rank = len(cur)
    shape = list(cur)
    shape[axis] = n
    idx = expand(f"({idx1d})", axis, rank) if rank > 1 else idx1d
    if rank > 1 and any(s != 1 for a, s in enumerate(shape) if a != axis):
        idx = f"tl.broadcast_to({idx}, {shape_text(shape)})"
    return gather(cg, x, cur, idx, shape, axis)


@rule(N.Broadcast)
def _broadcast(cg, i):
    P = shape_text(cg.pshape(i.out))
    if i.x.is_scalar:
        cg.define(i.out, f"tl.full({P}, {cg.name(i.x)}, {R.tl_type(i.out.dtype)})")
    else:
        cg.define(i.out, f"tl.broadcast_to({cg.name(i.x)}, {P})")


@rule(N.ExpandDims)
def _expand_dims(cg, i):
    cg.define(i.out, f"tl.expand_dims({cg.name(i.x)}, {i.axis})")


@rule(N.Permute)
def _permute(cg, i):
    cg.define(i.out, f"tl.permute({cg.name(i.x)}, {tuple(i.perm)!r})")


@rule(N.ConvertLayout)
def _convert_layout(cg, i):
    # Triton chooses register layouts and shared-memory staging itself: the placement is a hint
    cg.comment(f"convert_layout to {i.out.type} (placement is left to Triton)")
    cg.names[i.out.id] = cg.name(i.x)


def _row_major_strides(shape):
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


def _reshape_direct(src, dst) -> bool:
    """True when Triton's row-major reshape of the padded tensors moves every element right: the
    shapes agree up to size-1 axes, or share a leading prefix after which all sizes are powers of 2."""
    if [d for d in src if d != 1] == [d for d in dst if d != 1]:
        return True
    k = 0
    while k < min(len(src), len(dst)) and src[k] == dst[k]:
        k += 1
    return all(pow2(d) == d for d in src[k:]) and all(pow2(d) == d for d in dst[k:])


@rule(N.Reshape)
def _reshape(cg, i):
    src, dst = list(i.x.shape), list(i.out.shape)
    Ps, Pd = padded(src), padded(dst)
    x = cg.name(i.x)
    if _reshape_direct(src, dst):
        cg.define(i.out, f"tl.reshape({x}, {shape_text(Pd)})")
        return
    # general case: a gather. Output lane -> logical row-major index -> input lane.
    cg.comment(f"reshape {src} -> {dst}: gather (padded shapes {list(Ps)} -> {list(Pd)})")
    is_bool = i.x.dtype == BOOL
    if is_bool:
        x = cg.tmp(f"{x}.to(tl.int8)", "b")
    flat = cg.tmp(f"tl.reshape({x}, ({math.prod(Ps)},))", "flat")
    so = _row_major_strides(dst)
    lin = " + ".join(expand(f"tl.minimum(tl.arange(0, {p}), {d - 1})", a, len(dst)) + (f" * {s}" if s != 1 else "")
                     for a, (d, p, s) in enumerate(zip(dst, Pd, so)))
    lin = cg.tmp(f"tl.reshape({lin}, ({math.prod(Pd)},))" if len(dst) > 1 else lin, "lin")
    si, sp = _row_major_strides(src), _row_major_strides(Ps)
    parts = []
    for a, (d, s, p) in enumerate(zip(src, si, sp)):
        e = f"{lin} // {s}" if s != 1 else lin
        e = f"({e}) % {d}" if a > 0 else f"({e})"
        parts.append(f"{e} * {p}" if p != 1 else e)
    idx = cg.tmp(" + ".join(parts), "idx")
    g = gather(cg, flat, (math.prod(Ps),), idx, (math.prod(Pd),), 0)
    out = f"tl.reshape({g}, {shape_text(Pd)})"
    if is_bool:
        out = f"({out}) != 0"
    cg.define(i.out, out)


@rule(N.View)
def _view(cg, i):
    """Reread the LSB-first bit stream of each row: output element j (b bits) starts at bit j*b,
    in input element (j*b) // a at bit (j*b) % a, and may span several input elements."""
    src, dst = i.x.dtype, i.out.dtype
    a, b = src.nbits, dst.nbits
    n, m = i.x.shape[-1], i.out.shape[-1]
    rank = len(i.x.shape)
    cg.comment(f"view {i.x.type} as {i.out.type}")
    codes, ctype = R.to_codes(src, cg.name(i.x))
    span = max(((j * b) % a + b + a - 1) // a for j in range(min(m, a * 8)))   # elements touched
    wide = "tl.int64" if span * a > 31 else "tl.int32"
    codes = cg.tmp(f"{codes}.to({wide})" if wide != ctype else codes, "codes")
    Pm = pow2(m)
    cur = list(padded(i.x.shape))
    j = f"tl.arange(0, {Pm})" if Pm == m else f"tl.minimum(tl.arange(0, {Pm}), {m - 1})"
    first = cg.tmp(f"({j} * {b}) // {a}", "first")
    off = cg.tmp(expand(f"(({j} * {b}) % {a})", rank - 1, rank), "off")
    acc = None
    for t in range(span):
        idx = f"tl.minimum({first} + {t}, {n - 1})" if t else first
        g = take(cg, codes, cur, rank - 1, idx, Pm)   # (clamped lanes only feed bits masked off below)
        term = g if t == 0 else f"({g} << {t * a})"
        acc = term if acc is None else f"{acc} | {term}"
    bits = f"(({acc}) >> {off}) & {(1 << b) - 1}"
    cg.define(i.out, R.from_codes(dst, bits))


@rule(N.Lookup)
def _lookup(cg, i):
    codes_dt = i.codes.dtype
    prod = cg.producers.get(i.table.id)
    if isinstance(prod, N.Codebook) and prod.of.nbits == codes_dt.nbits and R.is_storage(codes_dt):
        # lookup(codebook(T, dt), codes of T's width): decode the codes directly, no table
        from .rules_cast import cast_expr
        cg.comment(f"lookup in codebook({prod.of}, {i.table.dtype}): decoded in registers")
        # the raw codes are reinterpreted as codes of T first (e.g. float8_e4m3 codes under int8's
        # table: code 0x80 is -128, not 128)
        codes, _ = R.to_codes(codes_dt, cg.name(i.codes))
        as_of = cg.tmp(R.from_codes(prod.of, codes), "c")
        cg.define(i.out, cast_expr(cg, prod.of, i.table.dtype, as_of, False))
        return
    n = i.table.shape[0]
    P = cg.pshape(i.codes)
    c = cg.name(i.codes)
    idx = f"tl.minimum(tl.maximum({c + '.to(tl.int32)' if R.is_storage(i.codes.dtype) else R.int32_of(i.codes.dtype, c)}, 0), {n - 1})"
    tbl = cg.name(i.table)
    is_bool = i.table.dtype == BOOL
    if is_bool:
        tbl = cg.tmp(f"{tbl}.to(tl.int8)", "b")
    flat = math.prod(P)
    if len(P) > 1:
        idx = f"tl.reshape({idx}, ({flat},))"
    g = gather(cg, tbl, (pow2(n),), idx, (flat,), 0)
    if len(P) > 1:
        g = f"tl.reshape({g}, {shape_text(P)})"
    if is_bool:
        g = f"({g}) != 0"
    cg.define(i.out, g)
