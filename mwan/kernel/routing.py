"""Reconcile ip rules and WAN-table routes through netlink (pyroute2).

Ownership is marked in the kernel itself: every rule and route mwan adds
carries protocol :data:`RTPROT_MWAN`, and only those are ever changed or
removed.  Reconciling is by difference: re-applying the same desired state
sends nothing.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.iproute.linux import DEFAULT_TABLE as MAIN_TABLE  # 254, "main"
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import rt_type
from pyroute2.netlink.rtnl.fibmsg import FR_ACT_NAMES

from ..config.values import FAMILIES
from ..plan.state import RTPROT_MWAN, AddrInfo, Family, IpRule, KernelFacts, Route, RouteInfo
from .diff import RoutesKnown, known_routes, normal_routes, route_ops, rule_ops
from .nlbatch import NetlinkBatch, Request

log = logging.getLogger(__name__)

AF = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
FAMILY_OF = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
# the rule actions mwan uses, by pyroute2's FR_ACT_* names (and numbers, for reading)
RULE_ACTION = {"lookup": "FR_ACT_TO_TBL", "blackhole": "FR_ACT_BLACKHOLE",
               "unreachable": "FR_ACT_UNREACHABLE"}
ACTION_OF = {FR_ACT_NAMES[v]: k for k, v in RULE_ACTION.items()}
# a route deletion that failed with these: the route is not there (any more)
GONE = (errno.ENOENT, errno.ESRCH)


class RoutingError(RuntimeError):
    pass


def _attrs(msg: Any) -> dict[str, Any]:
    return dict(msg["attrs"])


class Routing:
    """A netlink socket (pyroute2) for reading rules, routes, links and addresses.

    Changes to rules and routes go out in batches (:mod:`mwan.kernel.nlbatch`)
    on a second socket of the same network namespace.  An ``ipr`` handed in
    (the in-memory kernel of the tests) gets every request as its own call
    (``ipr.rule``/``ipr.route``) instead.
    """

    def __init__(self, ipr: IPRoute | None = None) -> None:
        self._batch = NetlinkBatch() if ipr is None else None
        self.ipr = ipr if ipr is not None else IPRoute()
        self._names: dict[int, str] = {}
        # what the last apply left (None: read the kernel next time); see forget()
        self._rules_cache: set[IpRule] | None = None
        self._routes_cache: RoutesKnown | None = None
        # desired routes the kernel refused in the last apply (device or gateway gone)
        self.refused: frozenset[Route] = frozenset()

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
        """name → {index, up (admin), carrier, operstate}; also learns the names of the
        ifindexes (one dump serves :meth:`facts` too: pyroute2 takes ~20 ms to decode one
        of 120 links)."""
        out = {}
        for link in self.ipr.get_links():
            name = link.get("IFLA_IFNAME")
            out[name] = {
                "index": link["index"],
                "up": bool(link["flags"] & 1),
                "carrier": bool(link.get("IFLA_CARRIER", 0)) and bool(link["flags"] & 0x10000),
                "operstate": link.get("IFLA_OPERSTATE"),
            }
        self._names = {v["index"]: k for k, v in out.items()}
        return out

    def _name(self, index: int | None) -> str | None:
        if index is None:
            return None
        if index not in self._names:
            self.devices()
        return self._names.get(index)

    def _ifindexes(self, names: Iterable[str]) -> dict[str, int]:
        """name → ifindex of those of ``names`` that exist."""
        if self._batch is None:
            return self.devices()
        out = {}
        for name in set(names):
            try:
                out[name] = socket.if_nametoindex(name)
            except OSError:  # no such device
                pass
        return out

    def _run(self, requests: list[Request]) -> list[NetlinkError | None]:
        """Send ``requests`` in order: the kernel's answer to each (None: done)."""
        if self._batch is not None:
            return self._batch.run(requests)
        out: list[NetlinkError | None] = []
        for kind, cmd, kw in requests:
            try:
                getattr(self.ipr, kind)(cmd, **kw)
                out.append(None)
            except NetlinkError as exc:
                out.append(exc)
        return out

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
                scope=msg["scope"], type=_route_type(msg["type"]), table=tbl,
            ))
        return out

    def read_addresses(self, names: dict[int, str] | None = None) -> list[AddrInfo]:
        """Every local address; ``names``: ifindex → name (else a dump of the links)."""
        out = []
        if names is None:
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

    def facts(self, lookup_tables: Iterable[int] = (),
              links: dict[str, dict[str, Any]] | None = None) -> KernelFacts:
        """The routes and addresses the plan needs; ``links``: what :meth:`links` just
        returned (else the links are dumped here, once)."""
        devices = {k: v["index"] for k, v in links.items()} if links is not None \
            else self.devices()
        self._names = {v: k for k, v in devices.items()}
        routes: list[RouteInfo] = []
        for fam in FAMILIES:
            routes += self.read_routes(fam, MAIN_TABLE)
            for t in lookup_tables:
                routes += self.read_routes(fam, t)
        return KernelFacts(routes=tuple(routes), addresses=tuple(self.read_addresses(
            dict(self._names))), devices=tuple(sorted(devices)))

    # ------------------------------------------------------------ rules
    def owned_rules(self) -> set[IpRule]:
        out = set()
        for fam, af in AF.items():
            for msg in self.ipr.get_rules(family=af):
                a = _attrs(msg)
                if a.get("FRA_PROTOCOL") != RTPROT_MWAN:
                    continue
                action = ACTION_OF.get(msg["action"])
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

    @property
    def remembered(self) -> tuple[frozenset[IpRule] | None, RoutesKnown | None]:
        """What the next apply takes the kernel to hold: mwan's rules, and (tables, routes)
        (None: it reads the kernel)."""
        rules = self._rules_cache
        return (None if rules is None else frozenset(rules)), self._routes_cache

    def forget(self) -> None:
        """Drop what was remembered of mwan's rules and routes; the next apply re-reads them."""
        self._rules_cache = None
        self._routes_cache = None

    def apply_rules(self, desired: Iterable[IpRule]) -> int:
        """Make mwan's rules equal ``desired``; returns changes made.

        A failing command raises, and the next apply re-reads the kernel.
        """
        want = set(desired)
        have = self._rules_cache if self._rules_cache is not None else self.owned_rules()
        self._rules_cache = None  # unknown until every command went through
        ops = rule_ops(want, have)
        answers = self._run([("rule", op, rule_request(r)) for op, r in ops])
        for (op, _r), err in zip(ops, answers):
            if err is not None and (op != "del" or err.code != errno.ENOENT):  # already gone
                raise err
        self._rules_cache = want
        return len(ops)

    # ------------------------------------------------------------ routes
    def owned_routes(self, tables: Iterable[int]) -> set[Route]:
        """mwan's routes (proto 201) in ``tables``: one dump per family, filtered here."""
        return self._owned_routes(tables)[0]

    def _owned_routes(self, tables: Iterable[int]) -> tuple[set[Route], bool]:
        """(mwan's routes in ``tables``, whether every dump succeeded)."""
        wanted = set(tables)
        out: set[Route] = set()
        complete = True
        for fam in FAMILIES:
            try:
                msgs = self.ipr.get_routes(family=AF[fam])
            except NetlinkError as exc:
                complete &= exc.code == errno.EAFNOSUPPORT  # a kernel without IPv6
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
                    scope=msg["scope"], type=_route_type(msg["type"]),
                ))
        return out, complete

    def apply_routes(self, desired: Iterable[Route], tables: Iterable[int]) -> int:
        """Make mwan's routes in ``tables`` equal ``desired``; returns changes made.

        A route the kernel refuses (its device or gateway vanished meanwhile)
        is logged and listed in :attr:`refused`; the next netlink event brings
        a fresh plan.  A route that could not be deleted, or a dump that
        failed, raises :class:`RoutingError` once the other commands are done.
        What the kernel holds is remembered only when every command went
        through (or failed because the route was already gone).
        """
        want = normal_routes(desired)
        self.refused = frozenset()
        scope = set(tables) | {r.table for r in want}
        have = known_routes(self._routes_cache, scope)
        problems: list[str] = []
        if have is None:
            have, complete = self._owned_routes(scope)
            if not complete:
                problems.append("cannot read mwan's routes")
        self._routes_cache = None  # unknown until every command went through
        ops = route_ops(want, have)
        failed: set[Route] = set()
        changes = 0
        devices = self._ifindexes(r.dev for _op, r in ops if r.dev is not None) if ops else {}
        # a route through a device that does not exist is not sent: it fails here
        requests: dict[int, Request] = {}
        errors: dict[int, NetlinkError | RoutingError | None] = {}
        for n, (op, r) in enumerate(ops):
            try:
                requests[n] = ("route", op, route_request(r, devices))
            except RoutingError as exc:
                errors[n] = exc
        errors.update(zip(requests, self._run(list(requests.values()))))
        for n, (op, r) in enumerate(ops):
            err = errors[n]
            if err is not None:
                if op == "replace":
                    log.warning("cannot add route %s to table %d: %s", r.dst, r.table, err)
                    failed.add(r)
                    continue
                # a route through a device that is gone went with it
                if isinstance(err, RoutingError) or err.code in GONE:
                    log.debug("route %s already gone: %s", r, err)
                else:
                    problems.append(f"cannot delete route {r.dst} from table {r.table}: {err}")
            changes += 1
        self.refused = frozenset(failed)
        if problems:
            raise RoutingError("; ".join(problems))
        if not failed:
            self._routes_cache = (frozenset(scope), frozenset(want))
        return changes


def rule_request(r: IpRule) -> dict[str, Any]:
    """The keyword arguments of ``IPRoute.rule(cmd, ...)`` for rule ``r``."""
    kw: dict[str, Any] = {"family": AF[r.family], "priority": r.priority,
                          "protocol": RTPROT_MWAN, "action": RULE_ACTION[r.action]}
    if r.action == "lookup":
        kw["table"] = r.table
    if r.fwmark is not None:
        kw["fwmark"] = r.fwmark
        kw["fwmask"] = r.fwmask if r.fwmask is not None else 0xFFFFFFFF
    if r.iif is not None:
        kw["iifname"] = r.iif
    return kw


def route_request(r: Route, devices: dict[str, int]) -> dict[str, Any]:
    """The keyword arguments of ``IPRoute.route(cmd, ...)`` for route ``r``."""
    kw: dict[str, Any] = {"family": AF[r.family], "table": r.table, "dst": r.dst,
                          "proto": RTPROT_MWAN, "type": rt_type.get(r.type, rt_type["unicast"]),
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
    return kw


def _route_type(code: int) -> str:
    """rtm_type → its name ("unicast" for what pyroute2 has no name for)."""
    name = rt_type.get(code) if code else None
    return name if isinstance(name, str) else "unicast"
