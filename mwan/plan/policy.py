"""Which members a policy uses right now, and with what share.

Among a policy's members of one family whose interface is online, the lowest
metric wins; members of that metric share new connections by weight.  With
none online the policy's ``last_resort`` applies.  The same function feeds
the nft compiler, ``mwan3 policies`` and ``mwan3 explain``, so what is shown
is what is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..config.model import Config, Policy
from ..config.values import FAMILIES
from .state import Family, IfaceRuntime


@dataclass(frozen=True)
class Share:
    interface: str
    member: str
    metric: int
    weight: int
    fraction: Fraction

    @property
    def percent(self) -> float:
        return float(self.fraction * 100)


@dataclass(frozen=True)
class PolicyChoice:
    policy: str
    family: Family
    shares: tuple[Share, ...]  # empty: last_resort applies
    last_resort: str
    notes: tuple[str, ...] = ()  # why members of the tier were chosen or skipped (quality)

    @property
    def total_weight(self) -> int:
        return sum(s.weight for s in self.shares)


def failback_label(cfg: Config, policy: str) -> int | None:
    """The conntrack label bit a ``failback 'move'`` policy's connections carry (its
    position among the policies, 0 to 127); None for ``keep``.  The policy chain and
    the sticky gates set it; the daemon's failback deletes by it (mwan.daemon.failback)."""
    names = [p.name for p in cfg.policies]
    return names.index(policy) if cfg.policy(policy).failback == "move" else None


def family_members(cfg: Config, policy: Policy, family: Family) -> list[tuple[str, str, int, int]]:
    """(member, interface, metric, weight) of the policy's enabled members of a family."""
    out = []
    for mname in policy.use_member:
        member = cfg.member(mname)
        iface = cfg.interface(member.interface)
        if iface.family != family or not iface.enabled:
            continue
        out.append((member.name, iface.name, member.metric, member.weight))
    return out


def choose(cfg: Config, policy: Policy, family: Family,
           runtime: Mapping[str, IfaceRuntime]) -> PolicyChoice:
    """The active tier of a policy for one family."""
    online = [
        m for m in family_members(cfg, policy, family)
        if (rt := runtime.get(m[1])) is not None and rt.up and rt.online
    ]
    # one interface listed twice through two members: the first listing wins
    seen: set[str] = set()
    unique = []
    for m in online:
        if m[1] not in seen:
            seen.add(m[1])
            unique.append(m)
    ready = without_standby(unique, runtime)
    parked = tuple(f"{m[1]} skipped: over its data cap (standby), another member is online"
                   for m in unique if m not in ready)
    unique = ready
    if not unique:
        return PolicyChoice(policy.name, family, (), policy.last_resort)
    best = min(m[2] for m in unique)
    tier = [m for m in unique if m[2] == best]
    tier, notes = quality_tier(policy, tier, runtime)
    total = sum(m[3] for m in tier)
    shares = tuple(
        Share(interface=i, member=n, metric=metric, weight=w, fraction=Fraction(w, total))
        for n, i, metric, w in tier
    )
    return PolicyChoice(policy.name, family, shares, policy.last_resort, parked + notes)


# ---------------------------------------------------------------- quality (issue 14)

Tier = list[tuple[str, str, int, int]]


def quality_tier(policy: Policy, tier: Tier, runtime: Mapping[str, IfaceRuntime]
                 ) -> tuple[Tier, tuple[str, ...]]:
    """The tier after the policy's quality options, and why: ``avoid_degraded`` drops degraded
    members while a healthy one is online; ``balance latency`` keeps one member, the fastest
    (switching only past the margins).  With neither set: the tier as it is (mwan3)."""
    notes: list[str] = []
    if policy.avoid_degraded:
        healthy = [m for m in tier if not runtime[m[1]].degraded]
        for m in tier:
            if runtime[m[1]].degraded:
                notes.append(f"{m[1]} skipped: degraded (avoid_degraded), a healthy member of "
                             f"metric {m[2]} is online" if healthy else
                             f"{m[1]} used although degraded: no healthy member of metric "
                             f"{m[2]} is online")
        tier = healthy or tier
    if policy.balance == "latency" and len(tier) > 1:
        pick, why = latency_pick(policy, tier, runtime)
        notes.append(why)
        tier = [pick]
    elif policy.balance == "latency" and tier:
        notes.append(f"{tier[0][1]} chosen: the only member of metric {tier[0][2]} (balance "
                     "latency)")
    return tier, tuple(notes)


def _ms(v: float | None) -> str:
    return "no latency yet" if v is None else f"{v:.0f} ms"


def latency_pick(policy: Policy, tier: Tier, runtime: Mapping[str, IfaceRuntime]
                 ) -> tuple[tuple[str, str, int, int], str]:
    """The member with the lowest windowed latency, but the policy's last pick stays until
    another is faster by both margins (``latency_margin`` ms and ``latency_margin_pct``)."""
    def lat(m: tuple[str, str, int, int]) -> float:
        v = runtime[m[1]].latency_ms
        return float("inf") if v is None else v

    fastest = min(tier, key=lat)  # ties: the first listed
    others = ", ".join(f"{m[1]} {_ms(runtime[m[1]].latency_ms)}" for m in tier if m != fastest)
    current = next((m for m in tier if policy.name in runtime[m[1]].latency_pick), None)
    if current is None or current == fastest:
        return fastest, (f"{fastest[1]} chosen: lowest latency "
                         f"{_ms(runtime[fastest[1]].latency_ms)} (balance latency; {others})")
    margin = max(float(policy.latency_margin), lat(current) * policy.latency_margin_pct / 100)
    if lat(current) == float("inf") or lat(current) - lat(fastest) > margin:
        return fastest, (f"{fastest[1]} chosen: {_ms(runtime[fastest[1]].latency_ms)}, faster "
                         f"than {current[1]} {_ms(runtime[current[1]].latency_ms)} by more "
                         f"than the margin (balance latency)")
    return current, (f"{current[1]} kept: {_ms(runtime[current[1]].latency_ms)}; "
                     f"{fastest[1]} {_ms(runtime[fastest[1]].latency_ms)} is not faster by "
                     f"the margin ({policy.latency_margin} ms, {policy.latency_margin_pct}%)")


def all_choices(cfg: Config, runtime: Mapping[str, IfaceRuntime]) -> tuple[PolicyChoice, ...]:
    """Every policy for both families, in config order."""
    return tuple(
        choose(cfg, p, fam, runtime) for fam in FAMILIES for p in cfg.policies
    )


def without_standby(online: list[tuple[str, str, int, int]],
                    runtime: Mapping[str, IfaceRuntime]) -> list[tuple[str, str, int, int]]:
    """The online members less those in standby (over a data cap), unless all are (issue 15)."""
    ready = [m for m in online if not runtime[m[1]].standby]
    return ready or online
