"""Predicated global and shared memory accesses as inline PTX, and element addressing of global tensors.

A masked access must not touch memory where its predicate is false (the address may be outside the
allocation), so loads and stores are emitted as ``@p ld.global`` / ``@p st.global`` inline assembly, as
the PTX ISA's guarded instructions, instead of LLVM branches per element.

Global tensors are row-major with a packed last axis: element ``(i0, .., ik)`` of a ``b``-bit dtype starts
at bit ``8 * sum(i_d * stride_d) + ik * b`` of the allocation (strides in storage bytes for packed
dtypes, in elements otherwise). Example: int3 ``[2, 10]`` has 4-byte rows (30 bits rounded up); element
(1, 5) starts at bit ``8 * 4 + 15 = 47``: byte 5, bit 7, straddling bytes 5 and 6.
"""
from __future__ import annotations

from llvmlite import ir

from .core import GPTR, I1, I8, I16, I32, I64, const_i32

_WIDTH_SUFFIX = {8: "u8", 16: "u16", 32: "b32", 64: "b64"}


def always(pred) -> bool:
    """Whether predicate ``pred`` is the constant true (an unmasked access by every thread): the access is
    then a plain instruction, with no ``setp`` and no zero fill."""
    return isinstance(pred, ir.Constant) and pred.type in (I1, I32) and pred.constant in (1, True)


def _pred32(b, p) -> ir.Value:
    return b.zext(p, I32) if p.type == I1 else p


def _at(operand: int, offset: int) -> str:
    """A PTX address: register operand ``$operand`` plus an immediate byte offset."""
    return f"[${operand}+{offset}]" if offset else f"[${operand}]"


def load_global(lw, ptr, pred, bits: int, offset: int = 0) -> ir.Value:
    """``bits``-wide load (8/16/32/64) of ``ptr`` (+ ``offset`` bytes, an immediate) when ``pred``, else 0;
    an i32 (i64 for 64 bits)."""
    b = lw.b
    if bits == 64:
        ty, reg, mov = I64, "l", "mov.b64 $0, 0;"
    else:
        ty, reg, mov = I32, "r", "mov.b32 $0, 0;"
    if always(pred):
        asm = f"ld.global.{_WIDTH_SUFFIX[bits]} $0, {_at(1, offset)};"
        return b.call(ir.InlineAsm(ir.FunctionType(ty, [GPTR]), asm, f"={reg},l", side_effect=True), [ptr])
    asm = (f"{{ .reg .pred p; setp.ne.b32 p, $1, 0; {mov} @p ld.global.{_WIDTH_SUFFIX[bits]} $0, {_at(2, offset)}; }}")
    fn = ir.InlineAsm(ir.FunctionType(ty, [I32, GPTR]), asm, f"={reg},r,l", side_effect=True)
    return b.call(fn, [_pred32(b, pred), ptr])


def load_global_vec(lw, ptr, pred, n: int, offset: int = 0) -> list:
    """``n`` (2 or 4) consecutive 32-bit words at ``ptr`` + ``offset`` bytes (an immediate; 16-byte aligned
    for 4) when ``pred``."""
    b = lw.b
    outs = ",".join(f"${k}" for k in range(n))
    st = ir.LiteralStructType([I32] * n)
    if always(pred):
        asm = f"ld.global.v{n}.b32 {{{outs}}}, {_at(n, offset)};"
        r = b.call(ir.InlineAsm(ir.FunctionType(st, [GPTR]), asm, ",".join(["=r"] * n) + ",l", side_effect=True),
                   [ptr])
        return [b.extract_value(r, k) for k in range(n)]
    movs = " ".join(f"mov.b32 ${k}, 0;" for k in range(n))
    asm = (f"{{ .reg .pred p; setp.ne.b32 p, ${n}, 0; {movs} @p ld.global.v{n}.b32 {{{outs}}}, {_at(n + 1, offset)}; }}")
    fn = ir.InlineAsm(ir.FunctionType(st, [I32, GPTR]), asm, ",".join(["=r"] * n) + ",r,l", side_effect=True)
    r = b.call(fn, [_pred32(b, pred), ptr])
    return [b.extract_value(r, k) for k in range(n)]


def store_global_vec(lw, ptr, pred, words: list):
    """``@p st.global.v{n}.b32 [ptr], {words}``: ``n`` (2 or 4) i32 words at ``ptr`` (16-byte aligned for 4)."""
    b = lw.b
    n = len(words)
    regs = ",".join(f"${k + 2}" for k in range(n))
    asm = f"{{ .reg .pred p; setp.ne.b32 p, $0, 0; @p st.global.v{n}.b32 [$1], {{{regs}}}; }}"
    fn = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [I32, GPTR] + [I32] * n), asm,
                      "r,l," + ",".join(["r"] * n), side_effect=True)
    b.call(fn, [_pred32(b, pred), ptr] + list(words))


