"""Helpers of the hook regression tests: events, tiny scripts, fake jobs."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

from mwan.config.model import Interface
from mwan.daemon.hooks import HookEvent


def iface(name: str = "wan") -> Interface:
    return Interface(name=name, id=1, device=f"{name}1", enabled=True,
                     track_ip=(ipaddress.ip_address("192.0.2.1"),))


def ev(action: str, name: str = "wan") -> HookEvent:
    return HookEvent(action, iface(name), "test")


def script(tmp_path: Path, body: str, name: str = "mwan3.user") -> str:
    """An executable /bin/sh script in ``tmp_path``."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return str(path)


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


class Jobs:
    """Fake script and flush jobs: record what ran; a script blocks until ``release``."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.flushes: list[str] = []
        self.running: dict[str, int] = {}
        self.max_running = 0
        self.release = asyncio.Event()

    async def script(self, e: HookEvent) -> None:
        self.running[e.interface] = self.running.get(e.interface, 0) + 1
        self.max_running = max(self.max_running, self.running[e.interface])
        self.scripts.append(f"{e.action} {e.interface}")
        try:
            await self.release.wait()
        finally:
            self.running[e.interface] -= 1

    async def flush(self, e: HookEvent) -> None:
        self.flushes.append(f"{e.action} {e.interface}")
