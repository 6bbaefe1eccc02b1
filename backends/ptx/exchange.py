"""Data movement between threads through shared-memory scratch, and the rules built on it: layout
conversion, broadcast/expand_dims/reshape/permute, reductions, view, lookup, codebook, insert, tile
loads and the generic ``dot``.

The general pattern (``exchange``): every thread writes its elements to a scratch region at their tile
index (each element once, by its first holder: replicas writing the same address would race), the block
synchronises, and every thread reads the elements its result layout gives it, at the source index computed
from the result coordinate. Example: ``reshape`` of ``[4, 6]`` to ``[24]``:
result element ``k`` reads source element ``(k // 6, k % 6)``.
"""
from __future__ import annotations

from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N

from . import convert as C
from . import remap as R
from .core import (F32, GPTR, I1, I32, I64, SharedTile, Tile, const_i32, elem_bytes, from_code, lower, to_code)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _colex_index(b, coords, shape):
    idx, acc = const_i32(0), 1
    for c, s in zip(coords, shape):
        if s > 1:
            idx = b.add(idx, b.mul(c, const_i32(acc)) if acc > 1 else c)
        acc *= s
    return idx


def _store_type(eb: int):
    return ir.IntType(8 * eb)


class Scratch:
    """A tile written to shared memory at its colexicographic tile index (one repr element each)."""

    def __init__(self, lw, tile: Tile, shape, dt):
        self.lw, self.shape, self.dt = lw, tuple(shape), dt
        self.eb = elem_bytes(dt)
        n = _numel(shape)
        self.off = lw.alloc_shared(n * self.eb, transient=True)
        b = lw.b
        lw.barrier()          # earlier readers of this region (previous loop iteration) are done
        idx, _, _ = lw.thread_part(tile.layout)
        from .rules_memory import first_holders
        writer, first = first_holders(lw, tile.layout)
        with b.if_then(writer):
            for v, (vp, x) in enumerate(zip(lw.value_parts(tile.layout), tile.slots)):
                if first[v]:
                    self._put(b.add(idx, const_i32(vp)) if vp else idx, x)
        lw.barrier()

    def _put(self, lin, x):
        b = self.lw.b
        t = _store_type(self.eb)
        c = to_code(b, self.dt, x)
        v = b.trunc(c, t) if t.width < 32 else c
        p = self.lw.shared_ptr(b.add(const_i32(self.off), b.mul(lin, const_i32(self.eb))))
        b.store(v, p, align=self.eb)

    def get(self, lin) -> ir.Value:
        """The repr of the element at colex index ``lin`` (i32; clamped into the tile)."""
        b = self.lw.b
        n = _numel(self.shape)
        lin = b.select(b.icmp_unsigned("<", lin, const_i32(n)), lin, const_i32(n - 1))
        p = self.lw.shared_ptr(b.add(const_i32(self.off), b.mul(lin, const_i32(self.eb))))
        t = _store_type(self.eb)
        raw = b.load(p, typ=t, align=self.eb)
        c = b.zext(raw, I32) if t.width < 32 else raw
        return from_code(b, self.dt, c)

    def at(self, coords) -> ir.Value:
        return self.get(_colex_index(self.lw.b, coords, self.shape))


def gather(lw, out: N.Value, src: Scratch, src_coords) -> Tile:
    """A register tile for ``out`` whose slot at coordinate ``c`` is ``src`` at ``src_coords(c)``."""
    lay = lw.layout_of(out)
    slots = [src.at(src_coords(c)) for c in lw.coords(lay, out.shape)]
    return Tile(slots, lay, out.dtype)


def scratch_of(lw, v: N.Value) -> Scratch:
    x = lw.get(v)
    if isinstance(x, SharedTile):
        return SharedReader(lw, x)
    return Scratch(lw, lw.tile(v), v.shape, v.dtype)


class SharedReader:
    """Reads a shared tile through its memory layout (same interface as :class:`Scratch`)."""

    def __init__(self, lw, st: SharedTile):
        self.lw, self.st, self.shape, self.dt = lw, st, st.shape, st.dtype

    def at(self, coords) -> ir.Value:
        b = self.lw.b
        clamped = [b.select(b.icmp_unsigned("<", c, const_i32(s)), c, const_i32(s - 1)) for c, s in zip(coords, self.shape)]
        off = shared_offset(self.lw, self.st, clamped)
        t = _store_type(self.st.ebytes)
        raw = b.load(self.lw.shared_ptr(off), typ=t, align=self.st.ebytes)
        return from_code(b, self.dt, b.zext(raw, I32) if t.width < 32 else raw)

    def get(self, lin):
        raise NotImplementedError


