"""Passwords (scrypt hashes kept in the config) and login sessions for the web UI.

``scrypt$N$r$p$salt$hash`` (base64) is what ``mwan3 web-password`` writes to
``option web_password_hash``.  Sessions are random 256-bit tokens held in
memory only (a daemon restart logs everyone out), each with its own CSRF
token; they expire after ``SESSION_TTL`` seconds of idleness.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

N, R, P = 2**14, 8, 1
SESSION_TTL = 12 * 3600
MAX_SESSIONS = 64


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass
class Session:
    token: str
    csrf: str
    created: float
    seen: float


@dataclass
class Sessions:
    ttl: float = SESSION_TTL
    _by_token: dict[str, Session] = field(default_factory=dict)

    def new(self, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        self.expire(now)
        if len(self._by_token) >= MAX_SESSIONS:  # drop the least recently seen
            oldest = min(self._by_token.values(), key=lambda s: s.seen)
            del self._by_token[oldest.token]
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None, now: float | None = None) -> Session | None:
        if not token:
            return None
        now = time.time() if now is None else now
        s = self._by_token.get(token)
        if s is None or now - s.seen > self.ttl:
            self._by_token.pop(token or "", None)
            return None
        s.seen = now
        return s

    def drop(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def clear(self) -> None:
        self._by_token.clear()

    def expire(self, now: float) -> None:
        for t in [t for t, s in self._by_token.items() if now - s.seen > self.ttl]:
            del self._by_token[t]


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf, given or "")
