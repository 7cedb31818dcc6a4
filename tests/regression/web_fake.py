"""A stand-in for the daemon behind the web UI (no kernel), for the web regression tests.

It implements the narrow door (mwan.daemon.door.Door), which is all that
mwan.web sees of the daemon: the config (validated by the real model), the
config file, the commands (a canned report, the real explain, the events)
and :meth:`set_config` (validate, write, sync the web UI through the real
:class:`WebLifecycle`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from mwan.config.edit import write_atomic
from mwan.config.model import Config
from mwan.config.validate import parse_config
from mwan.daemon.control import ControlError
from mwan.daemon.door import Listener
from mwan.report.explain import explain
from mwan.web.auth import hash_password
from mwan.web.server import COOKIE, WebServer

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)


def config_text(port: int = 8086, extra: str = "", pw_hash: str = HASH) -> str:
    return (f"config globals 'globals'\n\toption web_enabled '1'\n"
            f"\tlist web_listen '127.0.0.1'\n\toption web_port '{port}'\n"
            f"\toption web_password_hash '{pw_hash}'\n{extra}"
            "config interface 'wan'\n\toption device 'eth0'\n\tlist track_ip '192.0.2.1'\n"
            "config member 'wan_m1'\n\toption interface 'wan'\n"
            "config policy 'only'\n\tlist use_member 'wan_m1'\n"
            "config rule 'all'\n\toption use_policy 'only'\n")


class FakeDaemon:
    """A :class:`mwan.daemon.door.Door` with no kernel behind it."""

    def __init__(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._path = str(path)
        self.cfg: Config = parse_config(text, self._path)
        self.events: list[dict[str, Any]] = []
        self.listeners: list[Listener] = []
        self.web: Any = None  # a WebLifecycle, for the tests that move the listener
        self.handlers: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]] = {
            "report": self._report, "state": self._report, "explain": self._explain,
            "events": self._events}

    @property
    def config(self) -> Config:
        return self.cfg

    @property
    def config_path(self) -> str:
        return self._path

    def router_addresses(self) -> tuple[str, ...]:
        return ()

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        if cmd not in self.handlers:
            raise ControlError(f"unknown command {cmd!r}")
        return await self.handlers[cmd](args or {})

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    async def _report(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"interfaces": {"wan": {"online": True, "status": "online", "targets": []}},
                "policies": {}, "connected": {}, "rules": [], "uptime_s": 1.0}

    async def _events(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        return self.events[:int(args.get("limit", 200))]

    async def _explain(self, args: dict[str, Any]) -> dict[str, Any]:
        return explain(self.cfg, {}, {}, str(args["src"]), str(args["dst"]),
                       str(args.get("proto") or "tcp"), args.get("sport"), args.get("dport"))

    async def set_config(self, text: str) -> None:
        cfg = parse_config(text, self._path)
        self.cfg = cfg
        write_atomic(self._path, text)
        if self.web is not None:
            await self.web.sync()


@asynccontextmanager
async def client(tmp_path: Path, text: str | None = None) -> AsyncIterator[
        tuple[TestClient[Any, Any], WebServer]]:
    """aiohttp's test client on the web UI's application (not the daemon's sockets)."""
    daemon = FakeDaemon(tmp_path / "mwan3", text or config_text())
    server = WebServer(daemon)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app)) as c:
        yield c, server
    if hasattr(server, "guard"):
        server.guard.close()


async def login(c: TestClient[Any, Any]) -> str:
    """Log in; the session's CSRF token."""
    r = await c.post("/login", data={"password": PASSWORD}, allow_redirects=False)
    assert r.status == 303, await r.text()
    assert c.session.cookie_jar.filter_cookies(c.make_url("/")).get(COOKIE)
    page = await (await c.get("/diagnostics")).text()
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
