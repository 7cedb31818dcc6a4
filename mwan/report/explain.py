"""Where would a new connection go now?  The classifier's walk, in Python. Pure.

The same order as the compiled datapath (plan/compile.py): connected
networks go to the main table; traffic from a WAN's address uses that WAN;
then the user rules top to bottom, first match wins; then the main table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.fields import PROTO_NUMBERS, read_proto
from ..config.model import SPECIAL_POLICIES, Config, PortRange, Rule
from ..plan.policy import choose
from ..plan.state import IfaceRuntime
from .data import in_networks


def _proto_matches(rule: Rule, proto: str) -> bool:
    if rule.proto == "all":
        return True
    want = PROTO_NUMBERS.get(str(rule.proto), rule.proto)
    have = PROTO_NUMBERS.get(proto, proto)
    return str(want) == str(have)


def _port_in(port: int | None, ranges: Sequence[PortRange]) -> bool:
    if not ranges:
        return True
    if port is None:
        return False
    return any(r.low <= port <= r.high for r in ranges)


def rule_matches(rule: Rule, family: str, src: str, dst: str, proto: str,
                 sport: int | None, dport: int | None,
                 ipsets: Mapping[str, Sequence[str]] | None = None) -> tuple[bool, str]:
    """(matches, why not).  ``ipsets``: the contents of the rules' ipset sets, by set name."""
    if family not in rule.families():
        return False, f"family {family} not in the rule's {'/'.join(rule.families())}"
    if not _proto_matches(rule, proto):
        return False, f"proto {proto} is not {rule.proto}"
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if rule.src_ip and not any(s in n for n in rule.src_ip if n.version == s.version):
        return False, f"source {src} not in src_ip"
    if rule.dest_ip and not any(d in n for n in rule.dest_ip if n.version == d.version):
        return False, f"destination {dst} not in dest_ip"
    if not _port_in(sport, rule.src_port):
        return False, f"source port {sport} not in src_port"
    if not _port_in(dport, rule.dest_port):
        return False, f"destination port {dport} not in dest_port"
    if rule.ipset:
        members = (ipsets or {}).get(rule.ipset)
        if members is None:
            return False, f"ipset {rule.ipset}: its contents are unknown"
        if not in_networks(dst, list(members)):
            return False, f"destination {dst} not in ipset {rule.ipset}"
    return True, ""


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


def explain(cfg: Config, runtime: Mapping[str, IfaceRuntime], connected: Mapping[str, list[str]],
            src: str, dst: str, proto: str = "tcp", sport: int | None = None,
            dport: int | None = None, ipsets: Mapping[str, Sequence[str]] | None = None
            ) -> dict[str, Any]:
    proto = check_args(src, dst, proto, sport, dport)
    family = "ipv4" if ipaddress.ip_address(dst).version == 4 else "ipv6"
    conn = f"{proto} {src}{f':{sport}' if sport else ''} -> {dst}{f':{dport}' if dport else ''}"
    steps: list[str] = []
    result: dict[str, Any] = {"connection": conn, "family": family, "steps": steps,
                              "rule": None, "policy": None, "members": [], "wan": None}
    if in_networks(dst, connected.get(family, [])):
        steps.append(f"{dst} is in a connected network: main table")
        result.update(verdict="main table (connected network)", wan="default")
        return result
    for name, rt in runtime.items():
        if src in rt.addresses:
            steps.append(f"source {src} is {name}'s address")
            result.update(verdict=f"{name} (WAN source address)", wan=name)
            return result
    for rule in cfg.rules:
        ok, why = rule_matches(rule, family, src, dst, proto, sport, dport, ipsets)
        if not ok:
            steps.append(f"rule {rule.name}: no ({why})")
            continue
        steps.append(f"rule {rule.name}: matches -> policy {rule.use_policy}"
                     + (" (sticky: a source seen recently keeps its WAN)" if rule.sticky else ""))
        result.update(rule=rule.name, policy=rule.use_policy)
        if rule.use_policy in SPECIAL_POLICIES:
            result.update(verdict=rule.use_policy, wan=rule.use_policy)
            return result
        choice = choose(cfg, cfg.policy(rule.use_policy), family, runtime)  # type: ignore[arg-type]
        online = [n for n, rt in runtime.items() if rt.online]
        steps.append(f"online interfaces: {', '.join(online) or 'none'}")
        if not choice.shares:
            result.update(verdict=f"last_resort {choice.last_resort} (no member online)",
                          wan=choice.last_resort)
            return result
        members = [{"interface": s.interface, "percent": round(s.percent, 1)}
                   for s in choice.shares]
        result["members"] = members
        if len(members) == 1:
            result.update(verdict=members[0]["interface"], wan=members[0]["interface"])
        else:
            result.update(verdict=", ".join(f"{m['interface']} {m['percent']:.0f}%"
                                            for m in members), wan="balanced")
        return result
    steps.append("no rule matched")
    result.update(verdict="main table (no rule matched)", wan="default")
    return result