def shared_offset(lw, st: SharedTile, coords) -> ir.Value:
    """Byte offset (i32) of tile coordinate ``coords`` of a shared tile (its memory layout is
    colexicographic-indexed like every layout: ``layout(colex index)`` = element offset). A tile of a
    software-pipelined loop (:class:`.pipeline.StagedTile`) adds its stage's byte offset, a run-time value."""
    b = lw.b
    lay = st.layout
    f = getattr(lay, "layout", lay)          # MemLayout wraps a Layout (+ swizzle)
    from vmlang.ir.layout import inttuple as it
    shape = it.flatten(f.shape)
    stride = it.flatten(f.stride)
    lin = _colex_index(b, coords, st.shape)
    elem = const_i32(0)
    rest = lin
    for s, d in zip(shape, stride):
        c = b.urem(rest, const_i32(s)) if s > 1 else const_i32(0)
        rest = b.udiv(rest, const_i32(s)) if s > 1 else rest
        if d:
            elem = b.add(elem, b.mul(c, const_i32(d)))
    byte = b.mul(elem, const_i32(st.ebytes))
    sw = getattr(lay, "swizzle", None)
    if sw is not None and getattr(sw, "bits", 0):
        byte = apply_swizzle(b, sw, byte)
    return b.add(tile_start(lw, st), byte)


def tile_start(lw, st: SharedTile) -> ir.Value:
    """Byte offset (i32) of a shared tile's first byte in the dynamic allocation: its offset, plus its
    stage's bytes for a tile of a software-pipelined loop (:class:`.pipeline.StagedTile`, a run-time value)."""
    start = const_i32(st.offset)
    stage = getattr(st, "stage_base", None)
    return start if stage is None else lw.b.add(start, stage)


def shared_addr32(lw, byte_offset) -> ir.Value:
    """The 32-bit shared-window address of ``byte_offset`` (i32) in the dynamic allocation, for inline PTX
    (``ldmatrix``, ``cp.async``): the allocation's address, converted once, plus the offset in 32-bit
    arithmetic (a generic-width pointer per access would cost a 64-bit add and two conversions)."""
    base = lw.smem.ptrtoint(I32)
    return lw.b.add(base, byte_offset)


def shared_byte_table(layout, ebytes: int, n: int):
    """The compile-time twin of :func:`shared_offset`: the byte offset (swizzle included) of each of the
    first ``n`` tile elements, by colex index, as a numpy array; None when the layout has no such table."""
    import numpy as np
    f = getattr(layout, "layout", layout)
    try:
        elem = np.asarray(f.table(), dtype=np.int64)
    except Exception:  # noqa: BLE001 - a layout without a table: the callers fall back
        return None
    if elem.size < n:
        return None
    byte = elem[:n] * ebytes
    sw = getattr(layout, "swizzle", None)
    if sw is not None and getattr(sw, "bits", 0):
        byte = sw(byte)
    return byte


def apply_swizzle(b, sw, byte):
    """XOR swizzle of a byte address: bits [base+shift, base+shift+bits) xor into [base, base+bits)."""
    mask = ((1 << sw.bits) - 1) << (sw.base + sw.shift)
    hi = b.and_(byte, const_i32(mask))
    return b.xor(byte, b.lshr(hi, const_i32(sw.shift)))


