"""Suspicion from real traffic (``option track_passive``): new TCP connections that get no reply.

The kernel's conntrack announces every new connection and every change to it
on a netlink multicast group (``NFNLGRP_CONNTRACK_NEW`` / ``_UPDATE``).  A
connection that leaves by a WAN carries that WAN's mark in its ct mark (the
datapath sets it), so the announcements say, per WAN, which new outbound
TCP connections got an answer (``SEEN_REPLY``) and which did not.

:class:`Suspicion` (pure, handed the time) counts unanswered connections in
a row per interface: an answer resets the count; a connection without one
after ``wait`` seconds adds one; ``threshold`` in a row make it *suspect*.
The daemon then asks that interface's tracker for a probe round at once
(:meth:`mwan.track.tracker.Tracker.suspect`); probes still decide.

:func:`parse_events` reads conntrack netlink messages (pure);
:class:`ConntrackWatch` is the thin socket part (``NETLINK_NETFILTER``,
non-blocking, on the asyncio loop).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from .tracker import Tracker

log = logging.getLogger("mwan.track")

NETLINK_NETFILTER = 12
NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE = 1, 2
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE = 0, 2
NLM_F_CREATE = 0x400
CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_NUM = 1, 2, 1
CTA_STATUS, CTA_MARK, CTA_ID = 3, 8, 12
IPS_SEEN_REPLY = 1 << 1
IPPROTO_TCP = 6
NLA_F_NESTED = 1 << 15
THRESHOLD = 3  # unanswered new connections in a row that make an interface suspect
MAX_OPEN = 4096  # connections remembered per interface while waiting for their reply


@dataclass(frozen=True)
class CtEvent:
    """One conntrack announcement of a TCP connection."""

    new: bool  # the connection was just created (else an update)
    ident: int  # conntrack's id of the connection
    mark: int
    replied: bool  # SEEN_REPLY: the other side answered


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            return
        yield kind & ~NLA_F_NESTED & 0x7FFF, data[off + 4:off + length]
        off += (length + 3) & ~3


def parse_events(buf: bytes) -> list[CtEvent]:
    """The TCP connections announced in one netlink datagram (other protocols skipped)."""
    out: list[CtEvent] = []
    off = 0
    while off + 16 <= len(buf):
        length, mtype, flags, _, _ = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        body = buf[off + 16:off + length]
        off += (length + 3) & ~3
        if mtype >> 8 != NFNL_SUBSYS_CTNETLINK or mtype & 0xFF != IPCTNL_MSG_CT_NEW:
            continue
        attrs = dict(_attrs(body[4:]))  # after the nfgenmsg
        proto = None
        for kind, value in _attrs(attrs.get(CTA_TUPLE_ORIG, b"")):
            if kind == CTA_TUPLE_PROTO:
                proto = dict(_attrs(value)).get(CTA_PROTO_NUM)
        if proto != bytes([IPPROTO_TCP]) or CTA_ID not in attrs:
            continue
        status = struct.unpack("!I", attrs[CTA_STATUS][:4])[0] if CTA_STATUS in attrs else 0
        mark = struct.unpack("!I", attrs[CTA_MARK][:4])[0] if CTA_MARK in attrs else 0
        out.append(CtEvent(bool(flags & NLM_F_CREATE), struct.unpack("!I", attrs[CTA_ID][:4])[0],
                           mark, bool(status & IPS_SEEN_REPLY)))
    return out


class Suspicion:
    """Unanswered new connections in a row, per interface. Pure: the caller passes the time."""

    def __init__(self, wait: float, threshold: int = THRESHOLD) -> None:
        self.wait = wait
        self.threshold = threshold
        self.open: OrderedDict[int, float] = OrderedDict()  # connection id -> created at
        self.in_a_row = 0
        self.unanswered = 0  # totals (status, bench)
        self.answered = 0

    def event(self, now: float, ev: CtEvent) -> bool:
        """Take one announcement; True when the interface just became suspect."""
        if ev.replied:  # this connection, or any other through the WAN, got an answer
            if self.open.pop(ev.ident, None) is not None:
                self.answered += 1
            self.in_a_row = 0
        elif ev.new:
            self.open[ev.ident] = now
            while len(self.open) > MAX_OPEN:
                self.open.popitem(last=False)
        return self.expire(now)

    def expire(self, now: float) -> bool:
        """Count the connections that waited ``wait`` without a reply; True when suspect."""
        suspect = False
        while self.open:
            ident, created = next(iter(self.open.items()))
            if now - created < self.wait:
                break
            del self.open[ident]
            self.unanswered += 1
            self.in_a_row += 1
            if self.in_a_row >= self.threshold:
                suspect, self.in_a_row = True, 0
        return suspect


class ConntrackWatch:
    """Read conntrack's announcements; hand each TCP one to ``on_event`` (the asyncio loop)."""

    def __init__(self, on_event: Callable[[CtEvent], None], on_tick: Callable[[], None],
                 tick: float = 0.25) -> None:
        self._on_event = on_event
        self._on_tick = on_tick
        self._tick = tick
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """Subscribe; False (logged) when the kernel has no conntrack netlink (no module)."""
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((0, (1 << (NFNLGRP_CONNTRACK_NEW - 1)) |
                    (1 << (NFNLGRP_CONNTRACK_UPDATE - 1))))
            s.setblocking(False)
        except OSError as exc:
            log.warning("track_passive: cannot follow conntrack events (%s); probes only", exc)
            return False
        self._sock = s
        loop = asyncio.get_running_loop()
        loop.add_reader(s.fileno(), self._readable)
        self._task = asyncio.create_task(self._ticker(), name="conntrack-tick")
        return True

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                buf = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: events lost under load; carry on
                log.debug("conntrack events: %s", exc)
                return
            for ev in parse_events(buf):
                self._on_event(ev)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            self._on_tick()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


