"""Per-WAN usage (bytes and packets, in and out) and data caps (issue 15).

The counters are the ``usage in``/``usage out`` rules of each WAN's
``mark_N`` chain (plan/compile.mark_chains).  :class:`UsageBook` (pure: the
daemon hands in counter readings and the time) adds what each reading grew
by to the interface's totals and to the current data-cap period; a counter
that went down (its chain re-created, a reboot) counts from zero.  It says
which data-cap events are due: 75 % and 95 % (``datacap_warn``), 100 %
(``datacap_reached``), a new period after one of those (``datacap_reset``),
and which interfaces are in standby (over a ``standby`` cap).

:class:`UsageMeter` is the shell: it reads the counters every
:data:`READ_EVERY` seconds in the kernel thread, saves the book to
``<state_dir>/usage.json`` (atomically) every :data:`SAVE_EVERY` seconds and
at stop, and hands the events to the daemon.  A corrupt file is moved aside
and a file that cannot be written is logged; routing goes on either way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config.caps import period_start, size_text
from ..config.model import Config, Interface
from ..plan.compile import USAGE_IN, USAGE_OUT
from ..plan.names import mark_chain
from ..plan.state import IfaceRuntime

log = logging.getLogger("mwan")
READ_EVERY = 10.0
SAVE_EVERY = 60.0
FILE_NAME = "usage.json"
THRESHOLDS = (75, 95)
DIRECTIONS = ("in", "out")
Reading = Mapping[str, Mapping[str, tuple[int, int]]]  # iface → direction → (packets, bytes)


@dataclass
class IfaceUsage:
    """One interface's totals (since the file was first written) and its period."""

    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    period_start: float | None = None
    period_bytes: int = 0
    announced: int = 0  # the highest threshold announced this period (0, 75, 95, 100)
    last: dict[str, list[int]] = field(default_factory=dict)  # raw counters last read
    last_traffic: float | None = None  # when a reading last grew

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IfaceUsage:
        def counts(v: Any) -> dict[str, int]:
            return {k: int(v.get(k, 0)) for k in DIRECTIONS}
        return cls(packets=counts(d["packets"]), bytes=counts(d["bytes"]),
                   period_start=None if d.get("period_start") is None
                   else float(d["period_start"]),
                   period_bytes=int(d.get("period_bytes", 0)),
                   announced=int(d.get("announced", 0)),
                   last={k: [int(x) for x in v] for k, v in (d.get("last") or {}).items()},
                   last_traffic=d.get("last_traffic"))


@dataclass(frozen=True)
class CapEvent:
    interface: str
    action: str  # one of model.DATACAP_EVENTS
    reason: str


