"""The kernel diff, pure: a desired state and what is known of the kernel → operations.

Nothing here touches the kernel.  :mod:`mwan.kernel.nft` and
:mod:`mwan.kernel.routing` read the kernel (or remember what they applied),
call these functions, and execute what they return.

- nft: :func:`nft_batch` turns a desired :class:`NftTable` and an
  :class:`NftKnown` (what the last apply left, or the kernel's listing) into
  the one JSON batch libnftables commits as a transaction.
- ip rules and routes: :func:`rule_ops` and :func:`route_ops` turn the desired
  set and the current set into an ordered list of netlink operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..plan.state import TABLE_FAMILY, TABLE_NAME, IpRule, NftChain, NftSet, NftTable, Route

# elements of a set that exists in the kernel but whose contents were not read
UNKNOWN_ELEMENTS: tuple[Any, ...] = ("?",)


@dataclass(frozen=True)
class NftKnown:
    """What is known of the kernel's ``inet mwan`` table.

    ``chains``: name → the chain as applied, or None when it exists with
    unknown content (read from a listing: rewritten by the next apply).
    ``sets``: name → the set; elements :data:`UNKNOWN_ELEMENTS` when read
    from a listing (owned sets are refilled, kept sets are left alone).
    """

    chains: Mapping[str, NftChain | None]
    sets: Mapping[str, NftSet]

    @classmethod
    def applied(cls, table: NftTable) -> NftKnown:
        """What the kernel holds once a batch for ``table`` went through."""
        return cls({c.name: c for c in table.chains}, {s.name: s for s in table.sets})


NOTHING = NftKnown({}, {})


def known_from_listing(objs: Iterable[dict[str, Any]]) -> NftKnown:
    """The table as libnftables lists it (``list table``, JSON) → :class:`NftKnown`."""
    chains: dict[str, NftChain | None] = {}
    sets: dict[str, NftSet] = {}
    for o in objs:
        if "chain" in o:
            chains[o["chain"]["name"]] = None
        elif "set" in o or "map" in o:
            s = o.get("set") or o["map"]
            kind = tuple(s["type"]) if isinstance(s["type"], list) else s["type"]
            flags = s.get("flags", ())
            flags = (flags,) if isinstance(flags, str) else tuple(flags)
            counter = any("counter" in st for st in s.get("stmt", ()) if isinstance(st, dict))
            sets[s["name"]] = NftSet(s["name"], kind, flags, s.get("timeout"),
                                     elements=UNKNOWN_ELEMENTS,
                                     map=s.get("map") if "map" in o else None, counter=counter)
    return NftKnown(chains, sets)


def _ref(name: str, table: str = TABLE_NAME) -> dict[str, Any]:
    return {"family": TABLE_FAMILY, "table": table, "name": name}


def _kind(s: NftSet) -> str:
    """The JSON object name of a set: libnftables flushes a map only as ``map``."""
    return "map" if s.map is not None else "set"


def _renamed(d: dict[str, Any], table: str) -> dict[str, Any]:
    return d if table == TABLE_NAME else {**d, "table": table}


def elements_cmd(op: str, s: NftSet, table: str = TABLE_NAME) -> dict[str, Any]:
    """``{op: {"element": ...}}`` with all of ``s``'s elements."""
    return {op: {"element": {**_ref(s.name, table), "elem": list(s.elements or ())}}}


def rule_cmds(c: NftChain, table: str = TABLE_NAME) -> list[dict[str, Any]]:
    """The ``add rule`` commands that fill chain ``c`` (with the rules' comments)."""
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(c.rules):
        r: dict[str, Any] = {"family": TABLE_FAMILY, "table": table, "chain": c.name,
                             "expr": list(rule)}
        if i < len(c.comments) and c.comments[i]:
            r["comment"] = c.comments[i]
        out.append({"add": {"rule": r}})
    return out


def full_batch(table: NftTable, name: str = TABLE_NAME) -> list[dict[str, Any]]:
    """Every command that builds ``table`` from nothing, under the table name ``name``."""
    batch: list[dict[str, Any]] = [{"add": {"table": {"family": TABLE_FAMILY, "name": name}}}]
    batch += [{"add": {"chain": _renamed(c.definition(), name)}} for c in table.chains]
    batch += [{"add": {"set": _renamed(s.definition(), name)}} for s in table.sets]
    batch += [elements_cmd("add", s, name) for s in table.sets if s.elements]
    for c in table.chains:
        batch += rule_cmds(c, name)
    return batch


