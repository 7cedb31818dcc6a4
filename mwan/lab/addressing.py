"""The lab's address plan: pure functions from (role, index, family) to addresses.

Links use private ranges, "internet hosts" only documentation ranges
(RFC 5737 / RFC 3849)::

    router wanK  10.100.K.2/24   2001:db8:100:K::2/64   (ISP K side: .1 / ::1)
    ISP K up     10.200.K.2/24   2001:db8:200:K::2/64   (inet side:  .1 / ::1)
    LAN          192.168.1.0/24  fd00:1::/64            (router .1 / ::1, client i .(9+i))
    server       198.51.100.10   2001:db8:ffff::10
    server 2     203.0.113.10    2001:db8:eeee::10
    track        192.0.2.1-4     2001:db8:ffff::1-4
"""

from __future__ import annotations

import ipaddress
from typing import Literal

Family = Literal[4, 6]

LAN_PREFIX4 = "192.168.1"
LAN_PREFIX6 = "fd00:1:"
TRACK_COUNT = 4


def _check_family(family: int) -> None:
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family!r}")


def wan_addr(k: int, family: int = 4) -> str:
    """Router's address on WAN ``k`` (no prefix length)."""
    _check_family(family)
    return f"10.100.{k}.2" if family == 4 else f"2001:db8:100:{k}::2"


def wan_gateway(k: int, family: int = 4) -> str:
    """ISP ``k``'s address on the router link: the router's gateway via wanK."""
    _check_family(family)
    return f"10.100.{k}.1" if family == 4 else f"2001:db8:100:{k}::1"


def wan_network(k: int, family: int = 4) -> str:
    """The router link's network of WAN ``k`` (CIDR)."""
    _check_family(family)
    return f"10.100.{k}.0/24" if family == 4 else f"2001:db8:100:{k}::/64"


def upstream_addr(k: int, family: int = 4) -> str:
    """ISP ``k``'s address on its link to inet."""
    _check_family(family)
    return f"10.200.{k}.2" if family == 4 else f"2001:db8:200:{k}::2"


def inet_addr(k: int, family: int = 4) -> str:
    """inet's address on its link to ISP ``k``."""
    _check_family(family)
    return f"10.200.{k}.1" if family == 4 else f"2001:db8:200:{k}::1"


def lan_router_addr(family: int = 4) -> str:
    """The router's address on br-lan (the LAN clients' gateway)."""
    _check_family(family)
    return f"{LAN_PREFIX4}.1" if family == 4 else f"{LAN_PREFIX6}:1"


def lan_client_addr(i: int, family: int = 4) -> str:
    """LAN client ``i``'s address (i starts at 1: 192.168.1.10, fd00:1::10)."""
    _check_family(family)
    return f"{LAN_PREFIX4}.{9 + i}" if family == 4 else f"{LAN_PREFIX6}:{9 + i}"


def lan_plen(family: int = 4) -> int:
    """Prefix length of the LAN."""
    _check_family(family)
    return 24 if family == 4 else 64


def server_addr(family: int = 4) -> str:
    """The echo server's main address."""
    _check_family(family)
    return "198.51.100.10" if family == 4 else "2001:db8:ffff::10"


def server2_addr(family: int = 4) -> str:
    """A second server address, for tests of dest_ip rules."""
    _check_family(family)
    return "203.0.113.10" if family == 4 else "2001:db8:eeee::10"


def track_targets(family: int = 4) -> list[str]:
    """Addresses in inet that answer ping, for tracking."""
    _check_family(family)
    if family == 4:
        return [f"192.0.2.{n}" for n in range(1, TRACK_COUNT + 1)]
    return [f"2001:db8:ffff::{n}" for n in range(1, TRACK_COUNT + 1)]


def internet_hosts(family: int = 4) -> list[str]:
    """Every address inet owns as an "internet host" (servers and track targets)."""
    return [server_addr(family), server2_addr(family), *track_targets(family)]


def family_of(addr: str) -> Family:
    """4 or 6 for an address string; ValueError when it is not an address."""
    return 4 if ipaddress.ip_address(addr).version == 4 else 6


def wan_of(addr: str, isps: int) -> int | None:
    """The WAN index whose router-link network contains ``addr``, else None.

    This maps the source address the server saw (the router masquerades
    to its WAN address) back to the WAN that carried the connection.
    """
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for k in range(1, isps + 1):
        if ip in ipaddress.ip_network(wan_network(k, ip.version)):
            return k
    return None
