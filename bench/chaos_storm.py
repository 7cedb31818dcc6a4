"""The chaos benchmark's pure parts: the storm as data, and how results are classified.

Nothing here touches a namespace; :mod:`bench.chaos` runs the actions and
hands the records back to the functions below.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Kinds of action.  WAN lane (fast; one thread): fault switches of one ISP.
CARRIER_DOWN, CARRIER_UP = "carrier_down", "carrier_up"
OUTAGE, OUTAGE_END = "outage", "outage_end"
LOSS, LOSS_END = "loss", "loss_end"
# Router lane (slow; another thread, one at a time).
RESTART = "restart"            # mwan3 restart with the other config
NFT_FLUSH = "nft_flush"        # nft flush ruleset, then the firewall's tables reloaded
RULES_DEL = "rules_del"        # ip rule del of every proto 201 rule
KILL9 = "kill9"                # kill -9 of the daemon, then mwan3 start
GATEWAY = "gateway"            # the WAN's address and gateway change (a new DHCP lease)

FAULT_ENDS = {CARRIER_DOWN: CARRIER_UP, OUTAGE: OUTAGE_END, LOSS: LOSS_END}
CUTS = (CARRIER_DOWN, OUTAGE)  # a WAN with one of these is unusable
REPAIRED = (NFT_FLUSH, RULES_DEL, GATEWAY)  # drift whose repair is timed
FLAP = 1.0  # a carrier cut shorter than this (s) is a flap: a flow should live through it


@dataclass(frozen=True, order=True)
class Action:
    """One scripted action ``t`` seconds after the storm starts (``value``: loss %)."""

    t: float
    kind: str
    wan: int = 0
    value: float = 0.0

    @property
    def lane(self) -> str:
        return "wan" if self.kind in FAULT_ENDS or self.kind in FAULT_ENDS.values() else "router"


@dataclass(frozen=True)
class Done:
    """An action as it ran: wall-clock start and end, and what it measured."""

    action: Action
    start: float
    end: float
    ok: bool = True
    repair_s: float | None = None   # drift repaired after this long (None: not within limit)
    detail: str = ""


@dataclass(frozen=True)
class Interval:
    """A fault on one WAN, in wall-clock seconds."""

    wan: int
    kind: str
    start: float
    end: float


# -- the storm ------------------------------------------------------------------------

def _wan_faults(rng: random.Random, k: int, duration: float,
                blackouts: Sequence[tuple[float, float]]) -> list[Action]:
    """One WAN's faults, one at a time, clear of the all-WAN blackouts and of the end."""
    out: list[Action] = []
    t = rng.uniform(3, 12)
    while True:
        kind = rng.choice(("flaps", "carrier", "outage", "loss"))
        length = {"flaps": 3.0, "carrier": rng.uniform(1.5, 5), "outage": rng.uniform(4, 9),
                  "loss": rng.uniform(3, 8)}[kind]
        clash = [b for b in blackouts if t < b[1] + 2 and b[0] - 2 < t + length]
        if clash:
            t = clash[-1][1] + 2.5
            continue
        if t + length > duration - 4:
            return out
        if kind == "flaps":  # carrier flapping five times a second
            for i in range(rng.randint(3, 10)):
                out += [Action(round(t + 0.2 * i, 2), CARRIER_DOWN, k),
                        Action(round(t + 0.2 * i + 0.1, 2), CARRIER_UP, k)]
        elif kind == "loss":
            out += [Action(round(t, 2), LOSS, k, float(rng.choice((10, 20, 30, 40)))),
                    Action(round(t + length, 2), LOSS_END, k)]
        else:
            start = CARRIER_DOWN if kind == "carrier" else OUTAGE
            out += [Action(round(t, 2), start, k), Action(round(t + length, 2),
                                                          FAULT_ENDS[start], k)]
        t += length + rng.uniform(8, 20)


