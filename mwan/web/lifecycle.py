"""The one owner of the web UI's lifecycle: start, move, stop, retry.

The daemon calls :meth:`WebLifecycle.sync` after every config change and
:meth:`WebLifecycle.retry` after every apply.  One :class:`WebServer` (its
sessions and its password guard) lives as long as the UI is enabled; what
changes are its listening sockets:

- options unchanged: nothing happens (a new password hash ends every session);
- enabled, or the addresses, port or TLS files changed: the sockets move;
- disabled: the server stops and its sessions end.

When the change comes from a web request (the config editor or
``PUT /api/config``), moving the sockets would cut that request off, or
wait for it to end while it waits for the move: the request is answered
first and the move follows ``MOVE_DELAY`` seconds after its handler
returned.  Moves run one at a time, each bringing the sockets to what the
config says *then*, so the last config wins.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..config.model import Config

if TYPE_CHECKING:
    from ..daemon.door import Door
    from .server import WebServer

log = logging.getLogger("mwan.web")

MOVE_DELAY = 0.3
Listen = tuple[tuple[str, ...], int, str | None, str | None]


def listen_of(cfg: Config) -> Listen | None:
    """Where the config wants the UI: addresses, port, cert and key; None when disabled."""
    g = cfg.globals
    if not g.web_enabled:
        return None
    return tuple(g.web_listen), g.web_port, g.web_cert, g.web_key


class WebLifecycle:
    def __init__(self, door: Door) -> None:
        self.door = door
        self.server: WebServer | None = None
        self.listening: Listen | None = None  # what the server's sockets are bound to
        self.failed: tuple[tuple[str, ...], str] | None = None  # (addresses then, why)
        self._hash: str | None = door.config.globals.web_password_hash
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None

    async def sync(self) -> None:
        """Bring the UI to the daemon's config."""
        g = self.door.config.globals
        if g.web_password_hash != self._hash:
            self._hash = g.web_password_hash
            if self.server is not None:
                self.server.sessions.clear()  # a new password logs everyone out
                self.server.guard.forget()
        if listen_of(self.door.config) == self.listening and self.failed is None:
            return
        from .server import CURRENT_REQUEST

        asking = CURRENT_REQUEST.get()
        if asking is None:
            await self._reconcile()
        elif self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._after(asking))

    async def _after(self, request_done: asyncio.Future[None]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(request_done), 60)
        except TimeoutError:
            pass
        await asyncio.sleep(MOVE_DELAY)  # the answer is being written
        await self._reconcile()

    async def retry(self) -> None:
        """The UI could not listen (its address was not there yet): retry on a change."""
        if self.failed is None or listen_of(self.door.config) is None:
            return
        if self.door.router_addresses() != self.failed[0]:
            await self._reconcile()

    async def _reconcile(self) -> None:
        async with self._lock:
            want = listen_of(self.door.config)
            if want == self.listening and self.failed is None:
                return
            if self.server is not None and self.listening is not None:
                await self.server.close()
                self.listening = None
            if want is None:
                if self.server is not None:
                    self.server.sessions.clear()
                    self.server.guard.close()
                self.server, self.failed = None, None
                return
            if self.server is None:
                from .server import WebServer

                self.server = WebServer(self.door)
            try:
                await self.server.start()
                self.listening, self.failed = want, None
            except (OSError, ValueError, RuntimeError) as exc:  # a port in use, a bad cert:
                # the web UI must never take routing down; the next address change retries
                self.failed = (self.door.router_addresses(), str(exc))
                log.error("web UI not started: %s (will retry when the router's addresses "
                          "change)", exc)

    async def close(self) -> None:
        """The daemon stops: no more moves, no more sockets."""
        if self._pending is not None:
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
            self._pending = None
        async with self._lock:
            if self.server is not None:
                await self.server.close()
                self.server.guard.close()
            self.server, self.listening, self.failed = None, None, None
