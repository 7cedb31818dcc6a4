"""The /login limiter lost updates under concurrency (issue 11, item 2).

40 concurrent logins all had their passwords checked and one failure was
recorded: the count was read before the (slow) check and written after it.
Now every attempt is counted before its check, in one step with the test of
the limit; a client is slowed down (a token bucket), never locked out.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .web_fake import PASSWORD, client

BURST, REFILL = 5, 2.0  # mwan.web.guard: attempts at once, seconds per further attempt


def test_concurrent_guesses_are_all_counted(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], int]:
        async with client(tmp_path) as (c, _server):
            async def guess(i: int) -> int:
                r = await c.post("/login", data={"password": f"guess-{i}"},
                                 allow_redirects=False)
                return r.status

            codes = list(await asyncio.gather(*(guess(i) for i in range(40))))
            r = await c.post("/login", data={"password": PASSWORD}, allow_redirects=False)
            return codes, r.status

    codes, right = asyncio.run(main())
    assert codes.count(401) <= BURST, codes  # checked: no more than the limit
    assert codes.count(429) + codes.count(503) >= 40 - BURST, codes
    assert right == 429  # even the right password waits its turn


def test_a_throttled_client_gets_in_after_a_short_wait(tmp_path: Path) -> None:
    """Slowing down, not locking out: behind a NAT with a guesser, the admin waits seconds."""
    async def main() -> tuple[int, str, int]:
        async with client(tmp_path) as (c, _server):
            for _ in range(BURST):
                await c.post("/login", data={"password": "wrong"}, allow_redirects=False)
            r = await c.post("/login", data={"password": PASSWORD}, allow_redirects=False)
            refused, retry = r.status, r.headers.get("Retry-After", "")
            await asyncio.sleep(float(retry or REFILL) + 0.1)
            r = await c.post("/login", data={"password": PASSWORD}, allow_redirects=False)
            return refused, retry, r.status

    start = time.monotonic()
    refused, retry, after = asyncio.run(main())
    assert refused == 429 and 1 <= int(retry) <= REFILL, (refused, retry)
    assert after == 303
    assert time.monotonic() - start < 30