def _router_actions(rng: random.Random, wans: int, duration: float) -> list[Action]:
    """Drift, crashes and gateway changes at jittered periods; restarts every few seconds."""
    fixed: list[Action] = []
    for kind, first, period in ((NFT_FLUSH, 14, 30), (RULES_DEL, 21, 30), (GATEWAY, 29, 50),
                                (KILL9, 38, 60)):
        t = first + rng.uniform(-2, 2)
        while t < duration - 6:
            fixed.append(Action(round(t, 2), kind, rng.randint(1, wans) if kind == GATEWAY else 0))
            t += period + rng.uniform(-4, 4)
    restarts: list[Action] = []
    t = rng.uniform(3, 6)
    while t < duration - 4:
        if all(abs(t - a.t) > 2.0 for a in fixed):
            restarts.append(Action(round(t, 2), RESTART))
        t += rng.uniform(3, 6)
    return fixed + restarts


def storm(duration: float, wans: int, seed: int) -> tuple[Action, ...]:
    """The whole storm for ``duration`` seconds over WANs 1..``wans``, from ``seed``.

    Every WAN gets carrier flaps, carrier cuts, upstream outages and loss
    bursts one after the other; every ~100 s all WANs have an outage at once
    (so that failures while no WAN is usable show); the router gets drift,
    ``kill -9``, gateway changes and restarts.  Every fault ends before the
    storm does.
    """
    rng = random.Random(seed)
    blackouts = [(t, t + 4.0) for t in _blackout_times(duration)]
    actions: list[Action] = []
    for start, end in blackouts:
        actions += [Action(start, OUTAGE, k) for k in range(1, wans + 1)]
        actions += [Action(end, OUTAGE_END, k) for k in range(1, wans + 1)]
    for k in range(1, wans + 1):
        actions += _wan_faults(rng, k, duration, blackouts)
    actions += _router_actions(rng, wans, duration)
    return tuple(sorted(actions))


