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
from .policy import PolicyChoice
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


def sticky_static(cfg: Config, space: MarkSpace) -> tuple[list[NftChain], list[NftSet]]:
    """Sticky rules: a source seen within ``timeout`` keeps its WAN while that WAN is online.

    Per sticky rule and family: one address set with timeouts per member
    interface, and a chain that (1) looks the source up in each member's set
    and, if found, jumps to a small gate chain per (policy, member) that marks
    the connection only if that member is online now (:func:`sticky_gates`);
    (2) otherwise asks the policy; (3) records the source in the chosen
    member's set.  These chains depend only on the config, so an interface
    going up or down rewrites just its gate chains (one rule each).
    """
    chains, sets = [], []
    mask = space.mask
    for rule in cfg.rules:
        if not rule.sticky or rule.use_policy in SPECIAL_POLICIES:
            continue
        for fam in rule.families():
            saddr = X.payload(IP_PROTO[fam], "saddr")
            ids = policy_members(cfg, rule.use_policy, fam)
            body: list[tuple[Any, ...]] = []
            for ident in ids:
                name = sticky_set(rule.name, ident, fam)
                sets.append(NftSet(name, ADDR_TYPE[fam], ("timeout",), timeout=rule.timeout,
                                   elements=None))
                body.append((X.match(X.band(X.meta("mark"), mask), 0),
                             X.match(saddr, X.set_ref(name)),
                             X.jump(sticky_gate_chain(rule.use_policy, ident, fam))))
            body.append((X.match(X.band(X.meta("mark"), mask), 0),
                         X.jump(policy_chain(rule.use_policy, fam))))
            for ident in ids:
                name = sticky_set(rule.name, ident, fam)
                update = {"set": {"op": "update", "elem": saddr, "set": X.set_ref(name)}}
                body.append((X.match(X.band(X.meta("mark"), mask), space.mark(ident)), update))
            chains.append(NftChain(sticky_chain(rule.name, fam), tuple(body)))
    return chains, sets


def sticky_gates(cfg: Config, choices: Mapping[tuple[str, Family], PolicyChoice]
                 ) -> list[NftChain]:
    """Per (policy, member) of sticky rules: mark with that member if it is online now."""
    gates: dict[str, NftChain] = {}
    for rule in cfg.rules:
        if not rule.sticky or rule.use_policy in SPECIAL_POLICIES:
            continue
        for fam in rule.families():
            choice = choices[(rule.use_policy, fam)]
            online = {cfg.interface(sh.interface).id for sh in choice.shares}
            for ident in policy_members(cfg, rule.use_policy, fam):
                name = sticky_gate_chain(rule.use_policy, ident, fam)
                gates[name] = NftChain(
                    name, ((X.goto(mark_chain(ident)),),) if ident in online else ())
    return list(gates.values())
