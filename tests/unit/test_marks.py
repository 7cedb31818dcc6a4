"""mwan3 2.12's mark arithmetic for mmx_mask."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mwan.config.marks import MarkSpace


def test_default_mask() -> None:
    s = MarkSpace(0x3F00)
    assert s.bits == 6 and s.max_interfaces == 60
    assert (s.blackhole_id, s.unreachable_id, s.default_id) == (61, 62, 63)
    assert s.mark(1) == 0x100 and s.mark(60) == 0x3C00
    assert (s.blackhole_mark, s.unreachable_mark, s.default_mark) == (0x3D00, 0x3E00, 0x3F00)


@pytest.mark.parametrize("mask,ifaces", [(0xFF0000, 252), (0x0F00, 12), (0x300, 0),
                                         (0x700, 4)])
def test_other_masks(mask: int, ifaces: int) -> None:
    s = MarkSpace(mask)
    assert s.max_interfaces == ifaces
    assert s.default_mark == mask


def test_non_contiguous_mask_spreads_bits() -> None:
    s = MarkSpace(0x0A0)  # bits 5 and 7
    assert [s.mark(i) for i in range(4)] == [0, 0x20, 0x80, 0xA0]


@given(st.integers(1, 0xFFFFFFFF), st.integers(0, 2**32))
def test_marks_stay_inside_the_mask_and_round_trip(mask: int, ident: int) -> None:
    s = MarkSpace(mask)
    ident %= s.default_id + 1
    m = s.mark(ident)
    assert m & ~mask == 0
    assert s.ident(m) == ident
