"""The validated, immutable mwan3 configuration model, and its option tables.

Every option mwan3 documents is here with mwan3's default
(docs/architecture.md, mwan3 §1).  Each option is declared once, as a field of its section's
class: its kind (the typed parser, with its range), default, list or not,
one line of help and whether the web UI may change it (:mod:`.options`).
The validator, ``show-config``, the web form and the JSON schema read these
tables (:data:`SECTION_TABLES`); nothing else lists the options.

Values are already parsed: numbers are ints, addresses are :mod:`ipaddress`
objects, lists are tuples.  Only :mod:`mwan.config.validate` builds these;
everything after it may trust them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from .caps import Header, Period, Secret, Size, Url
from .options import (
    Address,
    Bool,
    Choice,
    Device,
    DnsName,
    Duration,
    EnumOf,
    Int,
    ListenAddress,
    MarkMask,
    Networks,
    PasswordHash,
    Ports,
    Proto,
    SetName,
    Spec,
    Text,
    opt,
    required,
    table,
)
from .values import FAMILIES, Family, InitialState, IPAddress, IPNetwork, PortRange

__all__ = ["Family", "IPAddress", "IPNetwork", "InitialState", "PortRange"]

TRACK_METHODS = ("ping", "arping", "httping", "nping-tcp", "nping-udp", "nping-icmp", "nping-arp",
                 "nslookup", "dns")
BALANCES = ("weight", "latency")
# the port a method probes when track_port is unset (httping with httping_ssl: 443)
TRACK_PORTS = {"httping": 80, "nping-tcp": 80, "nping-udp": 53, "nslookup": 53, "dns": 53}
HTTPS_PORT = 443
FLUSH_EVENTS = ("ifup", "ifdown", "connected", "disconnected")
LOG_LEVELS = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")
LAST_RESORTS = ("unreachable", "blackhole", "default")
SPECIAL_POLICIES = ("default", "unreachable", "blackhole")
DAY, MS = Int(1, 86400), Int(1, 1000000)
# data-cap events (issue 15): 75 % and 95 % of the cap, the cap reached, a new period
DATACAP_EVENTS = ("datacap_warn", "datacap_reached", "datacap_reset")
# what a notify section may ask for: every interface transition, flap hold-downs, data caps
# the quality window's warning level entered and left (issue 14)
QUALITY_EVENTS = ("degraded", "healthy")
# this router's VRRP role changed (config ha): ha_master, ha_backup, ha_fault, ha_stopped
HA_EVENTS = ("ha_master", "ha_backup", "ha_fault", "ha_stopped", "ha_unknown")
NOTIFY_EVENTS = ("ifup", "ifdown", "connected", "disconnected", "connecting", "disconnecting",
                 "dampened", "undampened", *DATACAP_EVENTS, *QUALITY_EVENTS, *HA_EVENTS)
TIMER = Duration(0.05, 86400)


@dataclass(frozen=True)
class Globals:
    mmx_mask: int = opt(MarkMask(), 0x3F00, "the fwmark bits mwan owns (hex, 3 to 14 bits)")
    logging: bool = opt(Bool(), False, "log packets of rules that set logging")
    loglevel: str = opt(Choice(LOG_LEVELS), "notice", "the level of those log lines")
    rt_table_lookup: tuple[int, ...] = opt(
        Int(1, 0xFFFFFFFF), (), "extra routing tables whose routes bypass the policies",
        is_list=True)
    source_routing: bool = opt(Bool(), False, "keep 'from' selectors on copied default routes")
    # accepted for compatibility, ignored (deprecated in mwan3 itself)
    local_source: str | None = opt(Text(), None, "ignored (removed in mwan3 2.7)",
                                   deprecated="deprecated and ignored since mwan3 2.7")
    rtmon_interval: int | None = opt(
        Int(0), None, "ignored (routes are followed by netlink events)",
        deprecated="deprecated and ignored: routes are followed by netlink events")
    # mwan additions
    user_script: str = opt(Text(), "/etc/mwan3.user", "the hotplug script run on each event",
                           web=False)
    # the web UI / JSON API / metrics (off unless web_enabled)
    web_enabled: bool = opt(Bool(), False, "serve the web UI, JSON API and metrics")
    web_listen: tuple[str, ...] = opt(ListenAddress(), ("127.0.0.1",),
                                      "addresses the web UI listens on", is_list=True)
    web_port: int = opt(Int(1, 65535), 8086, "the web UI's TCP port")
    web_password_hash: str | None = opt(PasswordHash(), None,
                                        "set with 'mwan3 web-password'", web=False)
    web_cert: str | None = opt(Text(), None, "TLS certificate file (with web_key)", web=False)
    web_key: str | None = opt(Text(), None, "TLS private key file (with web_cert)", web=False)
    # notifications and per-WAN usage (issue 15)
    router_name: str | None = opt(Text(), None, "the router's name in notifications "
                                  "(default: the hostname)")
    state_dir: str = opt(Text(), "/var/lib/mwan", "where per-WAN usage is kept across "
                         "restarts", web=False)
    line: int = 0


@dataclass(frozen=True)
class Interface:
    name: str
    id: int  # 1-based position among all interface sections (mwan3 compatible)
    device: str = required(Device(), "the Linux device (default: from the network config, "
                           "else the section name)")
    enabled: bool = opt(Bool(), False, "track and use this interface")
    family: Family = opt(Choice(FAMILIES), "ipv4", "the address family")
    gateway: IPAddress | None = opt(Address(), None, "next hop (default: the main table's "
                                    "default route via the device)")
    track_ip: tuple[IPAddress, ...] = opt(Address(), (), "targets probed each round (none: "
                                          "online while the device is up)", is_list=True)
    track_method: str = opt(Choice(TRACK_METHODS), "ping", "how targets are probed")
    httping_ssl: bool = opt(Bool(), False, "httping over https")
    track_port: int | None = opt(Int(1, 65535), None, "port for httping and nping-tcp/-udp "
                                 "(default: 80, 443 with httping_ssl, 53 for udp)")
    reliability: int = opt(Int(1, 100), 1, "targets that must answer for a good round")
    count: int = opt(Int(1, 100), 1, "probes per target per round")
    # the timers take fractions and milliseconds too ('0.2', '200ms'): a mwan extension
    timeout: float = opt(Duration(0.01, 60), 4, "seconds to wait for an answer")
    interval: float = opt(TIMER, 10, "seconds between rounds while steady")
    failure_interval: float = opt(TIMER, 10, "seconds between rounds while going down",
                                  default_from="interval")
    recovery_interval: float = opt(TIMER, 10, "seconds between rounds while coming up",
                                   default_from="interval")
    keep_failure_interval: bool = opt(Bool(), False, "keep failure_interval while offline")
    check_quality: bool = opt(Bool(), False, "judge targets by latency and loss too")
    failure_latency: int = opt(MS, 1000, "ms above which a target fails (check_quality)")
    recovery_latency: int = opt(MS, 500, "ms below which a target recovers (check_quality)")
    failure_loss: int = opt(Int(0, 100), 40, "% loss above which a target fails")
    recovery_loss: int = opt(Int(0, 100), 10, "% loss below which a target recovers")
    initial_state: InitialState = opt(EnumOf(InitialState), InitialState.ONLINE,
                                      "the state before the first verdict")
    max_ttl: int = opt(Int(1, 255), 60, "ping's TTL")
    size: int = opt(Int(1, 65507), 56, "ping's payload bytes")
    up: int = opt(Int(1, 1000), 5, "good rounds in a row to come online")
    down: int = opt(Int(1, 1000), 5, "failed rounds in a row to go offline")
    flush_conntrack: tuple[str, ...] = opt(Choice(FLUSH_EVENTS), (), "events that flush the "
                                           "interface's conntrack entries", is_list=True)
    # quality windows and levels, DNS probes, passive suspicion (mwan additions, issue 14)
    quality_window: float = opt(Duration(1, 3600), 60, "seconds of probes the latency, jitter "
                                "and loss window holds")
    warn_latency: int | None = opt(MS, None, "windowed latency (ms) at which the interface "
                                   "is degraded (unset: off)")
    warn_latency_recovery: int | None = opt(MS, None, "ms below which it is healthy again "
                                            "(default: 80% of warn_latency)")
    warn_jitter: int | None = opt(MS, None, "windowed jitter (ms, stddev) at which the "
                                  "interface is degraded (unset: off)")
    warn_jitter_recovery: int | None = opt(MS, None, "ms below which it is healthy again "
                                           "(default: 80% of warn_jitter)")
    warn_loss: int | None = opt(Int(1, 100), None, "windowed loss (%) at which the interface "
                                "is degraded (unset: off)")
    warn_loss_recovery: int | None = opt(Int(0, 100), None, "% below which it is healthy "
                                         "again (default: half of warn_loss)")
    down_latency: int | None = opt(MS, None, "windowed latency (ms) at which rounds fail "
                                   "(unset: off)")
    down_latency_recovery: int | None = opt(MS, None, "ms below which rounds count again "
                                            "(default: 80% of down_latency)")
    down_loss: int | None = opt(Int(1, 100), None, "windowed loss (%) at which rounds fail "
                                "(unset: off)")
    down_loss_recovery: int | None = opt(Int(0, 100), None, "% below which rounds count "
                                         "again (default: half of down_loss)")
    track_dns_name: str = opt(DnsName(), ".", "the name nslookup/dns probes ask for")
    track_passive: bool = opt(Bool(), False, "probe at once when new TCP connections through "
                              "the interface go unanswered")
    # flap dampening (mwan additions; off unless flap_threshold > 0)
    flap_threshold: int = opt(Int(0, 1000), 0, "flaps within flap_window that hold the "
                              "interface down (0: off)")
    flap_window: int = opt(DAY, 60, "seconds in which flaps are counted")
    flap_holddown: int = opt(DAY, 120, "seconds a flapping interface is held down")
    # data caps (mwan additions, issue 15; off unless data_cap is set)
    data_cap: int | None = opt(Size(), None, "bytes in+out per period (500M, 20G, 1.5T)")
    data_cap_period: str = opt(Period(), "monthly 1", "daily, weekly [mon..sun] or "
                               "monthly [day 1..31]")
    data_cap_action: str = opt(Choice(("warn", "standby")), "warn", "at the cap: warn, or "
                               "standby (unused while another member is online)")
    idle_interval: int | None = opt(DAY, None, "seconds between rounds while online and no "
                                    "traffic uses it (default: interval)")
    line: int = 0

    @property
    def tracked(self) -> bool:
        return bool(self.track_ip)


@dataclass(frozen=True)
class Member:
    name: str
    interface: str = required(Text(), "the interface section this member uses")
    metric: int = opt(Int(1, 256), 1, "tier: the lowest metric online is used")
    weight: int = opt(Int(1, 1000), 1, "share of traffic within its tier")
    line: int = 0


@dataclass(frozen=True)
class Policy:
    name: str
    use_member: tuple[str, ...] = opt(Text(), (), "the members, in order", is_list=True)
    last_resort: str = opt(Choice(LAST_RESORTS), "unreachable",
                           "when no member is online")
    # quality-aware choice (mwan additions, issue 14; default: mwan3's weights)
    balance: str = opt(Choice(BALANCES), "weight", "weight: mwan3's shares; latency: the "
                       "tier's member with the lowest windowed latency")
    latency_margin: int = opt(Int(0, 100000), 20, "ms another member must be faster by "
                              "before balance latency switches")
    latency_margin_pct: int = opt(Int(0, 1000), 20, "% another member must be faster by "
                                  "before balance latency switches")
    avoid_degraded: bool = opt(Bool(), False, "a degraded member gets new connections only "
                               "when no healthy member of its tier is online")
    # failback control (mwan addition, issue 15; daemon/failback)
    failback: str = opt(Choice(("keep", "move")), "keep", "when a preferred member is back: "
                        "keep connections, or move them (conntrack)")
    line: int = 0


@dataclass(frozen=True)
class Rule:
    name: str
    use_policy: str = required(Text(), "a policy, or default, unreachable, blackhole")
    src_ip: tuple[IPNetwork, ...] = opt(Networks(), (), "source addresses/CIDRs")
    src_port: tuple[PortRange, ...] = opt(Ports(), (), "source ports (tcp, udp)")
    proto: str = opt(Proto(), "all", "all, a protocol name or number")
    dest_ip: tuple[IPNetwork, ...] = opt(Networks(), (), "destination addresses/CIDRs")
    dest_port: tuple[PortRange, ...] = opt(Ports(), (), "destination ports (tcp, udp)")
    ipset: str | None = opt(SetName(), None, "a set of destinations (not one of mwan's)")
    sticky: bool = opt(Bool(), False, "keep each source on the WAN it first used")
    timeout: int = opt(MS, 600, "seconds a sticky source stays")
    family: Literal["ipv4", "ipv6", "any"] = opt(Choice(("ipv4", "ipv6", "any")), "any",
                                                 "the address family")
    logging: bool = opt(Bool(), False, "log matching packets (with globals logging)")
    src_iface: str | None = opt(Text(), None, "incoming interface (any network config "
                                "interface)")
    src_device: str | None = None  # src_iface's Linux device (validate resolves it)
    line: int = 0

    def families(self) -> tuple[Family, ...]:
        """The address families this rule applies to.

        An explicit family wins; with ``any`` a rule that names addresses of
        only one family applies to that family alone (as mwan3 drops the
        other family's pass).
        """
        candidates: tuple[Family, ...] = (
            FAMILIES if self.family == "any" else (self.family,))
        fams: list[Family] = []
        for fam in candidates:
            version = 4 if fam == "ipv4" else 6
            # every address option that is set must name this family
            if all(any(n.version == version for n in nets)
                   for nets in (self.src_ip, self.dest_ip) if nets):
                fams.append(fam)
        return tuple(fams)


@dataclass(frozen=True)
class VirtualAddress:
    """One VRRP virtual address: ``DEVICE ADDRESS/LEN`` of ``config ha``'s virtual_address."""

    device: str
    address: IPAddress
    plen: int

    def __str__(self) -> str:
        return f"{self.device} {self.address}/{self.plen}"


@dataclass(frozen=True)
class Ha:
    """``config ha``: this router's half of a keepalived (VRRP) + conntrackd pair (mwan.ha)."""

    name: str
    sync_device: str = required(Device(), "the dedicated link to the peer (conntrackd)")
    sync_address: IPAddress = required(Address(), "this router's address on the sync link")
    peer: IPAddress = required(Address(), "the peer's address on the sync link")
    enabled: bool = opt(Bool(), True, "this router is one of an HA pair")
    router_id: str = opt(Text(), "mwan", "this router's name in keepalived's config")
    priority: int = opt(Int(1, 254), 100, "VRRP priority; the higher one starts as master")
    advert_int: float = opt(Duration(0.01, 255), 1, "seconds between VRRP adverts (below 1: "
                            "VRRPv3 centiseconds)")
    preempt: bool = opt(Bool(), False, "take the master role back on return (off: as pfSense)")
    vrid: int = opt(Int(1, 255), 51, "VRRP router id of the first virtual address (then +1)")
    virtual_address: tuple[str, ...] = opt(Text(), (), "'DEVICE ADDRESS/LEN' moved by VRRP: "
                                           "the LAN gateway, each WAN's SNAT address",
                                           is_list=True)
    sync_prefix: int = opt(Int(8, 32), 30, "the sync link's prefix length")
    run_dir: str = opt(Text(), "/run/mwan3-ha", "pid, lock, socket and role files of "
                       "keepalived and conntrackd", web=False)
    conf_dir: str = opt(Text(), "/etc/mwan3/ha", "where 'mwan3 ha-config' writes", web=False)
    vips: tuple[VirtualAddress, ...] = ()  # virtual_address parsed (validate)
    line: int = 0


@dataclass(frozen=True)
class Notify:
    """A webhook that gets each event as one JSON POST (issue 15)."""

    name: str
    url: str = required(Url(), "the http(s) URL each event is POSTed to")
    header: tuple[str, ...] = opt(Header(), (), "extra headers 'Name: value'", is_list=True)
    secret: str | None = opt(Secret(), None, "signs the body: X-Mwan-Signature is its "
                             "HMAC-SHA256", web=False)
    event: tuple[str, ...] = opt(Choice(NOTIFY_EVENTS), (), "the events sent (none: all)",
                                 is_list=True)
    timeout: int = opt(Int(1, 60), 5, "seconds one delivery attempt may take")
    retries: int = opt(Int(0, 10), 3, "attempts after a failed one (backoff 1, 2, 4... s)")
    line: int = 0

    def wants(self, event: str) -> bool:
        return not self.event or event in self.event


@dataclass(frozen=True)
class Config:
    path: str
    globals: Globals = field(default_factory=Globals)
    interfaces: tuple[Interface, ...] = ()
    members: tuple[Member, ...] = ()
    policies: tuple[Policy, ...] = ()
    rules: tuple[Rule, ...] = ()
    warnings: tuple[str, ...] = ()
    notifies: tuple[Notify, ...] = ()
    ha: Ha | None = None  # config ha (None: one router, nothing of HA)

    def interface(self, name: str) -> Interface:
        return self._by_name[0][name]

    def member(self, name: str) -> Member:
        return self._by_name[1][name]

    def policy(self, name: str) -> Policy:
        return self._by_name[2][name]

    @cached_property
    def _by_name(self) -> tuple[dict[str, Interface], dict[str, Member], dict[str, Policy]]:
        """Interfaces, members and policies by name (the first of a name, as the scans
        these replaced found; a compile of 1,000 rules asks thousands of times)."""
        def first(items: tuple[Any, ...]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for x in items:
                out.setdefault(x.name, x)
            return out
        return first(self.interfaces), first(self.members), first(self.policies)

    @property
    def enabled_interfaces(self) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.enabled)

SECTION_CLASSES: dict[str, type] = {
    "notify": Notify,
    "globals": Globals, "interface": Interface, "member": Member, "policy": Policy,
    "rule": Rule, "ha": Ha,
}
# each section type's options (name, kind, default, list or not, help, web), in file order
SECTION_TABLES: dict[str, tuple[Spec, ...]] = {
    stype: table(cls) for stype, cls in SECTION_CLASSES.items()}
# options the web UI shows but may not change (a program or file root runs or reads, a secret)
ROOT_ONLY = frozenset(s.name for specs in SECTION_TABLES.values() for s in specs if not s.web)