def tile_to_shared(lw, reg: Tile, out: N.Value) -> SharedTile:
    """Write a register tile into a new shared tile laid out by ``out``'s memory layout. bf16 (held as f32
    in registers) is stored as its 16-bit code, as ``cp.async`` stages it: ldmatrix and wgmma read the tile."""
    dt = out.dtype
    eb = 2 if dt == D.bfloat16 else elem_bytes(dt)
    lay = out.type.layout
    if lay is None or hasattr(lay, "threads"):
        lay = _row_major_colex(out.shape)
    f = getattr(lay, "layout", lay)
    size = int(f.cosize) if hasattr(f, "cosize") else _numel(out.shape)
    st = SharedTile(lw.alloc_shared(max(size, _numel(out.shape)) * eb), lay, dt, tuple(out.shape), eb)
    b = lw.b
    lw.barrier()
    from .rules_memory import first_holders
    writer, first = first_holders(lw, reg.layout)
    coords = lw.coords(reg.layout, out.shape)
    with b.if_then(writer):                       # once per element, by its first holder
        for v, (c, x) in enumerate(zip(coords, reg.slots)):
            if not first[v]:
                continue
            off = shared_offset(lw, st, c)
            t = _store_type(eb)
            code = to_code(b, dt, x)
            b.store(b.trunc(code, t) if t.width < 32 else code, lw.shared_ptr(off), align=eb)
    lw.barrier()
    return st


def _row_major_colex(shape):
    """A row-major memory layout written colexicographically: coordinate (i0..ik) -> row-major offset."""
    from vmlang.ir.layout import Layout
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    strides = tuple(reversed(strides))
    if len(shape) == 1:
        return Layout(shape[0], 1)
    return Layout(tuple(shape), strides)


def free(lw, i, x_val: N.Value, src_of) -> bool:
    """Bind ``i.out`` without moving data when each thread holds the source elements of its result slots
    (:func:`.remap.free_slots`); False when it does not (the caller goes through shared memory)."""
    x = lw.get(x_val)
    if not isinstance(x, Tile):
        return False
    lay = lw.layout_of(i.out)
    slots = R.free_slots(x.layout, lay, src_of)
    if slots is None:
        return False
    lw.set(i.out, Tile([x.slots[v] for v in slots], lay, i.out.dtype))
    return True


# ----------------------------------------------------------------------------------- rules
@lower(N.ConvertLayout)
def _convert_layout(lw, i):
    x = lw.get(i.x)
    if i.out.type.space == "shared":
        if isinstance(x, SharedTile):
            # shared -> shared: through registers in the default layout
            tmp_lay = lw.default_layout(i.out)
            rd = SharedReader(lw, x)
            reg = Tile([rd.at(c) for c in lw.coords(tmp_lay, i.out.shape)], tmp_lay, i.out.dtype)
            lw.set(i.out, tile_to_shared(lw, reg, i.out))
        else:
            lw.set(i.out, tile_to_shared(lw, x, i.out))
        return
    if isinstance(x, Tile) and str(x.layout) == str(lw.layout_of(i.out)):
        lw.set(i.out, Tile(list(x.slots), x.layout, i.out.dtype))
        return
    if free(lw, i, i.x, R.identity_map(i.out.shape)):
        return
    lw.set(i.out, gather(lw, i.out, scratch_of(lw, i.x), lambda c: c))


@lower(N.Broadcast)
def _broadcast(lw, i):
    if i.x.is_scalar:
        lay = lw.layout_of(i.out)
        lw.set(i.out, Tile([lw.get(i.x)] * lay.values, lay, i.out.dtype))
        return
    xs = i.x.shape
    if free(lw, i, i.x, R.broadcast_map(xs, i.out.shape)):
        return
    lw.set(i.out, gather(lw, i.out, scratch_of(lw, i.x),
                         lambda c: [const_i32(0) if s == 1 else x for x, s in zip(c, xs)]))


@lower(N.ExpandDims)
def _expand_dims(lw, i):
    a = i.axis
    if free(lw, i, i.x, R.expand_dims_map(i.x.shape, i.out.shape, a)):
        return
    lw.set(i.out, gather(lw, i.out, scratch_of(lw, i.x), lambda c: c[:a] + c[a + 1:]))


def _row_major_coords(b, coords, from_shape, to_shape):
    """Coordinates in ``to_shape`` of the element at ``coords`` of ``from_shape`` in row-major order."""
    lin = const_i32(0)
    for c, s in zip(coords, from_shape):
        lin = b.add(b.mul(lin, const_i32(s)), c) if s > 1 else lin
    out = []
    for s in reversed(to_shape):
        out.append(b.urem(lin, const_i32(s)) if s > 1 else const_i32(0))
        lin = b.udiv(lin, const_i32(s)) if s > 1 else lin
    return list(reversed(out))


@lower(N.Reshape)
def _reshape(lw, i):
    b = lw.b
    if free(lw, i, i.x, R.reshape_map(i.x.shape, i.out.shape)):
        return
    lw.set(i.out, gather(lw, i.out, scratch_of(lw, i.x),
                         lambda c: _row_major_coords(b, c, i.out.shape, i.x.shape)))


