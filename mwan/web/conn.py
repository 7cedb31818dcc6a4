"""The web UI's sockets: bounded connections and timeouts for idle and slow clients.

File descriptors are shared with the trackers' probes, so a client must not
be able to use them up: at most ``PER_CLIENT`` connections per client address
and ``TOTAL`` in all (a connection beyond is closed as soon as it is
accepted); an idle connection, or one whose request headers do not arrive
within ``IDLE_TIMEOUT`` seconds, is closed (aiohttp's keep-alive timer, which
runs from the moment a connection is accepted; a TLS handshake has as long);
a request body must arrive within ``BODY_TIMEOUT`` seconds (:func:`read_body`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from typing import Any, cast

from aiohttp import web

log = logging.getLogger("mwan.web")

PER_CLIENT = 16
TOTAL = 128
IDLE_TIMEOUT = 15.0
BODY_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 2.0
LOGIN_BODY_MAX = 4096  # a password form, before any login: not 1 MiB per connection
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
LINGER = 1.0  # after an answer, how long a body the handler did not read is drained


class Gate:
    """Counts open connections per client address; refuses those beyond the caps."""

    def __init__(self, per_client: int = PER_CLIENT, total: int = TOTAL) -> None:
        self.per_client, self.total = per_client, total
        self.open: Counter[str] = Counter()
        self.refused = 0
        self._logged = 0.0

    def enter(self, peer: str) -> bool:
        if sum(self.open.values()) >= self.total or self.open[peer] >= self.per_client:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged > 60:  # one line a minute at most
                self._logged = now
                log.warning("web UI: refusing connections from %s (%d open from it, %d in "
                            "all; %d refused so far)", peer, self.open[peer],
                            sum(self.open.values()), self.refused)
            return False
        self.open[peer] += 1
        return True

    def leave(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]


class _GatedHandler(web.RequestHandler):
    """aiohttp's connection handler, counted by a :class:`Gate`."""

    def __init__(self, manager: web.Server, gate: Gate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        if not self._gate.enter(peer):
            cast(asyncio.Transport, transport).abort()
            return
        self._peer = peer
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._peer is None:  # refused: nothing was set up
            return
        self._gate.leave(self._peer)
        self._peer = None
        super().connection_lost(exc)


async def read_body(request: web.Request, limit: int | None = None) -> web.Response | None:
    """Read the body (cached for the handler) within ``BODY_TIMEOUT`` s; else an answer.

    With ``limit``, a body without a Content-Length or longer is refused unread.
    """
    if not request.can_read_body:
        return None
    resp = None
    if limit is not None and (request.content_length is None or request.content_length > limit):
        resp = web.json_response({"error": "request body too large"}, status=413)
    else:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                if request.content_type in FORMS:
                    await request.post()
                else:
                    await request.read()
        except TimeoutError:
            resp = web.json_response({"error": "request body too slow"}, status=408)
    if resp is not None:
        resp.force_close()
    return resp


async def listen(runner: web.AppRunner, gate: Gate, addresses: tuple[str, ...], port: int,
                 ctx: ssl.SSLContext | None) -> list[asyncio.Server]:
    """Listening sockets on each address for a set-up runner (all or none)."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()

    args: dict[str, Any] = {"loop": loop, "keepalive_timeout": IDLE_TIMEOUT, "access_log": None,
                            "lingering_time": LINGER}

    def factory() -> web.RequestHandler:
        return _GatedHandler(server, gate, **args)

    servers: list[asyncio.Server] = []
    try:
        for addr in addresses:
            servers.append(await loop.create_server(
                factory, addr, port, ssl=ctx, reuse_address=True,
                ssl_handshake_timeout=IDLE_TIMEOUT if ctx else None))
    except BaseException:
        for s in servers:
            s.close()
        raise
    return servers
