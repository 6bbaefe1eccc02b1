"""vector_bits, check_view, bank_conflicts and choose_shared_layout against bit-level simulations."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from layout_strats import bf_table
from test_layout_tv import build, factors
from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import (MMA_M16N8K16_A, MMA_M16N8K16_B, Layout, MemLayout, Swizzle, TVLayout,
                              bank_conflicts, check_view, choose_shared_layout, local, row_major, spatial,
                              vector_bits, view_error)

FAST = settings(max_examples=120, deadline=None)
BITS = [1, 2, 3, 4, 5, 6, 8, 16, 32]


def sw_bits(sw, bit):
    if sw is None:
        return bit
    byte, b = bit >> 3, bit & 7
    y = byte
    for i in range(sw.bits):
        if (byte >> (sw.base + sw.shift + i)) & 1:
            y ^= 1 << (sw.base + i)
    return (y << 3) | b


def sim_bits(tv, layout, eb, sw=None):
    """Per thread: list of memory bit addresses of its register bits, by plain loops."""
    T, V = tv.threads, tv.values
    tvt = bf_table(tv.layout.shape, tv.layout.stride)
    mt = bf_table(layout.shape, layout.stride)
    out = []
    for t in range(T):
        regs = []
        for v in range(V):
            off = mt[tvt[t + T * v]]
            regs += [sw_bits(sw, off * eb + b) for b in range(eb)]
        out.append(regs)
    return out


def sim_vector(bits, align_bytes=16):
    for w in (128, 64, 32, 16, 8):
        if w > align_bytes * 8:
            continue
        ok = True
        for regs in bits:
            if len(regs) % w:
                ok = False
                break
            for k in range(0, len(regs), w):
                chunk = regs[k:k + w]
                if chunk[0] % w or chunk != list(range(chunk[0], chunk[0] + w)):
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return w
    return 0


def sim_banks(bits, w):
    """Wavefronts per (warp, access): phases of 128 bytes, distinct words per bank."""
    T = len(bits)
    n = len(bits[0]) // w
    per_phase = 32 // max(1, w // 32)
    res, ideal = [], []
    for warp in range(math.ceil(T / 32)):
        rw, ri = [], []
        for k in range(n):
            tot, tot_i = 0, 0
            for p in range(0, 32, per_phase):
                banks = {}
                words = set()
                for lane in range(p, p + per_phase):
                    t = warp * 32 + lane
                    if t >= T:
                        continue
                    byte = bits[t][k * w] // 8
                    for word in range(byte // 4, (byte + w // 8 - 1) // 4 + 1):
                        banks.setdefault(word % 32, set()).add(word)
                        words.add(word)
                if words:
                    tot += max(len(s) for s in banks.values())
                    tot_i += math.ceil(len(words) / 32)
            rw.append(tot)
            ri.append(tot_i)
        res.append(tuple(rw))
        ideal.append(tuple(ri))
    return tuple(res), tuple(ideal)


@st.composite
def copy_like(draw):
    """Typical copy/fragment layouts: vectors along the row, threads over a 2-D grid, repeats."""
    per = draw(st.sampled_from([1, 2, 3, 4, 8, 16]))
    r, c = draw(st.sampled_from([(1, 32), (2, 16), (4, 8), (8, 4), (32, 1), (8, 8), (16, 8), (4, 32)]))
    tv = local(1, per) * spatial(r, c, order=draw(st.sampled_from([(0, 1), (1, 0)])))
    rep = draw(st.sampled_from([(1, 1), (2, 1), (1, 2)]))
    if rep != (1, 1):
        tv = tv * (local(*rep) if draw(st.booleans()) else spatial(*rep))
    return tv


@st.composite
def cases(draw):
    tv = draw(st.one_of(factors().map(build), copy_like()))
    tile = tv.tile if len(tv.tile) == 2 else tv.tile + (1,)
    tv = TVLayout(tv.layout, tile)
    eb = draw(st.sampled_from(BITS))
    kind = draw(st.sampled_from(["row", "col", "pad", "swz"]))
    if kind == "col":
        layout = Layout(tile)
    elif kind == "pad":
        layout = Layout(tile, (tile[1] + draw(st.sampled_from([1, 2, 4, 8, 16])), 1))
    else:
        layout = row_major(tile)
    sw = None
    if kind == "swz":
        b = draw(st.integers(1, 3))
        sw = Swizzle(b, draw(st.integers(0, 4)), draw(st.integers(b, 6)))
    return tv, layout, eb, sw


@FAST
@given(cases(), st.sampled_from([4, 8, 16]))
def test_vector_bits_matches_simulation(case, align):
    tv, layout, eb, sw = case
    got = vector_bits(tv, MemLayout(layout, eb, sw), base_align_bytes=align)
    bits = sim_bits(tv, layout, eb, sw)
    assert got.bits == sim_vector(bits, align)
    assert got.accesses == (len(bits[0]) // got.bits if got.bits else 0)


@FAST
@given(cases())
def test_bank_conflicts_match_simulation(case):
    tv, layout, eb, sw = case
    mem = MemLayout(layout, eb, sw)
    bits = sim_bits(tv, layout, eb, sw)
    w = sim_vector(bits)
    if w == 0:
        with pytest.raises(LayoutError, match="whole"):
            bank_conflicts(tv, mem)
        return
    got = bank_conflicts(tv, mem)
    assert got.bits == w
    assert (got.wavefronts, got.ideal) == sim_banks(bits, w)
    if w > 8:                                   # any narrower legal width is also simulated exactly
        got8 = bank_conflicts(tv, mem, bits=8)
        assert (got8.wavefronts, got8.ideal) == sim_banks(bits, 8)


def test_vector_bits_int3_examples():
    row = Layout(1024)
    assert vector_bits(local(32) * spatial(32), row, 3)[:2] == (32, 3)      # 96 bits at 96t
    assert vector_bits(local(128) * spatial(32), Layout(4096), 3)[:2] == (128, 3)
    assert vector_bits(local(8) * spatial(32), Layout(256), 3)[:2] == (8, 3)  # 24 bits at 24t
    assert vector_bits(local(8) * spatial(32), Layout(256), 16)[:2] == (128, 1)
    assert vector_bits(local(8) * spatial(32), Layout(256), 16, base_align_bytes=4)[:2] == (32, 4)
    assert vector_bits(local(2) * spatial(32), Layout(64), 2).bits == 0          # 4 bits per thread
    assert "not a multiple of 8" in vector_bits(local(2) * spatial(32), Layout(64), 2).reason
    # a swizzle on 8-byte chunks caps 16-byte accesses at 64 bits
    m = MemLayout(row_major(8, 64), 16, Swizzle(3, 3, 3))
    assert vector_bits(local(1, 8) * spatial(8, 8, order=(1, 0)), m).bits == 64


def sim_view(tv, bits):
    """Per thread: list of packed tile bit positions (row-major tile, the last axis fastest)."""
    T, V = tv.threads, tv.values
    tvt = bf_table(tv.layout.shape, tv.layout.stride)
    rows = tv.tile[0]
    cols = tv.tile[1] if len(tv.tile) > 1 else 1
    out = []
    for t in range(T):
        regs = []
        for v in range(V):
            idx = tvt[t + T * v]
            r, c = idx % rows, idx // rows
            regs += [(r * cols + c) * bits + b for b in range(bits)]
        out.append(regs)
    return out


@st.composite
def views(draw):
    """A register layout of src elements and one of dst elements over the same bits."""
    src_bits, dst_bits = draw(st.sampled_from([(3, 8), (8, 3), (4, 8), (8, 4), (6, 8), (16, 8), (8, 16),
                                               (5, 8), (2, 4), (3, 3)]))
    g = src_bits * dst_bits // math.gcd(src_bits, dst_bits)
    ks, kd = g // src_bits, g // dst_bits
    rows = draw(st.sampled_from([1, 2, 4]))
    tr = draw(st.sampled_from([1, 2]))
    tc = draw(st.sampled_from([1, 2, 4]))
    n = draw(st.sampled_from([1, 2]))                 # granules per thread along the row
    order = draw(st.sampled_from([(0, 1), (1, 0)]))
    src = local(1, ks * n) * spatial(tr, tc, order=order) * local(rows, 1)
    if draw(st.booleans()):                           # a legal twin
        dst = local(1, kd * n) * spatial(tr, tc, order=order) * local(rows, 1)
    else:                                             # something else, legal or not
        kd2 = draw(st.sampled_from([kd, 2 * kd, max(1, kd // 2)]))
        dst = spatial(tr, max(1, tc * n * kd // kd2), order=draw(st.sampled_from([(0, 1), (1, 0)]))) * local(1, kd2) * \
            local(rows, 1)
    return src, src_bits, dst, dst_bits


@FAST
@given(views())
def test_check_view_matches_simulation(v):
    src, sb, dst, db = v
    a, b = sim_view(src, sb), sim_view(dst, db)
    rows_ok = src.tile[0] == dst.tile[0] and src.tile[1] * sb == dst.tile[1] * db
    legal = rows_ok and a == b
    msg = view_error(src, sb, dst, db)
    assert (msg is None) == legal, msg
    if legal:
        check_view(src, sb, dst, db)
    else:
        with pytest.raises(LayoutError):
            check_view(src, sb, dst, db)


def test_check_view_messages_show_bits():
    src = local(1, 8) * spatial(1, 32)                 # 8 int3 = 24 bits per thread
    dst = local(1, 3) * spatial(1, 32)                 # 3 bytes per thread
    check_view(src, 3, dst, 8)
    bad = local(1, 4) * spatial(1, 32)                 # 4 int3 = 12 bits: not whole bytes
    msg = view_error(bad, 3, local(1, 3) * spatial(1, 16), 8)
    assert "threads" in msg or "bits" in msg
    msg = view_error(local(1, 8) * spatial(1, 32), 3, spatial(1, 32) * local(1, 3), 8)
    assert "= tile bit" in msg and "*3+" in msg and "*8+" in msg and "24-bit granules" in msg
    with pytest.raises(LayoutError, match=r"4 x 3 = 12 bits before but 2 x 8 = 16 bits after"):
        check_view(Layout((32, 4), (4, 1)), 3, Layout((32, 2), (2, 1)), 8)   # packed positions directly
    with pytest.raises(LayoutError, match="same rows of bits"):
        check_view(local(1, 4) * spatial(1, 32), 3, local(1, 1) * spatial(1, 32) * local(1, 2), 8)


def test_mma_bank_conflicts_and_choice():
    plain = MemLayout(row_major(16, 16), 16)
    c = bank_conflicts(MMA_M16N8K16_A, plain)
    assert c.bits == 32 and c.conflicts == 4 and c.wavefronts == ((2, 2, 2, 2),)
    writer = local(1, 8) * spatial(16, 4, order=(1, 0)) * spatial(4, 1)    # 256 threads, 16-byte rows
    reader = MMA_M16N8K16_A * spatial(4, 2)                                 # 8 warps over 64 x 32
    choice = choose_shared_layout(writer, reader, 16)
    assert choice.write.bits == 128 and choice.read.bits == 32
    assert choice.write.conflicts == 0 and choice.read.conflicts == 0
    assert choice.mem.swizzle is not None
    # brute force: no admissible candidate beats it
    best = min(extra for m, wb, rb, extra in choice.candidates if extra is not None and wb >= 128 and rb >= 32)
    assert best == 0
    assert vector_bits(MMA_M16N8K16_B, MemLayout(row_major(16, 8), 16)).bits == 16


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([(16, 64), (32, 32), (8, 128), (64, 16)]), st.sampled_from([8, 16, 4]))
def test_choose_shared_layout_is_optimal_among_candidates(tile, eb):
    R, C = tile
    per = 128 // eb                                    # elements per 16-byte access
    if C % per:
        return
    writer = local(1, per) * spatial(R, C // per, order=(1, 0))
    reader = local(1, per) * spatial(R, C // per)      # column-major thread order: conflicts
    ch = choose_shared_layout(writer, reader, eb)
    keep = [x for x in ch.candidates if x[3] is not None and x[1] >= ch.write.bits and x[2] >= ch.read.bits]
    assert ch.write.conflicts + ch.read.conflicts == min(x[3] for x in keep)
    for m, wb, rb, extra in ch.candidates[:3]:
        if extra is not None:
            sim = sim_bits(writer, m.layout, eb, m.swizzle)
            assert sim_vector(sim, 128) == wb
