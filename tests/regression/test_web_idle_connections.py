"""Idle web connections never timed out; there was no cap on them (issue 11, item 3).

250 idle connections stayed open for 130 s, and at the fd limit every probe
failed as if every WAN were down.  Now an idle connection (or one whose
headers do not arrive) is closed after ``conn.IDLE_TIMEOUT`` s, a body must
arrive within ``conn.BODY_TIMEOUT`` s, and connections are capped per client
address and in total.  (The sockets are the daemon's own, on 127.0.0.1.)
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mwan.web.server import WebServer

from .web_fake import FakeDaemon, client, config_text

PER_CLIENT = 16  # mwan.web.conn.PER_CLIENT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[WebServer, int]]:
    port = _free_port()
    server = WebServer(FakeDaemon(tmp_path / "mwan3", config_text(port)))  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, port
    finally:
        await server.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open after ``seconds``."""
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(reader.read(4096), deadline - time.monotonic())
        except TimeoutError:
            return None
        except ConnectionError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    from mwan.web import conn  # new with the fix
    monkeypatch.setattr(conn, "IDLE_TIMEOUT", 1.0)
    monkeypatch.setattr(conn, "BODY_TIMEOUT", 1.0)


def test_idle_and_slow_clients_are_closed(tmp_path: Path, short_timeouts: None) -> None:
    async def main() -> tuple[bytes | None, bytes | None, bytes | None]:
        async with serving(tmp_path) as (_server, port):
            idle = await asyncio.open_connection("127.0.0.1", port)
            slow_headers = await asyncio.open_connection("127.0.0.1", port)
            slow_headers[1].write(b"GET /login HTTP/1.1\r\nHost: x\r\n")  # never finished
            slow_body = await asyncio.open_connection("127.0.0.1", port)
            slow_body[1].write(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                               b"x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\npass")
            got = await asyncio.gather(*(_closed_within(r, 10) for r, _w in
                                         (idle, slow_headers, slow_body)))
            for _r, w in (idle, slow_headers, slow_body):
                w.close()
            return got[0], got[1], got[2]

    idle, slow_headers, slow_body = asyncio.run(main())
    assert idle is not None, "an idle connection stayed open"
    assert slow_headers is not None, "a connection with unfinished headers stayed open"
    assert slow_body is not None and b" 408 " in slow_body.split(b"\r\n", 1)[0], slow_body


def test_connections_are_capped_per_client(tmp_path: Path) -> None:
    async def main() -> tuple[list[bytes | None], int]:
        async with serving(tmp_path) as (_server, port):
            cap = PER_CLIENT
            conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap + 3)]
            # the ones beyond the cap are closed at once; the others stay open (and answer)
            got = list(await asyncio.gather(*(_closed_within(r, 1.5) for r, _w in conns)))
            conns[0][1].write(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            first = await asyncio.wait_for(conns[0][0].readline(), 5)
            for _r, w in conns:
                w.close()
            return got, int(first.split()[1])

    got, status = asyncio.run(main())
    open_ = [g for g in got if g is None]
    assert len(open_) == len(got) - 3, got
    assert got[-3:] == [b"", b"", b""], got
    assert status == 200


def test_strangers_cannot_make_the_daemon_buffer_bodies(tmp_path: Path) -> None:
    """Before a login only /login's small form is read; other bodies are not read at all."""
    async def main() -> tuple[int, int]:
        async with client(tmp_path) as (c, _server):
            big = (await c.post("/login", data={"password": "x" * 10_000})).status
            other = (await c.post("/config/raw", data={"text": "x" * 500_000})).status
            return big, other

    assert asyncio.run(main()) == (413, 401)