def store_global(lw, ptr, pred, value, bits: int):
    """``bits``-wide store (8/16/32) of the low bits of the i32 ``value`` when ``pred``."""
    b = lw.b
    v = value if value.type == I32 else b.zext(value, I32)
    asm = f"{{ .reg .pred p; setp.ne.b32 p, $0, 0; @p st.global.{_WIDTH_SUFFIX[bits]} [$1], $2; }}"
    fn = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [I32, GPTR, I32]), asm, "r,l,r", side_effect=True)
    b.call(fn, [_pred32(b, pred), ptr, v])


def atomic_bits(lw, ptr, pred, op: str, value):
    """``@p red.global.<op>.b32 [ptr], value`` (op: and / or)."""
    b = lw.b
    asm = f"{{ .reg .pred p; setp.ne.b32 p, $0, 0; @p red.global.{op}.b32 [$1], $2; }}"
    fn = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [I32, GPTR, I32]), asm, "r,l,r", side_effect=True)
    b.call(fn, [_pred32(b, pred), ptr, value])


def atomic_add(lw, ptr, pred, value, kind: str):
    """``@p red.global.add.<kind> [ptr], value``: kind f32 / u32 / s32 (i32 or float value), f16 / bf16
    (an i16 bit pattern)."""
    b = lw.b
    ty = value.type
    if kind in ("f16", "bf16"):
        asm = f"{{ .reg .pred p; setp.ne.b32 p, $0, 0; @p red.global.add.noftz.{kind} [$1], $2; }}"
        cons = "r,l,h"
    elif kind == "f32":
        asm = "{ .reg .pred p; setp.ne.b32 p, $0, 0; @p red.global.add.f32 [$1], $2; }"
        cons = "r,l,f"
    else:
        asm = f"{{ .reg .pred p; setp.ne.b32 p, $0, 0; @p red.global.add.{kind} [$1], $2; }}"
        cons = "r,l,r"
    fn = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [I32, GPTR, ty]), asm, cons, side_effect=True)
    b.call(fn, [_pred32(b, pred), ptr, value])


def byte_ptr(lw, base, byte_offset) -> ir.Value:
    """``base + byte_offset`` (i64 offset) as a global pointer."""
    return lw.b.gep(base, [byte_offset], source_etype=I8)


def row_offset(lw, g, pos: list) -> ir.Value:
    """Storage-element offset (i64) of the row holding ``pos`` (every axis but the last)."""
    b = lw.b
    off = ir.Constant(I64, 0)
    for d in range(len(pos) - 1):
        off = b.add(off, b.mul(b.sext(pos[d], I64), b.sext(g.strides[d], I64)))
    return off


