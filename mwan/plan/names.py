"""The names and constants of mwan's nft table: chains, sets, hook priority. Pure."""

from __future__ import annotations

from ..config import values
from ..config.values import Family

FAMILIES = values.FAMILIES  # one definition, in config/values

HOOK_PRIORITY = -149  # mangle + 1, as fw4-compatible multi-WAN tables do
SUFFIX = {"ipv4": "v4", "ipv6": "v6"}
ADDR_TYPE = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
IP_PROTO = {"ipv4": "ip", "ipv6": "ip6"}
ND_TYPES = ["nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit",
            "nd-neighbor-advert", "nd-redirect"]
ALWAYS_CONNECTED = {
    "ipv4": ["127.0.0.0/8", "224.0.0.0/3"],
    "ipv6": ["::1/128", "fe80::/10", "ff00::/8"],
}
NFT_LOG_LEVEL = {"error": "err", "warning": "warn"}
MAIN_TABLE = 254
IIF_PRIORITY, FWMARK_PRIORITY, FALLBACK_PRIORITY = 1000, 2000, 3000


def mark_chain(ident: int) -> str:
    return f"mark_{ident}"


def save_chain(ident: int) -> str:
    return f"save_{ident}"


def policy_chain(policy: str, family: Family) -> str:
    return f"policy_{policy}_{SUFFIX[family]}"


def sticky_chain(rule: str, family: Family) -> str:
    return f"sticky_{rule}_{SUFFIX[family]}"


def sticky_set(rule: str, family: Family) -> str:
    """``source . mark`` with timeouts (mwan3: the ``mwan3_sticky_v4_RULE`` ipset)."""
    return f"sticky_{SUFFIX[family]}_{rule}"


def rule_map(index: int, family: Family) -> str:
    """A verdict map holding a run of user rules (plan/group.py)."""
    return f"{_RULE_MAP_PREFIX[family]}{index}"


def rule_map_family(name: str) -> Family | None:
    """The family of a :func:`rule_map` name; None if ``name`` is none of them."""
    return next((f for f, p in _RULE_MAP_PREFIX.items() if name.startswith(p)), None)


_RULE_MAP_PREFIX: dict[Family, str] = {f: f"rules_{SUFFIX[f]}_" for f in FAMILIES}


def user_set(name: str, family: Family) -> str:
    """The nft set behind a rule's ``ipset`` option, one per family."""
    return f"{name}_{SUFFIX[family]}"


BYPASS_SETS = ("connected", "custom", "dynamic")  # compile.bypass_sets: KIND_v4, KIND_v6


def reserved_ipset(name: str) -> str | None:
    """The set of mwan's own that a rule's ``ipset`` NAME would collide with, or None.

    A rule's ipset becomes the sets :func:`user_set` names; mwan itself names
    the bypass sets (``connected_v4``, ...), a :func:`sticky_set` per sticky
    rule and the :func:`rule_map` maps.  ``ipset 'connected'`` would be ``connected_v4``, and ``ipset
    'sticky_v4_a'`` would be ``sticky_v4_a_v4``, the sticky set of a rule
    ``a_v4``: any name that can collide is reserved, whatever rules exist now.
    """
    for fam in FAMILIES:
        theirs = user_set(name, fam)
        if theirs in _OWN_SETS or theirs.startswith(_STICKY_PREFIXES):
            return theirs
    return None


_OWN_SETS = frozenset(f"{kind}_{SUFFIX[fam]}" for kind in BYPASS_SETS for fam in FAMILIES)
_STICKY_PREFIXES = tuple(sticky_set("", fam) for fam in FAMILIES) + tuple(
    _RULE_MAP_PREFIX.values())
