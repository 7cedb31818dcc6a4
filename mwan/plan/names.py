"""The names and constants of mwan's nft table: chains, sets, hook priority. Pure."""

from __future__ import annotations

from .state import Family

HOOK_PRIORITY = -149  # mangle + 1, as fw4-compatible multi-WAN tables do
FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")
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


def user_set(name: str, family: Family) -> str:
    """The nft set behind a rule's ``ipset`` option, one per family."""
    return f"{name}_{SUFFIX[family]}"
