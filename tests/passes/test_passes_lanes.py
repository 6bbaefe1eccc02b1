"""passes/lanes.py: which odd-width int codes decode two at a time into 16-bit lanes, and from which window.

Post-conditions of ``block_pairs`` for every odd width and both lane formats, checked on the bit positions
themselves: every code in at most one pair, both codes of a pair inside their lanes' mantissas in the
window the plan names, windows inside the block (give or take one lane's room); and ``run_pairs`` is a
permutation of the run. The decode that uses these pairs is checked bit for bit in
tests/backends/ptx/test_ptx_unpack.py.
"""
from __future__ import annotations

import doctest

import pytest

from vmlang.passes import lanes


def test_doctests():
    assert doctest.testmod(lanes).failed == 0


@pytest.mark.parametrize("bits", [3, 5, 6, 7])
@pytest.mark.parametrize("man", [10, 7])
def test_block_pairs_sit_in_their_windows(bits, man):
    pairs = lanes.block_pairs(bits, man)
    r = lanes.room(bits, man)
    seen = [i for a, c, _ in pairs for i in (a, c)]
    assert len(seen) == len(set(seen)) and all(0 <= i < lanes.BLOCK for i in seen)
    for a, c, t in pairs:
        assert 0 <= a * bits - t <= r, (a, c, t)                 # low lane: bits [t, t + 16), code inside
        assert 0 <= c * bits - t - 16 <= r, (a, c, t)            # high lane
        lo, hi = lanes.window(a * bits, c * bits, bits, man)
        assert lo <= t <= hi
        assert -r <= t < lanes.BLOCK * bits
    if r >= 0 and man == 10:                                     # float16 lanes pair every code
        assert len(pairs) == lanes.BLOCK // 2


@pytest.mark.parametrize("bits", [3, 5, 6, 7])
@pytest.mark.parametrize("man", [10, 7])
def test_block_pairs_are_cheaper_than_cutting_codes_out(bits, man):
    """What the plan costs (pairs, shifted windows, codes left alone) never exceeds cutting every code out,
    and is far below it in float16 lanes (about 1.1-1.5 instructions per code against 3)."""
    pairs = lanes.block_pairs(bits, man)
    shifts = len({t for *_, t in pairs if t % 32})
    cost = lanes.PAIR * len(pairs) + lanes.SHIFT * shifts + lanes.ALONE * (lanes.BLOCK - 2 * len(pairs))
    assert cost <= lanes.ALONE * lanes.BLOCK
    if man == 10:
        assert cost / lanes.BLOCK <= 1.5


def test_widths_that_divide_16_or_do_not_fit_have_no_windows():
    for bits in (1, 2, 4, 8):
        assert lanes.block_pairs(bits, 10) == ()
    assert lanes.block_pairs(7, 7) == () and lanes.block_pairs(6, 7) == ()     # no room in bfloat16 lanes
    assert lanes.window(0, 30, 3, 10) is None                                    # 30 bits apart: no window


@pytest.mark.parametrize("bits", [3, 5, 6, 7])
@pytest.mark.parametrize("n", [32, 64, 96, 48])
def test_run_pairs_is_a_permutation(bits, n):
    pairs = lanes.run_pairs(bits, n, 10)
    if n % lanes.BLOCK:
        assert pairs is None
        return
    assert sorted(i for p in pairs for i in p) == list(range(n))
    first = lanes.block_pairs(bits, 10)
    assert pairs[:len(first)] == tuple((a, c) for a, c, _ in first)
