"""Where would a new connection go now?  The classifier's own steps, evaluated. Pure.

The steps are those the compiler renders to nft (:mod:`mwan.plan.classify`,
the ``classify`` chain: forwarded traffic): inbound on a WAN → that WAN;
to a connected or dynamic network → the main table; from a WAN's address →
that WAN; then the user rules top to bottom, first match wins; then the
main table.  Only the wording of each step is written here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.fields import device_name_problem, read_proto
from ..config.model import SPECIAL_POLICIES, Config, IPAddress, IPNetwork, Rule
from ..plan import classify as C
from ..plan.names import FAMILIES, MAIN_TABLE, SUFFIX, user_set
from ..plan.policy import choose
from ..plan.state import Family, IfaceRuntime, KernelFacts

PORT_PROTOS = ("tcp", "udp", "udplite", "sctp", "6", "17", "136", "132", "33")


def check_args(src: str, dst: str, proto: str, sport: object, dport: object) -> str:
    """The protocol, normalised, for a connection that can exist; ValueError saying what is not.

    Addresses of one family; a protocol as in a rule's ``proto`` but not
    ``all``; ports (whole numbers 1-65535) only with a protocol that has them.
    """
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version != b.version:
        raise ValueError(f"{src} and {dst} are not of one family")
    p = read_proto(proto)
    if p == "all":
        raise ValueError("a connection has one protocol, not 'all'")
    for name, port in (("sport", sport), ("dport", dport)):
        if port is None:
            continue
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise ValueError(f"{name} {port!r}: ports run from 1 to 65535")
        if p not in PORT_PROTOS:
            raise ValueError(f"{name}: protocol {p} has no ports")
    return p


def arriving_device(facts: KernelFacts | None, src: IPAddress) -> str | None:
    """The device a connection from ``src`` arrives on: that of main's most specific route back.

    Default routes do not count (a source out there could come in on any
    WAN), nor do the router's own addresses; None when not known.
    """
    if facts is None or any(ipaddress.ip_address(a.address) == src for a in facts.addresses):
        return None
    best: tuple[int, int, str] | None = None
    for r in facts.routes:
        if r.table != MAIN_TABLE or r.is_default or r.dev is None or r.type != "unicast":
            continue
        net = ipaddress.ip_network(r.dst, strict=False)
        if net.version == src.version and src in net:
            key = (-net.prefixlen, r.metric or 0, r.dev)
            best = key if best is None or key < best else best
    return best[2] if best is not None else None


def _networks(texts: Sequence[str], family: Family) -> list[IPNetwork]:
    nets = [ipaddress.ip_network(t, strict=False) for t in texts]
    return [n for n in nets if n.version == (4 if family == "ipv4" else 6)]


def set_contents(connected: Mapping[str, Sequence[str]],
                 ipsets: Mapping[str, Sequence[str]] | None,
                 dynamic: Mapping[str, Sequence[str]] | None) -> dict[str, list[IPNetwork]]:
    """The classifier's sets by nft name; one left out is not known (its match: no)."""
    out: dict[str, list[IPNetwork]] = {}
    for fam in FAMILIES:
        sfx = SUFFIX[fam]
        out[f"connected_{sfx}"] = _networks(connected.get(fam, []), fam)
        out[f"custom_{sfx}"] = []  # report.data.connected lists them with the connected ones
        if dynamic is not None:
            out[f"dynamic_{sfx}"] = _networks(dynamic.get(fam, []), fam)
        for name, members in (ipsets or {}).items():
            out[user_set(name, fam)] = _networks(members, fam)
    return out


def why_not(rule: Rule, pkt: C.Packet, proto: str, o: C.Outcome) -> str:
    """Why a rule's step did not apply to the connection, in the user's words."""
    m, src, dst = o.failed, pkt.src, pkt.dst
    if isinstance(m, C.IsFamily):
        return f"family {pkt.family} not in the rule's {'/'.join(rule.families())}"
    if isinstance(m, C.Addr):
        return (f"source {src} not in src_ip" if m.field == "saddr"
                else f"destination {dst} not in dest_ip")
    if isinstance(m, C.Iif):
        if pkt.iif is None:
            return (f"src_iface {rule.src_iface} is device {m.device}; the device this "
                    f"connection arrives on is not known")
        return f"arrives on {pkt.iif}, not {m.device} (src_iface {rule.src_iface})"
    if isinstance(m, C.InSet):
        if o.applied is None:
            return f"ipset {rule.ipset}: its contents are unknown"
        return f"destination {dst} not in ipset {rule.ipset}"
    if isinstance(m, C.Ports) and pkt.proto == C.proto_number(m.proto, pkt.family):
        return (f"source port {pkt.sport} not in src_port" if m.field == "sport"
                else f"destination port {pkt.dport} not in dest_port")
    return f"proto {proto} is not {rule.proto}"