class UsageBook:
    """Everything about usage that is not I/O."""

    def __init__(self, usage: dict[str, IfaceUsage] | None = None) -> None:
        self.usage: dict[str, IfaceUsage] = usage or {}

    def get(self, name: str) -> IfaceUsage:
        return self.usage.setdefault(name, IfaceUsage())

    def add(self, reading: Reading, now: float) -> None:
        """Add what each counter grew by since the last reading."""
        for name, dirs in reading.items():
            u = self.get(name)
            for direction, (packets, nbytes) in dirs.items():
                last = u.last.get(direction)
                grew = last is not None and packets >= last[0] and nbytes >= last[1]
                dp, db = (packets - last[0], nbytes - last[1]) if grew and last else (
                    packets, nbytes)
                u.last[direction] = [packets, nbytes]
                u.packets[direction] += dp
                u.bytes[direction] += db
                u.period_bytes += db
                if dp:
                    u.last_traffic = now

    def caps(self, cfg: Config, now: float) -> list[CapEvent]:
        """Roll periods over and say which data-cap events are due (each once per period)."""
        out: list[CapEvent] = []
        for iface in cfg.enabled_interfaces:
            if iface.data_cap is None:
                continue
            u = self.get(iface.name)
            start = period_start(iface.data_cap_period, now)
            if u.period_start is None:  # the first reading with a cap: this period
                u.period_start = start
            elif u.period_start != start:
                if u.announced:
                    out.append(CapEvent(iface.name, "datacap_reset", f"a new {iface.data_cap_period} "
                                        f"period: {size_text(u.period_bytes)} were used"))
                u.period_start, u.period_bytes, u.announced = start, 0, 0
            pct = 100 * u.period_bytes / iface.data_cap
            due = 100 if pct >= 100 else max((t for t in THRESHOLDS if pct >= t), default=0)
            if due > u.announced:
                u.announced = due
                used = f"{size_text(u.period_bytes)} of {size_text(iface.data_cap)}"
                if due == 100:
                    then = ("standby: unused while another member of its policies is online"
                            if iface.data_cap_action == "standby" else "warn only")
                    out.append(CapEvent(iface.name, "datacap_reached",
                                        f"data cap reached: {used} ({then})"))
                else:
                    out.append(CapEvent(iface.name, "datacap_warn",
                                        f"{due}% of the data cap used: {used}"))
        return out

    def standby(self, cfg: Config) -> frozenset[str]:
        """Interfaces over a ``standby`` cap in the current period."""
        return frozenset(
            i.name for i in cfg.enabled_interfaces
            if i.data_cap is not None and i.data_cap_action == "standby"
            and (u := self.usage.get(i.name)) is not None and u.period_start is not None
            and u.period_bytes >= i.data_cap)

    def report(self, iface: Interface) -> dict[str, Any]:
        """``usage`` of one interface in ``state`` (docs: report/schema.py)."""
        u = self.usage.get(iface.name) or IfaceUsage()
        cap = iface.data_cap
        return {
            "rx_bytes": u.bytes["in"], "tx_bytes": u.bytes["out"],
            "rx_packets": u.packets["in"], "tx_packets": u.packets["out"],
            "period_bytes": u.period_bytes, "period_start": u.period_start,
            "data_cap": cap, "data_cap_period": iface.data_cap_period if cap else None,
            "data_cap_action": iface.data_cap_action if cap else None,
            "cap_used_pct": round(100 * u.period_bytes / cap, 2) if cap else None,
            "last_traffic": u.last_traffic,
        }

    def dumps(self) -> str:
        return json.dumps({"version": 1, "interfaces": {
            n: u.as_json() for n, u in sorted(self.usage.items())}}, indent=1)

    @classmethod
    def loads(cls, text: str) -> UsageBook:
        """Raises ValueError (or KeyError/TypeError) when the text is not a usage file."""
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("version") != 1:
            raise ValueError("not a version 1 usage file")
        return cls({n: IfaceUsage.from_json(u) for n, u in d["interfaces"].items()})


def counters_of(rules: Iterable[Mapping[str, Any]], cfg: Config) -> dict[str, dict[str, tuple[
        int, int]]]:
    """The usage counters found in a listing of the table's rules, per interface."""
    chains = {mark_chain(i.id): i.name for i in cfg.enabled_interfaces}
    direction = {USAGE_IN: "in", USAGE_OUT: "out"}
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for r in rules:
        name, d = chains.get(r.get("chain", "")), direction.get(r.get("comment", ""))
        if name is None or d is None:
            continue
        for stmt in r.get("expr", ()):
            c = stmt.get("counter") if isinstance(stmt, dict) else None
            if isinstance(c, dict):
                out.setdefault(name, {})[d] = (int(c.get("packets", 0)), int(c.get("bytes", 0)))
    return out


def load(path: str) -> UsageBook:
    """The book in ``path``; a missing file is a new book, a corrupt one is moved aside."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return UsageBook()
    except OSError as exc:
        log.error("usage file %s cannot be read (%s): counting from zero", path, exc.strerror)
        return UsageBook()
    try:
        return UsageBook.loads(text)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        aside = path + ".corrupt"
        try:
            os.replace(path, aside)
        except OSError:
            aside = "(left in place)"
        log.error("usage file %s is corrupt (%s): counting from zero; the old file is %s",
                  path, exc, aside)
        return UsageBook()


def save(path: str, book: UsageBook) -> None:
    """Write the book atomically (a temporary file in the same directory, renamed)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".usage.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(book.dumps())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


DEFAULT_STATE_DIR = "/var/lib/mwan"


def state_dir(cfg: Config) -> str:
    """globals ``state_dir``; its default can be moved by $MWAN_STATE_DIR (as $MWAN_RUN_DIR)."""
    if cfg.globals.state_dir == DEFAULT_STATE_DIR:
        return os.environ.get("MWAN_STATE_DIR") or DEFAULT_STATE_DIR
    return cfg.globals.state_dir


