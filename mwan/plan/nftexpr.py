"""Small builders for libnftables JSON expressions and statements.

Only data is built here (dicts and lists, as libnftables' JSON schema takes
them); nothing is ever rendered to nft's text syntax, so no value from the
config can become code.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..config.model import IPNetwork, PortRange
from . import classify as C
from .names import IP_PROTO, mark_chain, policy_chain, sticky_chain

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


def label_set(bit: int | None) -> tuple[Stmt, ...]:
    """``ct label set BIT`` (failback move), or nothing for None."""
    return () if bit is None else ({"mangle": {"key": ct("label"), "value": bit}},)


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


def port_value(p: PortRange) -> Expr:
    return p.low if p.low == p.high else {"range": [p.low, p.high]}


def port_match(proto: str, field: str, ports: tuple[PortRange, ...]) -> Stmt:
    values = [port_value(p) for p in ports]
    right = values[0] if len(values) == 1 else {"set": values}
    return match(payload(proto, field), right)


def set_elements(nets: list[IPNetwork]) -> list[Expr]:
    return [addr_value(n) for n in nets]


# ------------------------------------------------- the classifier's steps as nft rules

def render_match(m: C.Match) -> Stmt:
    if isinstance(m, C.IsFamily):
        return match(meta("nfproto"), m.family)
    if isinstance(m, C.Iif):
        return match(meta("iifname"), m.device)
    if isinstance(m, C.IifIn):
        return match(meta("iifname"), {"set": list(m.devices)})
    if isinstance(m, C.Addr):
        values = [addr_value(n) for n in m.nets]
        return match(payload(IP_PROTO[m.family], m.field),
                     values[0] if len(values) == 1 else {"set": values})
    if isinstance(m, C.InSet):
        return match(payload(IP_PROTO[m.family], m.field), set_ref(m.set))
    if isinstance(m, C.Ports):
        return port_match(m.proto, m.field, m.ranges)
    if isinstance(m, C.L4Proto):
        return match(meta("l4proto"), m.number)
    return match(band(meta("mark"), m.mask), 0, "!=")


def key_expr(family: str, f: C.KeyField) -> Expr:
    if f == "iif":
        return meta("iifname")
    if f in ("saddr", "daddr"):
        return payload(IP_PROTO[family], f)
    if f == "l4proto":
        return meta("l4proto")
    return payload("th", f)  # the key holds l4proto (tcp/udp) first


def lookup_key(v: C.Lookup) -> Expr:
    keys = [key_expr(v.family, f) for f in v.fields]
    return keys[0] if len(keys) == 1 else {"concat": keys}


def key_value(x: C.KeyValue) -> Expr:
    if isinstance(x, PortRange):
        return port_value(x)
    if isinstance(x, (int, str)):
        return x
    return addr_value(x)


def lookup_elements(v: C.Lookup) -> list[Expr]:
    """The map's elements: each entry's combinations of values, commented with its rule."""
    out: list[Expr] = []
    for e in v.entries:
        target = render_verdict(e.decision)
        for combo in itertools.product(*e.values):
            vals = [key_value(x) for x in combo]
            key = vals[0] if len(vals) == 1 else {"concat": vals}
            out.append([{"elem": {"val": key, "comment": e.rule}}, target])
    return out


def looked_up(expr: Any) -> str | None:
    """The named map a rule's ``vmap @NAME`` looks up (a rule as built or as listed)."""
    for stmt in expr:
        v = stmt.get("vmap") if isinstance(stmt, dict) else None
        data = v.get("data") if isinstance(v, dict) else None
        if isinstance(data, str) and data.startswith("@"):
            return data[1:]
    return None


def render_verdict(v: C.Verdict) -> Stmt:
    if isinstance(v, C.Mark):
        return goto(mark_chain(v.ident))
    if isinstance(v, C.ToPolicy):
        return goto(policy_chain(v.policy, v.family))
    if isinstance(v, C.ToSticky):
        return goto(sticky_chain(v.rule, v.family))
    if isinstance(v, C.ByIif):
        return vmap(meta("iifname"), [(d, goto(mark_chain(i))) for d, i in v.pairs])
    if isinstance(v, C.BySource):
        return vmap(payload(IP_PROTO[v.family], "saddr"),
                    [(a, goto(mark_chain(i))) for a, i in v.pairs])
    if isinstance(v, C.Lookup):
        return {"vmap": {"key": lookup_key(v), "data": set_ref(v.name)}}
    if isinstance(v, C.Goto):
        return goto(v.chain)
    if isinstance(v, C.Jump):
        return jump(v.chain)
    if isinstance(v, C.Return):
        return ret()
    return {"log": {"prefix": v.prefix, "level": v.level}}


def render_step(step: C.Step) -> tuple[Stmt, ...]:
    """One step as one nft rule: its matches, a counter if it has one, its verdict."""
    counted = (counter(),) if step.counter else ()
    return (*(render_match(m) for m in step.matches), *counted, render_verdict(step.verdict))
