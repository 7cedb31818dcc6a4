"""/metrics HTTP Basic auth: scrypt ran in the event loop, with no limit (issue 11, item 1).

16 connections made 28 guesses a second and every check blocked the daemon's
loop, which runs the trackers' probes.  Now checks run in a thread pool, one
at a time, and Basic auth shares /login's per-client limiter.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

from mwan.web import auth

from .web_fake import HASH, PASSWORD, client, loop_lag_during

BURST = 5  # mwan.web.guard.BURST: attempts a client may make at once


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"prom:{password}".encode()).decode()}


def test_guesses_do_not_stall_the_loop_and_are_limited(tmp_path: Path) -> None:
    t = time.monotonic()
    auth.check_password("x", HASH)
    one_check = time.monotonic() - t

    async def main() -> tuple[list[int], float]:
        async with client(tmp_path) as (c, _server):
            async def guess(i: int) -> int:
                r = await c.get("/metrics", headers=_basic(f"guess-{i}"))
                return r.status

            async def all_guesses() -> list[int]:
                return list(await asyncio.gather(*(guess(i) for i in range(16))))

            codes: Any
            codes, lag = await loop_lag_during(all_guesses())
            return codes, lag

    codes, lag = asyncio.run(main())
    assert codes.count(401) <= BURST, codes
    assert set(codes) <= {401, 429, 503}, codes
    # in the loop, each check stalled it for a whole check; in the pool, hardly at all
    assert lag < one_check / 2, (lag, one_check)


def test_basic_auth_and_login_share_one_limiter(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], int, str]:
        async with client(tmp_path) as (c, _server):
            codes = [(await c.get("/metrics", headers=_basic("wrong"))).status
                     for _ in range(BURST + 1)]
            r = await c.post("/login", data={"password": PASSWORD}, allow_redirects=False)
            return codes, r.status, r.headers.get("Retry-After", "")

    codes, login, retry = asyncio.run(main())
    assert codes == [401] * BURST + [429], codes
    assert login == 429 and int(retry) >= 1


def test_prometheus_with_the_right_password_is_not_throttled(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with client(tmp_path) as (c, _server):
            return [(await c.get("/metrics", headers=_basic(PASSWORD))).status
                    for _ in range(3 * BURST)]

    assert asyncio.run(main()) == [200] * (3 * BURST)
