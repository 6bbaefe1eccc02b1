"""Rules for memory: masked loads and stores of global tensors (including packed sub-byte streams),
atomic adds, and reading/updating parts of tiles."""
from __future__ import annotations

import math

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


def _axis_parts(cg, src: N.Value, index, masked: bool, axes):
    """Positions, offset terms and bounds conditions of the index items ``axes`` of a region of global
    tensor ``src``: (terms, tile conditions, scalar conditions, {axis: position})."""
    _, shapes, strides = cg.tensor_args[src.id]
    kept = [a for a, it in enumerate(index) if isinstance(it, N.Range)]
    rank = len(kept)
    terms, mask, smask, pos_of = [], [], [], {}
    for a in axes:
        it = index[a]
        k = kept.index(a) if a in kept else None
        pos = cg.index_pos(it, k, rank)
        if isinstance(it, N.Range) and pos != "tl.arange(0, %d)" % pow2(it.length):
            pos = cg.tmp(pos, f"{src.name}_pos{a}")
        pos_of[a] = pos
        if masked:
            c = cg.const_of(it.index if isinstance(it, N.At) else it.start)
            conds = mask if isinstance(it, N.Range) else smask
            if not (isinstance(c, int) and c >= 0):
                conds.append(f"({pos} >= 0)")
            conds.append(f"({pos} < {shapes[a]})")
        if isinstance(it, N.Range) and pow2(it.length) != it.length:
            mask.append(expand(f"(tl.arange(0, {pow2(it.length)}) < {it.length})", k, rank))
        if a < len(index) - 1:
            terms.append(f"{pos}.to(tl.int64) * {strides[a]}")
    return terms, mask, smask, pos_of


def _join_mask(cg, src, mask, smask, rank, hint="mask"):
    mask = list(mask)
    if smask:   # conditions on point indices: one bool scalar
        s = " & ".join(smask)
        mask.append(f"{cg.use('vm_bool')}({s})" if rank else s)
    return cg.tmp(" & ".join(mask), f"{src.name}_{hint}") if mask else None


def _address(cg, src: N.Value, index, masked: bool):
    """Emit the addressing of a region of global tensor ``src``.

    Returns (pointer, offset expr, mask expr or None, shift expr or None): for packed sub-byte
    tensors ``offset`` is the byte and ``shift`` the first bit of each element within it.
    """
    ptr = cg.tensor_args[src.id][0]
    dt = src.dtype
    rank = sum(isinstance(it, N.Range) for it in index)
    last = len(index) - 1
    terms, mask, smask, pos_of = _axis_parts(cg, src, index, masked, range(len(index)))
    shift = None
    if R.is_packed(dt):
        bit = cg.tmp(f"{pos_of[last]} * {dt.nbits}", f"{src.name}_bit")
        terms.append(f"({bit} >> 3)")
        shift = f"({bit} & 7)"
    else:
        terms.append(pos_of[last])
    return ptr, " + ".join(terms), _join_mask(cg, src, mask, smask, rank), shift


