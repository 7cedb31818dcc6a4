"""What the chaos benchmark reads and changes in the lab router's kernel (``ip``/``nft`` argv).

mwan's own objects are recognised as mwan marks them: the nft table named
``mwan``, ip rules and routes with protocol 201.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from mwan.lab import Lab

MWAN_PROTO = "201"
POLL = 0.02  # seconds between two looks while waiting for a repair


def wait_for(pred: Callable[[], bool], limit: float, since: float | None = None) -> float | None:
    """Poll ``pred`` until it holds; seconds from ``since`` (default: now) or None after ``limit``."""
    t0 = time.time() if since is None else since
    deadline = time.monotonic() + limit
    while True:
        if pred():
            return time.time() - t0
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL)


class RouterKernel:
    """The lab router's nft tables, ip rules and routes, as mwan's repairs are judged by."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.firewall_tables = self.tables() - {("inet", "mwan")}

    def _json(self, *argv: str) -> list[dict[str, Any]]:
        res = self.lab.exec(self.lab.router, *argv, check=False, timeout=10)
        if res.returncode != 0 or not res.stdout.strip():
            return []
        data = json.loads(res.stdout)
        return list(data["nftables"]) if isinstance(data, dict) else list(data)

    def tables(self) -> set[tuple[str, str]]:
        """(family, name) of every nft table in the router."""
        return {(t["table"]["family"], t["table"]["name"])
                for t in self._json("nft", "-j", "list", "tables") if "table" in t}

    def mwan_chains(self) -> set[str] | None:
        """Names of the chains in table inet mwan; None when the table is missing."""
        items = self._json("nft", "-j", "list", "table", "inet", "mwan")
        if not any("table" in i for i in items):
            return None
        return {i["chain"]["name"] for i in items if "chain" in i}

    def mwan_rules(self, family: str = "-4") -> set[int]:
        """Priorities of mwan's ip rules (protocol 201)."""
        return {int(r["priority"]) for r in self._json("ip", family, "-j", "rule", "show")
                if str(r.get("protocol")) == MWAN_PROTO}

    def mwan_rule_count(self, family: str = "-4") -> int:
        """How many ip rules mwan has (more than priorities: duplicates)."""
        return sum(1 for r in self._json("ip", family, "-j", "rule", "show")
                   if str(r.get("protocol")) == MWAN_PROTO)

    def delete_rules(self, priorities: set[int], family: str = "-4") -> None:
        """Delete the ip rules with these priorities in one ``ip -batch``, as another tool would."""
        if priorities:
            script = "".join(f"rule del priority {p}\n" for p in sorted(priorities))
            self.lab.exec(self.lab.router, "ip", family, "-batch", "-", input=script,
                          check=False, timeout=10)

    def wan_gateways(self, dev: str) -> set[str]:
        """Gateways of mwan's default routes (protocol 201, any table) via ``dev``."""
        return {r.get("gateway", "") for r in self._json(
            "ip", "-4", "-j", "route", "show", "table", "all", "default", "dev", dev)
            if str(r.get("protocol")) == MWAN_PROTO}

    def change_lease(self, dev: str, old: str, new: str, gateway: str, metric: int) -> None:
        """What a DHCP client does on a new lease: new address, new default route."""
        self.lab.ip(self.lab.router, "addr", "del", f"{old}/24", "dev", dev)
        self.lab.ip(self.lab.router, "addr", "add", f"{new}/24", "dev", dev)
        self.lab.ip(self.lab.router, "route", "replace", "default", "via", gateway, "dev", dev,
                    "metric", str(metric))

    def leftovers(self) -> dict[str, int]:
        """mwan's objects still in the kernel: nft tables named mwan, proto 201 rules and routes."""
        tables = sum(1 for _, name in self.tables() if name == "mwan")
        rules = sum(len(self.mwan_rules(f)) for f in ("-4", "-6"))
        routes = sum(1 for f in ("-4", "-6") for r in self._json(
            "ip", f, "-j", "route", "show", "table", "all") if str(r.get("protocol")) == MWAN_PROTO)
        return {"nft_tables": tables, "ip_rules": rules, "routes": routes}
