"""The classifier as data: ordered steps, each a few matches and one verdict. Pure.

How a new connection is classified is written once, here, and read twice:
:mod:`mwan.plan.nftexpr` renders each step to one nft rule (the ``classify``,
``classify_out`` and ``rules`` chains of plan/compile.py), and
:func:`walk` evaluates the same steps against one connection for ``mwan3
explain``.  A step whose matches all hold takes its verdict; otherwise the
next step is tried, as nft does.

``classify`` (forwarded and inbound traffic): inbound on a WAN → that WAN
(unless from a connected source: main); to a connected, custom or dynamic
network → main; from a WAN's own address → that WAN; then the user rules.
``classify_out`` (the router's own): the bypass sets, the user rules, and
only then the WAN-source match (a router-originated packet always carries
some WAN's address, chosen by main's route).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from ..config.fields import PROTO_NUMBERS
from ..config.marks import MarkSpace
from ..config.model import SPECIAL_POLICIES, Config, Interface, IPAddress, IPNetwork, PortRange
from ..config.model import Rule as UserRule
from .names import BYPASS_SETS, FAMILIES, NFT_LOG_LEVEL, SUFFIX, user_set
from .state import Family, IfaceRuntime

Field = Literal["saddr", "daddr"]


# ---------------------------------------------------------------- matches

@dataclass(frozen=True)
class IsFamily:
    """``meta nfproto F``."""
    family: Family


@dataclass(frozen=True)
class Iif:
    """``meta iifname "DEV"``: arrived on this device."""
    device: str


@dataclass(frozen=True)
class IifIn:
    """``meta iifname { DEV, … }``."""
    devices: tuple[str, ...]


@dataclass(frozen=True)
class Addr:
    """``ip saddr NET`` / ``ip6 daddr { NET, … }``: collapsed networks of one family."""
    field: Field
    family: Family
    nets: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class InSet:
    """``ip daddr @SET``: in one of the table's address sets."""
    field: Field
    family: Family
    set: str


@dataclass(frozen=True)
class Ports:
    """``tcp dport { 80, 8000-8100 }`` (implies that protocol)."""
    proto: Literal["tcp", "udp"]
    field: Literal["sport", "dport"]
    ranges: tuple[PortRange, ...]


@dataclass(frozen=True)
class L4Proto:
    """``meta l4proto N``."""
    number: int


@dataclass(frozen=True)
class Decided:
    """``meta mark & MASK != 0``: an earlier step already chose."""
    mask: int


Match = IsFamily | Iif | IifIn | Addr | InSet | Ports | L4Proto | Decided


# ---------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class Mark:
    """Use interface id ``ident`` (or a reserved id: default, blackhole, unreachable)."""
    ident: int


@dataclass(frozen=True)
class ToPolicy:
    policy: str
    family: Family


@dataclass(frozen=True)
class ToSticky:
    """A sticky rule: its source's recent WAN if still online, else the policy."""
    rule: str
    policy: str
    family: Family


@dataclass(frozen=True)
class ByIif:
    """A verdict map on the arriving device: device → interface id."""
    pairs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BySource:
    """A verdict map on the source address: address → interface id."""
    family: Family
    pairs: tuple[tuple[str, int], ...]


KeyField = Literal["iif", "saddr", "daddr", "l4proto", "sport", "dport"]
KeyValue = str | IPNetwork | int | PortRange  # a device, a network, a protocol, a port range


@dataclass(frozen=True)
class Entry:
    """One rule in a :class:`Lookup`: for each key field, the values it takes."""
    values: tuple[tuple[KeyValue, ...], ...]
    decision: Decision
    rule: str


@dataclass(frozen=True)
class Lookup:
    """A verdict map over a run of rules (:mod:`mwan.plan.group`): key → decision.

    Its entries never overlap, so which one a packet finds does not depend on
    their order; the map is named ``name`` and counts per element.
    """
    name: str
    family: Family
    fields: tuple[KeyField, ...]
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Goto:
    """Continue in another classifier chain; its end ends this one too."""
    chain: str


@dataclass(frozen=True)
class Jump:
    """Walk another classifier chain and come back if it decided nothing."""
    chain: str


@dataclass(frozen=True)
class Return:
    pass


@dataclass(frozen=True)
class Log:
    """Log and go on (a rule's ``logging``)."""
    prefix: str
    level: str


Decision = Mark | ToPolicy | ToSticky
Verdict = Decision | ByIif | BySource | Lookup | Goto | Jump | Return | Log

# why a step is there (explain phrases its answer from it)
Kind = Literal["inbound_connected", "inbound", "connected", "custom", "dynamic", "source",
               "rules", "decided", "rule", "log", "group"]


@dataclass(frozen=True)
class Step:
    matches: tuple[Match, ...]
    verdict: Verdict
    kind: Kind
    rule: str | None = None  # the user rule of a "rule"/"log" step
    counter: bool = False
    comment: str | None = None


Chains = Mapping[str, tuple[Step, ...]]


# ---------------------------------------------------------------- the steps

