"""The read-only queries of the control socket: ``state``, ``report`` (behind
status/interfaces/policies/...), ``explain``.  The pure formatting is in mwan/report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..config.model import Ha, Interface
from ..config.values import FAMILIES
from ..ha.status import read_status
from ..kernel.nft import rules_with_counters, set_networks
from ..plan.names import SUFFIX, user_set
from ..plan.state import IfaceRuntime
from ..report import data
from ..report.explain import explain
from ..track.dampen import DampenParams
from ..track.machine import Status
from .control import ControlError, bool_arg, str_arg
from .door import DaemonEvent

if TYPE_CHECKING:
    from .core import Daemon

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def iface_state(daemon: Daemon, iface: Interface, rt: IfaceRuntime) -> dict[str, Any]:
    """One interface as ``state`` reports it (schema in docs/cli-json.md)."""
    s = daemon.status[iface.name]
    tracker = daemon.trackers.get(iface.name)
    out: dict[str, Any] = {
        "device": iface.device, "family": iface.family,
        "online": rt.online, "up": rt.up, "admin_up": s.admin_up, "carrier": s.carrier,
        "online_since": s.online_since if rt.online else None,
        "offline_since": s.offline_since, "up_since": s.up_since,
        "gateway": rt.gateway, "addresses": list(rt.addresses),
        "events": [list(e) for e in s.events],
        "held_until": s.dampening.held_until,
        "flaps": s.dampening.flaps(DampenParams.of(iface), time.time()),
        "mark": daemon.mark_of(iface),
        "usage": daemon.usage.book.report(iface),
        "standby": iface.name in daemon.usage.standby,
        "transitions": {a: n for (i, a), n in sorted(daemon.ifaces.transitions.items())
                        if i == iface.name},
    }
    if tracker is not None:
        out.update(tracker.snapshot())
    else:
        out.update({"tracking": "disabled",
                    "status": Status.ONLINE.value if rt.online else
                    (Status.OFFLINE.value if rt.up else Status.DISABLED.value),
                    "score": None, "lost": None, "turn": None, "last_test": None,
                    "targets": [], "probes_sent": 0, "probes_lost": 0, "history": []})
    if not rt.up and out["status"] != Status.DISABLED.value:
        out["status"] = Status.DISABLED.value if not s.admin_up else Status.OFFLINE.value
    return out


async def ha_state(ha: Ha | None) -> dict[str, Any]:
    """``{"ha": ...}`` read from keepalived and conntrackd (mwan.ha.status), only with config ha."""
    if ha is None:
        return {}
    status = await asyncio.to_thread(read_status, ha)
    return {"ha": status.as_dict()}


def handlers(daemon: Daemon) -> dict[str, Handler]:
    applies = [0]  # applies done since start (they coalesce: far fewer than events)

    def count_apply(ev: DaemonEvent) -> None:
        if ev.kind == "apply":
            applies[0] += 1

    daemon.subscribe(count_apply)

    async def state(args: dict[str, Any]) -> Any:
        rt = daemon.runtime()
        last = daemon.loop.last
        return {
            "uptime_s": time.time() - daemon.started,
            "interfaces": {i.name: iface_state(daemon, i, rt[i.name])
                           for i in daemon.cfg.enabled_interfaces},
            "last_apply_ms": last.seconds * 1000 if last else None,
            "applies": applies[0],
            "apply_error": daemon.loop.health.snapshot(),
            "apply_failures": daemon.loop.health.total_failures,
            "repairs": daemon.loop.repairs.snapshot(time.time()),
            "notify": daemon.webhooks.snapshot() if daemon.webhooks is not None else {},
            **await ha_state(daemon.cfg.ha),
        }

    async def report(args: dict[str, Any]) -> Any:
        """Everything ``status`` shows; ``{"rules": false}`` skips reading the nft counters."""
        if bool_arg(args, "rules", True):
            await daemon.usage.tick()  # usage as of now (and any data-cap event it makes due)
        st = await state({})
        out = {**st, "policies": data.policies(daemon.cfg, daemon.runtime()),
               "connected": data.connected(daemon.cfg, daemon.facts)}
        if bool_arg(args, "rules", True):
            nft_rules, maps = await daemon.kernel(
                lambda: rules_with_counters(daemon.applier().nft, "rules"))
            out["rules"] = data.rule_counters(daemon.cfg, nft_rules, maps)
        return out

    def k_sets() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The rules' ipset contents by ipset name, and dynamic_v4/v6's per family."""
        nft = daemon.applier().nft
        out: dict[str, list[str]] = {}
        for name in sorted({r.ipset for r in daemon.cfg.rules if r.ipset is not None}):
            out[name] = [n for fam in FAMILIES
                         for n in set_networks(nft, user_set(name, fam)) or []]
        dynamic: dict[str, list[str]] = {fam: set_networks(nft, f"dynamic_{SUFFIX[fam]}") or []
                                         for fam in FAMILIES}
        return out, dynamic

    async def do_explain(args: dict[str, Any]) -> Any:
        ipsets, dynamic = await daemon.kernel(k_sets)
        try:
            return explain(daemon.cfg, daemon.runtime(), data.connected(daemon.cfg, daemon.facts),
                           str_arg(args, "src"), str_arg(args, "dst"),
                           str_arg(args, "proto", "tcp") or "tcp",
                           args.get("sport"), args.get("dport"), ipsets,
                           iif=args.get("iif"), dynamic=dynamic, facts=daemon.facts)
        except (KeyError, ValueError) as exc:
            raise ControlError(f"bad explain arguments: {exc}") from None

    return {"state": state, "report": report, "explain": do_explain}
