"""The --ha demo's parts (``./scripts/demo.sh start --ha``): its config and requests.

The supervisor (:mod:`mwan.lab.demo_supervisor`) builds an :class:`~mwan.lab.ha.HaLab`
instead of a :class:`~mwan.lab.lab.Lab` and hands ``fail-router``,
``restore-router`` and ``ha`` requests here.
"""

from __future__ import annotations

import os
from typing import Any

from mwan.lab.ha import HaLab
from mwan.lab.ha_topology import ROUTERS
from mwan.lab.lab import Lab


def ha_demo_config(lab: Lab, globals_: str, interfaces: str, policies: str) -> str:
    """The two-router demo's shared config: IPv4 only (VRRP here is v4), the web UI on every
    address (each router's own LAN address; the LAN VIP moves)."""
    glob = globals_.replace(
        f"\tlist web_listen '{lab.lan_gateway(4)}'", "\tlist web_listen '0.0.0.0'")
    policies = "\n".join(line for line in policies.split("\n")
                          if "wan6" not in line and "wanb6" not in line)
    policies = policies.replace("config member 'wan6_m1'\n", "").replace(
        "config member 'wanb6_m1'\n", "")
    return glob + "\n" + interfaces + policies


def handle_ha(lab_: Lab, req: dict[str, Any]) -> str:
    """fail-router / restore-router R, and ``ha`` (both routers' roles), in --ha demos."""
    lab = lab_ if isinstance(lab_, HaLab) else None
    if lab is None:
        raise ValueError("not an HA demo: start it with ./scripts/demo.sh start --ha")
    if req["cmd"] == "ha":
        roles = {r: lab.routers[r].role() or "?" for r in ROUTERS
                 if os.path.exists(f"/run/netns/{lab.ns_of(r)}")}
        return (f"VRRP roles: {', '.join(f'{r}: {v}' for r, v in roles.items())}; "
                f"the LAN VIP {lab.lan_gateway(4)} is on {lab.master() or 'no router'}")
    r = str(req.get("router", "")).lower()
    if r not in ROUTERS:
        raise ValueError(f"no router {r!r}: use a or b")
    if req["cmd"] == "fail-router":
        how = str(req.get("how") or "links")
        lab.fail_router(r, how)
        return f"router {r}: {'every link down' if how == 'links' else how + ' stopped'}"
    lab.restore_router(r)
    return f"router {r}: links up, keepalived running (it returns as backup)"