def _blackout_times(duration: float) -> list[float]:
    if duration < 40:
        return []
    return [round(duration * f, 1) for f in (0.45, 0.85)][: max(1, int(duration // 100))]


def smoke_storm(wans: int) -> tuple[Action, ...]:
    """One of each action in about 18 seconds (for the smoke test)."""
    acts = [Action(2, RESTART), Action(3, OUTAGE, 2), Action(7, OUTAGE_END, 2),
            Action(4, NFT_FLUSH), Action(8, RULES_DEL), Action(9, LOSS, 1, 20),
            Action(12, LOSS_END, 1), Action(11, KILL9), Action(14, GATEWAY, 1),
            Action(16, RESTART)]
    acts += [Action(round(10 + 0.2 * i + d, 2), kind, wans)
             for i in range(3) for d, kind in ((0, CARRIER_DOWN), (0.1, CARRIER_UP))]
    return tuple(sorted(acts))


# -- fault intervals ----------------------------------------------------------------------

def fault_intervals(done: Iterable[Done]) -> list[Interval]:
    """Each WAN fault as it was really on: from its start action to its end action."""
    open_: dict[tuple[int, str], float] = {}
    out: list[Interval] = []
    ends = {v: k for k, v in FAULT_ENDS.items()}
    for d in sorted(done, key=lambda d: d.start):
        a = d.action
        if a.kind in FAULT_ENDS:
            open_.setdefault((a.wan, a.kind), d.start)
        elif a.kind in ends and (a.wan, ends[a.kind]) in open_:
            out.append(Interval(a.wan, ends[a.kind], open_.pop((a.wan, ends[a.kind])), d.end))
    out += [Interval(w, k, s, float("inf")) for (w, k), s in open_.items()]
    return out


def _merge(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def all_cut(intervals: Sequence[Interval], wans: int) -> list[tuple[float, float]]:
    """The spans during which every WAN had a carrier cut or an outage."""
    common: list[tuple[float, float]] | None = None
    for k in range(1, wans + 1):
        mine = _merge((i.start, i.end) for i in intervals if i.wan == k and i.kind in CUTS)
        if common is None:
            common = mine
            continue
        common = [(max(a, c), min(b, d)) for a, b in common for c, d in mine
                  if max(a, c) < min(b, d)]
    return common or []


def _overlaps(spans: Iterable[tuple[float, float]], s: float, e: float) -> bool:
    return any(a <= e and s <= b for a, b in spans)


# -- classification ------------------------------------------------------------------------

@dataclass(frozen=True)
class Classifier:
    """Why a connection failed or a flow broke, from the fault intervals and the router actions.

    ``lag``: seconds a tracker needs to see a WAN come back (up x interval
    plus a timeout), during which mwan may rightly still treat it as down.
    """

    intervals: tuple[Interval, ...]
    router: tuple[Done, ...]
    wans: int
    lag: float
    blackouts: tuple[tuple[float, float], ...] = field(default=())

    @classmethod
    def of(cls, done: Sequence[Done], wans: int, lag: float) -> Classifier:
        iv = tuple(fault_intervals(done))
        router = tuple(d for d in done if d.action.lane == "router")
        return cls(iv, router, wans, lag, tuple(all_cut(iv, wans)))

    def actions_near(self, s: float, e: float, after: float = 2.0) -> list[str]:
        """Router actions running (or just finished) while [s, e] went on."""
        return sorted({d.action.kind for d in self.router
                       if d.start <= e and s <= d.end + (d.repair_s or 0) + after})

    def connection(self, t: float, dt: float) -> str:
        """``all_wans_cut``; a WAN fault going on (``outage``, ``carrier_down``, ``loss``) or
        just over (``recovering``: within ``lag``); or ``none``."""
        if _overlaps(self.blackouts, t, t + dt):
            return "all_wans_cut"
        for kind in (OUTAGE, CARRIER_DOWN, LOSS):
            if _overlaps(((i.start, i.end) for i in self.intervals if i.kind == kind), t, t + dt):
                return kind
        if _overlaps(((i.start, i.end + self.lag) for i in self.intervals), t, t + dt):
            return "recovering"
        return "none"

    def flow(self, wan: int | None, last_ok: float, t: float, reason: str = "stall") -> str:
        """Why a flow on ``wan`` broke: ``wan_cut``, ``address_changed`` (its WAN died), or
        ``during KIND`` (a router action), ``carrier_flap``, ``loss``, ``unexplained``."""
        mine = [i for i in self.intervals if i.wan == wan]
        cuts = [i for i in mine if i.kind in CUTS]
        if _overlaps(((i.start, i.end) for i in cuts if i.end - i.start >= FLAP), last_ok - 0.5, t):
            return "wan_cut"
        if any(d.action.kind == GATEWAY and d.action.wan == wan and last_ok - 1 <= d.end
               and d.start <= t for d in self.router):
            return "address_changed"
        lossy = _overlaps(((i.start, i.end) for i in mine if i.kind == LOSS), last_ok - 0.5, t)
        if lossy and reason == "stall":
            return "loss"
        near = self.actions_near(last_ok - 0.5, t, after=0.5)
        for kind in (NFT_FLUSH, RULES_DEL, GATEWAY, KILL9, RESTART):
            if kind in near:
                return f"during {kind}"
        if _overlaps(((i.start, i.end) for i in cuts), last_ok - 0.5, t):
            return "carrier_flap"
        return "loss" if lossy else "unexplained"

    @staticmethod
    def died(cause: str) -> bool:
        """Whether a flow that broke for ``cause`` was on a WAN that really died."""
        return cause in ("wan_cut", "address_changed")


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, median and max (None when empty), rounded for the report."""
    if not values:
        return {"n": 0, "median": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), 4),
            "max": round(max(values), 4)}


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) or None."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def count_by(items: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(items).items()))
