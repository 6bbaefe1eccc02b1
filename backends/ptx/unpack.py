"""Decoding packed codes two at a time: the ``lop3``/``prmt`` fast paths of a cast from a vector-loaded tile.

A vector load (:mod:`.vector`) keeps the 32-bit words it read with the tile (:class:`~.core.Packed`). A code
at bit ``s`` of a word with another at bit ``s + 16`` (``s + bits <= 16``) is a **pair**: one word
operation moves both into the two 16-bit halves ("lanes") of an i32 in float16 or bfloat16 format, and
one ``f16x2``/``bf16x2`` operation gives both values. Everything is generated from the dtype's data
(``bits``, ``exp``, ``man``, ``bias``, ``flavor``, ``signed``; the lane format's ``Et``/``Mt``/``Bt``),
never per name. Codes of widths dividing 16 (1, 2, 4, 8 bits) pair up; 3/5/6/7-bit codes never sit 16
bits apart (``16 % bits != 0``), so they keep the per-code path (:func:`.convert.cast`), as do codes that
straddle words, 16-bit vector chunks and every other cast.

**Integers** (``bits <= Mt``: the magic number of :func:`.convert._int_magic`, two at once). Lanes
``2**Mt``-exponent | ``u`` are ``2**Mt + u``; a signed code is first xored with its sign bit (all of a
code is also xored with its sign bit (the same ``lop3``: magic and sign in one constant), which makes it
``value + 2**(bits-1)``:

    int4 -> f16, w = 0x87654321 (codes LSB first 1, 2, 3, 4, 5, 6, 7, -8)
    pair s = 4:  lop3((w >> 4) & 0x000F000F ^ 0x64086408) = 0x640E640A   (lanes 1034, 1038)
                 sub.f16x2 - (1024 + 8)                   -> (2, 6)        (codes 1 and 5)
    pair s = 12: (w >> 12) & 0x000F000F ^ 0x64086408     = 0x6400640C    -> (4, -8)

An 8-bit code is a whole byte: ``prmt`` puts it under the magic's high byte (``0x64``) in one
instruction, the sign bits of the word's four codes flipped first by one ``xor``: int8 w = 0x80FF017F,
w' = w ^ 0x80808080 = 0x007F81FF, ``prmt(w', 0x64646464, 0x4240)`` = 0x647F64FF (lanes 1279, 1151) less
1152 -> (127, -1).

**Small floats** (the fields moved as :func:`.floatfmt.decode_into_body` moves them, two at once): a
shift ``x`` puts each code's sign at its lane's bit 15 (``prmt`` for bytes), ``(x & mag) >> (Et - E)``
puts exponent and mantissa at the top of the lane's mantissa, one ``lop3`` adds the signs, and one
exact ``mul.f16x2`` by ``2**(Bt - B)`` gives the values (zero, negative zero and subnormals included):

    e2m1 -> f16, codes 0b0111 (6.0) at bit 12 and 0b1001 (-0.5) at bit 28: x = w (shift 16 - 4 - 12 = 0)
    lop3(x & 0x80008000 | (x & 0x70007000) >> 3) = 0x82000E00    (lanes 2**-14 * -0.5, 2**-14 * 1.5 * 2**2)
    mul.f16x2 2**14 (0x7400)                   -> (6.0, -0.5)

A format with the lane's exponent width and IEEE Inf/NaN (e5m2 in f16) is the top of the lane: one
``prmt`` (``and`` of a shift otherwise), no multiplication. FN formats (NaN at S.1..1.1..1, e4m3) whose
exponent is one bit narrower than the lane's: ``t = lane + 2**(Mt - M)`` carries into bit ``Mt + E`` only
for the NaN codes, and ``lop3(lane | t & 2**(Mt+E))`` sets it, making the lane's exponent all ones (a
quiet NaN: the mantissa's top bit is set); e4m3 0x7F: lane 0x3F80 -> 0x7F80 (NaN), 0x7E: 0x3F00 stays
(448 after the multiplication). Other formats with Inf/NaN keep the per-code path.

**Targets.** float16: f16 lanes, values by ``extractelement`` (a ``mov.b32 {lo, hi}``). bfloat16 and
float32 (both held in a ``float``): bf16 lanes where the format fits them (exact), the halves by
``shl 16`` / ``and 0xFFFF0000`` (integer ops); else f16 lanes and ``cvt.f32.f16`` per value (bfloat16:
only formats without NaN whose values are all bfloat16 values; the VM's bfloat16 NaN is one code).
Results are bit for bit :func:`.convert.cast`'s (NaN: some NaN in float16/float32, as there).

``lop3`` is inline PTX in an NVPTX module (LLVM 22 emits ``and``+``or``) and its truth table evaluated
in LLVM IR elsewhere (the CPU tests); ``prmt`` is a ``shufflevector`` of ``<4 x i8>`` (NVPTX forms
``prmt.b32``); f16x2/bf16x2 arithmetic is ``<2 x half>``/``<2 x bfloat>`` IR (``sub.f16x2``,
``add.bf16x2``, ``fma.rn.bf16x2`` on sm_80).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from llvmlite.ir import types as _irt

from vmlang.ir import dtypes as D
from vmlang.ir import floatcodec as fc

from . import convert as C

I32, F16, F32 = ir.IntType(32), ir.HalfType(), ir.FloatType()
V4I8 = ir.VectorType(ir.IntType(8), 4)


class BFloatType(_irt._BaseFloatType):
    """LLVM's ``bfloat`` (llvmlite.ir has none); constants as ``0xR`` + the 16 bits."""
    null = "0.0"
    intrinsic_name = "bf16"

    def __str__(self):
        return "bfloat"

    def format_constant(self, value):
        bits = int(np.array(value, np.float32).view(np.uint32)) >> 16
        if float(np.array(bits << 16, np.uint32).view(np.float32)) != float(value):
            raise AssertionError(f"{value!r} is not a bfloat16 value")
        return f"0xR{bits:04X}"


