"""Rules for memory: masked loads and stores of global tensors (including packed sub-byte streams),
atomic adds, and reading/updating parts of tiles."""
from __future__ import annotations

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.types import BOOL

from . import reprs as R
from .codegen import expand, pow2, rule, shape_text
from .rules_shape import take


def _region_text(cg, i, src) -> str:
    parts = []
    for it in i.index:
        if isinstance(it, N.At):
            parts.append(cg.name(it.index))
        else:
            parts.append(f"{cg.name(it.start)} : +{it.length}")
    return f"{src.name}[{', '.join(parts)}]"


def _address(cg, src: N.Value, index, masked: bool):
    """Emit the addressing of a region of global tensor ``src``.

    Returns (pointer, offset expr, mask expr or None, shift expr or None): for packed sub-byte
    tensors ``offset`` is the byte and ``shift`` the first bit of each element within it.
    """
    ptr, shapes, strides = cg.tensor_args[src.id]
    dt = src.dtype
    kept = [a for a, it in enumerate(index) if isinstance(it, N.Range)]
    rank = len(kept)
    last = len(index) - 1
    terms, mask, smask = [], [], []   # offsets, tile conditions, scalar conditions
    shift = None
    for a, it in enumerate(index):
        k = kept.index(a) if a in kept else None
        pos = cg.index_pos(it, k, rank)
        if isinstance(it, N.Range) and pos != "tl.arange(0, %d)" % pow2(it.length):
            pos = cg.tmp(pos, f"{src.name}_pos{a}")
        if masked:
            c = cg.const_of(it.index if isinstance(it, N.At) else it.start)
            conds = mask if isinstance(it, N.Range) else smask
            if not (isinstance(c, int) and c >= 0):
                conds.append(f"({pos} >= 0)")
            conds.append(f"({pos} < {shapes[a]})")
        if isinstance(it, N.Range) and pow2(it.length) != it.length:
            mask.append(expand(f"(tl.arange(0, {pow2(it.length)}) < {it.length})", k, rank))
        if a < last:
            terms.append(f"{pos}.to(tl.int64) * {strides[a]}")
        elif R.is_packed(dt):
            bit = cg.tmp(f"{pos} * {dt.nbits}", f"{src.name}_bit")
            terms.append(f"({bit} >> 3)")
            shift = f"({bit} & 7)"
        else:
            terms.append(pos)
    off = " + ".join(terms)
    if smask:   # conditions on point indices: one bool scalar
        s = " & ".join(smask)
        mask.append(f"{cg.use('vm_bool')}({s})" if rank else s)
    m = cg.tmp(" & ".join(mask), f"{src.name}_mask") if mask else None
    return ptr, off, m, shift


def _global_load(cg, i):
    src, dt = i.src, i.src.dtype
    cg.comment(f"load {_region_text(cg, i, src)}" + ("" if i.masked else ", masked=false"))
    ptr, off, m, shift = _address(cg, src, i.index, i.masked)
    fill = cg.name(i.fill) if i.fill is not None else None
    if R.is_packed(dt):
        cg.use("vm_load_bits")
        mm = m if m is not None else _all_true(cg, i.out)
        v = f"vm_load_bits({ptr}, {off}, {shift}, {mm}, {dt.nbits})"
        if dt == BOOL:
            v = f"{v} != 0"
    elif dt == D.bfloat16:
        cg.use("vm_bf16_from_bits")
        mk = f", mask={m}, other=0" if m else ""
        v = f"vm_bf16_from_bits(tl.load({ptr} + {off}{mk}))"
    else:
        mk = f", mask={m}, other={fill if fill is not None else 0}" if m else ""
        cg.define(i.out, f"tl.load({ptr} + {off}{mk})")
        return
    if m is not None and fill is not None:
        v = f"tl.where({m}, {v}, {fill})"
    cg.define(i.out, v)


def _all_true(cg, v: N.Value) -> str:
    return f"tl.full({shape_text(cg.pshape(v))}, 1, tl.int1)"


@rule(N.Store)
def _store(cg, i):
    dst, dt = i.dst, i.dst.dtype
    cg.comment(f"store {_region_text(cg, i, dst)}" + ("" if i.masked else ", masked=false"))
    ptr, off, m, shift = _address(cg, dst, i.index, i.masked)
    v = cg.name(i.value)
    if R.is_packed(dt):
        cg.use("vm_store_bits")
        code = f"{v}.to(tl.uint8)" if dt == BOOL else v
        mm = m if m is not None else _all_true(cg, i.value)
        cg.emit(f"vm_store_bits({ptr}, {off}, {shift}, {code}, {mm}, {dt.nbits})")
        return
    if dt == D.bfloat16:
        v = f"{cg.use('vm_bf16_to_bits')}({v})"
    mk = f", mask={m}" if m else ""
    cg.emit(f"tl.store({ptr} + {off}, {v}{mk})")


