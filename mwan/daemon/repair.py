"""The daemon's record of drift found and repaired (log, counts, back-off).

The daemon finds drift two ways: nftables notifications of a batch that
another process committed to mwan's table, and a check of mwan's ip rules
and WAN-table routes after rtnetlink says one of them was deleted.  Each
finding waits here until the apply loop repairs it with one apply (caches
forgotten, so the whole table and every rule and route is re-read and
restored); :class:`~mwan.daemon.drift.RepairGovernor` holds repairs back
when they come in a burst.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from ..kernel.nftmon import Batch
from ..plan.state import Desired
from .drift import Drift, RepairGovernor

log = logging.getLogger("mwan")


@dataclass
class Repairs:
    governor: RepairGovernor = field(default_factory=RepairGovernor)
    pending: list[tuple[float, Drift]] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    seconds: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    own_ids: set[int] = field(default_factory=lambda: {os.getpid()})
    verify_routing: bool = False  # one of mwan's rules or routes was deleted: look
    verify_nft: bool = False  # nftables notifications were lost: look
    count: int = 0
    _warned_hold: float = 0.0

    def ours(self, batch: Batch) -> bool:
        return batch.pid is not None and batch.pid in self.own_ids

    def found(self, drift: Drift, now: float) -> None:
        self.pending.append((now, drift))
        log.warning("drift: %s%s; repairing", drift.what, f" (by {drift.who})" if drift.who else "")

    def due(self, now: float) -> float:
        """0 when the pending repairs may run now, else the seconds to wait (and why, once)."""
        if not self.pending:
            return 0.0
        delay = self.governor.delay(now)
        if delay and self._warned_hold != self.governor.hold_until:
            self._warned_hold = self.governor.hold_until
            log.error("mwan's kernel objects keep being changed by someone else (%d repairs in "
                      "%.0f s; last: %s); repairs back off for %.0f s. Is another firewall or "
                      "routing manager fighting mwan?", self.governor.recent(),
                      self.governor.window, self.pending[-1][1].what, delay)
        return delay

    def take(self) -> list[tuple[float, Drift]]:
        out, self.pending = self.pending, []
        return out

    def done(self, items: list[tuple[float, Drift]], now: float,
             desired: Desired | None) -> list[tuple[float, str, str, str]]:
        """Count and log the repairs just applied; returns event-log entries."""
        self.governor.record(now)
        entries = []
        for found_at, d in items:
            took = now - found_at
            self.count += 1
            self.seconds.append(took)
            for k in d.kinds:
                self.by_kind[k] += 1
            who = f" (by {d.who})" if d.who else ""
            log.warning("repaired: %s%s, %.0f ms after it was seen", d.what, who, took * 1000)
            self.history.append({"time": now, "kinds": list(d.kinds), "what": d.what,
                                 "who": d.who, "ms": round(took * 1000, 1)})
            entries.append((now, "-", "repair", f"{d.what}{who}"))
            if desired is not None and ({"nft_table", "nft_set"} & set(d.kinds)):
                emptied = sorted(s.name for s in desired.nft.sets if s.elements is None)
                if emptied:
                    log.warning("sets that other programs (the ipset option: dnsmasq nftset=) "
                                "or the sticky rules fill came back empty: %s", ", ".join(emptied))
        return entries

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "total": self.count,
            "by_kind": dict(self.by_kind),
            "recent": list(self.history)[-10:],
            "backing_off_s": round(self.governor.delay(now), 1),
        }


@dataclass
class ApplyHealth:
    """Whether applies work; a failing apply is shown (status, /metrics) and retried.

    Retries back off from ``first`` to ``cap`` seconds; the kernel keeps the
    last state that applied (each nft batch is atomic).
    """

    first: float = 0.5
    cap: float = 30.0
    since: float | None = None
    reason: str | None = None
    failures: int = 0  # since it last worked
    total_failures: int = 0
    retry_in: float = 0.0

    def failed(self, exc: BaseException, now: float) -> float:
        """Record a failed apply; returns the seconds until the retry."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.since is None:
            self.since = now
            log.error("apply failed: %s; the kernel keeps the last state that applied; "
                      "retrying", reason, exc_info=not isinstance(exc, (OSError, RuntimeError)))
        elif reason != self.reason:
            log.error("apply still failing, now: %s", reason)
        self.reason = reason
        self.failures += 1
        self.total_failures += 1
        self.retry_in = min(self.cap, self.first * 2 ** min(self.failures - 1, 16))
        return self.retry_in

    def ok(self) -> None:
        if self.since is not None:
            log.warning("apply works again after %d failed attempt(s)", self.failures)
        self.since, self.reason, self.failures, self.retry_in = None, None, 0, 0.0

    def snapshot(self) -> dict[str, Any] | None:
        if self.since is None:
            return None
        return {"since": self.since, "reason": self.reason, "attempts": self.failures,
                "retry_in_s": self.retry_in}
