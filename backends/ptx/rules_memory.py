"""Rules for global memory: load (into registers or shared memory), store, atomic_add.

Each thread accesses the elements its register layout gives it; positions outside the declared shape
read the fill value and are never touched (masked loads/stores), replicated elements are written once
(by their primary holder). Vector plans from the vectorize pass choose ``ld.global.v4``/``.v2`` where
each thread's elements are contiguous and aligned (see :mod:`.vector`).
"""
from __future__ import annotations

from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError

from . import memory as M
from .core import I1, I32, GlobalArg, Tile, from_code, lower, to_code
from .rules_compute import constant


def positions(lw, index, coords: list) -> list:
    """Source positions (i32 per source axis) for result coordinates ``coords``."""
    b = lw.b
    pos, k = [], 0
    for item in index:
        if isinstance(item, N.At):
            pos.append(lw.get(item.index))
        else:
            c = coords[k] if k < len(coords) else ir.Constant(I32, 0)
            pos.append(b.add(lw.get(item.start), c))
            k += 1
    return pos


def first_holders(lw, lay):
    """``(predicate, first)``: this thread writes the elements it holds first (holds values and is the
    primary holder of its replicated elements), and ``first[v]`` marks the first slot of each element within
    the thread. Writers of shared or global memory use it so that each element is written exactly once
    (replicas writing one address would race, even with equal values)."""
    _, valid, primary = lw.thread_part(lay)
    return lw.b.and_(valid, primary), slot_owners(lay)


def slot_owners(lay) -> list[bool]:
    """Per value slot: True for the first slot holding its element within a thread."""
    seen, out = set(), []
    for v in range(lay.values):
        x = int(lay.value_layout(v))
        out.append(x not in seen)
        seen.add(x)
    return out


@lower(N.Load)
def _load(lw, i):
    src = lw.get(i.src)
    if isinstance(src, GlobalArg) and i.out.is_tile and i.out.type.space == "shared":
        from .async_copy import try_async_load
        if try_async_load(lw, i, src):       # cp.async global -> shared (else: registers, then shared)
            return
    if not isinstance(src, GlobalArg):
        from .exchange import load_from_tile
        load_from_tile(lw, i)
        return
    dt = i.out.dtype
    b = lw.b
    # no fill: 0, or code 0 for a dtype without a zero (float8_e8m0): the VM reports a read of such a
    # position as an error; compiled backends do not check at run time
    fill = lw.get(i.fill) if i.fill is not None else _zero(dt)
    if i.out.is_scalar:
        pos = positions(lw, i.index, [])
        ok = M.in_bounds(lw, src, pos) if i.masked else ir.Constant(I1, 1)
        code = M.load_element(lw, src, pos, ok, dt.nbits)
        x = from_code(b, dt, code)
        lw.set(i.out, b.select(ok, x, fill) if i.masked else x)
        return
    lw.set(i.out, _load_register(lw, i, src, fill, lw.layout_of(i.out)))


def _zero(dt):
    try:
        return constant(dt, 0)
    except ValueError:
        from . import convert as C
        return ir.Constant(C.repr_type(dt), 0)


def _load_register(lw, i, src, fill, lay) -> Tile:
    from .vector import vector_load
    dt = i.out.dtype
    b = lw.b
    hit = vector_load(lw, i, src, lay)
    packed = None
    if hit is not None:
        codes, oks, packed = hit
    else:
        _, valid, _ = lw.thread_part(lay)
        codes, oks = [], []
        for c in lw.coords(lay, i.out.shape):
            pos = positions(lw, i.index, c)
            ok = b.and_(valid, M.in_bounds(lw, src, pos)) if i.masked else valid
            codes.append(M.load_element(lw, src, pos, ok, dt.nbits))
            oks.append(ok)
    # a masked-off access reads code 0 (the guarded load's register is cleared): no select when the fill is
    # the value of code 0, bit for bit (0 for ints and IEEE-like floats; not for nf4, whose 0.0 is code 7)
    select = i.masked and not fill_is_code_zero(lw, i, dt)
    slots = []
    for code, ok in zip(codes, oks):
        x = from_code(b, dt, code)
        slots.append(b.select(ok, x, fill) if select else x)
    # the words go with the tile (a cast may decode two codes per word operation: .unpack) when every slot
    # is its code, masked-off ones included
    return Tile(slots, lay, dt, packed=None if select else packed)


