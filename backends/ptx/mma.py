"""``dot`` on tensor cores: ``mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}`` with f32 accumulate.

``try_lower`` returns False when the dtypes, shapes or layouts do not fit (the generic FMA rule in
:mod:`.exchange` then runs); it decides everything at compile time, before emitting any code.

**Fragments** (PTX ISA, "Matrix Fragments for mma.m16n8k16"; lane ``l`` of a warp, ``g = l // 4``,
``t = l % 4``). Each fragment element ``e`` of each lane is one tile element:

* A (16 x 16, m x k), 8 halves in 4 registers: ``e -> (g + 8 * (e // 2 % 2), 2 * t + e % 2 + 8 * (e // 4))``.
  Example: lane 5 (g=1, t=1) holds A elements (1,2) (1,3) | (9,2) (9,3) | (1,10) (1,11) | (9,10) (9,11).
* B (16 x 8, k x n), 4 halves in 2 registers: ``e -> (2 * t + e % 2 + 8 * (e // 2), g)``.
  Example: lane 5 holds B (2,1) (3,1) | (10,1) (11,1).
* C/D (16 x 8, m x n), 4 floats: ``e -> (g + 8 * (e // 2), 2 * t + e % 2)``.
  Example: lane 5 holds C (1,2) (1,3) (9,2) (9,3).

Register element ``2j`` goes in the low half of 32-bit register ``j``.

**Which slot is which element** is read from the register layouts' tables (:func:`fragment_slots`), not
assumed: for every thread ``32 w + l`` and slot ``v`` of the C layout, ``layout.table()`` gives the tile
element; its 16 x 8 tile ``(mt, nt)`` and position in the tile must put it in lane ``l`` (else no mma:
False), at fragment element ``e``, and slot ``v`` must be element ``e`` of tiles ``(mt_w, nt_w)`` in
every warp ``w`` (the code is the same for all threads). With ``MMA_M16N8K16_C * local(2, 4) *
spatial(2, 2)`` (64 x 64, 4 warps) slot 0..3 are elements 0..3 of tile (0, 0) of warp 0, tile (2, 0) of
warp 1 (warps split m first), tile (0, 4) of warp 2, ...

**Operands in shared memory** are read with ``ldmatrix``: A with ``.x4`` (lane ``l`` gives the address of
row ``l % 16``, columns ``8 * (l // 16) ..+8``; matrices 0..3 are registers a0..a3), B (``[K, N]``
row-major, the col operand) with ``.x4.trans`` over k rows ``kt*16 .. kt*16+31`` (lane ``l`` gives row
``l``; registers 0, 1 are the B fragment of k tile ``kt``, 2, 3 of ``kt + 1``) or ``.x2.trans`` for a last
odd k tile. Each row address goes through the tile's memory layout and swizzle
(:func:`.exchange.shared_offset`); every 8-element row segment must be 16 contiguous, 16-byte aligned
bytes, which is checked on the layout table at compile time -- where it is not (or the tile does not hold
16-bit elements), each lane reads its fragment elements one by
one through :class:`.exchange.SharedReader` instead, still feeding mma.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from vmlang.ir import dtypes as D

from .core import F32, I32, SharedTile, Tile, const_i32, to_code

# role -> (fragment rows, fragment cols, elements per lane)
FRAG = {"a": (16, 16, 8), "b": (16, 8, 4), "c": (16, 8, 4)}


def lane_element(role: str, r, c):
    """(lane, fragment element) holding element ``(r, c)`` of a 16x16 A / 16x8 B / 16x8 C tile (numpy ok)."""
    if role == "a":
        return (r % 8) * 4 + (c % 8) // 2, c % 2 + 2 * (r // 8) + 4 * (c // 8)
    if role == "b":
        return c * 4 + (r % 8) // 2, r % 2 + 2 * (r // 8)
    return (r % 8) * 4 + c // 2, c % 2 + 2 * (r // 8)


def element_of(role: str, lane: int, e: int) -> tuple[int, int]:
    """Inverse of :func:`lane_element`: the (row, col) of fragment element ``e`` of ``lane``."""
    g, t = lane // 4, lane % 4
    if role == "a":
        return g + 8 * (e // 2 % 2), 2 * t + e % 2 + 8 * (e // 4)
    if role == "b":
        return 2 * t + e % 2 + 8 * (e // 2), g
    return g + 8 * (e // 2), 2 * t + e % 2


def fragment_slots(layout, role: str, shape) -> dict | None:
    """``{tiles: [slot per fragment element]}`` for a register layout holding mma fragments, or None.

    ``tiles`` is the tuple over warps of the ``(row tile, col tile)`` that the slots hold in that warp.
    None when some slot is not a fragment element of its own lane, differs in tile or element between
    the lanes of a warp, or a fragment is incomplete."""
    fr, fc, ne = FRAG[role]
    R, C = shape
    if R % fr or C % fc:
        return None
    T, V = layout.threads, layout.values
    if T % 32 or T == 0:
        return None
    tbl = np.asarray(layout.table(), dtype=np.int64).reshape(T, V)
    r, c = tbl % R, tbl // R
    lane, e = lane_element(role, r % fr, c % fc)
    if not np.array_equal(lane, np.broadcast_to((np.arange(T) % 32)[:, None], (T, V))):
        return None
    W = T // 32
    tiles = (r // fr) * (C // fc) + c // fc              # (T, V) tile number
    tw, ew = tiles.reshape(W, 32, V), e.reshape(W, 32, V)
    if not (np.all(tw == tw[:, :1]) and np.all(ew == ew[:, :1])):
        return None                                      # a slot must mean the same in every lane
    out: dict = {}
    for v in range(V):
        key = tuple(divmod(int(tw[w, 0, v]), C // fc) for w in range(W))
        slots = out.setdefault(key, [None] * ne)
        k = int(ew[0, 0, v])
        if slots[k] is None:
            slots[k] = v
    if any(s is None for slots in out.values() for s in slots):
        return None
    return out


def _c_groups_cover(cmap: dict, V: int) -> bool:
    """Every C slot is written by exactly one fragment element (else some slot would be left stale)."""
    seen = [s for slots in cmap.values() for s in slots]
    return sorted(seen) == list(range(V))


def _row_segments_ok(st: SharedTile, rows: int, cols: int) -> bool:
    """Whether every 8-element segment ``(r, 8j .. 8j+7)`` of a shared tile is 16 contiguous, 16-byte
    aligned bytes (with the swizzle): what one ldmatrix row address reads."""
    if st.ebytes != 2 or st.offset % 16 or tuple(st.shape) != (rows, cols) or cols % 8:
        return False
    from .exchange import shared_byte_table
    byte = shared_byte_table(st.layout, st.ebytes, rows * cols)
    if byte is None:
        return False
    byte = byte.reshape(cols, rows).T                       # [r, c] (colex index r + rows * c)
    seg = byte.reshape(rows, cols // 8, 8)
    return bool(np.all(seg[:, :, 0] % 16 == 0) and np.all(seg == seg[:, :, :1] + 2 * np.arange(8)))


class _Operand:
    """Fragments of one dot operand: from registers (slots), by ldmatrix, or element-wise from shared."""

    def __init__(self, lw, role, value, shape, dt):
        self.lw, self.role, self.shape, self.dt = lw, role, tuple(shape), dt
        x = lw.get(value)
        self.tile = x if isinstance(x, Tile) else None
        self.st = x if isinstance(x, SharedTile) else None
        self.map = None
        self.ldmatrix = False
        self.cache: dict = {}
        if self.tile is not None:
            self.map = fragment_slots(self.tile.layout, role, self.shape)
        elif self.st is not None:
            self.ldmatrix = _row_segments_ok(self.st, *self.shape)
        self.bytes = None           # [r, c] -> byte offset in the shared tile (ldmatrix address reuse)
        self.addrs: list = []       # (lane byte offsets, address value) of the addresses computed so far
        if self.ldmatrix:
            from .exchange import shared_byte_table
            R, C = self.shape
            tbl = shared_byte_table(self.st.layout, self.st.ebytes, R * C)
            self.bytes = None if tbl is None else np.asarray(tbl).reshape(C, R).T

    @property
    def usable(self) -> bool:
        return self.map is not None if self.tile is not None else self.st is not None

    def has(self, key) -> bool:
        return self.tile is None or key in self.map

    # -- fragments (lists of i32 registers) ------------------------------------------------------
    def regs(self, key, warp):
        """The 32-bit registers of the fragment whose tile in warp ``w`` is ``key[w]``."""
        if key in self.cache:
            return self.cache[key]
        if self.tile is not None:
            sl = self.map[key]
            vals = [self.tile.slots[s] for s in sl]
            out = [_pack(self.lw.b, self.dt, vals[2 * j], vals[2 * j + 1]) for j in range(len(vals) // 2)]
        elif self.ldmatrix:
            out = self._ldmatrix(key, warp)
        else:
            out = self._gather(key, warp)
        self.cache[key] = out
        return out

    def _origin(self, key, warp, axis: int):
        """Row (axis 0) or column (axis 1) where this warp's tile starts (i32)."""
        b = self.lw.b
        size = FRAG[self.role][axis]
        vals = [k[axis] * size for k in key]
        x = const_i32(vals[0])
        for w in range(1, len(vals)):
            if vals[w] != vals[0]:
                x = b.select(b.icmp_unsigned("==", warp, const_i32(w)), const_i32(vals[w]), x)
        return x

    def _gather(self, key, warp):
        """Each lane reads its own fragment elements through the shared tile's layout."""
        from .exchange import SharedReader
        b, lw = self.lw.b, self.lw
        rd = SharedReader(lw, self.st)
        lane = b.urem(lw.tid(), const_i32(32))
        g, t = b.udiv(lane, const_i32(4)), b.urem(lane, const_i32(4))
        r0, c0 = self._origin(key, warp, 0), self._origin(key, warp, 1)
        vals = []
        for e in range(FRAG[self.role][2]):
            # element_of with g, t symbolic
            if self.role == "a":
                r = b.add(g, const_i32(8 * (e // 2 % 2)))
                c = b.add(b.mul(t, const_i32(2)), const_i32(e % 2 + 8 * (e // 4)))
            else:
                r = b.add(b.mul(t, const_i32(2)), const_i32(e % 2 + 8 * (e // 2)))
                c = g
            vals.append(rd.at([b.add(r0, r), b.add(c0, c)]))
        return [_pack(b, self.dt, vals[2 * j], vals[2 * j + 1]) for j in range(len(vals) // 2)]

    def _ldmatrix(self, key, warp):
        b, lw = self.lw.b, self.lw
        lane = b.urem(lw.tid(), const_i32(32))
        if self.role == "a":
            # lane l: row l % 16, columns 8 * (l // 16) ..+8; matrices 0..3 = a0..a3
            addr = self._address(key, warp, "a", lambda r0, c0: (b.add(r0, b.urem(lane, const_i32(16))),
                                 b.add(c0, b.mul(b.udiv(lane, const_i32(16)), const_i32(8)))))
            return _ldsm(lw, addr, 4, False)
        # B: k rows r0 + (l % 16) of the 8 columns at c0, transposed: b0, b1
        addr = self._address(key, warp, "b2", lambda r0, c0: (b.add(r0, b.urem(lane, const_i32(16))), c0))
        return _ldsm(lw, addr, 2, True)

    def ldmatrix_b_pair(self, key, key2, warp):
        """B fragments of two consecutive k tiles (same n tile) with one ``ldmatrix.x4.trans``."""
        b, lw = self.lw.b, self.lw
        lane = b.urem(lw.tid(), const_i32(32))
        addr = self._address(key, warp, "b4", lambda r0, c0: (b.add(r0, lane), c0))   # rows kt*16 + l, l < 32
        regs = _ldsm(lw, addr, 4, True)
        self.cache[key], self.cache[key2] = regs[:2], regs[2:]

    def _address(self, key, warp, kind: str, row_col):
        """The 32-bit shared address this lane gives ldmatrix for the fragment(s) at ``key``.

        The byte offsets of every lane of every warp are known at compile time (:func:`lane_bytes`); when
        they differ from those of an address computed before by the same constant for all lanes, the
        address is that one plus the constant (an immediate offset for ptxas), else it is computed through
        the layout and swizzle (``row_col(r0, c0)`` gives this lane's row and column). Example: a =
        f16[128, 32] with ``Sw<2,4,3>``: the tiles of rows 16 .. 31, 32 .. 47, ... of one k step lie 1024,
        2048, ... bytes after those of rows 0 .. 15 in every lane (the swizzle reads row bits 1..2, which
        a step of 16 rows leaves alone), so each k step computes one address and the rest are immediates."""
        from .exchange import shared_addr32, shared_offset
        vec = None
        if self.bytes is not None:
            vec = lane_bytes(self.bytes, self.role, kind, key)
            for old, val in self.addrs:
                d = vec - old
                if np.all(d == d[0]):
                    return self.lw.b.add(val, const_i32(int(d[0]))) if d[0] else val
        r, c = row_col(self._origin(key, warp, 0), self._origin(key, warp, 1))
        val = shared_addr32(self.lw, shared_offset(self.lw, self.st, [r, c]))
        if vec is not None:
            self.addrs.append((vec, val))
        return val


def lane_bytes(byte, role: str, kind: str, key) -> np.ndarray:
    """Byte offset in the tile (``byte[r, c]``, swizzle included) of the ldmatrix row address of every
    thread ``32 w + l`` for fragment key ``key`` (``key[w]`` = warp w's (row tile, col tile)): ``kind`` "a"
    (x4: row l % 16, column 8 * (l // 16)), "b2" (x2.trans: row l % 16) or "b4" (x4.trans: row l)."""
    fr, fc, _ = FRAG[role]
    lane = np.arange(32)
    rows = {"a": lane % 16, "b2": lane % 16, "b4": lane}[kind]
    cols = 8 * (lane // 16) if kind == "a" else np.zeros(32, np.int64)
    out = [byte[k[0] * fr + rows, k[1] * fc + cols] for k in key]
    return np.concatenate(out)


def _pack(b, dt, lo, hi):
    """Two 16-bit elements in one 32-bit register (element ``2j`` in the low half)."""
    return b.or_(to_code(b, dt, lo), b.shl(to_code(b, dt, hi), const_i32(16)))


def _ldsm(lw, addr, n: int, trans: bool) -> list:
    """``ldmatrix.sync.aligned.m8n8.x{n}[.trans].shared.b16`` at this lane's row address (32-bit shared)."""
    b = lw.b
    outs = ",".join(f"${k}" for k in range(n))
    tr = ".trans" if trans else ""
    asm = f"ldmatrix.sync.aligned.m8n8.x{n}{tr}.shared.b16 {{{outs}}}, [${n}];"
    st = ir.LiteralStructType([I32] * n)
    fn = ir.InlineAsm(ir.FunctionType(st, [I32]), asm, ",".join(["=r"] * n) + ",r,~{memory}", side_effect=True)
    r = b.call(fn, [addr], attrs=("convergent",))      # warp-collective: never made control-dependent
    return [b.extract_value(r, k) for k in range(n)]


def _mma(b, dt, a, bb, c) -> list:
    kind = "bf16" if dt == D.bfloat16 else "f16"
    asm = (f"mma.sync.aligned.m16n8k16.row.col.f32.{kind}.{kind}.f32 "
           "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};")
    st = ir.LiteralStructType([F32] * 4)
    fn = ir.InlineAsm(ir.FunctionType(st, [I32] * 6 + [F32] * 4), asm, "=f,=f,=f,=f," + "r," * 6 + "f,f,f,f",
                      side_effect=False)
    r = b.call(fn, list(a) + list(bb) + list(c), attrs=("convergent",))   # warp-collective, like ldmatrix
    return [b.extract_value(r, k) for k in range(4)]


def plan(lw, i):
    """``(cmap, A, B)`` when the dot can run on mma.sync, else None (nothing emitted)."""
    dt = i.a.dtype
    if dt not in (D.float16, D.bfloat16):      # then acc and out are f32 (ir Dot's constructor)
        return None
    (m, k), n = i.a.shape, i.b.shape[1]
    if m % 16 or n % 8 or k % 16:
        return None
    acc = lw.get(i.acc)
    lay = lw.layout_of(i.out)
    if not isinstance(acc, Tile) or str(acc.layout) != str(lay):
        return None
    cmap = fragment_slots(lay, "c", (m, n))
    if cmap is None or not _c_groups_cover(cmap, lay.values):
        return None
    A, B = _Operand(lw, "a", i.a, (m, k), dt), _Operand(lw, "b", i.b, (k, n), dt)
    if not (A.usable and B.usable):
        return None
    W = lay.threads // 32
    for key in cmap:
        for kt in range(k // 16):
            if not (A.has(tuple((mt, kt) for mt, _ in key)) and B.has(tuple((kt, nt) for _, nt in key))):
                return None
    if A.tile is not None and len(next(iter(A.map))) != W or B.tile is not None and len(next(iter(B.map))) != W:
        return None
    return cmap, A, B


def try_lower(lw, i) -> bool:
    """Lower ``Dot`` ``i`` to mma.sync when :func:`plan` allows; returns whether it did."""
    p = plan(lw, i)
    if p is None:
        return False
    cmap, A, B = p
    b = lw.b
    acc = lw.tile(i.acc)
    K = i.a.shape[1] // 16
    warp = b.udiv(lw.tid(), const_i32(32))
    slots = list(acc.slots)
    # k step outermost: the mma of one k step are independent (no back-to-back accumulator chains), and
    # the fragments of step kt + 1 can be read while step kt computes
    for kt in range(K):
        for key in cmap:
            sl = cmap[key]
            ka = tuple((mt, kt) for mt, _ in key)
            kb = tuple((kt, nt) for _, nt in key)
            if B.st is not None and B.ldmatrix and kb not in B.cache and kt + 1 < K:
                B.ldmatrix_b_pair(kb, tuple((kt + 1, nt) for _, nt in key), warp)
            c = _mma(b, i.a.dtype, A.regs(ka, warp), B.regs(kb, warp), [slots[s] for s in sl])
            for s, x in zip(sl, c):
                slots[s] = x
    lw.set(i.out, Tile(slots, acc.layout, i.out.dtype))
    return True


__all__ = ["try_lower", "plan", "fragment_slots", "lane_element", "element_of", "FRAG"]
