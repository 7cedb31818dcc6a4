"""Changing web_port from the web UI hung the request and left the UI listening nowhere.

After that, web_enabled '0' no longer stopped the UI and a new password no
longer ended sessions (issue 11, item 7).  Now one owner (WebLifecycle)
answers the request first and then moves the listener.  (The daemon is a
stand-in here; tests/lab/test_web.py::test_port_change_from_the_ui_in_the_lab
does the same against the real daemon.)
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp

from mwan.config.validate import parse_config
from mwan.web.auth import hash_password
from mwan.web.lifecycle import WebLifecycle

from .web_fake import PASSWORD, FakeDaemon, config_text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url, allow_redirects=False,
                            timeout=aiohttp.ClientTimeout(total=3)) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _until(cond: object, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await cond():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def test_the_request_is_answered_then_the_listener_moves(tmp_path: Path) -> None:
    one, two = _free_port(), _free_port()
    daemon = FakeDaemon(tmp_path / "mwan3", config_text(one))
    daemon.web = WebLifecycle(daemon)  # type: ignore[arg-type]
    a, b = f"http://127.0.0.1:{one}", f"http://127.0.0.1:{two}"

    async def put(http: aiohttp.ClientSession, base: str, csrf: str, text: str
                  ) -> tuple[int, float]:
        t = time.monotonic()
        async with http.put(f"{base}/api/config", json={"text": text},
                            headers={"X-CSRF-Token": csrf},
                            timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status, time.monotonic() - t

    async def main() -> None:
        await daemon.web.sync()
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.post(f"{a}/login", data={"password": PASSWORD},
                                 allow_redirects=False) as r:
                assert r.status == 303
            async with http.get(f"{a}/diagnostics") as r:
                csrf = (await r.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]

            status, took = await put(http, a, csrf, config_text(two))
            assert status == 200 and took < 5, (status, took)
            assert await _until(lambda: _status(http, f"{b}/api/status")), "no UI on the new port"
            assert await _status(http, f"{b}/api/status") == 200  # the session survived
            assert await _status(http, f"{a}/login") == 0  # the old port is closed

            # a new password (mwan3 web-password, then a reload) ends every session
            text = config_text(two, pw_hash=hash_password("another password"))
            (tmp_path / "mwan3").write_text(text)
            daemon.cfg = parse_config(text, daemon.config_path)
            await daemon.web.sync()
            assert await _status(http, f"{b}/api/status") == 401

            async with http.post(f"{b}/login", data={"password": "another password"},
                                 allow_redirects=False) as r:
                assert r.status == 303
            async with http.get(f"{b}/diagnostics") as r:
                csrf = (await r.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
            off = text.replace("option web_enabled '1'", "option web_enabled '0'")
            status, took = await put(http, b, csrf, off)
            assert status == 200 and took < 5, (status, took)

            async def stopped() -> bool:
                return await _status(http, f"{b}/login") == 0

            assert await _until(stopped), "web_enabled '0' did not stop the UI"
        await daemon.web.close()

    asyncio.run(main())
