"""The JSON document a notify section receives, its signature and headers. Pure.

The body: ``router``, ``interface``, ``event``, ``reason``, ``time`` (epoch
seconds) and ``time_iso``, the interface's ``status``, ``online``, its
targets' latency and loss at the time of sending (``targets``), and a
``text`` line that Slack-style and ntfy-style receivers show as it is.
``X-Mwan-Signature: sha256=<hex>`` is HMAC-SHA256 of the exact body bytes
with the section's secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.model import Notify

SIGNATURE_HEADER = "X-Mwan-Signature"
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Event:
    """One event to send (from a DaemonEvent of kind "interface")."""

    interface: str
    event: str
    reason: str
    time: float


def snapshot_of(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """The latency/loss part of one interface's ``state`` (daemon/queries.iface_state)."""
    if not state:
        return {"status": None, "online": None, "targets": []}
    return {
        "status": state.get("status"), "online": state.get("online"),
        "targets": [{k: t.get(k) for k in ("ip", "latency_ms", "loss_pct", "up")}
                    for t in state.get("targets") or []],
    }


def text_line(router: str, ev: Event, snap: Mapping[str, Any]) -> str:
    lat = [t["latency_ms"] for t in snap.get("targets") or [] if t.get("latency_ms") is not None]
    loss = [t["loss_pct"] for t in snap.get("targets") or [] if t.get("loss_pct") is not None]
    quality = ""
    if lat or loss:
        parts = []
        if lat:
            parts.append(f"latency {min(lat):.0f} ms")
        if loss:
            parts.append(f"loss {max(loss):.0f}%")
        quality = " (" + ", ".join(parts) + ")"
    reason = f": {ev.reason}" if ev.reason else ""
    return f"[{router}] {ev.interface} {ev.event}{reason}{quality}"


def body(router: str, ev: Event, state: Mapping[str, Any] | None) -> bytes:
    """The exact bytes POSTed (UTF-8 JSON, keys sorted: the signature is over these)."""
    snap = snapshot_of(state)
    doc = {
        "router": router, "interface": ev.interface, "event": ev.event, "reason": ev.reason,
        "time": round(ev.time, 3),
        "time_iso": dt.datetime.fromtimestamp(ev.time, dt.UTC).isoformat(
            timespec="seconds"),
        **snap,
        "text": text_line(router, ev, snap),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, data: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def verify(secret: str, data: bytes, header: str) -> bool:
    """What a receiver does: does ``header`` sign ``data`` with ``secret``?"""
    return hmac.compare_digest(signature(secret, data), header)


def headers(n: Notify, data: bytes) -> dict[str, str]:
    out = {"Content-Type": "application/json", "User-Agent": "mwan"}
    for h in n.header:
        name, _, value = h.partition(":")
        out[name.strip()] = value.strip()
    if n.secret:
        out[SIGNATURE_HEADER] = signature(n.secret, data)
    return out


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, 4, ... at most MAX_BACKOFF)."""
    return float(min(MAX_BACKOFF, 2 ** max(0, attempt - 1)))
