"""Swizzle: involution, bijection, low bits kept; MemLayout text and tables."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vmlang.ir.errors import LayoutError
from vmlang.ir.layout import Layout, MemLayout, Swizzle, row_major

FAST = settings(max_examples=100, deadline=None)


@st.composite
def swizzles(draw):
    b = draw(st.integers(0, 4))
    m = draw(st.integers(0, 5))
    s = draw(st.integers(max(b, 0), 7))
    return Swizzle(b, m, s)


def twin(sw, x):
    """Bit by bit: address bit base+i flips when bit base+shift+i is set."""
    y = x
    for i in range(sw.bits):
        if (x >> (sw.base + sw.shift + i)) & 1:
            y ^= 1 << (sw.base + i)
    return y


@FAST
@given(swizzles())
def test_swizzle_is_an_involution_and_bijection_keeping_low_bits(sw):
    P = sw.period
    x = np.arange(3 * P, dtype=np.int64)
    y = sw(x)
    assert np.array_equal(sw(y), x)
    assert [twin(sw, int(v)) for v in x[:512]] == y[:512].tolist()
    for blk in range(3):                               # bijection on every aligned period block
        seg = y[blk * P:(blk + 1) * P]
        assert sorted(seg.tolist()) == list(range(blk * P, (blk + 1) * P))
    low = (1 << sw.base) - 1
    assert np.array_equal(y & low, x & low)            # low `base` bits kept
    k = sw.base + sw.bits
    assert np.array_equal(y >> k, x >> k)              # stays in its 2**(base+bits) block
    assert sw(5) == int(sw(np.array([5]))[0])


def test_swizzle_examples_and_errors():
    sw = Swizzle(3, 4, 3)
    assert [sw(x) for x in (0, 16, 128, 144, 389)] == [0, 16, 144, 128, 437]
    assert str(sw) == "Sw<3,4,3>" and Swizzle.parse("Swizzle(3, 4, 3)") == sw
    with pytest.raises(LayoutError, match="shift must be at least bits"):
        Swizzle(3, 4, 2)
    with pytest.raises(LayoutError):
        Swizzle(-1, 0, 0)
    with pytest.raises(LayoutError):
        Swizzle.parse("Sw<3,4>")


def test_memlayout_text_and_tables():
    m = MemLayout.parse("Sw<3,4,3> o (8,64):(64,1) @16b")
    assert str(m) == "Sw<3,4,3> o (8,64):(64,1) @16b"
    assert MemLayout.parse(str(m)) == m and hash(MemLayout.parse(str(m))) == hash(m)
    assert MemLayout.parse("(8,64):(64,1) @ float16") == MemLayout(row_major(8, 64), 16)
    assert MemLayout.parse("(4,8):(8,1)") == MemLayout(row_major(4, 8), 8)
    t = m.table()
    assert sorted(t.tolist()) == list(range(512))      # still a bijection of the tile
    assert t[1] == 72 and t[8] == 1
    bt = MemLayout(Layout(16), 3, Swizzle(1, 0, 1)).bit_table()
    assert np.array_equal(bt & 7, (np.arange(16)[:, None] * 3 + np.arange(3)) & 7)   # bit in byte kept
    with pytest.raises(LayoutError, match="split"):
        MemLayout(Layout(16), 3, Swizzle(1, 0, 1)).table()
    with pytest.raises(LayoutError):
        MemLayout.parse("(4,8):(8,1) @ banana")