def rule_lines(cfg: Config, pkt: C.Packet, proto: str, outcomes: Sequence[C.Outcome]
               ) -> list[str]:
    """One line per user rule the walk tried, in order (its step of this family decides)."""
    lines: list[str] = []
    tried: dict[str, list[C.Outcome]] = {}
    for o in outcomes:
        if o.step.kind == "rule" and o.step.rule is not None:
            tried.setdefault(o.step.rule, []).append(o)
    for name, outs in tried.items():
        rule = next(r for r in cfg.rules if r.name == name)
        mine = [o for o in outs if C.IsFamily(pkt.family) in o.step.matches] or outs
        if mine[0].applied:
            lines.append(f"rule {name}: matches -> policy {rule.use_policy}"
                         + (" (sticky: a source seen recently keeps its WAN)"
                            if rule.sticky else ""))
        else:
            lines.append(f"rule {name}: no ({why_not(rule, pkt, proto, mine[0])})")
    return lines


def entry_answer(cfg: Config, pkt: C.Packet, step: C.Step, ident: int
                 ) -> tuple[str, str, str]:
    """(step line, verdict, wan) of a decision taken before the user rules."""
    name = next((i.name for i in cfg.interfaces if i.id == ident), "default")
    if step.kind == "inbound_connected":
        line = f"arrives on WAN device {pkt.iif} from {pkt.src}, a connected network: main table"
        return line, "main table (connected network)", "default"
    if step.kind == "inbound":
        line = f"arrives on {pkt.iif}, {name}'s device: a connection from outside stays on it"
        return line, f"{name} (arrived on it)", name
    if step.kind == "dynamic":
        return (f"{pkt.dst} is in the dynamic set: main table", "main table (dynamic set)",
                "default")
    if step.kind == "source":
        return f"source {pkt.src} is {name}'s address", f"{name} (WAN source address)", name
    return (f"{pkt.dst} is in a connected network: main table",
            "main table (connected network)", "default")


def explain(cfg: Config, runtime: Mapping[str, IfaceRuntime], connected: Mapping[str, list[str]],
            src: str, dst: str, proto: str = "tcp", sport: int | None = None,
            dport: int | None = None, ipsets: Mapping[str, Sequence[str]] | None = None,
            *, iif: str | None = None, dynamic: Mapping[str, Sequence[str]] | None = None,
            facts: KernelFacts | None = None) -> dict[str, Any]:
    """The walk of a new forwarded connection through the classifier, and where it goes.

    ``connected``: the connected and custom networks per family (report.data.connected);
    ``ipsets``: the rules' ipset contents by ipset name; ``dynamic``: the
    ``dynamic_v4``/``dynamic_v6`` contents per family; ``iif``: the device the
    connection arrives on, else the one of main's route back to ``src`` in
    ``facts`` (:func:`arriving_device`).  What is not given is not known:
    its matches do not hold.
    """
    proto = check_args(src, dst, proto, sport, dport)
    if iif is not None and (not isinstance(iif, str) or device_name_problem(iif)):
        raise ValueError(f"iif {iif!r}: not a device name")
    family: Family = "ipv4" if ipaddress.ip_address(dst).version == 4 else "ipv6"
    conn = f"{proto} {src}{f':{sport}' if sport else ''} -> {dst}{f':{dport}' if dport else ''}"
    steps: list[str] = []
    result: dict[str, Any] = {"connection": conn, "family": family, "steps": steps,
                              "rule": None, "policy": None, "members": [], "wan": None}
    s = ipaddress.ip_address(src)
    number = C.proto_number(proto, family)
    assert number is not None  # check_args refuses "all"
    pkt = C.Packet(family, s, ipaddress.ip_address(dst), number, sport, dport,
                   iif if iif is not None else arriving_device(facts, s))
    w = C.walk(C.classifier(cfg, runtime), "classify", pkt,
               set_contents(connected, ipsets, dynamic))
    steps.extend(rule_lines(cfg, pkt, proto, w.outcomes))
    d, last = w.decision, (w.outcomes[-1] if w.outcomes else None)
    if d is None:
        steps.append("no rule matched")
        result.update(verdict="main table (no rule matched)", wan="default")
        return result
    assert last is not None and last.applied
    if last.step.kind != "rule":
        assert isinstance(d, C.Mark)
        line, verdict, wan = entry_answer(cfg, pkt, last.step, d.ident)
        steps.append(line)
        result.update(verdict=verdict, wan=wan)
        return result
    rule = next(r for r in cfg.rules if r.name == last.step.rule)
    result.update(rule=rule.name, policy=rule.use_policy)
    if rule.use_policy in SPECIAL_POLICIES:
        result.update(verdict=rule.use_policy, wan=rule.use_policy)
        return result
    choice = choose(cfg, cfg.policy(rule.use_policy), family, runtime)
    online = [n for n, rt in runtime.items() if rt.online]
    steps.append(f"online interfaces: {', '.join(online) or 'none'}")
    steps += [f"policy {choice.policy}: {note}" for note in choice.notes]
    if not choice.shares:
        result.update(verdict=f"last_resort {choice.last_resort} (no member online)",
                      wan=choice.last_resort)
        return result
    members = [{"interface": sh.interface, "percent": round(sh.percent, 1)}
               for sh in choice.shares]
    result["members"] = members
    if len(members) == 1:
        result.update(verdict=members[0]["interface"], wan=members[0]["interface"])
    else:
        result.update(verdict=", ".join(f"{m['interface']} {m['percent']:.0f}%"
                                        for m in members), wan="balanced")
    return result