class UsageMeter:
    """Reads the counters, keeps the book on disk, hands out cap events.

    ``read``: a coroutine that returns the table's rules as listed (run in
    the kernel thread by the daemon); ``on_event``: called for each cap
    event; ``on_standby``: called when the set of standby interfaces changes.
    """

    def __init__(self, cfg: Config, read: Callable[[], Any],
                 on_event: Callable[[CapEvent], None], on_standby: Callable[[], None],
                 trackers: Callable[[], Mapping[str, Any]] = dict) -> None:
        self.cfg = cfg
        self._trackers = trackers
        self._read_at: float | None = None  # the reading before the last
        self._read = read
        self._on_event = on_event
        self._on_standby = on_standby
        self.path = os.path.join(state_dir(cfg), FILE_NAME)
        self.book = load(self.path)
        self.standby: frozenset[str] = self.book.standby(cfg)
        self._saved_at = time.monotonic()
        self._save_failed = False

    def switch(self, cfg: Config) -> None:
        self.cfg = cfg
        path = os.path.join(state_dir(cfg), FILE_NAME)
        if path != self.path:
            self.path = path
            self.save()

    def mark_standby(self, runtime: dict[str, IfaceRuntime]) -> dict[str, IfaceRuntime]:
        """The runtime with ``standby`` set on interfaces over a standby cap."""
        if not self.standby:
            return runtime
        return {n: dataclasses.replace(rt, standby=True) if n in self.standby else rt
                for n, rt in runtime.items()}

    async def tick(self) -> None:
        """Read the counters once; events and standby changes go to the daemon."""
        try:
            rules = await self._read()
        except Exception as exc:  # noqa: BLE001 - a failed reading is retried next time
            log.warning("usage counters not read: %s", exc)
            return
        now = time.time()
        self.book.add(counters_of(rules or (), self.cfg), now)
        self._follow_idle(now)
        for ev in self.book.caps(self.cfg, now):
            self._on_event(ev)
        standby = self.book.standby(self.cfg)
        if standby != self.standby:
            self.standby = standby
            self._on_standby()
        if time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def _follow_idle(self, now: float) -> None:
        """``idle_interval``: a WAN whose counters did not grow since the reading before is
        idle; its tracker probes less often until traffic comes back."""
        since, self._read_at = self._read_at, now
        trackers = self._trackers()
        for i in self.cfg.enabled_interfaces:
            t = trackers.get(i.name)
            if i.idle_interval is None or t is None:
                continue
            last = self.book.get(i.name).last_traffic
            idle = last is None or (since is not None and last < since)
            t.set_idle(float(i.idle_interval) if idle else None)

    async def stop(self) -> None:
        """At a clean stop: the last counts, then the file.  The table (and its counters) goes
        with the daemon, so the next start counts its counters from zero."""
        await self.tick()
        for u in self.book.usage.values():
            u.last.clear()
        self.save()

    def save(self) -> None:
        self._saved_at = time.monotonic()
        try:
            save(self.path, self.book)
        except OSError as exc:
            if not self._save_failed:  # once, until it works again
                log.error("usage file %s cannot be written (%s): usage is kept in memory "
                          "and lost at a restart; routing goes on", self.path, exc.strerror)
            self._save_failed = True
        else:
            if self._save_failed:
                log.info("usage file %s written again", self.path)
            self._save_failed = False

    def announce(self) -> None:
        """One line per capped interface at start: its cap and what is used."""
        now = time.time()
        for i in self.cfg.enabled_interfaces:
            if i.data_cap is None:
                continue
            u = self.book.get(i.name)
            used = u.period_bytes if u.period_start == period_start(i.data_cap_period, now) \
                else 0
            log.info("interface %s: data cap %s per period (%s, then %s); %s used", i.name,
                     size_text(i.data_cap), i.data_cap_period, i.data_cap_action,
                     size_text(used))

    async def run(self, every: float = READ_EVERY) -> None:
        """Read the counters every ``every`` s (the daemon calls :meth:`announce` first,
        before it says it is ready)."""
        while True:
            await self.tick()
            await asyncio.sleep(every)


def usage_rules(nft: Any, cfg: Config) -> list[dict[str, Any]]:
    """The rules of each enabled WAN's mark chain, as listed (kernel thread)."""
    out: list[dict[str, Any]] = []
    for i in cfg.enabled_interfaces:
        out += [o["rule"] for o in nft.listing("chain", mark_chain(i.id)) or () if "rule" in o]
    return out
