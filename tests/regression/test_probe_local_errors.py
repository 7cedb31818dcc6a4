"""Issue 11 item 3 (probes): at the fd limit every probe failed with EMFILE as "target down".

All WANs went offline within seconds and the log grew 91 MB in 40 s.  A local
resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM) is no evidence against a WAN:
the round is skipped, and logged once plus a summary per minute.

Real probes over ``lo`` with the process really out of file descriptors.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import resource
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mwan.config.model import Interface
from mwan.track.machine import Status, Step
from mwan.track.tracker import Tracker


@contextmanager
def out_of_fds() -> Iterator[None]:
    """Use up every file descriptor this process may open (and give them back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 32, hard))
    held: list[int] = []
    try:
        while True:
            try:
                held.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def lo_allowed() -> bool:
    with socket.socket() as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        except PermissionError:
            return False
    return True


@pytest.mark.parametrize("method", ["nping-tcp", "ping"])
def test_out_of_fds_is_not_an_outage(method: str, caplog: pytest.LogCaptureFixture) -> None:
    if not lo_allowed() or (method == "ping" and os.geteuid() != 0):
        pytest.skip("needs SO_BINDTODEVICE (and raw sockets for ping)")

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        iface = Interface(name="wan", id=1, device="lo", enabled=True, track_method=method,
                          track_port=port, track_ip=(ipaddress.ip_address("127.0.0.1"),),
                          interval=0.05, failure_interval=0.05, recovery_interval=0.05,
                          up=1, down=1, timeout=1)
        events: list[str] = []

        def on_step(tr: Tracker, step: Step, reason: str) -> None:
            events.extend(step.events)

        tr = Tracker(iface, 0, lambda: None, on_step)
        tr.start(device_up=True)
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while tr.last_test is None:
            assert loop.time() < end
            await asyncio.sleep(0.01)
        assert tr.state.status == Status.ONLINE and tr.targets[0].status == "up"
        with out_of_fds():
            await asyncio.sleep(1.0)  # about 20 rounds, every one out of fds
        assert tr.state.status == Status.ONLINE, tr.last_reason
        assert events == ["connected"], events
        assert tr.skips.total >= 5, tr.skips.total
        end = loop.time() + 5
        while tr.last_reason.startswith("round skipped"):  # fds back: rounds count again
            assert loop.time() < end
            await asyncio.sleep(0.01)
        await tr.close()
        server.close()

    with caplog.at_level(logging.INFO, logger="mwan.track"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "mwan.track"]
    assert len(lines) == 2, lines  # one line when the spell began, one when it ended
    assert "too many open files" in lines[0] and "not counted against the WAN" in lines[0]
    assert "count again" in lines[1]
