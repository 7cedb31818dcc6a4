"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``), through python3-systemd.

READY=1 goes out after the first apply; WATCHDOG=1 is sent from the event
loop itself, so a hung loop stops feeding the watchdog and systemd restarts
the daemon.  Without ``$NOTIFY_SOCKET`` (not started by systemd) every call
is a no-op and the binding is not even imported.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        self._send: Callable[[str], object] | None = None
        if not os.environ.get("NOTIFY_SOCKET"):
            return
        try:
            from systemd import daemon  # type: ignore[attr-defined]  # python3-systemd
        except ImportError:
            log.warning("NOTIFY_SOCKET is set but python3-systemd is not installed: "
                        "systemd is not told when mwan is ready")
            return
        self._send = daemon.notify

    @property
    def active(self) -> bool:
        return self._send is not None

    def send(self, *lines: str) -> None:
        if self._send is not None:
            self._send("\n".join(lines))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Half of ``WatchdogSec=`` (seconds), when systemd asks this process for pings."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if self._send is None or not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return max(0.05, int(usec) / 2e6)
        except ValueError:
            return None

    async def feed_watchdog(self, interval: float) -> None:
        """Ping the watchdog from the loop, forever (cancel to stop)."""
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)