def wait_for(iface_timeout: float) -> float:
    """How long a new connection may go unanswered: the probe timeout, within 0.5..2 s
    (a lost SYN is sent again after 1 s)."""
    return max(0.5, min(float(iface_timeout), 2.0))


class PassiveTracking:
    """The daemon's side: conntrack events → per-interface :class:`Suspicion` → ``suspect``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.trackers: Mapping[str, Tracker] = {}
        self.by_mark: dict[int, str] = {}
        self.mask = 0
        self.suspicion: dict[str, Suspicion] = {}
        self._watch: ConntrackWatch | None = None

    def sync(self, trackers: Mapping[str, Tracker], marks: Mapping[str, int], mask: int) -> None:
        """Follow the trackers whose interface has ``track_passive``; none: stop listening."""
        self.trackers, self.mask = trackers, mask
        names = [n for n, tr in trackers.items() if tr.iface.track_passive]
        self.by_mark = {marks[n]: n for n in names}
        self.suspicion = {n: self.suspicion.get(n) or Suspicion(wait_for(trackers[n].iface.timeout))
                          for n in names}
        if names and self._watch is None:
            watch = ConntrackWatch(self._event, self._tick)
            if watch.start():
                self._watch = watch
        elif not names:
            self.close()

    def _event(self, ev: CtEvent) -> None:
        name = self.by_mark.get(ev.mark & self.mask)
        if name is not None and self.suspicion[name].event(self._clock(), ev):
            self._suspect(name)

    def _tick(self) -> None:
        now = self._clock()
        for name, s in self.suspicion.items():
            if s.expire(now):
                self._suspect(name)

    def _suspect(self, name: str) -> None:
        tr = self.trackers.get(name)
        s = self.suspicion[name]
        if tr is not None:
            tr.suspect(f"{s.threshold} new TCP connections through it got no reply within "
                       f"{s.wait:g} s")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