@rule(N.AtomicAdd)
def _atomic_add(cg, i):
    dst, dt = i.dst, i.dst.dtype
    cg.comment(f"atomic_add {_region_text(cg, i, dst)}")
    ptr, off, m, _ = _address(cg, dst, i.index, i.masked)
    v = cg.name(i.value)
    mk = f", mask={m}" if m else ""
    if dt == D.bfloat16:
        # no bf16 atomics in the interpreter: a compare-and-swap loop on the containing 32-bit word
        cg.use("vm_atomic_add_bf16")
        mm = m if m is not None else _all_true(cg, i.value)
        cg.emit(f"vm_atomic_add_bf16({ptr}, {off}, {v}, {mm})")
        return
    cg.emit(f"tl.atomic_add({ptr} + {off}, {v}{mk}, sem=\"relaxed\")")


def _tile_load(cg, i):
    src = i.src
    x = cg.name(src)
    shape = list(src.shape)
    cur = [pow2(s) for s in shape]
    is_bool = src.dtype == BOOL
    if is_bool:
        x = cg.tmp(f"{x}.to(tl.int8)", "b")
    drop = False
    for a, it in enumerate(i.index):
        if isinstance(it, N.At):
            idx = f"tl.minimum(tl.maximum(tl.zeros((1,), tl.int32) + {cg.name(it.index)}, 0), {shape[a] - 1})"
            x = take(cg, x, cur, a, idx, 1)
            cur[a] = 1
            drop = True
        else:
            if cg.const_of(it.start) == 0 and it.length == shape[a]:
                continue
            idx = (f"tl.minimum(tl.maximum({cg.name(it.start)} + tl.arange(0, {pow2(it.length)}), 0), "
                   f"{shape[a] - 1})")
            x = take(cg, x, cur, a, idx, pow2(it.length))
            cur[a] = pow2(it.length)
    if drop:
        out = cg.pshape(i.out)
        x = f"tl.reshape({x}, {shape_text(out) if out else '()'})"
    if is_bool:
        x = f"({x}) != 0"
    cg.define(i.out, x)


@rule(N.Load)
def _load(cg, i):
    if i.src.is_global:
        _global_load(cg, i)
    else:
        _tile_load(cg, i)


@rule(N.Insert)
def _insert(cg, i):
    """out = dst with dst[index] = value: move value's elements to their places in dst's shape (a
    gather along each sliced axis), then select them where the region is."""
    dst = i.dst
    shape = list(dst.shape)
    P = [pow2(s) for s in shape]
    rank = len(shape)
    is_bool = dst.dtype == BOOL
    v = cg.name(i.value)
    if is_bool:
        v = cg.tmp(f"{v}.to(tl.int8)", "b")
    # value with a size-1 axis for every point index
    vshape = []
    for a, it in enumerate(i.index):
        vshape.append(1 if isinstance(it, N.At) else pow2(it.length))
    if i.value.is_scalar:
        ty = "tl.int8" if is_bool else R.tl_type(dst.dtype)
        v = cg.tmp(f"tl.full({shape_text([1] * rank)}, {v}, {ty})", "v")
    elif any(isinstance(it, N.At) for it in i.index):
        v = cg.tmp(f"tl.reshape({v}, {shape_text(vshape)})", "v")
    cur = list(vshape)
    sel = []
    for a, it in enumerate(i.index):
        ar = expand(f"tl.arange(0, {P[a]})", a, rank)
        if isinstance(it, N.At):
            sel.append(f"({ar} == {cg.name(it.index)})")
            continue
        start = cg.name(it.start)
        c = cg.const_of(it.start)
        if c == 0 and it.length == shape[a]:
            continue
        lo = f"{start}" if c != 0 else "0"
        sel.append(f"({ar} >= {lo}) & ({ar} < {lo} + {it.length})")
        idx = f"tl.minimum(tl.maximum(tl.arange(0, {P[a]}) - {lo}, 0), {it.length - 1})"
        v = take(cg, v, cur, a, idx, P[a])
        cur[a] = P[a]
    if cur != P:
        v = f"tl.broadcast_to({v}, {shape_text(P)})"
    d = cg.name(dst)
    if is_bool:
        d = f"{d}.to(tl.int8)"
    out = f"tl.where({' & '.join(sel)}, {v}, {d})" if sel else v
    if is_bool:
        out = f"({out}) != 0"
    cg.define(i.out, out)