def up_interfaces(cfg: Config, runtime: Mapping[str, IfaceRuntime]) -> list[Interface]:
    return [i for i in cfg.enabled_interfaces
            if (rt := runtime.get(i.name)) is not None and rt.up]


def entry_steps(cfg: Config, space: MarkSpace, runtime: Mapping[str, IfaceRuntime]
                ) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """The steps of ``classify`` and ``classify_out`` (they depend on which WANs are up)."""
    common: list[Step] = []
    inbound: list[Step] = []
    sources: list[Step] = []
    up = up_interfaces(cfg, runtime)
    default = Mark(space.default_id)
    for fam in FAMILIES:
        sfx = SUFFIX[fam]
        devs = [i for i in up if i.family == fam]
        if devs:
            names = tuple(sorted({i.device for i in devs}))
            inbound.append(Step((IsFamily(fam), IifIn(names),
                                 InSet("saddr", fam, f"connected_{sfx}")),
                                default, "inbound_connected"))
            inbound.append(Step((IsFamily(fam),), ByIif(tuple((i.device, i.id) for i in devs)),
                                "inbound"))
        for kind in BYPASS_SETS:
            common.append(Step((InSet("daddr", fam, f"{kind}_{sfx}"),), default,
                               cast(Kind, kind)))
        pairs: dict[str, int] = {}
        for i in devs:
            for a in runtime[i.name].addresses:
                pairs.setdefault(a, i.id)  # first interface wins
        if pairs:
            sources.append(Step((), BySource(fam, tuple(pairs.items())), "source"))
    classify = (*inbound, *common, *sources, Step((), Goto("rules"), "rules"))
    classify_out = (*common, Step((), Jump("rules"), "rules"),
                    Step((Decided(space.mask),), Return(), "decided"), *sources)
    return classify, classify_out


def collapsed(nets: Sequence[IPNetwork], version: int) -> tuple[IPNetwork, ...]:
    mine = [n for n in nets if n.version == version]
    return tuple(ipaddress.collapse_addresses(mine))  # type: ignore[type-var]


def proto_number(proto: str, family: Family) -> int | None:
    """A rule's (or connection's) protocol as a number; None for ``all``."""
    if proto == "icmp" and family == "ipv6":
        return 58
    if proto in PROTO_NUMBERS:
        return PROTO_NUMBERS[proto]
    return int(proto)


def rule_matches(rule: UserRule, family: Family) -> tuple[Match, ...]:
    """The matches of a user rule for one family."""
    version = 4 if family == "ipv4" else 6
    out: list[Match] = [IsFamily(family)]
    for field, nets in (("saddr", rule.src_ip), ("daddr", rule.dest_ip)):
        mine = collapsed(nets, version)
        if mine and not (len(mine) == 1 and mine[0].prefixlen == 0):
            out.append(Addr(field, family, mine))  # type: ignore[arg-type]
    if rule.src_iface is not None:
        if rule.src_device is None:
            raise ValueError(f"rule {rule.name}: src_iface {rule.src_iface!r} has no device "
                             "(rules are built by config.validate, which resolves it)")
        out.append(Iif(rule.src_device))
    if rule.ipset is not None:
        out.append(InSet("daddr", family, user_set(rule.ipset, family)))
    if rule.proto in ("tcp", "udp") and (rule.src_port or rule.dest_port):
        if rule.src_port:
            out.append(Ports(rule.proto, "sport", rule.src_port))  # type: ignore[arg-type]
        if rule.dest_port:
            out.append(Ports(rule.proto, "dport", rule.dest_port))  # type: ignore[arg-type]
    elif rule.proto != "all":
        num = proto_number(rule.proto, family)
        assert num is not None
        out.append(L4Proto(num))
    return tuple(out)


def rule_decision(space: MarkSpace, rule: UserRule, family: Family) -> Decision:
    if rule.use_policy in SPECIAL_POLICIES:
        return Mark({"default": space.default_id, "unreachable": space.unreachable_id,
                     "blackhole": space.blackhole_id}[rule.use_policy])
    if rule.sticky:
        return ToSticky(rule.name, rule.use_policy, family)
    return ToPolicy(rule.use_policy, family)


def rule_steps(cfg: Config, space: MarkSpace) -> tuple[Step, ...]:
    """The ``rules`` chain: each user rule per family, in order (first match wins)."""
    out: list[Step] = []
    level = NFT_LOG_LEVEL.get(cfg.globals.loglevel, cfg.globals.loglevel)
    for rule in cfg.rules:
        for fam in rule.families():
            matches = rule_matches(rule, fam)
            if cfg.globals.logging and rule.logging:
                out.append(Step(matches, Log(f"MWAN3({rule.name}) ", level), "log", rule.name,
                                comment=f"log {rule.name}"))
            out.append(Step(matches, rule_decision(space, rule, fam), "rule", rule.name,
                            counter=True, comment=rule.name))
    return tuple(out)


def classifier(cfg: Config, runtime: Mapping[str, IfaceRuntime]) -> dict[str, tuple[Step, ...]]:
    """Every classifier chain by name, as the compiler renders them."""
    space = MarkSpace(cfg.globals.mmx_mask)
    classify, classify_out = entry_steps(cfg, space, runtime)
    return {"classify": classify, "classify_out": classify_out,
            "rules": rule_steps(cfg, space)}