def multiple_of(cg, v: N.Value, m: int, depth: int = 0) -> bool:
    """Whether the integer scalar ``v`` is provably a multiple of ``m`` (constants, products, sums and
    loop variables whose start and step are)."""
    if m == 1:
        return True
    if depth > 12:
        return False
    c = cg.const_of(v)
    if c is not None:
        return isinstance(c, int) and not isinstance(c, bool) and c % m == 0
    if v.id in cg.loop_vars:
        start, step = cg.loop_vars[v.id]
        return multiple_of(cg, start, m, depth + 1) and multiple_of(cg, step, m, depth + 1)
    ins = cg.producers.get(v.id)
    if isinstance(ins, N.Mul):
        for x, y in ((ins.a, ins.b), (ins.b, ins.a)):
            cx = cg.const_of(x)
            if isinstance(cx, int) and multiple_of(cg, y, m // math.gcd(m, abs(cx) or m), depth + 1):
                return True
        return multiple_of(cg, ins.a, m, depth + 1) or multiple_of(cg, ins.b, m, depth + 1)
    if isinstance(ins, (N.Add, N.Sub)):
        return multiple_of(cg, ins.a, m, depth + 1) and multiple_of(cg, ins.b, m, depth + 1)
    return False


def whole_bytes(cg, src: N.Value, index) -> int | None:
    """For a packed dtype whose width divides 8: the number of whole bytes a row segment of the region
    covers when it provably starts on a byte and its length is a power of two filling whole bytes
    (then it moves as plain bytes, unpacked in registers), else None."""
    b = src.dtype.nbits
    last = index[-1]
    if not R.is_packed(src.dtype) or 8 % b or not isinstance(last, N.Range):
        return None
    n = last.length
    if pow2(n) != n or (n * b) % 8 or not multiple_of(cg, last.start, 8 // b):
        return None
    return n * b // 8


def _bytes_address(cg, src: N.Value, index, masked: bool):
    """Addressing of the whole bytes of a region (see :func:`whole_bytes`): (pointer, offset, byte
    mask, element mask); the element mask marks the elements inside the declared shape."""
    ptr, shapes, _ = cg.tensor_args[src.id]
    b = src.dtype.nbits
    rank = sum(isinstance(it, N.Range) for it in index)
    last = len(index) - 1
    nb = index[last].length * b // 8
    terms, mask, smask, _ = _axis_parts(cg, src, index, masked, range(last))
    start = cg.name(index[last].start)
    bpos = cg.tmp(expand(f"((({start} * {b}) >> 3) + tl.arange(0, {nb}))", rank - 1, rank), f"{src.name}_byte")
    epos = cg.tmp(expand(f"({start} + tl.arange(0, {index[last].length}))", rank - 1, rank), f"{src.name}_pos{last}")
    bmask, emask = list(mask), list(mask)
    if masked:
        bmask += [f"({bpos} >= 0)", f"({bpos} < ({shapes[last]} * {b} + 7) // 8)"]
        emask += [f"({epos} >= 0)", f"({epos} < {shapes[last]})"]
    off = " + ".join(terms + [bpos])
    return (ptr, off, _join_mask(cg, src, bmask, smask, rank, "bmask"),
            _join_mask(cg, src, emask, smask, rank, "mask"))


def _unpack_bytes(cg, raw: str, b: int, rank: int, out_shape) -> str:
    """uint8 bytes [..., nb] -> codes [..., nb * 8 / b] (LSB-first) in registers."""
    per = 8 // b
    sh = expand(f"(tl.arange(0, {per}) * {b})", rank, rank + 1)
    fields = cg.tmp(f"(tl.expand_dims({raw}.to(tl.int32), {rank}) >> {sh}) & {(1 << b) - 1}", "fields")
    return f"tl.reshape({fields}, {shape_text(out_shape)}).to(tl.uint8)"


def _pack_bytes(cg, codes: str, b: int, rank: int, shape) -> str:
    """codes [..., n] -> uint8 bytes [..., n * b / 8] (LSB-first; the fields are disjoint, so a sum is
    their OR)."""
    per = 8 // b
    split = list(shape[:-1]) + [shape[-1] // per, per]
    sh = expand(f"(tl.arange(0, {per}) * {b})", rank, rank + 1)
    fields = cg.tmp(f"tl.reshape({codes}.to(tl.int32), {shape_text(split)}) << {sh}", "fields")
    return f"tl.sum({fields}, axis={rank}).to(tl.uint8)"


def _global_load(cg, i):
    src, dt = i.src, i.src.dtype
    cg.comment(f"load {_region_text(cg, i, src)}" + ("" if i.masked else ", masked=false"))
    fill = cg.name(i.fill) if i.fill is not None else None
    if whole_bytes(cg, src, i.index) and i.out.is_tile:
        # a byte-aligned row segment: load whole bytes (contiguous, vectorisable), unpack in registers
        ptr, off, bm, m = _bytes_address(cg, src, i.index, i.masked)
        mk = f", mask={bm}, other=0" if bm else ""
        raw = cg.tmp(f"tl.load({ptr} + {off}{mk})", f"{src.name}_bytes")
        v = _unpack_bytes(cg, raw, dt.nbits, len(i.out.shape), cg.pshape(i.out))
        if dt == BOOL:
            v = f"{v} != 0"
        if m is not None and fill is not None:
            v = f"tl.where({m}, {v}, {fill})"
        cg.define(i.out, v)
        return
    ptr, off, m, shift = _address(cg, src, i.index, i.masked)
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
    v = cg.name(i.value)
    if whole_bytes(cg, dst, i.index) and i.value.is_tile:
        # whole bytes of one block: pack in registers, plain byte stores (elements outside the shape
        # are zero: they are the row's padding bits)
        ptr, off, bm, m = _bytes_address(cg, dst, i.index, i.masked)
        codes = f"{v}.to(tl.uint8)" if dt == BOOL else v
        if m is not None:
            codes = cg.tmp(f"tl.where({m}, {codes}, 0)", "codes")
        packed = _pack_bytes(cg, codes, dt.nbits, len(i.value.shape), cg.pshape(i.value))
        mk = f", mask={bm}" if bm else ""
        cg.emit(f"tl.store({ptr} + {off}, {packed}{mk})")
        return
    ptr, off, m, shift = _address(cg, dst, i.index, i.masked)
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
