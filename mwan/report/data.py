"""Build the report (the ``--json`` schema, docs/cli-json.md) from the daemon's state. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.model import Config
from ..config.values import FAMILIES
from ..plan.compile import bypass_networks
from ..plan.names import rule_map_family
from ..plan.nftexpr import looked_up
from ..plan.policy import choose
from ..plan.state import IfaceRuntime, KernelFacts


def policies(cfg: Config, runtime: Mapping[str, IfaceRuntime]) -> dict[str, dict[str, Any]]:
    """Per family, per policy (alphabetical, as mwan3): the active members' shares."""
    out: dict[str, dict[str, Any]] = {}
    for fam in FAMILIES:
        per: dict[str, Any] = {}
        for p in sorted(cfg.policies, key=lambda p: p.name):
            c = choose(cfg, p, fam, runtime)
            per[p.name] = {
                "members": [{"interface": s.interface, "member": s.member, "metric": s.metric,
                             "weight": s.weight, "percent": round(s.percent, 1)}
                            for s in c.shares],
                "last_resort": c.last_resort,
                "active": "members" if c.shares else c.last_resort,
                "notes": list(c.notes),  # why members were chosen or skipped (quality)
            }
        out[fam] = per
    return out


def connected(cfg: Config, facts: KernelFacts) -> dict[str, list[str]]:
    """The connected ("bypass") networks per family, as the datapath has them."""
    out: dict[str, list[str]] = {}
    for fam in FAMILIES:
        nets, custom = bypass_networks(cfg, facts, fam)
        out[fam] = [str(n) for n in nets + custom]
    return out


def rule_counters(cfg: Config, nft_rules: Sequence[Mapping[str, Any]],
                  maps: Mapping[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """The user rules with their nft counters, in order, one entry per rule and family.

    A rule is counted by its own nft rule (commented with its name), or, in a
    run of rules that became a verdict map (plan/group.py), by that map's
    elements (each commented with its rule's name; the map is per family).
    """
    counts: dict[tuple[str, str], list[int]] = {}
    for r in nft_rules:
        comment = r.get("comment") or ""
        if comment.startswith("log "):
            continue
        looked = looked_up(r.get("expr", ()))
        mfam = rule_map_family(looked) if looked is not None else None
        if looked is not None and mfam is not None:
            for e in (maps or {}).get(looked, ()):
                el = e[0].get("elem", {}) if isinstance(e, list) and isinstance(e[0], dict) else {}
                c = el.get("counter") or {}
                tot = counts.setdefault((str(el.get("comment", "")), mfam), [0, 0])
                tot[0] += int(c.get("packets", 0))
                tot[1] += int(c.get("bytes", 0))
            continue
        pkts = byts = 0
        for stmt in r.get("expr", ()):
            if isinstance(stmt, dict) and "counter" in stmt:
                pkts = int(stmt["counter"].get("packets", 0))
                byts = int(stmt["counter"].get("bytes", 0))
        rfam = _rule_family(r) or next(
            (f for f in FAMILIES if (comment, f) not in counts), "ipv4")
        counts[(comment, rfam)] = [pkts, byts]
    out = []
    for rule in cfg.rules:
        for fam in rule.families():
            pkts, byts = counts.get((rule.name, fam), (0, 0))
            out.append({
                "rule": rule.name, "family": fam, "policy": rule.use_policy,
                "sticky": rule.sticky, "proto": rule.proto,
                "src_ip": [str(n) for n in rule.src_ip], "dest_ip": [str(n) for n in rule.dest_ip],
                "src_port": [str(p) for p in rule.src_port],
                "dest_port": [str(p) for p in rule.dest_port],
                "ipset": rule.ipset, "packets": pkts, "bytes": byts,
            })
    return out


def _rule_family(r: Mapping[str, Any]) -> str | None:
    """A listed rule's family: its ``meta nfproto`` match or its ip/ip6 payload (nft lists
    the nfproto match only where no payload implies it)."""
    for stmt in r.get("expr", ()):
        m = stmt.get("match") if isinstance(stmt, dict) else None
        if not isinstance(m, dict):
            continue
        left = m.get("left")
        if isinstance(left, dict) and left.get("meta", {}).get("key") == "nfproto":
            return str(m.get("right"))
        proto = left.get("payload", {}).get("protocol") if isinstance(left, dict) else None
        if proto in ("ip", "ip6"):
            return "ipv4" if proto == "ip" else "ipv6"
    return None


def in_networks(addr: str, nets: Sequence[str]) -> bool:
    a = ipaddress.ip_address(addr)
    return any(a in ipaddress.ip_network(n) for n in nets if ipaddress.ip_network(n).version
               == a.version)
