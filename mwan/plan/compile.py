"""Config + interface states + kernel facts → the desired kernel state.

Pure: no I/O.  The packet path it builds (one ``inet mwan`` table):

``prerouting`` (filter, mangle+1) clears mwan's mark bits (decapsulated
packets inherit the outer flow's mark), exempts ICMPv6 neighbour discovery,
and goes to ``decide``.  ``output`` (route, mangle+1) leaves packets whose
program set a mark in the mask alone (probes, ``mwan3 use``, WireGuard's
fwmark) and goes to ``decide``.

``decide`` restores the connection's mark (a verdict map on ``ct mark &
mask`` to one ``mark_N`` chain per id: nft 1.0.6 cannot OR two registers);
only a new connection's first packet in the original direction reaches
``classify``; whatever mark it got is saved to the connection through
``save_N`` chains.  ``classify``: inbound on a WAN → that WAN (unless from a
connected source); to a connected/custom/dynamic network → default (main
table); from a WAN's own address → that WAN; then the user rules, first
match wins (those three chains render :mod:`mwan.plan.classify`'s steps,
which ``explain`` evaluates).  ``policy_P_vF`` chains pick among the online members of the
lowest metric by ``numgen random`` over the weights (exact ratios).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.marks import MarkSpace
from ..config.model import Config
from . import classify as C
from . import nftexpr as X
from .group import grouped
from .ha import ha_base_chains  # config ha: the mid-stream TCP drop
from .names import (
    ADDR_TYPE,
    ALWAYS_CONNECTED,
    FALLBACK_PRIORITY,
    FAMILIES,
    FWMARK_PRIORITY,
    HOOK_PRIORITY,
    IIF_PRIORITY,
    MAIN_TABLE,
    ND_TYPES,
    SUFFIX,
    mark_chain,
    policy_chain,
    save_chain,
    user_set,
)
from .policy import PolicyChoice, choose, failback_label
from .state import (
    Desired,
    Family,
    IfaceRuntime,
    IpRule,
    KernelFacts,
    NftChain,
    NftSet,
    NftTable,
    Route,
)
from .sticky import sticky_gates, sticky_static

# ---------------------------------------------------------------- bypass sets

def bypass_networks(cfg: Config, facts: KernelFacts, family: Family
                    ) -> tuple[list[Any], list[Any]]:
    """(connected, custom) networks of one family, collapsed, no overlaps.

    connected: every non-default route of the main table, the router's own
    addresses, and the always-local ranges; custom: the non-default routes of
    the ``rt_table_lookup`` tables.
    """
    version = 4 if family == "ipv4" else 6
    lookup = set(cfg.globals.rt_table_lookup)
    connected: list[Any] = [ipaddress.ip_network(n) for n in ALWAYS_CONNECTED[family]]
    custom: list[Any] = []
    for r in facts.routes:
        if r.family != family or r.is_default:
            continue
        net = ipaddress.ip_network(r.dst, strict=False)
        if r.table == MAIN_TABLE:
            connected.append(net)
        elif r.table in lookup:
            custom.append(net)
    for a in facts.addresses:
        if a.family == family:
            connected.append(ipaddress.ip_network(a.address))
    connected = [n for n in connected if n.version == version]
    return (list(ipaddress.collapse_addresses(connected)),
            list(ipaddress.collapse_addresses([n for n in custom if n.version == version])))


# the last bypass_sets answer: an interface going up or down leaves main's routes and the
# addresses as they were, and collapsing them is most of such a change's compile time
_BYPASS_MEMO: list[tuple[tuple[int, ...], KernelFacts, tuple[NftSet, ...]]] = []


def bypass_sets(cfg: Config, facts: KernelFacts) -> list[NftSet]:
    lookup = tuple(cfg.globals.rt_table_lookup)
    for key, known, sets in _BYPASS_MEMO:
        if key == lookup and (known is facts or (known.routes == facts.routes
                                                  and known.addresses == facts.addresses)):
            return list(sets)
    out = _bypass_sets(cfg, facts)
    _BYPASS_MEMO[:] = [(lookup, facts, tuple(out))]
    return out


def _bypass_sets(cfg: Config, facts: KernelFacts) -> list[NftSet]:
    out = []
    for fam in FAMILIES:
        connected, custom = bypass_networks(cfg, facts, fam)
        sfx = SUFFIX[fam]
        out.append(NftSet(f"connected_{sfx}", ADDR_TYPE[fam], ("interval",),
                          elements=tuple(X.set_elements(connected))))
        out.append(NftSet(f"custom_{sfx}", ADDR_TYPE[fam], ("interval",),
                          elements=tuple(X.set_elements(custom))))
        # for users and scripts: its elements are never touched by mwan
        out.append(NftSet(f"dynamic_{sfx}", ADDR_TYPE[fam], ("interval",), elements=None))
    return out


# ------------------------------------------------------------- mark chains

# comments of the usage counters in each WAN's mark chain (daemon/usage reads them)
USAGE_IN, USAGE_OUT = "usage in", "usage out"


def mark_chains(space: MarkSpace, ids: list[int],
                devices: Mapping[int, str] | None = None) -> list[NftChain]:
    """``mark_N`` sets the mark; a WAN's also counts its packets, in and out.

    Every packet of a connection with the WAN's mark passes its ``mark_N``
    once (restored in ``decide``/``decide_out``, or chosen by ``classify``),
    in both directions; arriving on the WAN's device is ``in``, anything else
    (forwarded out of it, the router's own) ``out``.
    """
    chains = []
    for ident in ids:
        m = space.mark(ident)
        set_mark = X.set_masked(X.meta("mark"), space.mask, m)
        dev = (devices or {}).get(ident)
        if dev is None:
            chains.append(NftChain(mark_chain(ident), ((set_mark,),)))
        else:
            iif = X.meta("iifname")
            chains.append(NftChain(mark_chain(ident), (
                (set_mark,), (X.match(iif, dev), X.counter()),
                (X.match(iif, dev, "!="), X.counter())), comments=(None, USAGE_IN, USAGE_OUT)))
        if ident not in (space.blackhole_id, space.unreachable_id):
            chains.append(NftChain(save_chain(ident),
                                   ((X.set_masked(X.ct("mark"), space.mask, m),),)))
    return chains


def base_chains(space: MarkSpace, ids: list[int]) -> list[NftChain]:
    mask = space.mask
    nd = (X.match(X.payload("icmpv6", "type"), {"set": ND_TYPES}), X.ret())
    prerouting = NftChain(
        "prerouting",
        (
            (X.set_masked(X.meta("mark"), mask, 0),),
            nd,
            (X.goto("decide"),),
        ),
        hook="prerouting", chain_type="filter", priority=HOOK_PRIORITY,
    )
    output = NftChain(
        "output",
        (
            (X.match(X.band(X.meta("mark"), mask), 0, "!="), X.ret()),
            nd,
            (X.goto("decide_out"),),
        ),
        hook="output", chain_type="route", priority=HOOK_PRIORITY,
    )
    restore = [(space.mark(i), X.goto(mark_chain(i))) for i in ids]
    # unreachable/blackhole are decided per packet and never saved: a saved
    # unreachable mark would also catch the router's own ICMP error for the flow
    final = (space.blackhole_id, space.unreachable_id)
    save = [(space.mark(i), X.goto(save_chain(i))) for i in ids if i not in final]
    def decide(name: str, classify: str) -> NftChain:
        return NftChain(name, (
            (X.vmap(X.band(X.ct("mark"), mask), restore),),
            (X.match(X.ct("state"), "new", "in"), X.match(X.ct("direction"), "original"),
             X.jump(classify)),
            (X.vmap(X.band(X.meta("mark"), mask), save),),
        ))
    return [prerouting, output, decide("decide", "classify"), decide("decide_out", "classify_out")]


def guard_chain(cfg: Config, space: MarkSpace) -> list[NftChain]:
    """``guard`` (postrouting, before NAT): a packet with one WAN's mark never leaves
    by another WAN's device.

    mwan's tables never route one WAN's traffic out of another's device; only
    a packet that fell through to ``main`` does (mwan's ip rules deleted by
    someone, until the repair).  Let through, it would be masqueraded to the
    wrong address and its connection's NAT mapping lost (the flow resets);
    dropped, it is retransmitted once the rules are back.  One lookup of
    ``mark . oifname`` in a set, whatever the number of WANs.  It depends on
    the config alone (:class:`ConfigPart`).
    """
    wans = [(space.mark(i.id), i.device) for i in cfg.enabled_interfaces]
    pairs = sorted({(m, dev) for m, own in wans for _m, dev in wans if dev != own})
    if not pairs:
        return []
    key = {"concat": [X.band(X.meta("mark"), space.mask), X.meta("oifname")]}
    elems = {"set": [{"concat": [m, dev]} for m, dev in pairs]}
    return [NftChain("guard", ((X.match(key, elems), X.counter(), {"drop": None}),),
                     comments=("another WAN's mark",), hook="postrouting",
                     chain_type="filter", priority=HOOK_PRIORITY)]


# ------------------------------------------------------------ classify

def classify_chains(cfg: Config, space: MarkSpace, runtime: Mapping[str, IfaceRuntime]
                    ) -> list[NftChain]:
    """``classify`` (forwarded and inbound traffic) and ``classify_out`` (the router's own).

    Their steps are :func:`mwan.plan.classify.entry_steps`, rendered.
    """
    classify, classify_out = C.entry_steps(cfg, space, runtime)
    return [NftChain("classify", tuple(X.render_step(st) for st in classify)),
            NftChain("classify_out", tuple(X.render_step(st) for st in classify_out))]


def policy_chains(cfg: Config, space: MarkSpace, choices: list[PolicyChoice]) -> list[NftChain]:
    out = []
    for choice in choices:
        # failback move (daemon/failback): the policy's connections carry its label bit
        label = X.label_set(failback_label(cfg, choice.policy))
        out.append(NftChain(policy_chain(choice.policy, choice.family),
                            ((label,) if label else ()) + (policy_verdict(cfg, space, choice),)))
    return out


def last_resort_id(space: MarkSpace, last_resort: str) -> int:
    return {"blackhole": space.blackhole_id, "default": space.default_id}.get(
        last_resort, space.unreachable_id)


def policy_verdict(cfg: Config, space: MarkSpace, choice: PolicyChoice) -> tuple[Any, ...]:
    if not choice.shares:
        return (X.goto(mark_chain(last_resort_id(space, choice.last_resort))),)
    if len(choice.shares) == 1:
        return (X.goto(mark_chain(cfg.interface(choice.shares[0].interface).id)),)
    total = choice.total_weight
    pairs, start = [], 0
    for s in choice.shares:
        end = start + s.weight - 1
        key: Any = start if start == end else {"range": [start, end]}
        pairs.append((key, X.goto(mark_chain(cfg.interface(s.interface).id))))
        start = end + 1
    ng = {"numgen": {"mode": "random", "mod": total, "offset": 0}}
    return (X.vmap(ng, pairs),)


def rules_chain(cfg: Config, space: MarkSpace) -> tuple[NftChain, list[NftSet]]:
    """The user rules (:func:`mwan.plan.classify.rule_steps`), runs of them as verdict maps
    (:func:`mwan.plan.group.grouped`), rendered; and those maps."""
    steps = grouped(C.rule_steps(cfg, space))
    chain = NftChain("rules", tuple(X.render_step(st) for st in steps),
                     comments=tuple(st.comment for st in steps))
    return chain, [lookup_map(st.verdict) for st in steps if isinstance(st.verdict, C.Lookup)]


def lookup_map(v: C.Lookup) -> NftSet:
    """The verdict map of a run of rules: interval keys, a counter per element."""
    types = tuple(ADDR_TYPE[v.family] if f in ("saddr", "daddr") else
                  {"iif": "ifname", "l4proto": "inet_proto"}.get(f, "inet_service")
                  for f in v.fields)
    return NftSet(v.name, types if len(types) > 1 else types[0], ("interval",),
                  elements=tuple(X.lookup_elements(v)), map="verdict", counter=True)


@dataclass(frozen=True)
class ConfigPart:
    """The parts of the nft table that depend on the config alone.

    With 1,000 rules the rules and sticky chains are most of the compile
    time, and an interface going up or down does not touch them: the daemon
    computes this once per config (:func:`config_part`) and passes it in.
    """

    rules: NftChain
    sticky_chains: tuple[NftChain, ...]
    sticky_sets: tuple[NftSet, ...]
    rule_maps: tuple[NftSet, ...] = ()
    guard: tuple[NftChain, ...] = ()


def config_part(cfg: Config) -> ConfigPart:
    space = MarkSpace(cfg.globals.mmx_mask)
    chains, sets = sticky_static(cfg, space)
    rules, maps = rules_chain(cfg, space)
    return ConfigPart(rules, tuple(chains), tuple(sets), tuple(maps),
                      tuple(guard_chain(cfg, space)))


def user_sets(cfg: Config) -> list[NftSet]:
    names = sorted({r.ipset for r in cfg.rules if r.ipset is not None})
    return [NftSet(user_set(n, fam), ADDR_TYPE[fam], ("interval",), elements=None)
            for n in names for fam in FAMILIES]


def compile_nft(cfg: Config, runtime: Mapping[str, IfaceRuntime], facts: KernelFacts,
                part: ConfigPart | None = None) -> NftTable:
    space = MarkSpace(cfg.globals.mmx_mask)
    ids = [i.id for i in cfg.enabled_interfaces] + [
        space.blackhole_id, space.unreachable_id, space.default_id]
    choices = {(p.name, fam): choose(cfg, p, fam, runtime) for fam in FAMILIES
               for p in cfg.policies}
    part = part if part is not None else config_part(cfg)
    devices = {i.id: i.device for i in cfg.enabled_interfaces}
    chains = (ha_base_chains(cfg, base_chains(space, ids)) + list(part.guard)
              + mark_chains(space, ids, devices)
              + classify_chains(cfg, space, runtime) + [part.rules]
              + policy_chains(cfg, space, list(choices.values()))
              + sticky_gates(cfg, choices) + list(part.sticky_chains))
    sets = (bypass_sets(cfg, facts) + user_sets(cfg) + list(part.sticky_sets)
            + list(part.rule_maps))
    return NftTable(sets=tuple(sets), chains=tuple(chains))


# ------------------------------------------------------------ ip rules

def desired_rules(cfg: Config, runtime: Mapping[str, IfaceRuntime]) -> tuple[IpRule, ...]:
    space = MarkSpace(cfg.globals.mmx_mask)
    mask = space.mask
    out: list[IpRule] = []
    for fam in FAMILIES:
        out.append(IpRule(FWMARK_PRIORITY + space.blackhole_id, fam, "blackhole",
                          fwmark=space.blackhole_mark, fwmask=mask))
        out.append(IpRule(FWMARK_PRIORITY + space.unreachable_id, fam, "unreachable",
                          fwmark=space.unreachable_mark, fwmask=mask))
    for i in cfg.enabled_interfaces:
        m = space.mark(i.id)
        rt = runtime.get(i.name)
        if rt is not None and rt.up:
            out.append(IpRule(IIF_PRIORITY + i.id, i.family, "lookup", table=MAIN_TABLE,
                              iif=i.device))
        out.append(IpRule(FWMARK_PRIORITY + i.id, i.family, "lookup", table=i.id,
                          fwmark=m, fwmask=mask))
        out.append(IpRule(FALLBACK_PRIORITY + i.id, i.family, "unreachable", fwmark=m,
                          fwmask=mask))
    return tuple(sorted(out))


# ------------------------------------------------------------ routes

COPY_TYPES = ("unicast", "unreachable", "blackhole", "prohibit", "throw")


def desired_routes(cfg: Config, runtime: Mapping[str, IfaceRuntime], facts: KernelFacts
                   ) -> tuple[Route, ...]:
    """Each up WAN's table: its default route plus copies of main's other routes.

    As mwan3 does (docs/architecture.md, mwan3 §2.4), routes through *another* WAN's device are not
    copied: their destinations are in the "connected" set, which sends them to
    main anyway, and copying them would make N WANs cost N² routes.
    """
    lookup = set(cfg.globals.rt_table_lookup)
    wan_devices = {i.device for i in cfg.enabled_interfaces}
    devices = set(facts.devices)
    copied = [r for r in facts.routes  # what any WAN's table copies (of its family)
              if not r.is_default and r.type in COPY_TYPES
              and (r.table == MAIN_TABLE or r.table in lookup)
              and not (r.family == "ipv6" and r.dst == "fe80::/64")
              and not (r.dev is not None and devices and r.dev not in devices)]
    out: set[Route] = set()
    for i in cfg.enabled_interfaces:
        rt = runtime.get(i.name)
        if rt is None or not rt.up:
            continue
        if rt.gateway is not None:
            out.add(Route(i.id, i.family, "default", dev=i.device, gateway=rt.gateway))
        else:
            out.add(Route(i.id, i.family, "default", dev=i.device, scope=253))
        for r in copied:
            if r.family != i.family or (r.dev in wan_devices and r.dev != i.device):
                continue
            out.add(Route(i.id, i.family, r.dst, dev=r.dev, gateway=r.gateway,
                          prefsrc=r.prefsrc, metric=r.metric, scope=r.scope, type=r.type))
    return tuple(sorted(out, key=lambda r: (r.table, r.family, r.dst, str(r.metric), str(r.dev))))


def compile_plan(cfg: Config, runtime: Mapping[str, IfaceRuntime], facts: KernelFacts,
                 part: ConfigPart | None = None) -> Desired:
    """The whole desired state; ``part``: :func:`config_part` of this config, if at hand."""
    return Desired(
        nft=compile_nft(cfg, runtime, facts, part),
        rules=desired_rules(cfg, runtime),
        routes=desired_routes(cfg, runtime, facts),
        tables=tuple(i.id for i in cfg.enabled_interfaces),
    )
