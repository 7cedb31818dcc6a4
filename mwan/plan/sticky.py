"""Sticky rules: a source seen within ``timeout`` keeps its WAN while that WAN is online. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config.marks import MarkSpace
from ..config.model import SPECIAL_POLICIES, Config
from . import nftexpr as X
from .names import (
    ADDR_TYPE,
    IP_PROTO,
    SUFFIX,
    mark_chain,
    policy_chain,
    sticky_chain,
    sticky_set,
)
from .policy import PolicyChoice, failback_label
from .state import Family, NftChain, NftSet


def sticky_gate_chain(policy: str, ident: int, family: Family) -> str:
    return f"stick_{policy}_{ident}_{SUFFIX[family]}"


def policy_members(cfg: Config, policy: str, family: Family) -> list[int]:
    """Ids of the enabled interfaces a policy can use in a family (online or not), in order."""
    out: list[int] = []
    for mname in cfg.policy(policy).use_member:
        iface = cfg.interface(cfg.member(mname).interface)
        if iface.enabled and iface.family == family and iface.id not in out:
            out.append(iface.id)
    return out


def constant_mark(value: int) -> Any:
    """``meta mark & 0 | value``: a constant of type mark.

    nft 1.0.6 refuses a bare constant inside a concatenated lookup key
    ("Can't parse symbolic invalid expressions"); this expression has the
    mark type and always evaluates to ``value``.
    """
    return {"|": [X.band(X.meta("mark"), 0), value]}


def sticky_static(cfg: Config, space: MarkSpace) -> tuple[list[NftChain], list[NftSet]]:
    """Sticky rules: a source seen within ``timeout`` keeps its WAN while that WAN is online.

    Per sticky rule and family, one set of ``source . mark`` with timeouts,
    as mwan3's ``hash:ip,mark`` ipset, and a chain that (1) looks the source
    up with each member's mark and, if found, jumps to a small gate chain per
    (policy, member) that marks the connection only if that member is online
    now (:func:`sticky_gates`); (2) otherwise asks the policy; (3) records
    ``source . chosen mark``, one rule for every member.  These depend only
    on the config, so an interface going up or down rewrites just its gate
    chains (one rule each).
    """
    chains, sets = [], []
    mask = space.mask
    mark = X.band(X.meta("mark"), mask)
    for rule in cfg.rules:
        if not rule.sticky or rule.use_policy in SPECIAL_POLICIES:
            continue
        for fam in rule.families():
            saddr = X.payload(IP_PROTO[fam], "saddr")
            ids = policy_members(cfg, rule.use_policy, fam)
            name = sticky_set(rule.name, fam)
            sets.append(NftSet(name, (ADDR_TYPE[fam], "mark"), ("timeout",),
                               timeout=rule.timeout, elements=None))
            body: list[tuple[Any, ...]] = []
            for ident in ids:
                key = {"concat": [saddr, constant_mark(space.mark(ident))]}
                body.append((X.match(mark, 0), X.match(key, X.set_ref(name)),
                             X.jump(sticky_gate_chain(rule.use_policy, ident, fam))))
            body.append((X.match(mark, 0), X.jump(policy_chain(rule.use_policy, fam))))
            if ids:
                members = {"set": [space.mark(i) for i in ids]}
                update = {"set": {"op": "update", "elem": {"concat": [saddr, mark]},
                                  "set": X.set_ref(name)}}
                body.append((X.match(mark, members), update))
            chains.append(NftChain(sticky_chain(rule.name, fam), tuple(body)))
    return chains, sets


def sticky_gates(cfg: Config, choices: Mapping[tuple[str, Family], PolicyChoice]
                 ) -> list[NftChain]:
    """Per (policy, member) of sticky rules: mark with that member if it is online now
    (and set the policy's failback label, as its policy chain does)."""
    gates: dict[str, NftChain] = {}
    ids = {i.name: i.id for i in cfg.interfaces}
    done: set[tuple[str, Family]] = set()  # many sticky rules share a policy
    for rule in cfg.rules:
        if not rule.sticky or rule.use_policy in SPECIAL_POLICIES:
            continue
        for fam in rule.families():
            if (rule.use_policy, fam) in done:
                continue
            done.add((rule.use_policy, fam))
            choice = choices[(rule.use_policy, fam)]
            online = {ids[sh.interface] for sh in choice.shares}
            # a known source's connection skips the policy chain: it takes the policy's
            # failback label here (mwan.daemon.failback moves it too)
            label = X.label_set(failback_label(cfg, rule.use_policy))
            for ident in policy_members(cfg, rule.use_policy, fam):
                name = sticky_gate_chain(rule.use_policy, ident, fam)
                gates[name] = NftChain(
                    name, ((*label, X.goto(mark_chain(ident))),) if ident in online else ())
    return list(gates.values())
