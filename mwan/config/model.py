"""The validated, immutable mwan3 configuration model.

Every option mwan3 documents is here with mwan3's default (section 1 of the
mwan3 notes).  Values are already parsed: numbers are ints, addresses are
:mod:`ipaddress` objects, lists are tuples.  Only :mod:`mwan.config.validate`
builds these; everything after it may trust them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Family = Literal["ipv4", "ipv6"]

TRACK_METHODS = ("ping", "arping", "httping", "nping-tcp", "nping-udp", "nping-icmp", "nping-arp")
FLUSH_EVENTS = ("ifup", "ifdown", "connected", "disconnected")
LOG_LEVELS = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")
LAST_RESORTS = ("unreachable", "blackhole", "default")
SPECIAL_POLICIES = ("default", "unreachable", "blackhole")


class InitialState(str, Enum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Globals:
    mmx_mask: int = 0x3F00
    logging: bool = False
    loglevel: str = "notice"
    rt_table_lookup: tuple[int, ...] = ()
    source_routing: bool = False
    # accepted for compatibility, ignored (deprecated in mwan3 itself)
    local_source: str | None = None
    rtmon_interval: int | None = None
    # mwan additions
    user_script: str = "/etc/mwan3.user"
    # the web UI / JSON API / metrics (off unless web_enabled)
    web_enabled: bool = False
    web_listen: tuple[str, ...] = ("127.0.0.1",)
    web_port: int = 8086
    web_password_hash: str | None = None
    web_cert: str | None = None
    web_key: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Interface:
    name: str
    id: int  # 1-based position among all interface sections (mwan3 compatible)
    device: str
    enabled: bool = False
    family: Family = "ipv4"
    gateway: IPAddress | None = None
    track_ip: tuple[IPAddress, ...] = ()
    track_method: str = "ping"
    httping_ssl: bool = False
    track_port: int | None = None  # nping-tcp / nping-udp port (mwan addition)
    reliability: int = 1
    count: int = 1
    timeout: int = 4
    interval: int = 10
    failure_interval: int = 10  # defaults to interval
    recovery_interval: int = 10  # defaults to interval
    keep_failure_interval: bool = False
    check_quality: bool = False
    failure_latency: int = 1000
    recovery_latency: int = 500
    failure_loss: int = 40
    recovery_loss: int = 10
    initial_state: InitialState = InitialState.ONLINE
    max_ttl: int = 60
    size: int = 56
    up: int = 5
    down: int = 5
    flush_conntrack: tuple[str, ...] = ()
    # flap dampening (mwan additions; off unless flap_threshold > 0)
    flap_threshold: int = 0
    flap_window: int = 60
    flap_holddown: int = 120
    line: int = 0

    @property
    def tracked(self) -> bool:
        return bool(self.track_ip)


@dataclass(frozen=True)
class Member:
    name: str
    interface: str
    metric: int = 1
    weight: int = 1
    line: int = 0


@dataclass(frozen=True)
class Policy:
    name: str
    use_member: tuple[str, ...] = ()
    last_resort: str = "unreachable"
    line: int = 0


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Rule:
    name: str
    use_policy: str
    src_ip: tuple[IPNetwork, ...] = ()
    src_port: tuple[PortRange, ...] = ()
    proto: str = "all"  # "all", a protocol name, or a number as text
    dest_ip: tuple[IPNetwork, ...] = ()
    dest_port: tuple[PortRange, ...] = ()
    ipset: str | None = None
    sticky: bool = False
    timeout: int = 600
    family: Literal["ipv4", "ipv6", "any"] = "any"
    logging: bool = False
    src_iface: str | None = None
    src_device: str | None = None  # src_iface's Linux device (validate resolves it)
    line: int = 0

    def families(self) -> tuple[Family, ...]:
        """The address families this rule applies to.

        An explicit family wins; with ``any`` a rule that names addresses of
        only one family applies to that family alone (as mwan3 drops the
        other family's pass).
        """
        candidates: tuple[Family, ...] = (
            ("ipv4", "ipv6") if self.family == "any" else (self.family,))
        fams: list[Family] = []
        for fam in candidates:
            version = 4 if fam == "ipv4" else 6
            # every address option that is set must name this family
            if all(any(n.version == version for n in nets)
                   for nets in (self.src_ip, self.dest_ip) if nets):
                fams.append(fam)
        return tuple(fams)


@dataclass(frozen=True)
class Config:
    path: str
    globals: Globals = field(default_factory=Globals)
    interfaces: tuple[Interface, ...] = ()
    members: tuple[Member, ...] = ()
    policies: tuple[Policy, ...] = ()
    rules: tuple[Rule, ...] = ()
    warnings: tuple[str, ...] = ()

    def interface(self, name: str) -> Interface:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise KeyError(name)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def policy(self, name: str) -> Policy:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def enabled_interfaces(self) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.enabled)
