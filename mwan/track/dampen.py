"""Flap dampening: a hold-down after too many transitions in a window. Pure.

An interface whose carrier or tracker verdict changes ``flap_threshold``
times within ``flap_window`` seconds is *held down* for ``flap_holddown``
seconds: it stays out of every policy however it looks meanwhile.  While it
is held, transitions are still recorded, and one that reaches the threshold
again restarts the hold-down from that moment, so a link that keeps flapping
stays held until it has been calm for ``flap_holddown`` seconds.  When the
hold ends the interface is back in service only if it is healthy then (the
daemon decides that from its carrier and tracker, as usual).

``flap_threshold 0`` (the default) turns dampening off: mwan3's behaviour.

Nothing here reads a clock: every call takes ``now`` (any monotonic-enough
clock in seconds) and returns the new value and what changed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config.model import Interface


@dataclass(frozen=True)
class DampenParams:
    threshold: int = 0  # transitions within `window` that start a hold-down; 0 = off
    window: float = 60.0
    holddown: float = 120.0

    @classmethod
    def of(cls, iface: Interface) -> DampenParams:
        return cls(iface.flap_threshold, float(iface.flap_window), float(iface.flap_holddown))

    @property
    def enabled(self) -> bool:
        return self.threshold > 0


class Change(str, enum.Enum):
    """What a call did to the hold-down (the daemon's event names)."""

    DAMPENED = "dampened"  # a hold-down started
    UNDAMPENED = "undampened"  # a hold-down ended


@dataclass(frozen=True)
class Dampening:
    """The recent transitions (at most ``threshold``, oldest first) and the hold-down."""

    recent: tuple[float, ...] = ()
    held_until: float | None = None

    @property
    def held(self) -> bool:
        """Held down: until :func:`expire` releases it (at or after ``held_until``)."""
        return self.held_until is not None

    def flaps(self, p: DampenParams, now: float) -> int:
        """How many of the kept transitions fall within the window ending ``now``."""
        return sum(1 for t in self.recent if t > now - p.window)


def record(p: DampenParams, d: Dampening, now: float) -> tuple[Dampening, Change | None]:
    """One transition at ``now``: the new value, and DAMPENED if a hold-down started."""
    if not p.enabled:
        return d, None
    # the threshold is reached when the oldest of the last `threshold` is inside the window
    recent = (d.recent + (now,))[-p.threshold:]
    reached = len(recent) >= p.threshold and recent[0] > now - p.window
    if not reached:
        return Dampening(recent, d.held_until), None
    started = not d.held
    held_until = now + p.holddown
    if d.held_until is not None and d.held_until > held_until:
        held_until = d.held_until
    return Dampening(recent, held_until), Change.DAMPENED if started else None


def expire(d: Dampening, now: float) -> tuple[Dampening, Change | None]:
    """At or after the end of a hold-down: the released value and UNDAMPENED; else no change."""
    if d.held_until is None or now < d.held_until:
        return d, None
    return Dampening(d.recent, None), Change.UNDAMPENED


def disable(d: Dampening) -> tuple[Dampening, Change | None]:
    """Dampening switched off (config reload): forget everything, release any hold-down."""
    return Dampening(), Change.UNDAMPENED if d.held_until is not None else None
