"""Mark arithmetic for ``mmx_mask``, exactly as mwan3 2.12 does it.

With ``b`` bits set in the mask there are ``2**b - 1`` usable ids:
interfaces get ``1 .. 2**b - 4``, then come blackhole (``2**b - 3``),
unreachable (``2**b - 2``) and default (``2**b - 1``, all mask bits set,
meaning "use the main table").  An id's bits are spread, lowest first, into
the set bits of the mask, so non-contiguous masks work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class MarkSpace:
    mask: int

    @property
    def bits(self) -> int:
        return self.mask.bit_count()

    @property
    def default_id(self) -> int:
        return (1 << self.bits) - 1

    @property
    def unreachable_id(self) -> int:
        return self.default_id - 1

    @property
    def blackhole_id(self) -> int:
        return self.default_id - 2

    @property
    def max_interfaces(self) -> int:
        return max(self.default_id - 3, 0)

    def mark(self, ident: int) -> int:
        """The fwmark bits for an id (``mwan3_id2mask``)."""
        return _spread(self.mask, ident)

    def ident(self, mark: int) -> int:
        """The id carried by a mark (inverse of :meth:`mark`)."""
        out = 0
        bit = 0
        for pos in range(32):
            if self.mask & (1 << pos):
                if mark & (1 << pos):
                    out |= 1 << bit
                bit += 1
        return out

    @property
    def default_mark(self) -> int:
        return self.mark(self.default_id)

    @property
    def blackhole_mark(self) -> int:
        return self.mark(self.blackhole_id)

    @property
    def unreachable_mark(self) -> int:
        return self.mark(self.unreachable_id)


@cache
def _spread(mask: int, ident: int) -> int:
    """``ident``'s bits, lowest first, into the set bits of ``mask`` (a compile asks
    for the same few marks thousands of times)."""
    out = 0
    bit = 0
    for pos in range(32):
        if mask & (1 << pos):
            if ident & (1 << bit):
                out |= 1 << pos
            bit += 1
    return out
