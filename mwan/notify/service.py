"""Delivers events to the ``config notify`` webhooks; never blocks the daemon.

The listener (called by the daemon for each event, through the Door) only
appends to a bounded queue per section: in a storm of events the oldest are
dropped and counted, so memory stays bounded.  One task per section sends
the queue in order, each attempt with the section's timeout, retried with
backoff (1, 2, 4 ... s) up to ``retries`` times.  A delivery that failed
every attempt is logged (at most one line a minute per section, with the
count of the others) and counted; ``snapshot()`` feeds ``state`` and
/metrics.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.model import Config, Notify
from . import message as M

if TYPE_CHECKING:
    import aiohttp

    from ..daemon.door import DaemonEvent, Door

log = logging.getLogger("mwan.notify")
QUEUE_LIMIT = 256  # events waiting per section; older ones are dropped beyond this
LOG_EVERY = 60.0  # seconds between two "delivery failed" lines of one section


@dataclass
class Counts:
    sent: int = 0
    failed: int = 0  # deliveries that failed every attempt
    attempts_failed: int = 0
    dropped: int = 0  # events dropped from a full queue
    last_error: str | None = None

    def as_dict(self, queued: int) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "attempts_failed":
                self.attempts_failed, "dropped": self.dropped, "queued": queued,
                "last_error": self.last_error}


@dataclass
class Target:
    """One notify section's queue, counters and sender task."""

    notify: Notify
    queue: collections.deque[M.Event] = field(default_factory=lambda: collections.deque(
        maxlen=QUEUE_LIMIT))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    counts: Counts = field(default_factory=Counts)
    task: asyncio.Task[None] | None = None
    logged_at: float = 0.0
    unlogged: int = 0

    def put(self, ev: M.Event) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.counts.dropped += 1  # deque(maxlen) drops the oldest
        self.queue.append(ev)
        self.wake.set()


class NotifyService:
    """Started by the daemon when the config has notify sections."""

    def __init__(self, door: Door, queue_limit: int = QUEUE_LIMIT,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.door = door
        self.queue_limit = queue_limit
        self._sleep = sleep
        self.targets: dict[str, Target] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._cfg: Config | None = None

    # ------------------------------------------------------------ lifetime
    def sync(self, cfg: Config) -> None:
        """Follow the config: a section changed or removed loses its queue, a new one starts."""
        self._cfg = cfg
        want = {n.name: n for n in cfg.notifies}
        for name, t in list(self.targets.items()):
            if want.get(name) != t.notify:
                if t.task is not None:
                    t.task.cancel()
                del self.targets[name]
        for name, n in want.items():
            if name not in self.targets:
                t = Target(n, queue=collections.deque(maxlen=self.queue_limit))
                t.task = asyncio.create_task(self._sender(t), name=f"notify-{name}")
                self.targets[name] = t
        if self._unsubscribe is None:
            self._unsubscribe = self.door.subscribe(self.on_event)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t.task for t in self.targets.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.targets.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: t.counts.as_dict(len(t.queue)) for name, t in self.targets.items()}

    # ------------------------------------------------------------ the listener
    def on_event(self, ev: DaemonEvent) -> None:
        """Called by the daemon: never blocks, never raises on a full queue."""
        if ev.kind == "ha" and ev.action is not None:
            item = M.Event("ha", ev.action, ev.reason, ev.time)  # the router's VRRP role
        elif ev.kind != "interface" or ev.interface is None or ev.action is None:
            return
        else:
            item = M.Event(ev.interface, ev.action, ev.reason, ev.time)
        for t in self.targets.values():
            if t.notify.wants(ev.action):
                t.put(item)

    # ------------------------------------------------------------ delivery
    def router_name(self) -> str:
        name = self._cfg.globals.router_name if self._cfg is not None else None
        return name or socket.gethostname()

    async def _state(self, interface: str) -> dict[str, Any] | None:
        try:
            st = await self.door.call("state")
            out: dict[str, Any] | None = st["interfaces"].get(interface)
            return out
        except Exception:  # noqa: BLE001 - the snapshot is a nicety; the event goes without
            return None

    async def _sender(self, t: Target) -> None:
        while True:
            while not t.queue:
                t.wake.clear()
                await t.wake.wait()
            ev = t.queue.popleft()
            data = M.body(self.router_name(), ev, await self._state(ev.interface))
            await self._deliver(t, ev, data)

    async def _deliver(self, t: Target, ev: M.Event, data: bytes) -> None:
        n = t.notify
        hdrs = M.headers(n, data)
        for attempt in range(n.retries + 1):
            if attempt:
                await self._sleep(M.backoff(attempt))
            why = await self._post(n, data, hdrs)
            if why is None:
                t.counts.sent += 1
                return
            t.counts.attempts_failed += 1
            t.counts.last_error = why
        t.counts.failed += 1
        self._log_failure(t, ev)

    async def _post(self, n: Notify, data: bytes, hdrs: dict[str, str]) -> str | None:
        """One attempt: None when the receiver took it (2xx), else why not."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                    n.url, data=data, headers=hdrs, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=n.timeout)) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except TimeoutError:
            return f"no answer within {n.timeout} s"
        except aiohttp.ClientError as exc:
            return str(exc) or type(exc).__name__
        except OSError as exc:
            return str(exc)

    def _log_failure(self, t: Target, ev: M.Event) -> None:
        now = time.monotonic()
        if t.logged_at and now - t.logged_at < LOG_EVERY:
            t.unlogged += 1
            return
        more = f" ({t.unlogged} more failed since the last line)" if t.unlogged else ""
        where = urlsplit(t.notify.url).netloc  # the path may hold a token
        log.warning("notify %s: %s %s not delivered to %s after %d attempts: %s%s",
                    t.notify.name, ev.interface, ev.event, where, t.notify.retries + 1,
                    t.counts.last_error, more)
        t.logged_at, t.unlogged = now, 0
