"""Drift: what someone else did to mwan's kernel objects, and when to repair it.

Two pure parts, tested on a fake clock:

- :func:`nft_drift` reads one committed nftables batch that touched mwan's
  table (``nft delete table inet mwan``, ``flush ruleset``, a rule added to
  one of its chains ...) and says what changed, in words and by kind.
  Elements of sets that other programs fill (the ``ipset`` option's sets,
  filled by dnsmasq) and of the sticky sets (filled by the datapath) are
  not drift.
- :class:`RepairGovernor` decides whether a repair may run now: a few
  repairs are immediate; a burst (another daemon fighting mwan) backs off
  exponentially and says so loudly, instead of spinning.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..kernel.nftmon import Batch, ObjEvent
from ..plan.state import Desired, IpRule, Route

log = logging.getLogger("mwan")

KINDS = ("nft_table", "nft_chain", "nft_rule", "nft_set", "nft_element", "ip_rule", "route")


@dataclass(frozen=True)
class Drift:
    """What was found changed: per-kind counts and one line saying what."""

    kinds: tuple[str, ...]
    what: str
    who: str | None = None  # the process that made the change, when the kernel says


def nft_drift(batch: Batch, desired: Desired | None) -> Drift | None:
    """The drift one foreign batch made to mwan's table (None: nothing of ours)."""
    kept = set()  # sets whose contents belong to others: their elements are not ours
    if desired is not None:
        kept = {s.name for s in desired.nft.sets if s.elements is None}
    evs = [e for e in batch.events if not (e.kind == "element" and e.name in kept)]
    if not evs:
        return None
    if any(e.kind == "table" and e.deleted for e in evs):
        return Drift(("nft_table",), "nft table inet mwan deleted", batch.who())
    kinds: Counter[str] = Counter()
    parts: list[str] = []
    by: dict[tuple[str, bool, str | None], int] = Counter()
    for e in evs:
        kinds["nft_" + e.kind if e.kind in ("chain", "rule", "set", "element") else "nft_table"] \
            += 1
        by[(e.kind, e.deleted, e.name)] += 1
    for (kind, deleted, name), n in sorted(by.items(), key=lambda kv: str(kv[0])):
        verb = "deleted" if deleted else "added"
        where = {"rule": f"in chain {name}", "element": f"in set {name}"}.get(kind, name or "")
        count = f"{n} " if n > 1 else ""
        parts.append(f"{count}{kind}{'s' if n > 1 else ''} {where} {verb}".replace("  ", " "))
    return Drift(tuple(sorted(kinds)), "; ".join(parts), batch.who())


def routing_drift(want_rules: Iterable[IpRule], want_routes: Iterable[Route],
                  rules: Iterable[IpRule], routes: Iterable[Route]) -> Drift | None:
    """mwan's rules and routes in the kernel against the last applied desired state.

    ``want_routes`` leaves out the routes the kernel refused last time (a
    device that vanished): missing, but not drift.
    """
    have_rules, want_rules = set(rules), set(want_rules)
    have_routes, want_routes = set(routes), set(want_routes)
    parts: list[str] = []
    kinds: list[str] = []
    if have_rules != want_rules:
        kinds.append("ip_rule")
        gone, extra = want_rules - have_rules, have_rules - want_rules
        if gone:
            parts.append(f"{len(gone)} ip rule(s) missing (priority "
                         + ", ".join(str(r.priority) for r in sorted(gone)[:6]) + ")")
        if extra:
            parts.append(f"{len(extra)} unexpected ip rule(s) with proto 201")
    if want_routes - have_routes:
        kinds.append("route")
        gone_r = want_routes - have_routes
        tables = sorted({r.table for r in gone_r})
        parts.append(f"{len(gone_r)} route(s) missing from table(s) "
                     + ", ".join(str(t) for t in tables))
    if not kinds:
        return None
    return Drift(tuple(kinds), "; ".join(parts))


@dataclass
class RepairGovernor:
    """Repairs at once, unless they come in a burst; then backs off, loudly.

    ``burst`` repairs within ``window`` seconds are allowed; each one past
    that doubles the hold-off (``first_backoff`` up to ``max_backoff``).  A
    quiet ``window`` resets it.
    """

    burst: int = 5
    window: float = 10.0
    first_backoff: float = 1.0
    max_backoff: float = 60.0
    _times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    backoff: float = 0.0
    hold_until: float = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next repair may run (0: now)."""
        return max(0.0, self.hold_until - now)

    def record(self, now: float) -> float:
        """Note a repair made now; returns the hold-off it starts (0 when none).

        Once backing off, every repair keeps backing off until a quiet
        ``window`` passes after the hold-off ends (a fighter that deletes
        again right after each repair never gets a fresh burst).
        """
        last = self._times[-1] if self._times else None
        if self.backoff and last is not None and now - max(last, self.hold_until) > self.window:
            self.backoff = 0.0
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        self._times.append(now)
        if not self.backoff and len(self._times) <= self.burst:
            return 0.0
        self.backoff = min(self.max_backoff, self.backoff * 2 if self.backoff
                           else self.first_backoff)
        self.hold_until = now + self.backoff
        return self.backoff

    def recent(self) -> int:
        """Repairs within the last window (as of the last one)."""
        return len(self._times)

    @property
    def fighting(self) -> bool:
        return self.backoff > 0


def describe_events(events: Iterable[ObjEvent]) -> str:  # pragma: no cover - debugging aid
    return ", ".join(f"{'-' if e.deleted else '+'}{e.kind}:{e.name}" for e in events)