def chunk_ptr(lw, g, index, coords: list, within: int, bits: int) -> ir.Value:
    """Byte pointer of the chunk that starts ``within`` bits past element ``index + coords`` of global tensor
    ``g`` (``index``: the access's ``At``/``Range`` items, ``coords``: this thread's i32 coordinates in the
    tile, one per ``Range``), for an access that starts on a whole byte (a vector plan's chunk, a
    ``cp.async`` chunk).

    The byte offset is cut into a **block-uniform** part (the slices' starts and ``At`` indices: loop
    variables, block offsets) and a **per-thread** part (the coordinates and ``within``), and the pointer is
    ``(base + thread part) + uniform part``: the per-thread part is the same in every iteration of a loop,
    so LLVM hoists it, and each access of a loop costs one 64-bit add. A bit address over their sum,
    ``(8 * row + (start + coord) * bits) >> 3``, is recomputed whole every iteration (the sign extension of
    an i32 sum and the shift do not distribute) -- 5 to 7 instructions per access.

    The last axis of a packed dtype is cut only where the start is known to be whole bytes
    (``start * bits % 8 == 0`` from :class:`~vmlang.passes.scalars.ScalarFacts`); otherwise its bit offset
    stays in the uniform part. Positions are added in i64, so ``start + coord`` cannot wrap (an access
    that could is masked off and reads nothing).

    Worked example: int2 codes ``w[n0 : +128, k0 : +128]`` of rows of 4096 codes (1024 bytes), this
    thread's chunk at coordinates (5, 32), ``within = 0``: uniform ``n0 * 1024 + k0 * 2 / 8`` (k0 a
    multiple of 128, so ``k0 * 2`` is whole bytes), per thread ``5 * 1024 + 32 * 2 / 8 = 5128``.
    """
    from vmlang.ir import nodes as N
    b = lw.b
    uni, thr, k = [], [], 0
    for item in index:
        if isinstance(item, N.At):
            uni.append(b.sext(lw.get(item.index), I64))
            thr.append(None)
        else:
            c = coords[k] if k < len(coords) else const_i32(0)
            uni.append(b.sext(lw.get(item.start), I64))
            thr.append(b.sext(c, I64))
            k += 1

    def rows(parts):
        off = ir.Constant(I64, 0)
        for d in range(len(parts) - 1):
            if parts[d] is not None:
                off = b.add(off, b.mul(parts[d], b.sext(g.strides[d], I64)))
        return off

    U, T = rows(uni), rows(thr)
    u_last, t_last = uni[-1], thr[-1] if thr[-1] is not None else ir.Constant(I64, 0)
    if bits % 8 == 0:
        size = ir.Constant(I64, bits // 8)
        U = b.mul(b.add(U, u_last), size)
        T = b.add(b.mul(b.add(T, t_last), size), ir.Constant(I64, within // 8))
    else:
        item = index[-1]
        start = item.index if isinstance(item, N.At) else item.start
        eight = ir.Constant(I64, 8)
        if lw.scalar_facts.divisor(start) * bits % 8 == 0:
            U = b.add(U, b.sdiv(b.mul(u_last, ir.Constant(I64, bits)), eight, flags=("exact",)))
            t_bits = b.add(b.mul(t_last, ir.Constant(I64, bits)), ir.Constant(I64, within))
            T = b.add(T, b.sdiv(t_bits, eight, flags=("exact",)))
        else:
            bit = b.add(b.mul(b.add(u_last, t_last), ir.Constant(I64, bits)), ir.Constant(I64, within))
            U = b.add(U, b.sdiv(bit, eight, flags=("exact",)))
    return byte_ptr(lw, byte_ptr(lw, g.ptr, T), U)


def in_bounds(lw, g, pos: list) -> ir.Value:
    """``0 <= pos_d < shape_d`` for every axis (signed compares)."""
    b = lw.b
    ok = ir.Constant(I1, 1)
    for p, n in zip(pos, g.shape):
        ok = b.and_(ok, b.and_(b.icmp_signed(">=", p, const_i32(0)), b.icmp_signed("<", p, n)))
    return ok


def load_element(lw, g, pos: list, pred, bits: int) -> ir.Value:
    """The code (low ``bits`` of an i32) of element ``pos`` of global tensor ``g``, 0 where not ``pred``.

    Sub-byte fields are read as one or two bytes and shifted; the second byte is only read when the field
    straddles into it (it may be past the end of the allocation otherwise)."""
    b = lw.b
    row = row_offset(lw, g, pos)
    last = b.sext(pos[-1], I64)
    if bits in (8, 16, 32):
        byte_off = b.mul(b.add(row, last), ir.Constant(I64, bits // 8))
        return load_global(lw, byte_ptr(lw, g.ptr, byte_off), pred, bits)
    bit = b.mul(last, ir.Constant(I64, bits))
    byte_off = b.add(row, b.lshr(bit, ir.Constant(I64, 3)))
    shift = b.trunc(b.and_(bit, ir.Constant(I64, 7)), I32)
    lo = load_global(lw, byte_ptr(lw, g.ptr, byte_off), pred, 8)
    if 8 % bits == 0:      # 1, 2, 4 bits never straddle
        word = lo
    else:
        straddle = b.icmp_unsigned(">", b.add(shift, const_i32(bits)), const_i32(8))
        hi = load_global(lw, byte_ptr(lw, g.ptr, b.add(byte_off, ir.Constant(I64, 1))), b.and_(pred, straddle), 8)
        word = b.or_(lo, b.shl(hi, const_i32(8)))
    return b.and_(b.lshr(word, shift), const_i32((1 << bits) - 1))


def store_element(lw, g, pos: list, pred, code: ir.Value, bits: int):
    """Store the low ``bits`` of i32 ``code`` at element ``pos`` when ``pred``. Sub-byte fields are merged
    into their 32-bit words with atomic and/or (neighbouring fields may belong to other threads); the
    launcher gives such tensors a 4-byte-aligned buffer with 4 bytes of slack."""
    b = lw.b
    row = row_offset(lw, g, pos)
    last = b.sext(pos[-1], I64)
    if bits in (8, 16, 32):
        off = b.mul(b.add(row, last), ir.Constant(I64, bits // 8))
        store_global(lw, byte_ptr(lw, g.ptr, off), pred, code, bits)
        return
    bit = b.add(b.mul(row, ir.Constant(I64, 8)), b.mul(last, ir.Constant(I64, bits)))
    # the allocation start is 4-byte aligned (launcher): word = bit // 32, shift = bit % 32
    word_off = b.mul(b.lshr(bit, ir.Constant(I64, 5)), ir.Constant(I64, 4))
    shift = b.and_(bit, ir.Constant(I64, 31))
    field = b.shl(b.zext(b.and_(code, const_i32((1 << bits) - 1)), I64), shift)
    mask = b.shl(ir.Constant(I64, (1 << bits) - 1), shift)
    for k in range(2):
        part_m = b.trunc(b.lshr(mask, ir.Constant(I64, 32 * k)), I32)
        part_v = b.trunc(b.lshr(field, ir.Constant(I64, 32 * k)), I32)
        p = pred if k == 0 else b.and_(pred, b.icmp_unsigned("!=", part_m, const_i32(0)))
        ptr = byte_ptr(lw, g.ptr, b.add(word_off, ir.Constant(I64, 4 * k)))
        atomic_bits(lw, ptr, p, "and", b.xor(part_m, const_i32(-1)))
        atomic_bits(lw, ptr, p, "or", part_v)


__all__ = ["load_global", "load_global_vec", "store_global", "store_global_vec", "atomic_bits", "atomic_add",
           "byte_ptr", "row_offset", "chunk_ptr", "in_bounds", "load_element", "store_element", "I16"]
