"""Small builders for libnftables JSON expressions and statements.

Only data is built here (dicts and lists, as libnftables' JSON schema takes
them); nothing is ever rendered to nft's text syntax, so no value from the
config can become code.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..config.model import IPNetwork, PortRange

Expr = Any
Stmt = dict[str, Any]

MASK32 = 0xFFFFFFFF


def meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def ct(key: str) -> Expr:
    return {"ct": {"key": key}}


def payload(protocol: str, field: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": field}}


def band(left: Expr, value: int) -> Expr:
    return {"&": [left, value]}


def match(left: Expr, right: Expr, op: str = "==") -> Stmt:
    return {"match": {"op": op, "left": left, "right": right}}


def goto(target: str) -> Stmt:
    return {"goto": {"target": target}}


def jump(target: str) -> Stmt:
    return {"jump": {"target": target}}


def ret() -> Stmt:
    return {"return": None}


def counter() -> Stmt:
    return {"counter": None}


def set_ref(name: str) -> str:
    return "@" + name


def vmap(key: Expr, pairs: list[tuple[Any, Stmt]]) -> Stmt:
    return {"vmap": {"key": key, "data": {"set": [[k, v] for k, v in pairs]}}}


def set_masked(key: Expr, mask: int, value: int) -> Stmt:
    """``KEY set KEY & ~mask | value``: change only the bits of ``mask``."""
    return {"mangle": {"key": key, "value": {"|": [band(key, ~mask & MASK32), value]}}}


def addr_value(net: IPNetwork) -> Expr:
    """A single address, or a prefix."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def addr_match(field: str, nets: tuple[IPNetwork, ...], version: int) -> Stmt | None:
    """``ip saddr {…}`` for the addresses of one family; None if there are none."""
    mine = [n for n in nets if n.version == version]
    if not mine:
        return None
    proto = "ip" if version == 4 else "ip6"
    collapsed = list(ipaddress.collapse_addresses(mine))  # type: ignore[type-var]
    if len(collapsed) == 1:
        net = collapsed[0]
        if net.prefixlen == 0:
            return match(meta("nfproto"), "ipv4" if version == 4 else "ipv6")
        return match(payload(proto, field), addr_value(net))
    return match(payload(proto, field), {"set": [addr_value(n) for n in collapsed]})


def port_value(p: PortRange) -> Expr:
    return p.low if p.low == p.high else {"range": [p.low, p.high]}


def port_match(proto: str, field: str, ports: tuple[PortRange, ...]) -> Stmt:
    values = [port_value(p) for p in ports]
    right = values[0] if len(values) == 1 else {"set": values}
    return match(payload(proto, field), right)


def set_elements(nets: list[IPNetwork]) -> list[Expr]:
    return [addr_value(n) for n in nets]
