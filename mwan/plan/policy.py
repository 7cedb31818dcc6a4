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

    @property
    def total_weight(self) -> int:
        return sum(s.weight for s in self.shares)


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
    if not unique:
        return PolicyChoice(policy.name, family, (), policy.last_resort)
    best = min(m[2] for m in unique)
    tier = [m for m in unique if m[2] == best]
    total = sum(m[3] for m in tier)
    shares = tuple(
        Share(interface=i, member=n, metric=metric, weight=w, fraction=Fraction(w, total))
        for n, i, metric, w in tier
    )
    return PolicyChoice(policy.name, family, shares, policy.last_resort)


def all_choices(cfg: Config, runtime: Mapping[str, IfaceRuntime]) -> tuple[PolicyChoice, ...]:
    """Every policy for both families, in config order."""
    return tuple(
        choose(cfg, p, fam, runtime) for fam in ("ipv4", "ipv6") for p in cfg.policies
    )
