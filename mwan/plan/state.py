"""The values that flow into and out of the planner.

Inputs: what is known about each interface right now (:class:`IfaceRuntime`)
and the routes/addresses read from the kernel (:class:`KernelFacts`).
Output: :class:`Desired`, the complete kernel state mwan wants: one nftables
table, the ip rules and the routes of each WAN table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ..config import values

Family = values.Family  # one definition, in config/values

TABLE_FAMILY = "inet"
TABLE_NAME = "mwan"
# rtm_protocol / FRA_PROTOCOL value that marks ip rules and routes as ours
RTPROT_MWAN = 201


@dataclass(frozen=True)
class RouteInfo:
    """One route as read from the kernel (main table or an rt_table_lookup table)."""

    family: Family
    dst: str  # "default" or a CIDR
    dev: str | None = None
    gateway: str | None = None
    prefsrc: str | None = None
    metric: int | None = None
    scope: int = 0  # RT_SCOPE_UNIVERSE=0, LINK=253, HOST=254
    type: str = "unicast"  # unicast, unreachable, blackhole, prohibit, local
    table: int = 254

    @property
    def is_default(self) -> bool:
        return self.dst == "default"


@dataclass(frozen=True)
class AddrInfo:
    family: Family
    address: str
    prefixlen: int
    dev: str


@dataclass(frozen=True)
class IfaceRuntime:
    """What the daemon knows about one configured interface right now.

    ``up``: its device exists with carrier and the interface was not taken
    down by ``mwan3 ifdown`` (mwan3's netifd ifup state).  ``online``: the
    tracker (or ``initial_state`` / ``mwan3 ifup``) says it carries traffic;
    only online interfaces are used by policies.
    """

    name: str
    up: bool = False
    online: bool = False
    gateway: str | None = None
    addresses: tuple[str, ...] = ()
    standby: bool = False  # over a data cap with data_cap_action standby (issue 15)
    # quality (issue 14): the window's warning level, its average latency, and the
    # policies with ``balance latency`` that picked this interface last (their hysteresis)
    degraded: bool = False
    latency_ms: float | None = None
    latency_pick: tuple[str, ...] = ()


@dataclass(frozen=True)
class KernelFacts:
    """Routes and addresses the plan copies or turns into the bypass sets."""

    routes: tuple[RouteInfo, ...] = ()  # main table and rt_table_lookup tables
    addresses: tuple[AddrInfo, ...] = ()  # every local address
    devices: tuple[str, ...] = ()  # devices that exist


@dataclass(frozen=True)
class NftSet:
    """A named set (or map) in the table.

    ``elements`` is None for sets whose contents belong to the kernel side
    (user ``ipset`` sets filled by dnsmasq, sticky maps): the applier creates
    them if missing and never touches their elements.
    """

    name: str
    type: str | tuple[str, ...]  # "ipv4_addr", "ipv6_addr"; a tuple: a concatenation
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    elements: tuple[Any, ...] | None = ()
    comment: str | None = None
    map: str | None = None  # a map's data type ("verdict"); None: a set
    counter: bool = False  # each element counts its packets and bytes

    def definition(self) -> dict[str, Any]:
        d: dict[str, Any] = {"family": TABLE_FAMILY, "table": TABLE_NAME, "name": self.name,
                             "type": list(self.type) if isinstance(self.type, tuple)
                             else self.type}
        if self.map is not None:
            d["map"] = self.map
        if self.flags:
            d["flags"] = list(self.flags)
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.counter:
            d["stmt"] = [{"counter": None}]
        return d

    def shape(self) -> tuple[str | tuple[str, ...], tuple[str, ...], int | None, str | None,
                             bool]:
        """What cannot change in place (a change means delete and re-create)."""
        return (self.type, tuple(sorted(self.flags)), self.timeout, self.map, self.counter)


@dataclass(frozen=True)
class NftChain:
    name: str
    rules: tuple[tuple[Any, ...], ...] = ()  # each rule: a tuple of JSON statements
    hook: str | None = None  # "prerouting", "output"
    chain_type: str = "filter"  # "filter" or "route"
    priority: int = 0
    comments: tuple[str | None, ...] = ()  # per rule, parallel to rules

    def definition(self) -> dict[str, Any]:
        d: dict[str, Any] = {"family": TABLE_FAMILY, "table": TABLE_NAME, "name": self.name}
        if self.hook is not None:
            d.update(type=self.chain_type, hook=self.hook, prio=self.priority, policy="accept")
        return d

    def digest(self) -> str:
        return json.dumps([self.definition(), self.rules, self.comments], sort_keys=True,
                          default=str)


@dataclass(frozen=True)
class NftTable:
    sets: tuple[NftSet, ...] = ()
    chains: tuple[NftChain, ...] = ()


@dataclass(frozen=True, order=True)
class IpRule:
    priority: int
    family: Family
    action: Literal["lookup", "unreachable", "blackhole"]
    table: int | None = None  # for lookup (254 = main)
    fwmark: int | None = None
    fwmask: int | None = None
    iif: str | None = None


@dataclass(frozen=True, order=True)
class Route:
    table: int
    family: Family
    dst: str  # "default" or CIDR
    dev: str | None = None
    gateway: str | None = None
    prefsrc: str | None = None
    metric: int | None = None
    scope: int = 0
    type: str = "unicast"


@dataclass(frozen=True)
class Desired:
    """Everything mwan wants in the kernel at one moment."""

    nft: NftTable
    rules: tuple[IpRule, ...]
    routes: tuple[Route, ...]
    tables: tuple[int, ...] = ()  # WAN table ids mwan owns routes in
