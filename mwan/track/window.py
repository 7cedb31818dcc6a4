"""Quality windows and levels, as dpinger keeps them. Pure: every call is handed the time.

A :class:`Window` holds the probes of the last ``span`` seconds (``option
quality_window``): each probe sent, whether it was answered and its RTT.
:meth:`Window.quality` gives the average latency, the jitter (the RTTs'
standard deviation) and the loss over it.  The tracker keeps one per target
and one per interface (every target's probes).

Two levels read the interface's window (:func:`next_level`):

* **warning** (``warn_latency`` / ``warn_jitter`` / ``warn_loss``): the
  interface stays online but is *degraded* (an event, ``avoid_degraded``);
* **down** (``down_latency`` / ``down_loss``): every round fails, so mwan3's
  ``down`` rounds take it offline; it earns ``up`` good rounds once the window
  is below the recovery thresholds again.

Each threshold has its own recovery threshold (hysteresis): a level is entered
when any measure reaches its threshold and left only when every measure is at
or below its recovery threshold (default: 80 % of a latency or jitter
threshold, half of a loss threshold).  With no threshold set (the default)
nothing changes mwan3's behaviour.  A window with fewer than
:data:`MIN_PROBES` probes, or filling for less than half its span (a young
window is noisy), keeps the level it had.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from ..config.model import Interface

MIN_PROBES = 5  # probes a window needs before it may change a level


@dataclass(frozen=True)
class Quality:
    """One window's summary."""

    sent: int = 0
    received: int = 0
    latency_ms: float | None = None  # average RTT of the answered probes
    jitter_ms: float | None = None  # standard deviation of those RTTs
    full: bool = False  # the window has been filling for at least half its span

    @property
    def loss_pct(self) -> float | None:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"sent": self.sent, "received": self.received,
                "latency_ms": _round(self.latency_ms), "jitter_ms": _round(self.jitter_ms),
                "loss_pct": _round(self.loss_pct)}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


class Window:
    """The probes of the last ``span`` seconds; sums kept as probes come and go (O(1) each)."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._samples: deque[tuple[float, int, int, tuple[float, ...]]] = deque()
        self._sent = self._received = 0
        self._sum = self._sumsq = 0.0
        self._rtts = 0
        self._since: float | None = None  # when the window started filling

    def add(self, now: float, sent: int, rtts_ms: tuple[float, ...]) -> None:
        """One target's probes of a round: ``sent`` probes, the answered ones' RTTs."""
        if self._since is None:
            self._since = now
        self._samples.append((now, sent, len(rtts_ms), rtts_ms))
        self._sent += sent
        self._received += len(rtts_ms)
        self._rtts += len(rtts_ms)
        self._sum += sum(rtts_ms)
        self._sumsq += sum(r * r for r in rtts_ms)
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._samples and self._samples[0][0] <= now - self.span:
            _, sent, received, rtts = self._samples.popleft()
            self._sent -= sent
            self._received -= received
            self._rtts -= len(rtts)
            self._sum -= sum(rtts)
            self._sumsq -= sum(r * r for r in rtts)
        if not self._samples:  # no drift from float sums; filling starts over
            self._sum = self._sumsq = 0.0
            self._since = None

    def quality(self, now: float) -> Quality:
        self._expire(now)
        full = self._since is not None and now - self._since >= self.span / 2
        if not self._rtts:
            return Quality(self._sent, self._received, full=full)
        mean = self._sum / self._rtts
        var = max(0.0, self._sumsq / self._rtts - mean * mean)
        return Quality(self._sent, self._received, mean, math.sqrt(var), full)


class Level(str, enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"  # the warning level: online, avoided by avoid_degraded
    DOWN = "down"  # the down level: rounds fail


@dataclass(frozen=True)
class Thresholds:
    """One level's thresholds and their recovery values (None: that measure is not judged)."""

    latency: float | None = None
    latency_recovery: float | None = None
    jitter: float | None = None
    jitter_recovery: float | None = None
    loss: float | None = None
    loss_recovery: float | None = None

    @classmethod
    def make(cls, latency: float | None, latency_recovery: float | None,
             jitter: float | None, jitter_recovery: float | None,
             loss: float | None, loss_recovery: float | None) -> Thresholds:
        """Fill in the default recovery values (80 % of latency/jitter, half of loss)."""
        def rec(v: float | None, r: float | None, share: float) -> float | None:
            return None if v is None else (r if r is not None else v * share)
        return cls(latency, rec(latency, latency_recovery, 0.8),
                   jitter, rec(jitter, jitter_recovery, 0.8),
                   loss, rec(loss, loss_recovery, 0.5))

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.latency, self.jitter, self.loss))

    def _measures(self, q: Quality) -> list[tuple[str, float | None, float | None, float | None,
                                                  str]]:
        return [("latency", q.latency_ms, self.latency, self.latency_recovery, "ms"),
                ("jitter", q.jitter_ms, self.jitter, self.jitter_recovery, "ms"),
                ("loss", q.loss_pct, self.loss, self.loss_recovery, "%")]

    def reached(self, q: Quality) -> str | None:
        """Why ``q`` reaches this level (``loss 12%``), or None."""
        why = [f"{name} {value:.0f}{' ' if unit == 'ms' else ''}{unit}"
               for name, value, limit, _, unit in self._measures(q)
               if limit is not None and value is not None and value >= limit]
        return ", ".join(why) or None

    def still(self, q: Quality) -> str | None:
        """Why ``q`` stays at this level (some measure above its recovery value), or None."""
        why = [f"{name} {value:.0f}{' ' if unit == 'ms' else ''}{unit}"
               for name, value, _, rec, unit in self._measures(q)
               if rec is not None and value is not None and value > rec]
        return ", ".join(why) or None


@dataclass(frozen=True)
class Levels:
    warn: Thresholds = Thresholds()
    down: Thresholds = Thresholds()

    @property
    def enabled(self) -> bool:
        return self.warn.enabled or self.down.enabled


@dataclass(frozen=True)
class Judgement:
    level: Level
    reason: str = ""  # the measures that put it there ("loss 12%"), or "" at OK


def next_level(levels: Levels, q: Quality, current: Judgement) -> Judgement:
    """The level after this window summary, with hysteresis; too few probes: unchanged."""
    if not levels.enabled or q.sent < MIN_PROBES or not q.full:
        return current
    for level, t in ((Level.DOWN, levels.down), (Level.DEGRADED, levels.warn)):
        if not t.enabled:
            continue
        was_here = current.level == level or (current.level == Level.DOWN
                                              and level == Level.DEGRADED)
        why = t.still(q) if was_here else t.reached(q)
        if why is not None:
            return Judgement(level, why)
    return Judgement(Level.OK)


def levels_of(iface: Interface) -> Levels:
    """An interface's two levels, from its warn_* and down_* options."""
    return Levels(
        warn=Thresholds.make(iface.warn_latency, iface.warn_latency_recovery,
                             iface.warn_jitter, iface.warn_jitter_recovery,
                             iface.warn_loss, iface.warn_loss_recovery),
        down=Thresholds.make(iface.down_latency, iface.down_latency_recovery, None, None,
                             iface.down_loss, iface.down_loss_recovery))