def nft_batch(table: NftTable, known: NftKnown) -> list[dict[str, Any]]:
    """The batch that turns the table ``known`` describes into ``table``; [] if nothing to do.

    Chains whose content did not change are not touched.  Sets keep their
    elements unless mwan owns them (``elements`` not None) and they changed,
    or their shape changed: then the set is deleted and re-created, and every
    chain is rewritten first (a set in use cannot be deleted).  Order: new
    chains and sets, flushes, set re-creation, elements, rules, then the
    deletion of what is no longer wanted (flushed first, so no jump is left;
    sets before chains, so no map element is left jumping to a deleted chain).
    """
    old_chains, old_sets = known.chains, known.sets
    want_chains = {c.name: c for c in table.chains}
    want_sets = {s.name: s for s in table.sets}

    recreate = [n for n, s in want_sets.items()
                if n in old_sets and old_sets[n].shape() != s.shape()]
    changed = [c for c in table.chains
               if recreate or c.name not in old_chains or old_chains[c.name] != c]
    stale_chains = [n for n in old_chains if n not in want_chains]
    stale_sets = [n for n in old_sets if n not in want_sets]

    batch: list[dict[str, Any]] = []
    batch += [{"add": {"chain": c.definition()}} for c in changed if c.name not in old_chains]
    batch += [{"add": {"set": s.definition()}} for s in table.sets if s.name not in old_sets]
    batch += [{"flush": {"chain": _ref(c.name)}} for c in changed if c.name in old_chains]
    batch += [{"flush": {"chain": _ref(n)}} for n in stale_chains]
    for name in recreate:
        batch += [{"delete": {_kind(old_sets[name]): _ref(name)}},
                  {"add": {"set": want_sets[name].definition()}}]
    for s in table.sets:
        if s.elements is None:
            continue
        old = old_sets.get(s.name)
        in_place = old is not None and s.name not in recreate
        if in_place and old is not None and old.elements == s.elements:
            continue
        if in_place:
            batch.append({"flush": {_kind(s): _ref(s.name)}})
        if s.elements:
            batch.append(elements_cmd("add", s))
    for c in changed:
        batch += rule_cmds(c)
    # sets first: a stale map's elements may still jump to a stale chain
    batch += [{"delete": {_kind(old_sets[n]): _ref(n)}} for n in stale_sets]
    batch += [{"delete": {"chain": _ref(n)}} for n in stale_chains]
    if batch:
        batch.insert(0, {"add": {"table": {"family": TABLE_FAMILY, "name": TABLE_NAME}}})
    return batch


def batch_chains(batch: Iterable[dict[str, Any]]) -> set[str]:
    """The chains a batch creates, flushes, fills or deletes (by name)."""
    out: set[str] = set()
    for cmd in batch:
        (_op, body), = cmd.items()
        (kind, obj), = body.items()
        if kind == "chain":
            out.add(obj["name"])
        elif kind == "rule":
            out.add(obj["chain"])
    return out


# ---------------------------------------------------------------- rules and routes

RuleOp = tuple[Literal["add", "del"], IpRule]
RouteOp = tuple[Literal["del", "replace"], Route]


def rule_ops(want: AbstractSet[IpRule], have: AbstractSet[IpRule]) -> list[RuleOp]:
    """Adds first (in priority order), then deletions: a rule is never missing meanwhile."""
    adds: list[RuleOp] = [("add", r) for r in sorted(want - have)]
    dels: list[RuleOp] = [("del", r) for r in sorted(have - want)]
    return adds + dels


def route_ops(want: AbstractSet[Route], have: AbstractSet[Route]) -> list[RouteOp]:
    """Deletions first (a replaced route could collide with a stale one), then replaces."""
    dels: list[RouteOp] = [("del", r) for r in sorted(have - want, key=str)]
    puts: list[RouteOp] = [("replace", r) for r in sorted(want - have, key=str)]
    return dels + puts


RoutesKnown = tuple[frozenset[int], frozenset[Route]]  # (tables covered, mwan's routes there)


def known_routes(known: RoutesKnown | None, tables: AbstractSet[int]) -> set[Route] | None:
    """mwan's routes in ``tables`` if ``known`` covers them all; None: read the kernel."""
    if known is None or not known[0] >= tables:
        return None
    return {r for r in known[1] if r.table in tables}


def normal_routes(routes: Iterable[Route]) -> set[Route]:
    """Routes in the form the kernel reports them back in (so sets compare)."""
    return {normal_route(r) for r in routes}


def normal_route(r: Route) -> Route:
    """IPv6 routes without a metric get the kernel's 1024."""
    if r.family == "ipv6" and r.metric is None:
        return replace(r, metric=1024)
    return r