@lower(N.Permute)
def _permute(lw, i):
    perm = i.perm
    if free(lw, i, i.x, R.permute_map(i.x.shape, i.out.shape, perm)):
        return

    def src(c):
        s = [None] * len(perm)
        for k, p in enumerate(perm):
            s[p] = c[k]
        return s
    lw.set(i.out, gather(lw, i.out, scratch_of(lw, i.x), src))


@lower(N.View)
def _view(lw, i):
    """Gather each result element's bits from the (at most ``ceil(b/a) + 1``) source elements of its row
    that overlap it: result element ``j`` covers source bits ``[j*b, (j+1)*b)``."""
    b = lw.b
    a_bits, o_bits = i.x.dtype.nbits, i.out.dtype.nbits
    src = scratch_of(lw, i.x)
    row_len = i.x.shape[-1]
    src_dt = i.x.dtype

    def one(c):
        bit0 = b.mul(c[-1], const_i32(o_bits))
        j0 = b.udiv(bit0, const_i32(a_bits))
        s0 = b.zext(b.urem(bit0, const_i32(a_bits)), I64)
        acc = ir.Constant(I64, 0)
        for k in range(-(-o_bits // a_bits) + 1):
            j = b.add(j0, const_i32(k))
            inside = b.icmp_unsigned("<", j, const_i32(row_len))
            jc = b.select(inside, j, const_i32(row_len - 1))
            code = b.zext(to_code(b, src_dt, src.at(c[:-1] + [jc])), I64)
            code = b.and_(code, ir.Constant(I64, (1 << a_bits) - 1))
            code = b.select(inside, code, ir.Constant(I64, 0))
            # source element j0 + k starts at bit (k * a - s0) of the result element
            pos = b.sub(ir.Constant(I64, k * a_bits), s0)
            part = b.select(b.icmp_signed("<", pos, ir.Constant(I64, 0)),
                            b.lshr(code, b.sub(ir.Constant(I64, 0), pos)), b.shl(code, pos))
            acc = b.or_(acc, part)
        acc = b.and_(acc, ir.Constant(I64, (1 << o_bits) - 1))
        return from_code(b, i.out.dtype, b.trunc(acc, I32))
    lay = lw.layout_of(i.out)
    lw.set(i.out, Tile([one(c) for c in lw.coords(lay, i.out.shape)], lay, i.out.dtype))


@lower(N.Codebook)
def _codebook(lw, i):
    """The value table as a constant array in global memory, read at each slot's coordinate."""
    import numpy as np
    n = 1 << i.of.nbits
    vals = i.of.decode(np.arange(n))
    codes = [to_code_const(i.out.dtype, float(v)) for v in vals]
    eb = elem_bytes(i.out.dtype)
    t = _store_type(eb)
    arr_t = ir.ArrayType(t, n)
    g = ir.GlobalVariable(lw.module, arr_t, f"vm_table_{len(lw.module.global_values)}", addrspace=1)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr_t, [ir.Constant(t, c) for c in codes])
    b = lw.b
    lay = lw.layout_of(i.out)
    slots = []
    for c in lw.coords(lay, i.out.shape):
        k = b.select(b.icmp_unsigned("<", c[0], const_i32(n)), c[0], const_i32(n - 1))
        p = b.gep(g, [b.mul(k, const_i32(eb))], source_etype=ir.IntType(8))
        p.type = GPTR        # (opaque pointer IR; llvmlite would type it by the array)
        raw = b.load(p, typ=t, align=eb)
        slots.append(from_code(b, i.out.dtype, b.zext(raw, I32) if t.width < 32 else raw))
    lw.set(i.out, Tile(slots, lay, i.out.dtype))


def to_code_const(dt, value: float) -> int:
    import numpy as np
    from vmlang.backends.numpy import arith as AR  # the VM's exact conversions (values -> repr -> codes)
    r = AR.from_values(dt, np.asarray([value]), False)
    return int(AR.to_codes(dt, r)[0])


@lower(N.Lookup)
def _lookup(lw, i):
    b = lw.b
    tbl = lw.get(i.table)
    src = SharedReader(lw, tbl) if isinstance(tbl, SharedTile) else Scratch(lw, tbl, i.table.shape, i.table.dtype)
    cdt = i.codes.dtype
    codes = lw.tile(i.codes)

    def index(x):
        # compute integers index by value (int8/int16 sign-extended); storage dtypes (sub-byte ints, float
        # codes, codebooks) by their raw code, as the VM does
        if cdt.is_int and cdt.is_signed and not C.is_storage(cdt) and C.repr_type(cdt).width < 32:
            return b.sext(x, I32)
        return to_code(b, cdt, x)
    n = i.table.shape[0]
    slots = []
    for x in codes.slots:
        k = index(x)
        k = b.select(b.icmp_unsigned("<", k, const_i32(n)), k, const_i32(0 if n == 0 else n - 1))
        slots.append(src.at([k]))
    lw.set(i.out, Tile(slots, codes.layout, i.out.dtype))


@lower(N.Insert)
def _insert(lw, i):
    b = lw.b
    lay = lw.layout_of(i.out)
    dst = lw.get(i.dst)
    same = isinstance(dst, Tile) and str(dst.layout) == str(lay)
    dsrc = None if same else scratch_of(lw, i.dst)
    vsrc = scratch_of(lw, i.value) if i.value.is_tile else None
    slots = []
    for v, c in enumerate(lw.coords(lay, i.out.shape)):
        inside = ir.Constant(I1, 1)
        vc = []
        for item, x in zip(i.index, c):
            if isinstance(item, N.At):
                inside = b.and_(inside, b.icmp_signed("==", x, lw.get(item.index)))
            else:
                r = b.sub(x, lw.get(item.start))
                inside = b.and_(inside, b.and_(b.icmp_signed(">=", r, const_i32(0)),
                                               b.icmp_signed("<", r, const_i32(item.length))))
                vc.append(r)
        old = dst.slots[v] if same else dsrc.at(c)
        new = vsrc.at(vc) if vsrc is not None else lw.get(i.value)
        slots.append(b.select(inside, new, old))
    lw.set(i.out, Tile(slots, lay, i.out.dtype))


def load_from_tile(lw, i):
    """``load(t[index])`` of a tile: read through scratch (an index outside the tile is an error in the VM;
    here it is clamped)."""
    b = lw.b
    src = scratch_of(lw, i.src)

    def at(c):
        pos, k = [], 0
        for item in i.index:
            if isinstance(item, N.At):
                pos.append(lw.get(item.index))
            else:
                pos.append(b.add(lw.get(item.start), c[k]))
                k += 1
        return pos
    if i.out.is_scalar:
        lw.set(i.out, src.at(at([])))
        return
    lw.set(i.out, gather(lw, i.out, src, at))


@lower(N.Dot)
def _dot(lw, i):
    """Generic ``a @ b + acc``: each thread computes its accumulator elements from scratch copies of a
    and b (f32 products of f16/bf16 are exact; int8 in i32, wrapping). The mma.sync path is in
    :mod:`.mma` when the shapes and layouts allow it."""
    from . import mma, mma_rows, wgmma
    if mma_rows.try_lower(lw, i) or wgmma.try_lower(lw, i) or mma.try_lower(lw, i):
        return
    b = lw.b
    A, B = scratch_of(lw, i.a), scratch_of(lw, i.b)
    acc = lw.tile(i.acc)
    lay = lw.layout_of(i.out)
    if str(acc.layout) != str(lay):
        acc = gather(lw, i.out, scratch_of(lw, i.acc), lambda c: c)
    K = i.a.shape[1]
    dt = i.a.dtype
    slots = []
    for v, c in enumerate(lw.coords(lay, i.out.shape)):
        s = acc.slots[v]
        for k in range(K):
            x, y = A.at([c[0], const_i32(k)]), B.at([const_i32(k), c[1]])
            if dt == D.int8:
                s = b.add(s, b.mul(b.sext(x, I32), b.sext(y, I32)))
            else:
                if dt == D.float16:
                    x, y = b.fpext(x, F32), b.fpext(y, F32)
                s = b.fadd(s, b.fmul(x, y))
        slots.append(s)
    lw.set(i.out, Tile(slots, lay, i.out.dtype))


__all__ = ["Scratch", "SharedReader", "gather", "scratch_of", "tile_to_shared", "shared_offset", "shared_byte_table"]
