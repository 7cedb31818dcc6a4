"""A stand-in for the daemon behind the web UI (no kernel), for the web regression tests.

It has what mwan.web uses: the config (validated by the real model), the
config file, the control handlers (a canned report, the real explain), the
event log and :meth:`apply_config_text` (validate, write, sync the web UI
through the real :class:`WebLifecycle`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from mwan.config.edit import write_atomic
from mwan.config.model import Config
from mwan.config.validate import parse_config
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
    def __init__(self, path: Path, text: str) -> None:
        path.write_text(text)
        self.config_path = str(path)
        self.cfg: Config = parse_config(text, self.config_path)
        self.event_log: deque[tuple[float, str, str, str]] = deque(maxlen=1000)
        self.transitions: Counter[tuple[str, str]] = Counter()
        self.apply_listeners: list[Callable[..., None]] = []
        self.facts = SimpleNamespace(addresses=())
        self.apply_failing = SimpleNamespace(total_failures=0)  # read by /metrics
        self.web: Any = None  # a WebLifecycle, for the tests that move the listener
        handlers: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]] = {
            "report": self._report, "explain": self._explain}
        self.control = SimpleNamespace(handlers=handlers)

    async def _report(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"interfaces": {"wan": {"online": True, "status": "online", "targets": []}},
                "policies": {}, "connected": {}, "rules": [], "uptime_s": 1.0}

    async def _explain(self, args: dict[str, Any]) -> dict[str, Any]:
        return explain(self.cfg, {}, {}, str(args["src"]), str(args["dst"]),
                       str(args.get("proto") or "tcp"), args.get("sport"), args.get("dport"))

    async def apply_config_text(self, text: str) -> None:
        cfg = parse_config(text, self.config_path)
        old, self.cfg = self.cfg, cfg
        write_atomic(self.config_path, text)
        if self.web is not None:
            await self.web.sync(old)


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


async def loop_lag_during(work: Coroutine[Any, Any, Any], tick: float = 0.01
                          ) -> tuple[Any, float]:
    """Run ``work``; its result and the longest the loop was late for a ``tick`` sleep."""
    worst = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal worst
        while not stop:
            t = time.monotonic()
            await asyncio.sleep(tick)
            worst = max(worst, time.monotonic() - t - tick)

    task = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        stop = True
        await task
    return result, worst