def fill_is_code_zero(lw, i, dt) -> bool:
    """Whether a masked-off position of load ``i`` reads code 0 (a compile-time fact): no fill (0, or code 0
    for a dtype without a zero), or a constant fill whose code is 0 (so -0.0 only in formats without a
    negative zero: elsewhere its code has the sign bit)."""
    if i.fill is None:
        return True
    value = lw.consts.get(i.fill.id)
    if value is None:
        return False
    from .exchange import to_code_const
    try:
        return to_code_const(dt, float(value)) == 0
    except Exception:  # noqa: BLE001 - a value the dtype cannot hold: keep the select
        return False


def element_writes(lw, i, value):
    """``(positions, predicate, value)`` for each element a store-like instruction writes, once each: a
    scalar by thread 0; a tile by the primary holder of each element, first slot only (masked by the
    declared shape when ``i.masked``)."""
    b = lw.b
    dst = lw.get(i.dst)
    if i.value.is_scalar:
        pos = positions(lw, i.index, [])
        ok = M.in_bounds(lw, dst, pos) if i.masked else ir.Constant(I1, 1)
        yield pos, b.and_(ok, b.icmp_unsigned("==", lw.tid(), ir.Constant(I32, 0))), value
        return
    lay = value.layout
    writer, first = first_holders(lw, lay)
    for v, c in enumerate(lw.coords(lay, i.value.shape)):
        if not first[v]:
            continue
        pos = positions(lw, i.index, c)
        ok = writer
        if i.masked:
            ok = b.and_(ok, M.in_bounds(lw, dst, pos))
        yield pos, ok, value.slots[v]


@lower(N.Store)
def _store(lw, i):
    dst = lw.get(i.dst)
    dt = i.dst.dtype
    value = lw.get(i.value) if i.value.is_scalar else lw.tile(i.value)
    if not i.value.is_scalar:
        from .vector import vector_store
        if vector_store(lw, i, dst, value):
            return
    for pos, ok, x in element_writes(lw, i, value):
        M.store_element(lw, dst, pos, ok, to_code(lw.b, dt, x), dt.nbits)


_ATOMIC_KIND = {D.float32: "f32", D.float16: "f16", D.bfloat16: "bf16", D.int32: "s32", D.uint32: "u32"}


@lower(N.AtomicAdd)
def _atomic_add(lw, i):
    dst = lw.get(i.dst)
    dt = i.dst.dtype
    kind = _ATOMIC_KIND.get(dt)
    if kind is None:
        raise BackendError(f"ptx: atomic_add on {dt} is not supported", i.loc)
    b = lw.b

    def value_arg(x):
        if kind == "bf16":
            from . import convert as C
            return b.trunc(to_code(b, dt, C.from_f32(b, D.bfloat16, x, False)), ir.IntType(16))
        if kind == "f16":
            return b.bitcast(x, ir.IntType(16))
        return x

    def add(pos, ok, x):
        row = M.row_offset(lw, dst, pos)
        off = b.mul(b.add(row, b.sext(pos[-1], ir.IntType(64))), ir.Constant(ir.IntType(64), dt.nbits // 8))
        M.atomic_add(lw, M.byte_ptr(lw, dst.ptr, off), ok, value_arg(x), kind)

    value = lw.get(i.value) if i.value.is_scalar else lw.tile(i.value)
    for pos, ok, x in element_writes(lw, i, value):
        add(pos, ok, x)


__all__ = ["positions", "slot_owners", "element_writes"]
