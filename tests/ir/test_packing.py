"""pack/unpack: the LSB-first bit stream, checked against a bit-by-bit reference packer."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import vmlang as vm


def ref_pack_row(codes, nbits):
    """Reference: append each code's bits, least significant first, to one bit string; cut bytes."""
    bits = []
    for c in codes:
        bits += [(int(c) >> i) & 1 for i in range(nbits)]
    bits += [0] * (-len(bits) % 8)
    return [sum(bits[8 * j + i] << i for i in range(8)) for j in range(len(bits) // 8)]


def test_worked_examples():
    assert vm.pack([0b101, 0b011, 0b110], 3).tolist() == [0x9D, 0x01]
    assert vm.pack([1, 2], 4).tolist() == [0x21]                        # element 0 in the low nibble
    assert vm.pack(np.arange(8) % 8, 3).shape == (3,)                   # 8 int3 = 3 bytes
    assert vm.pack([63, 0, 0, 0], 6).tolist() == [0x3F, 0, 0]           # 4 int6 = 3 bytes
    assert vm.packed_length(17, 3) == 7


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 8), st.data())
def test_round_trip_any_width_shape_axis(nbits, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=13))
    codes = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 2 ** nbits - 1)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    p = vm.pack(codes, nbits, axis=axis)
    n = shape[axis]
    assert p.dtype == np.uint8 and p.shape[axis] == (n * nbits + 7) // 8
    np.testing.assert_array_equal(vm.unpack(p, nbits, n, axis=axis), codes)
    rows = np.moveaxis(codes, axis, -1).reshape(-1, n)
    prow = np.moveaxis(p, axis, -1).reshape(rows.shape[0], -1)
    for r, pr in zip(rows, prow):
        assert pr.tolist() == ref_pack_row(r, nbits)


def test_bad_input():
    with pytest.raises(ValueError, match="does not fit in 3 bits"):
        vm.pack([8], 3)
    with pytest.raises(ValueError, match="nbits"):
        vm.pack([1], 9)
    with pytest.raises(ValueError, match="nbits"):
        vm.unpack(np.zeros(1, np.uint8), 0, 1)
    with pytest.raises(ValueError, match="take 2 bytes"):
        vm.unpack(np.zeros(3, np.uint8), 3, 5)
    with pytest.raises(ValueError, match="integer codes"):
        vm.pack([1.5], 4)
    with pytest.raises(ValueError, match="-1 does not fit"):
        vm.pack([-1], 4)
