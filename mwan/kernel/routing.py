"""Reconcile ip rules and WAN-table routes through netlink (pyroute2).

Ownership is marked in the kernel itself: every rule and route mwan adds
carries protocol :data:`RTPROT_MWAN`, and only those are ever changed or
removed.  Reconciling is by difference: re-applying the same desired state
sends nothing.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..plan.state import RTPROT_MWAN, AddrInfo, Family, IpRule, KernelFacts, Route, RouteInfo

log = logging.getLogger(__name__)

AF = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
FAMILY_OF = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
FR_ACT = {1: "lookup", 6: "blackhole", 7: "unreachable"}
FR_ACT_NAME = {"lookup": "FR_ACT_TO_TBL", "blackhole": "FR_ACT_BLACKHOLE",
               "unreachable": "FR_ACT_UNREACHABLE"}
RTN_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
             6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}
RTN_CODE = {v: k for k, v in RTN_TYPES.items()}
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255


class RoutingError(RuntimeError):
    pass


def _attrs(msg: Any) -> dict[str, Any]:
    return dict(msg["attrs"])


class Routing:
    """One netlink socket for rules, routes, links and addresses."""

    def __init__(self, ipr: IPRoute | None = None) -> None:
        self.ipr = ipr if ipr is not None else IPRoute()
        self._names: dict[int, str] = {}
        # what the last apply left (None: read the kernel next time); see forget()
        self._rules_cache: set[IpRule] | None = None
        self._routes_cache: tuple[frozenset[int], frozenset[Route]] | None = None
        # desired routes the kernel refused in the last apply (device or gateway gone)
        self.refused: frozenset[Route] = frozenset()

    def close(self) -> None:
        self.ipr.close()

    # ------------------------------------------------------------ links
    def devices(self) -> dict[str, int]:
        """name → ifindex of every link."""
        out = {}
        for link in self.ipr.get_links():
            name = link.get("IFLA_IFNAME")
            out[name] = link["index"]
        self._names = {v: k for k, v in out.items()}
        return out

    def links(self) -> dict[str, dict[str, Any]]:
        """name → {index, up (admin), carrier, operstate}."""
        out = {}
        for link in self.ipr.get_links():
            name = link.get("IFLA_IFNAME")
            out[name] = {
                "index": link["index"],
                "up": bool(link["flags"] & 1),
                "carrier": bool(link.get("IFLA_CARRIER", 0)) and bool(link["flags"] & 0x10000),
                "operstate": link.get("IFLA_OPERSTATE"),
            }
        return out

    def _name(self, index: int | None) -> str | None:
        if index is None:
            return None
        if index not in self._names:
            self.devices()
        return self._names.get(index)

    # ------------------------------------------------------------ reading
    def read_routes(self, family: Family, table: int) -> list[RouteInfo]:
        out = []
        try:
            msgs = self.ipr.get_routes(family=AF[family], table=table)
        except NetlinkError:
            return []
        for msg in msgs:
            a = _attrs(msg)
            tbl = a.get("RTA_TABLE", msg["table"])
            if tbl != table:
                continue
            dst = a.get("RTA_DST")
            dst_str = "default" if dst is None and msg["dst_len"] == 0 else \
                f"{dst}/{msg['dst_len']}"
            gateway = a.get("RTA_GATEWAY")
            dev = self._name(a.get("RTA_OIF"))
            if gateway is None and "RTA_MULTIPATH" in a:
                hops = a["RTA_MULTIPATH"]
                if hops:
                    ha = _attrs(hops[0])
                    gateway = ha.get("RTA_GATEWAY")
                    dev = self._name(hops[0].get("oif"))
            out.append(RouteInfo(
                family=family, dst=dst_str, dev=dev, gateway=gateway,
                prefsrc=a.get("RTA_PREFSRC"), metric=a.get("RTA_PRIORITY"),
                scope=msg["scope"], type=RTN_TYPES.get(msg["type"], "unicast"), table=tbl,
            ))
        return out

    def read_addresses(self) -> list[AddrInfo]:
        out = []
        names = {v: k for k, v in self.devices().items()}
        for msg in self.ipr.get_addr():
            fam = FAMILY_OF.get(msg["family"])
            if fam is None:
                continue
            a = _attrs(msg)
            addr = a.get("IFA_LOCAL") or a.get("IFA_ADDRESS")
            if addr is None:
                continue
            out.append(AddrInfo(fam, addr, msg["prefixlen"],  # type: ignore[arg-type]
                                names.get(msg["index"], "")))
        return out

    def facts(self, lookup_tables: Iterable[int] = ()) -> KernelFacts:
        routes: list[RouteInfo] = []
        for fam in ("ipv4", "ipv6"):
            routes += self.read_routes(fam, RT_TABLE_MAIN)
            for t in lookup_tables:
                routes += self.read_routes(fam, t)
        return KernelFacts(routes=tuple(routes), addresses=tuple(self.read_addresses()),
                           devices=tuple(sorted(self.devices())))

    # ------------------------------------------------------------ rules
    def owned_rules(self) -> set[IpRule]:
        out = set()
        for fam, af in AF.items():
            for msg in self.ipr.get_rules(family=af):
                a = _attrs(msg)
                if a.get("FRA_PROTOCOL") != RTPROT_MWAN:
                    continue
                action = FR_ACT.get(msg["action"])
                if action is None:
                    continue
                table = a.get("FRA_TABLE", msg["table"]) if action == "lookup" else None
                out.add(IpRule(
                    priority=a.get("FRA_PRIORITY", 0), family=fam,  # type: ignore[arg-type]
                    action=action,  # type: ignore[arg-type]
                    table=table, fwmark=a.get("FRA_FWMARK"), fwmask=a.get("FRA_FWMASK"),
                    iif=a.get("FRA_IIFNAME"),
                ))
        return out

    def _rule_cmd(self, cmd: str, r: IpRule) -> None:
        kw: dict[str, Any] = {"family": AF[r.family], "priority": r.priority,
                                  "protocol": RTPROT_MWAN, "action": FR_ACT_NAME[r.action]}
        if r.action == "lookup":
            kw["table"] = r.table
        if r.fwmark is not None:
            kw["fwmark"] = r.fwmark
            kw["fwmask"] = r.fwmask if r.fwmask is not None else 0xFFFFFFFF
        if r.iif is not None:
            kw["iifname"] = r.iif
        self.ipr.rule(cmd, **kw)

    def forget(self) -> None:
        """Drop what was remembered of mwan's rules and routes; the next apply re-reads them."""
        self._rules_cache = None
        self._routes_cache = None

    def apply_rules(self, desired: Iterable[IpRule]) -> int:
        want = set(desired)
        have = self._rules_cache if self._rules_cache is not None else self.owned_rules()
        self._rules_cache = None
        if have == want:
            self._rules_cache = want
            return 0
        changes = 0
        for r in sorted(want - have):
            self._rule_cmd("add", r)
            changes += 1
        for r in sorted(have - want):
            try:
                self._rule_cmd("del", r)
            except NetlinkError as exc:
                if exc.code != 2:  # ENOENT: already gone
                    raise
            changes += 1
        self._rules_cache = want
        return changes

    # ------------------------------------------------------------ routes
    def owned_routes(self, tables: Iterable[int]) -> set[Route]:
        """mwan's routes (proto 201) in ``tables``: one dump per family, filtered here."""
        wanted = set(tables)
        out: set[Route] = set()
        for fam in ("ipv4", "ipv6"):
            try:
                msgs = self.ipr.get_routes(family=AF[fam])
            except NetlinkError:
                continue
            for msg in msgs:
                if msg["proto"] != RTPROT_MWAN:
                    continue
                a = _attrs(msg)
                t = a.get("RTA_TABLE", msg["table"])
                if t not in wanted:
                    continue
                dst = a.get("RTA_DST")
                out.add(Route(
                    table=t, family=fam,
                    dst="default" if dst is None else f"{dst}/{msg['dst_len']}",
                    dev=self._name(a.get("RTA_OIF")), gateway=a.get("RTA_GATEWAY"),
                    prefsrc=a.get("RTA_PREFSRC"), metric=a.get("RTA_PRIORITY"),
                    scope=msg["scope"], type=RTN_TYPES.get(msg["type"], "unicast"),
                ))
        return out

    def _route_cmd(self, cmd: str, r: Route, devices: dict[str, int]) -> None:
        kw: dict[str, Any] = {"family": AF[r.family], "table": r.table, "dst": r.dst,
                                  "proto": RTPROT_MWAN, "type": RTN_CODE.get(r.type, 1),
                                  "scope": r.scope}
        if r.dev is not None:
            if r.dev not in devices:
                raise RoutingError(f"device {r.dev} does not exist")
            kw["oif"] = devices[r.dev]
        if r.gateway is not None:
            kw["gateway"] = r.gateway
        if r.prefsrc is not None:
            kw["prefsrc"] = r.prefsrc
        if r.metric is not None:
            kw["priority"] = r.metric
        self.ipr.route(cmd, **kw)

    def apply_routes(self, desired: Iterable[Route], tables: Iterable[int]) -> int:
        """Make mwan's routes in ``tables`` equal ``desired``; returns changes made."""
        want = {_normal(r) for r in desired}
        self.refused = frozenset()
        scope = set(tables) | {r.table for r in want}
        cached = self._routes_cache
        if cached is not None and cached[0] >= scope:
            have = {r for r in cached[1] if r.table in scope}
        else:
            have = self.owned_routes(scope)
        self._routes_cache = None
        if have == want:
            self._routes_cache = (frozenset(scope), frozenset(want))
            return 0
        devices = self.devices()
        changes = 0
        failed: set[Route] = set()
        for r in sorted(have - want, key=str):
            try:
                self._route_cmd("del", r, devices)
            except (NetlinkError, RoutingError) as exc:
                log.debug("route %s already gone: %s", r, exc)
            changes += 1
        for r in sorted(want - have, key=str):
            try:
                self._route_cmd("replace", r, devices)
            except (NetlinkError, RoutingError) as exc:
                # a route whose device or gateway vanished meanwhile; the next
                # netlink event brings a fresh plan
                log.warning("cannot add route %s to table %d: %s", r.dst, r.table, exc)
                failed.add(r)
                continue
            changes += 1
        if not failed:
            self._routes_cache = (frozenset(scope), frozenset(want))
        self.refused = frozenset(failed)
        return changes


def normal_routes(routes: Iterable[Route]) -> set[Route]:
    """Routes in the form the kernel reports them back in."""
    return {_normal(r) for r in routes}


def _normal(r: Route) -> Route:
    """The form the kernel reports a route back in (so sets compare)."""
    if r.family == "ipv6" and r.metric is None:
        return replace(r, metric=1024)
    return r
