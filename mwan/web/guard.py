"""Password checks for the web UI: off the event loop, bounded, and slowed per client.

One :class:`PasswordGuard` serves ``POST /login`` and the HTTP Basic auth of
``/metrics``.  Every attempt is counted *before* its password is checked, in
the same step that admits it (no ``await`` in between), so concurrent
attempts cannot slip past the count:

- per client (an IPv4 address, or an IPv6 /64) a token bucket: ``BURST``
  attempts at once, then one every ``REFILL`` seconds; an attempt without a
  token is answered 429 with ``Retry-After`` at once, without a check.  It
  slows guessing down to 1800 an hour and never locks anyone out: an admin
  behind the same NAT as a guesser waits seconds, not an hour;
- for everyone together, at most ``WORKERS`` scrypt checks run at a time, in
  their own thread (scrypt releases the GIL, so the daemon's loop, which runs
  the trackers' probes, keeps going), and at most ``QUEUE`` wait for one;
  beyond that the answer is 503 with ``Retry-After``.

A successful Basic auth header is remembered (its keyed hash, for
``BASIC_TTL`` seconds, forgotten when the password changes), so Prometheus
scraping every few seconds costs one check, not one per scrape.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import auth

BURST = 5
REFILL = 2.0  # seconds per new attempt, per client
WORKERS = 1
QUEUE = 8
BASIC_TTL = 300.0
MAX_CLIENTS = 4096


@dataclass(frozen=True)
class Verdict:
    """``ok`` when the password matched; otherwise ``status`` (401, 429, 503) and a wait."""

    ok: bool
    status: int = 401
    retry_after: int = 0


def client_key(peer: str | None) -> str:
    """The unit a client is counted in: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(peer or "")
    except ValueError:
        return peer or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Buckets:
    """Per-client token buckets. Pure (the caller gives the time)."""

    burst: float = BURST
    refill: float = REFILL
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)  # key: (tokens, at)

    def take(self, key: str, now: float) -> float:
        """Take one attempt for ``key``: 0.0 when admitted, else the seconds to wait."""
        tokens, at = self._tokens.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) / self.refill)
        if tokens < 1:
            self._tokens[key] = (tokens, now)
            return (1 - tokens) * self.refill
        self._tokens[key] = (tokens - 1, now)
        if len(self._tokens) > MAX_CLIENTS:  # forget clients whose bucket is full again
            full = [k for k, (t, a) in self._tokens.items()
                    if t + (now - a) / self.refill >= self.burst]
            for k in full:
                del self._tokens[k]
        return 0.0


class PasswordGuard:
    def __init__(self, workers: int = WORKERS, queue: int = QUEUE) -> None:
        self.buckets = Buckets()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mwan-password")
        self._slots = workers + queue  # checks running or waiting
        self._busy = 0
        self._key = secrets.token_bytes(32)
        self._basic_seen: dict[bytes, float] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def check(self, peer: str | None, password: str, stored: str | None) -> Verdict:
        """Count the attempt, then check the password in the pool (never in the loop)."""
        wait = self.buckets.take(client_key(peer), time.monotonic())
        if wait:
            return Verdict(False, 429, math.ceil(wait))
        if self._busy >= self._slots:
            return Verdict(False, 503, 1)
        self._busy += 1
        try:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._pool, auth.check_password, password, stored)
        finally:
            self._busy -= 1
        return Verdict(ok)

    async def check_basic(self, peer: str | None, header: str, password: str,
                          stored: str | None) -> Verdict:
        """:meth:`check` for an ``Authorization`` header, remembering one that worked."""
        if not stored:
            return Verdict(False)
        mac = hmac.new(self._key, f"{stored}\0{header}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        if self._basic_seen.get(mac, 0.0) > now:
            return Verdict(True)
        verdict = await self.check(peer, password, stored)
        if verdict.ok:
            self._basic_seen = {m: t for m, t in self._basic_seen.items() if t > now}
            if len(self._basic_seen) < 64:
                self._basic_seen[mac] = now + BASIC_TTL
        return verdict

    def forget(self) -> None:
        """The password changed: remembered Basic auth headers no longer count."""
        self._basic_seen.clear()