BFloatType._create_instance()
BF16 = BFloatType()


@dataclass(frozen=True)
class Lanes:
    """A 16-bit IEEE lane format: float16 or bfloat16."""
    exp: int
    man: int
    ty: ir.Type

    @property
    def bias(self) -> int:
        return fc.bias(self.exp)


F16_LANES, BF16_LANES = Lanes(5, 10, F16), Lanes(8, 7, BF16)


def _two(x: int) -> int:
    """A 16-bit pattern in both lanes."""
    return (x & 0xFFFF) * 0x10001


# ----------------------------------------------------------------------------------- what fits
def _int_fits(dt, L: Lanes) -> bool:
    return C._int_like(dt) and dt.nbits <= L.man


def _float_fits(dt, L: Lanes) -> bool:
    """A storage binary float format whose every code decodes exactly into lanes ``L`` by this module's
    moves: values exact and finite ones finite there; IEEE only with ``L``'s exponent width (Inf/NaN are
    then ``L``'s), FN (NaN codes only) with one exponent bit less and a mantissa (the carry trick)."""
    if not (isinstance(dt, D.FloatType) and C.is_storage(dt)) or dt.flavor == fc.SCALE:
        return False
    E, M, B = dt.exp, dt.man, dt.bias
    if M > L.man or E > L.exp or 1 - B - M < 1 - L.bias - L.man:
        return False
    if dt.flavor == fc.IEEE:
        return E == L.exp and dt.signed
    if E == L.exp:
        return False
    if dt.flavor == fc.FN and not (E + 1 == L.exp and M >= 1 and dt.signed):
        return False
    return (1 << E) - 1 - B <= L.bias         # the top binade stays below the lane's Inf


def _fits(dt, L: Lanes) -> bool:
    return _int_fits(dt, L) or _float_fits(dt, L)


