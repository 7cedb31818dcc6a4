"""Runs of user rules as verdict maps: classification in (nearly) constant time. Pure.

The ``rules`` chain is first-match: walked linearly, a new connection that
matches the last of 1,000 rules passes 1,000 nft rules.  Here the steps of
:func:`mwan.plan.classify.rule_steps` are regrouped, keeping first-match
order exactly, so that rules of the same *shape* (the same key fields:
source and destination networks, protocol, ports) share one nft verdict
map (:class:`mwan.plan.classify.Lookup`) and a packet costs one lookup per
group instead of one rule per rule.

Why the order is kept: two steps that no packet can match both may be
swapped; a step whose matches can overlap an earlier one's must stay after
it.  So each step, in order, goes into the earliest group of its shape that
comes after every group holding a step it overlaps (its last *barrier*), or
into a new group at the end.  A group's steps then never overlap each other
(so its map's elements are disjoint, as the kernel requires, and the order
inside it does not matter), and every pair of overlapping steps stays in
the order of the config.  Overlap is decided on what the matches say; a
match on a set whose contents are not known here (``ipset``) counts as
matching every address.

What stays a linear rule: steps with an ``ipset`` match, steps with all six
key fields (:data:`MAX_FIELDS`), ``logging`` steps, steps with no key field
at all (a catch-all), and every step of a group with fewer than
:data:`MIN_GROUP` steps.  A sticky rule's
verdict (goto its sticky chain) is a map verdict like any other, so sticky
rules are grouped.  With no group of :data:`MIN_GROUP` steps, the steps are
returned unchanged (small configs keep the chain they always had).

The walk of ``mwan3 explain`` keeps reading the linear steps; the property
test in tests/unit/test_group.py checks that both forms decide alike.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config.model import PortRange
from . import classify as C
from .names import rule_map
from .state import Family

MIN_GROUP = 4
# nft 1.0.6 keeps a set's key type in 32 bits, 6 per concatenated type: with a sixth
# field the listing decodes garbage ("bitmask . ipv4_addr ...") and libnftables
# aborts on it (json.c range_expr_json assertion). A rule with all six stays a rule.
MAX_FIELDS = 5
PORT_PROTO = {"tcp": 6, "udp": 17}
FIELDS: tuple[C.KeyField, ...] = ("iif", "saddr", "daddr", "l4proto", "sport", "dport")
Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Footprint:
    """What a step can match, per field; None: anything."""
    family: Family | None
    saddr: Ranges | None = None
    daddr: Ranges | None = None
    proto: int | None = None
    sport: Ranges | None = None
    dport: Ranges | None = None
    iif: frozenset[str] | None = None


def footprint(step: C.Step) -> Footprint:
    kw: dict[str, object] = {}
    family: Family | None = None
    for m in step.matches:
        if isinstance(m, C.IsFamily):
            family = m.family
        elif isinstance(m, C.Addr):
            family = m.family
            kw[m.field] = tuple(_span(n) for n in m.nets)
        elif isinstance(m, C.Ports):
            kw["proto"] = PORT_PROTO[m.proto]
            kw[m.field] = tuple(_span(r) for r in m.ranges)
        elif isinstance(m, C.L4Proto):
            kw["proto"] = m.number
        elif isinstance(m, (C.Iif, C.IifIn)):
            kw["iif"] = frozenset((m.device,) if isinstance(m, C.Iif) else m.devices)
        # InSet, Decided: contents not known here, anything
    return Footprint(family, **kw)  # type: ignore[arg-type]


def _meet(a: Ranges | None, b: Ranges | None) -> bool:
    if a is None or b is None:
        return True
    return any(lo <= hi2 and lo2 <= hi for lo, hi in a for lo2, hi2 in b)


def overlap(a: Footprint, b: Footprint) -> bool:
    """Whether some packet could match both."""
    if a.family is not None and b.family is not None and a.family != b.family:
        return False
    if a.proto is not None and b.proto is not None and a.proto != b.proto:
        return False
    if a.iif is not None and b.iif is not None and not a.iif & b.iif:
        return False
    return (_meet(a.daddr, b.daddr) and _meet(a.saddr, b.saddr) and _meet(a.dport, b.dport)
            and _meet(a.sport, b.sport))


def shape(step: C.Step) -> tuple[Family, tuple[C.KeyField, ...]] | None:
    """The map a step could join (family, key fields), or None: it stays a rule."""
    if step.kind != "rule" or not isinstance(step.verdict, (C.Mark, C.ToPolicy, C.ToSticky)):
        return None
    family: Family | None = None
    fields: set[C.KeyField] = set()
    for m in step.matches:
        if isinstance(m, C.IsFamily):
            family = m.family
        elif isinstance(m, C.Addr):
            fields.add(m.field)
        elif isinstance(m, C.Ports):
            fields |= {"l4proto", m.field}
        elif isinstance(m, C.L4Proto):
            fields.add("l4proto")
        elif isinstance(m, C.Iif):
            fields.add("iif")
        else:
            return None
    if family is None or not fields or len(fields) > MAX_FIELDS:
        return None
    return family, tuple(f for f in FIELDS if f in fields)


def entry(step: C.Step, fields: tuple[C.KeyField, ...]) -> C.Entry:
    values: dict[C.KeyField, tuple[C.KeyValue, ...]] = {}
    for m in step.matches:
        if isinstance(m, C.Addr):
            values[m.field] = m.nets
        elif isinstance(m, C.Ports):
            values["l4proto"] = (PORT_PROTO[m.proto],)
            values[m.field] = merged(m.ranges)
        elif isinstance(m, C.L4Proto):
            values["l4proto"] = (m.number,)
        elif isinstance(m, C.Iif):
            values["iif"] = (m.device,)
    assert step.rule is not None and isinstance(step.verdict, (C.Mark, C.ToPolicy, C.ToSticky))
    return C.Entry(tuple(values[f] for f in fields), step.verdict, step.rule)


def merged(ranges: Sequence[PortRange]) -> tuple[PortRange, ...]:
    """Port ranges without overlaps (a map's elements must not overlap)."""
    return tuple(PortRange(lo, hi) for lo, hi in merged_spans([_span(r) for r in ranges]))


@dataclass
class Group:
    """Steps that go into one place of the chain; ``key``: the shape of a map group."""
    key: tuple[Family, tuple[C.KeyField, ...]] | None
    steps: list[C.Step] = field(default_factory=list)
    feet: list[Footprint] = field(default_factory=list)
    # an index on one address field: sorted (low, high, position in feet)
    index_field: str | None = None
    index: list[tuple[int, int, int]] = field(default_factory=list)
    longest: int = 0

    def add(self, step: C.Step, foot: Footprint) -> None:
        self.steps.append(step)
        self.feet.append(foot)
        ranges = getattr(foot, self.index_field) if self.index_field else None
        if ranges is None:
            self.index_field = None  # a member without that field: no index
            return
        for lo, hi in ranges:
            bisect.insort(self.index, (lo, hi, len(self.feet) - 1))
            self.longest = max(self.longest, hi - lo)

    def overlaps(self, foot: Footprint) -> bool:
        q = getattr(foot, self.index_field) if self.index_field else None
        if q is None:
            return any(overlap(f, foot) for f in self.feet)
        for lo, hi in q:
            start = bisect.bisect_left(self.index, (lo - self.longest, -1, -1))
            stop = bisect.bisect_right(self.index, (hi, 1 << 129, 1 << 30))
            for _lo, _hi, k in self.index[start:stop]:
                if _hi >= lo and overlap(self.feet[k], foot):
                    return True
        return False


def _new_group(key: tuple[Family, tuple[C.KeyField, ...]] | None) -> Group:
    fields = key[1] if key else ()
    index = next((f for f in ("daddr", "saddr") if f in fields), None)
    return Group(key, index_field=index)


def _span(v: C.KeyValue, names: dict[str, int] | None = None) -> tuple[int, int]:
    """A value as the integers it covers (a device: its number in ``names``)."""
    if isinstance(v, str):
        assert names is not None
        k = names.setdefault(v, len(names))
        return k, k
    if isinstance(v, int):
        return v, v
    if isinstance(v, PortRange):
        return v.low, v.high
    return int(v.network_address), int(v.broadcast_address)


def depth(values: Sequence[tuple[C.KeyValue, ...]]) -> int:
    """The most entries one value of a field can match (a sweep over their spans)."""
    names: dict[str, int] = {}
    events: list[tuple[int, int]] = []
    for alternatives in values:
        for lo, hi in merged_spans([_span(v, names) for v in alternatives]):
            events += [(lo, 1), (hi + 1, -1)]
    best = cur = 0
    for _x, d in sorted(events):
        cur += d
        best = max(best, cur)
    return best


def merged_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def selective_first(fields: Sequence[C.KeyField], entries: Sequence[C.Entry]) -> list[int]:
    """The key's field order: the field whose values overlap least first.

    nft's concatenated interval maps (pipapo) match field by field, and a
    field that leaves many elements standing costs the next field's step
    in proportion: 2,000 elements that share the first field (one /24, the
    same protocol) and differ by port cost 14 µs per lookup against 0.4 µs
    when the ports come first (measured, this kernel).
    """
    cost = [depth([e.values[k] for e in entries]) for k in range(len(fields))]
    return sorted(range(len(fields)), key=lambda k: (cost[k], k))


def grouped(steps: Sequence[C.Step], min_group: int = MIN_GROUP) -> tuple[C.Step, ...]:
    """The ``rules`` chain's steps with runs of same-shape rules as verdict maps."""
    groups: list[Group] = []
    for step in steps:
        foot = footprint(step)
        key = shape(step)
        barrier = -1
        for k in range(len(groups) - 1, -1, -1):
            if groups[k].overlaps(foot):
                barrier = k
                break
        target = None
        if key is not None:
            target = next((g for g in groups[barrier + 1:] if g.key == key), None)
        if target is None:
            target = _new_group(key)
            groups.append(target)
        target.add(step, foot)
    if not any(g.key is not None and len(g.steps) >= min_group for g in groups):
        return tuple(steps)
    out: list[C.Step] = []
    count = 0
    for g in groups:
        if g.key is None or len(g.steps) < min_group:
            out.extend(g.steps)
            continue
        family, fields = g.key
        count += 1
        name = rule_map(count, family)
        entries = [entry(s, fields) for s in g.steps]
        order = selective_first(fields, entries)
        look = C.Lookup(name, family, tuple(fields[k] for k in order),
                        tuple(C.Entry(tuple(e.values[k] for k in order), e.decision, e.rule)
                              for e in entries))
        out.append(C.Step((C.IsFamily(family),), look, "group", comment=name))
    return tuple(out)