# ---------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class Packet:
    """The first packet of a new connection, as the classifier sees it."""
    family: Family
    src: IPAddress
    dst: IPAddress
    proto: int  # IP protocol number
    sport: int | None = None
    dport: int | None = None
    iif: str | None = None  # the device it arrived on; None: not known


# nft set name → its networks; a set missing here has contents that are not known
Contents = Mapping[str, Sequence[IPNetwork]]


def holds(m: Match, pkt: Packet, contents: Contents) -> bool | None:
    """Whether one match holds for the packet; None if that depends on what is not known."""
    if isinstance(m, IsFamily):
        return pkt.family == m.family
    if isinstance(m, (Iif, IifIn)):
        if pkt.iif is None:
            return None
        return pkt.iif == m.device if isinstance(m, Iif) else pkt.iif in m.devices
    if isinstance(m, (Addr, InSet)):
        if m.family != pkt.family:
            return False
        nets = m.nets if isinstance(m, Addr) else contents.get(m.set)
        if nets is None:
            return None
        a = pkt.src if m.field == "saddr" else pkt.dst
        return any(a in n for n in nets if n.version == a.version)
    if isinstance(m, Ports):
        port = pkt.sport if m.field == "sport" else pkt.dport
        if pkt.proto != PROTO_NUMBERS[m.proto] or port is None:
            return False
        return any(r.low <= port <= r.high for r in m.ranges)
    if isinstance(m, L4Proto):
        return pkt.proto == m.number
    return False  # Decided: a walk stops at the first decision


def key_value(f: KeyField, pkt: Packet) -> str | IPAddress | int | None:
    """The packet's value for one key field (None: it has none, e.g. no ports)."""
    if f == "iif":
        return pkt.iif
    if f == "saddr":
        return pkt.src
    if f == "daddr":
        return pkt.dst
    if f == "l4proto":
        return pkt.proto
    return pkt.sport if f == "sport" else pkt.dport


def value_holds(v: KeyValue, x: str | IPAddress | int) -> bool:
    if isinstance(v, str):
        return x == v
    if isinstance(v, PortRange):
        return isinstance(x, int) and v.low <= x <= v.high
    if isinstance(v, int):
        return x == v
    return not isinstance(x, (int, str)) and x.version == v.version and x in v


def entry_for(v: Lookup, pkt: Packet) -> Entry | None:
    """The entry of the map the packet finds (entries do not overlap), or None."""
    if pkt.family != v.family:
        return None
    got = [key_value(f, pkt) for f in v.fields]
    if any(x is None for x in got):
        return None
    for e in v.entries:
        if all(any(value_holds(val, x) for val in vals)  # type: ignore[arg-type]
               for vals, x in zip(e.values, got)):
            return e
    return None


def _lookup(v: ByIif | BySource, pkt: Packet) -> tuple[bool, int | None]:
    """(known, the id a verdict map gives the packet; None: no element for it)."""
    if isinstance(v, ByIif):
        if pkt.iif is None:
            return False, None
        return True, next((i for dev, i in v.pairs if dev == pkt.iif), None)
    if v.family != pkt.family:
        return True, None
    return True, next((i for a, i in v.pairs if ipaddress.ip_address(a) == pkt.src), None)


@dataclass(frozen=True)
class Outcome:
    """One step as the walk met it: did it apply (None: not known), and which match failed."""
    chain: str
    step: Step
    applied: bool | None
    failed: Match | None = None


@dataclass(frozen=True)
class Walk:
    outcomes: tuple[Outcome, ...]
    decision: Decision | None  # None: nothing chose (the main table decides)


def walk(chains: Chains, start: str, pkt: Packet, contents: Contents) -> Walk:
    """Follow the steps from chain ``start`` to the first decision, as nft would."""
    seen: list[Outcome] = []

    def run(chain: str) -> Decision | None:
        for step in chains[chain]:
            failed: Match | None = None
            applied: bool | None = True
            for m in step.matches:
                h = holds(m, pkt, contents)
                if h is not True:
                    failed, applied = m, h
                    if h is False:
                        break
            v = step.verdict
            if applied and isinstance(v, Lookup):
                e = entry_for(v, pkt)
                applied = e is not None
                if e is not None:
                    seen.append(Outcome(chain, step, True))
                    return e.decision
            if applied and isinstance(v, (ByIif, BySource)):
                known, ident = _lookup(v, pkt)
                applied = (ident is not None) if known else None
                v = Mark(ident) if ident is not None else v
            seen.append(Outcome(chain, step, applied, failed))
            if not applied or isinstance(v, Log):
                continue
            if isinstance(v, Return):
                return None
            if isinstance(v, Goto):
                return run(v.chain)
            if isinstance(v, Jump):
                d = run(v.chain)
                if d is not None:
                    return d
                continue
            if isinstance(v, (ByIif, BySource, Lookup)):
                continue
            return v
        return None

    decision = run(start)
    return Walk(tuple(seen), decision)