def _bf16_exact(dt) -> bool:
    v = np.asarray(dt.values, np.float64)
    v = v[np.isfinite(v)]
    b = (v.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    return bool(np.array_equal(b.astype(np.float64), v))


def lanes_for(src, dst, saturate: bool = False) -> Lanes | None:
    """The lane format a cast ``src -> dst`` decodes pairs in, or None (the per-code path)."""
    if saturate and getattr(src, "has_inf", False):
        return None                       # saturation turns Inf into the largest finite value
    if dst == D.float16:
        return F16_LANES if _fits(src, F16_LANES) else None
    if dst not in (D.float32, D.bfloat16):
        return None
    if dst == D.float32 and C._int_like(src) and src.nbits < 8:
        # measured on an H100 (qmatmul GEMV, M = 1, 28672x8192, 2026-11-22): ints of 2..7 bits into f32
        # are faster one by one (shift, xor, one f32 add: int4 72.7 us vs 80.8 us through bf16 lanes;
        # int2 78.4 vs 79.8), fewer PTX instructions notwithstanding; float formats and 8-bit codes
        # gain from pairs (float4_e2m1 69.6 vs 75.7 us, int8 88.2 vs 94.4)
        return None
    if _fits(src, BF16_LANES):
        return BF16_LANES
    if not _fits(src, F16_LANES):
        return None
    if dst == D.bfloat16 and (getattr(src, "has_nan", False) or not _bf16_exact(src)):
        return None
    return F16_LANES


# ----------------------------------------------------------------------------------- instructions
def _c(v: int) -> ir.Constant:
    return C.i32(v)


def _shift(b, x, k: int):
    """``x << k`` (``>> -k`` for k < 0)."""
    return x if k == 0 else b.shl(x, _c(k)) if k > 0 else b.lshr(x, _c(-k))


def lop3(b, x, y, z, fn):
    """``fn(x, y, z)`` bitwise, ``fn`` written with ``& | ^ ~`` on Python ints: one ``lop3.b32`` with the
    truth table ``fn(0xF0, 0xCC, 0xAA) & 0xFF`` in an NVPTX module, that table evaluated in IR elsewhere."""
    lut = fn(0xF0, 0xCC, 0xAA) & 0xFF
    ops = [x, y, z]
    if b.module.triple.startswith("nvptx"):
        cons = ",".join("n" if isinstance(o, ir.Constant) else "r" for o in ops)
        asm = ir.InlineAsm(ir.FunctionType(I32, [I32] * 3), f"lop3.b32 $0, $1, $2, $3, {lut:#04x};",
                           "=r," + cons)
        return b.call(asm, ops)
    out = _c(0)
    for k in range(8):                     # minterm k: x bit k>>2, y bit (k>>1)&1, z bit k&1
        if lut >> k & 1:
            t = _c(-1)
            for o, bit in zip(ops, (k >> 2 & 1, k >> 1 & 1, k & 1)):
                t = b.and_(t, o if bit else b.xor(o, _c(-1)))
            out = b.or_(out, t)
    return out


def prmt(b, x, fill, picks):
    """Bytes ``picks`` (0-3: ``x``'s bytes, 4-7: ``fill``'s -- an i32 value, or an int whose low byte fills
    all four) of an i32, low byte first: a ``shufflevector`` NVPTX emits as one ``prmt.b32``."""
    v = b.bitcast(x, V4I8)
    f = ir.Constant(V4I8, [fill & 0xFF] * 4) if isinstance(fill, int) else b.bitcast(fill, V4I8)
    mask = ir.Constant(ir.VectorType(I32, 4), list(picks))
    return b.bitcast(b.shuffle_vector(v, f, mask), I32)


def _splat(L: Lanes, v: float) -> ir.Constant:
    return ir.Constant(ir.VectorType(L.ty, 2), [v, v])


# ----------------------------------------------------------------------------------- one pair
class _Word:
    """One packed word and what several pairs share: the word with its codes' sign bits flipped, and the
    word shifted right so that an int pair sits inside its lanes' mantissa (``lane_shift``: {bit: shift}
    from :func:`lane_shifts`; pairs not listed are not shifted)."""

    def __init__(self, b, w, signs: int, lane_shift: dict | None = None):
        self.b, self.w, self.signs, self._flipped = b, w, signs, None
        self.lane_shift, self._shifted = lane_shift or {}, {}

    def shifted(self, t: int):
        """The word shifted right by ``t`` (one shift per distinct ``t``)."""
        if t not in self._shifted:
            self._shifted[t] = _shift(self.b, self.w, -t)
        return self._shifted[t]

    def flipped(self):
        if self._flipped is None:
            self._flipped = self.b.xor(self.w, _c(self.signs))
        return self._flipped


def _byte(n: int, s: int) -> bool:
    return n == 8 and s % 8 == 0


def _int_pair(b, dt, L: Lanes, word: _Word, s: int):
    """The pair at bit ``s``, decoded where it sits in the word shifted right by ``t`` (the word's
    ``lane_shift``): lane bit ``o = s - t``, the magic's exponent lowered by ``o`` so that the code's low
    bit weighs 1."""
    n = dt.nbits
    magic = (L.bias + L.man) << L.man
    if _byte(n, s) and magic & 0xFF == 0:      # the word's sign bits flipped once, shared by its pairs
        src = word.flipped() if dt.is_signed else word.w
        lanes = prmt(b, src, magic >> 8, (s // 8, 4, s // 8 + 2, 4))
        return b.fsub(b.bitcast(lanes, ir.VectorType(L.ty, 2)), _splat(L, _int_offset(dt, L, 0)))
    t = word.lane_shift.get(s, 0)
    return int_lanes(b, dt, L, word.shifted(t), s - t, s - t)


def _int_offset(dt, L: Lanes, o: int) -> float:
    """What the lane of an int code at lane bit ``o`` holds above the code's value: the magic number
    ``2**(man - o)``, and ``2**(bits - 1)`` for a signed code (its sign bit flipped)."""
    return 2.0 ** (L.man - o) + (2.0 ** (dt.nbits - 1) if dt.is_signed else 0.0)


def int_lanes(b, dt, L: Lanes, x, o_lo: int, o_hi: int):
    """The int codes at bit ``o_lo`` and bit ``16 + o_hi`` of the 32-bit value ``x``, decoded where they sit
    (``o + bits <= man``): one ``lop3`` keeps both codes, flips their sign bits and puts in each lane the
    magic exponent lowered by the lane's offset (the code's low bit weighs 1), one f16x2/bf16x2 subtract.

        int3 -> f16, codes 3 (0b011) at bit 6 and -2 (0b110) at bit 16 + 2 of x = 0x001800C0:
        lop3(x & 0x001C01C0 ^ 0x5C104D00) = 0x5C084DC0 (lanes 2**(10-6) * (1 + 0x1C0 / 1024) = 23,
        2**(10-2) * (1 + 8 / 1024) = 258); less (16 + 4, 256 + 4) -> (3, -2)
    """
    n = dt.nbits
    magic = (L.bias + L.man) << L.man

    def lane(o):
        return (magic - (o << L.man)) | ((1 << (o + n - 1)) if dt.is_signed else 0)

    mask = (((1 << n) - 1) << o_lo) | ((((1 << n) - 1) << o_hi) << 16)
    k = lane(o_lo) | lane(o_hi) << 16
    lanes = lop3(b, x, _c(mask), _c(k), lambda x, m, k: x & m ^ k)
    offs = ir.Constant(ir.VectorType(L.ty, 2), [_int_offset(dt, L, o_lo), _int_offset(dt, L, o_hi)])
    return b.fsub(b.bitcast(lanes, ir.VectorType(L.ty, 2)), offs)


def _window(b, words: list, at: int):
    """Bits ``[at, at + 32)`` of the stream of ``words`` (word ``j`` holds bits ``[32 j, 32 j + 32)``; bits
    outside the words read 0): the word itself, or two neighbours funnel-shifted (one ``shf.r``)."""
    j, sh = divmod(at, 32)
    lo = words[j] if 0 <= j < len(words) else None
    if sh == 0:
        return lo if lo is not None else _c(0)
    hi = words[j + 1] if 0 <= j + 1 < len(words) else None
    if lo is not None and hi is not None:
        fshr = b.module.globals.get("llvm.fshr.i32") or ir.Function(
            b.module, ir.FunctionType(I32, [I32, I32, I32]), "llvm.fshr.i32")
        return b.call(fshr, [hi, lo, _c(sh)])
    if lo is not None:
        return b.lshr(lo, _c(sh))
    return b.shl(hi, _c(32 - sh)) if hi is not None else _c(0)


def window_pairs(b, dt, L: Lanes, packed) -> list[tuple[int, int, ir.Value]]:
    """``(low slot, high slot, f16x2/bf16x2 value)`` for the int codes of odd widths that
    :func:`vmlang.passes.lanes.block_pairs` pairs: per block of 32 codes starting on a word (``bits``
    words), each pair from its window of the stream (:func:`_window`, one per distinct window) by
    :func:`int_lanes` (codes straddling two words too). Blocks need not be complete: a pair is taken where
    both its codes are in the tile."""
    from vmlang.passes.lanes import BLOCK, block_pairs
    n = dt.nbits
    plan = block_pairs(n, L.man)
    if not plan:
        return []
    at = {v * n: v for v in range(len(packed.where))}       # slot v: stream bits [v * n, (v + 1) * n)
    span = BLOCK * n
    windows: dict[int, ir.Value] = {}
    out = []
    for base in sorted({p - p % span for p in at}):
        for lo, hi, t in plan:
            v, u = at.get(base + lo * n), at.get(base + hi * n)
            if v is None or u is None:
                continue
            if base + t not in windows:
                windows[base + t] = _window(b, packed.words, base + t)
            out.append((v, u, int_lanes(b, dt, L, windows[base + t], lo * n - t, hi * n - t - 16)))
    return out


def lane_shifts(offsets, n: int, man: int) -> dict[int, int]:
    """``{s: t}``: the right shift ``t`` of a word after which its pair at bit ``s`` sits at lane bit
    ``s - t <= man - n`` (the code inside the lane's mantissa), the fewest shifts per word (greedy from 0).

    >>> lane_shifts(range(0, 16, 2), 2, 10)      # int2 in f16 lanes: one shift by 10 for the top three
    {0: 0, 2: 0, 4: 0, 6: 0, 8: 0, 10: 10, 12: 10, 14: 10}
    """
    out, t = {}, 0
    for s in sorted(set(offsets)):
        if s - t + n > man:
            t = s
        out[s] = t
    return out


def _float_pair(b, dt, L: Lanes, word: _Word, s: int):
    n, E, M, B = dt.nbits, dt.exp, dt.man, dt.bias
    w = word.w
    top = 16 - n                                   # a code's low bit when its top bit is its lane's bit 15
    if dt.signed:
        byte = _byte(n, s) and top != s            # prmt: the bytes to the lanes' tops, zeros below
        x = prmt(b, w, 0, (4, s // 8, 4, s // 8 + 2)) if byte else _shift(b, w, top - s)
        if E == L.exp:                             # the top of the lane: nothing to move
            lanes = x if byte else b.and_(x, _c(_two(((1 << n) - 1) << top)))
        else:
            mag = b.lshr(b.and_(x, _c(_two(((1 << (n - 1)) - 1) << top))), _c(L.exp - E))
            lanes = lop3(b, x, mag, _c(_two(0x8000)), lambda x, m, sg: x & sg | m)
    else:
        lanes = b.and_(_shift(b, w, L.man - M - s), _c(_two(((1 << n) - 1) << (L.man - M))))
    if dt.flavor == fc.FN:                         # NaN codes: carry into bit Mt + E, then set it
        t = b.add(lanes, _c(_two(1 << (L.man - M))))
        lanes = lop3(b, lanes, t, _c(_two(1 << (L.man + E))), lambda x, t, k: x | t & k)
    v = b.bitcast(lanes, ir.VectorType(L.ty, 2))
    if B != L.bias:
        v = b.fmul(v, _splat(L, 2.0 ** (L.bias - B)))
    return v


def _signs(dt, offsets) -> int:
    """The sign bits of the codes at ``offsets`` of a word (0 for unsigned codes)."""
    if not (C._int_like(dt) and dt.is_signed):
        return 0
    out = 0
    for s in offsets:
        out |= 1 << (s + dt.nbits - 1)
    return out & 0xFFFFFFFF


def _values(b, L: Lanes, dst, v):
    """The two lanes as reprs of ``dst``."""
    if dst == D.float16:
        return [b.extract_element(v, _c(k)) for k in (0, 1)]
    if L.ty == BF16:                               # bfloat16 bits -> float: the high half of a float32
        p = b.bitcast(v, I32)
        return [b.bitcast(b.shl(p, _c(16)), F32), b.bitcast(b.and_(p, _c(0xFFFF0000)), F32)]
    return [b.fpext(b.extract_element(v, _c(k)), F32) for k in (0, 1)]


# ----------------------------------------------------------------------------------- a tile
def pairs(packed) -> list[tuple[int, int]]:
    """``(low slot, high slot)`` of the codes 16 bits apart in one word."""
    at = {}
    for v, p in enumerate(packed.where):
        if p is not None:
            at.setdefault(p, v)
    n = packed.bits
    out = []
    for (j, s), v in at.items():
        u = at.get((j, s + 16))
        if s + n <= 16 and u is not None:
            out.append((v, u))
    return out


def _extras(src, dst) -> tuple[bool, bool]:
    """(synth, via_f32): whether codes that do not pair are put two in a word anyway (into float16: fewer
    instructions than one by one, measured; not into float32), and whether bfloat16 results of a format
    exact in bfloat16 without NaN are taken as its float32 values (no rounding step)."""
    synth = dst == D.float16 and 16 % src.nbits != 0
    via_f32 = dst == D.bfloat16 and not getattr(src, "has_nan", False) and _bf16_exact(src)
    return synth, via_f32


def applies(src, dst, saturate: bool = False) -> bool:
    """Whether :func:`cast_packed` decodes a packed tile of ``src`` codes into ``dst``."""
    if in_place(src, dst):
        return True
    if lanes_for(src, dst, saturate) is None:
        return False
    return 16 % src.nbits == 0 or any(_extras(src, dst))


def in_place(src, dst) -> bool:
    """Whether :func:`ints_in_place` decodes ``src`` codes into ``dst``: ints of 1..7 bits into float32."""
    return dst == D.float32 and C._int_like(src) and src.nbits < 8


def ints_in_place(b: ir.IRBuilder, src, packed, slots: list) -> list:
    """Int codes into float32 where they sit in their word, with no shift: the magic number of
    :func:`.convert._int_magic` with its exponent moved so that the code's low bit (word bit ``s``) weighs
    1. A float32 with biased exponent ``150 - s`` and mantissa ``u << s`` is ``2**(23-s) + u`` exactly
    (``s + bits <= 23``), so ``bits(w & (mask << s) ^ ((150 - s) << 23 | sign))`` less ``2**(23-s)`` (and
    ``2**(bits-1)`` for a signed code, its sign bit flipped by the same xor) is the value: one ``lop3`` and
    one ``add.f32`` per code, where the per-code path shifts, masks, xors and adds. Codes above bit
    ``23 - bits`` are taken from the word shifted right by 16 (one shift per word); straddling codes go
    through :func:`.convert.cast`.

        int4 code at bit 12 of w = 0x0000B000 (0xB = -5): w & 0xF000 = 0xB000, xor (138 << 23 | 0x8000)
        = 0x45003000 = 2**11 + 3 (u = 0xB ^ 0x8 = 3); less 2**11 + 8 -> -5.0"""
    n = src.nbits
    out = list(slots)
    high = {}
    for v, p in enumerate(packed.where):
        if p is None:
            out[v] = C.cast(b, src, D.float32, slots[v])
            continue
        j, s = p
        w = packed.words[j]
        if s + n > 23:
            if j not in high:
                high[j] = b.lshr(w, _c(16))
            w, s = high[j], s - 16
        sign = (1 << (s + n - 1)) if src.is_signed else 0
        bits = lop3(b, w, _c(((1 << n) - 1) << s), _c(((150 - s) << 23) | sign), lambda x, y, z: x & y ^ z)
        off = 2.0 ** (23 - s) + (2.0 ** (n - 1) if src.is_signed else 0.0)
        out[v] = b.fsub(b.bitcast(bits, F32), ir.Constant(F32, off))
    return out


def cast_packed(b: ir.IRBuilder, src, dst, packed, slots: list, saturate: bool = False) -> list | None:
    """The reprs of ``dst`` of a tile of ``src`` codes (``slots``, cut from ``packed``), pairs decoded
    two at a time and the rest by :func:`.convert.cast` (ints of 1..7 bits into float32:
    :func:`ints_in_place`); None when nothing applies."""
    if packed is not None and packed.bits == src.nbits and in_place(src, dst):
        return ints_in_place(b, src, packed, slots)
    L = lanes_for(src, dst, saturate)
    if L is None or packed is None or packed.bits != src.nbits:
        return None
    ps = pairs(packed)
    synth, via_f32 = _extras(src, dst)
    ints = C._int_like(src)
    odd = window_pairs(b, src, L, packed) if ints and 16 % src.nbits else []
    if not (ps or odd or synth or via_f32):
        return None
    offsets: dict[int, list] = {}
    for v, u in ps:
        j, s = packed.where[v]
        offsets.setdefault(j, []).extend([s, s + 16])
    words = {j: _Word(b, packed.words[j], _signs(src, offs),
                      lane_shifts([s for s in offs if s < 16], src.nbits, L.man) if ints else None)
             for j, offs in offsets.items()}
    out = list(slots)
    done = set()
    decode = _int_pair if ints else _float_pair
    for v, u in ps:
        j, s = packed.where[v]
        out[v], out[u] = _values(b, L, dst, decode(b, src, L, words[j], s))
        done |= {v, u}
    for v, u, lanes in odd:            # odd widths: pairs from windows of the stream (passes/lanes.py)
        out[v], out[u] = _values(b, L, dst, lanes)
        done |= {v, u}
    rest = [k for k in range(len(slots)) if k not in done]
    if synth:
        # codes that never sit 16 bits apart (3/5/6/7 bits): two already cut out, put in one word's halves
        # (fewer instructions than one by one into float16, not into float32: measured, see the tests)
        for v, u in zip(rest[0::2], rest[1::2]):
            p = b.or_(b.zext(slots[v], I32), b.shl(b.zext(slots[u], I32), _c(16)))
            out[v], out[u] = _values(b, L, dst, decode(b, src, L, _Word(b, p, _signs(src, [0, 16])), 0))
            done |= {v, u}
    for k, x in enumerate(slots):
        if k not in done:
            out[k] = C.cast(b, src, D.float32, x) if via_f32 else C.cast(b, src, dst, x, saturate)
    return out


__all__ = ["BF16", "Lanes", "applies", "cast_packed", "in_place", "int_lanes", "ints_in_place", "lane_shifts", "lanes_for",
           "lop3", "pairs", "prmt", "window_pairs"]
