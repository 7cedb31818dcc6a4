"""The Diagnostics page's two tools: explain's arguments checked, and a ping through a WAN."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..report.explain import check_args
from ..track.probes import ProbeSpec, probe

if TYPE_CHECKING:
    from ..daemon.door import Door


def explain_args(q: Mapping[str, str]) -> dict[str, Any]:
    """The daemon's explain arguments from a form or a query; ValueError saying what is wrong."""
    args: dict[str, Any] = {"src": q.get("src", "").strip(), "dst": q.get("dst", "").strip(),
                            "proto": q.get("proto") or "tcp"}
    for k in ("sport", "dport"):
        if q.get(k, "").strip():
            try:
                args[k] = int(q[k])
            except ValueError:
                raise ValueError(f"{k} {q[k]!r}: ports are whole numbers") from None
    args["proto"] = check_args(args["src"], args["dst"], args["proto"], args.get("sport"),
                               args.get("dport"))
    return args


async def ping_through(door: Door, name: str, target: str, count: int) -> dict[str, Any]:
    """``count`` pings (1-10) to ``target`` bound to the interface's device, with its mark."""
    iface = door.config.interface(name)
    ipaddress.ip_address(target)
    count = max(1, min(count, 10))
    state = (await door.call("state"))["interfaces"].get(name)
    if state is None:
        raise ValueError(f"interface {name} is not enabled")
    addresses = state["addresses"]
    spec = ProbeSpec(method="ping", family=iface.family, device=iface.device,
                     source=addresses[0] if addresses else None, mark=int(state["mark"]),
                     count=count, timeout=1.0)
    res = await probe(spec, target)
    return {"interface": name, "device": iface.device, "target": target, "sent": res.sent,
            "received": res.received, "ok": res.ok, "loss_pct": res.loss_pct,
            "latency_ms": res.latency_ms, "error": res.error}
