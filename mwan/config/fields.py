"""Readers for single option values.

Each reader takes the raw text and returns the parsed value or raises
:class:`BadValue` with a message that says what was expected.
"""

from __future__ import annotations

import ipaddress
import re

from ..plan.names import FWMARK_PRIORITY, reserved_ipset
from .marks import MarkSpace
from .uci import char_name
from .values import IPAddress, IPNetwork, PortRange

PROTO_NUMBERS = {
    "all": None,
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
}

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_SETNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class BadValue(ValueError):
    """The option's text is not a valid value."""


def read_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "yes", "on", "true", "enabled"):
        return True
    if low in ("0", "no", "off", "false", "disabled"):
        return False
    raise BadValue(f"{text!r} is not a boolean (use 0 or 1)")


def read_int(text: str, low: int | None = None, high: int | None = None) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d+", t):
        raise BadValue(f"{text!r} is not a whole number")
    value = int(t)
    if low is not None and value < low:
        raise BadValue(f"{value} is below the minimum {low}")
    if high is not None and value > high:
        raise BadValue(f"{value} is above the maximum {high}")
    return value


def read_hex_mask(text: str) -> int:
    t = text.strip().lower()
    try:
        value = int(t, 16) if t.startswith("0x") else int(t, 0)
    except ValueError:
        raise BadValue(f"{text!r} is not a hexadecimal mask like 0x3F00") from None
    if not 0 < value <= 0xFFFFFFFF:
        raise BadValue(f"{text!r} is not a 32-bit mask")
    if (value).bit_count() < 3:
        raise BadValue(f"{text!r} has fewer than 3 bits set; mwan3 needs at least 3")
    return value


def read_choice(text: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        raise BadValue(f"{text!r} is not one of {', '.join(choices)}")
    return text


def read_address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise BadValue(f"{text!r} is not an IP address") from None


def read_network(text: str) -> IPNetwork:
    t = text.strip()
    try:
        return ipaddress.ip_network(t, strict=False)
    except ValueError:
        raise BadValue(f"{text!r} is not an IP address or CIDR network") from None


def read_network_list(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Addresses and CIDRs, each value possibly a comma list (``a,b/24``)."""
    out: list[IPNetwork] = []
    for value in values:
        parts = [p for p in value.replace(" ", ",").split(",")]
        if not value.strip() or any(not p for p in parts):
            raise BadValue(f"{value!r} is not a comma list of addresses")
        for part in parts:
            out.append(read_network(part))
    return tuple(out)


def read_port_list(values: tuple[str, ...]) -> tuple[PortRange, ...]:
    """Ports: ``80``, ``80,443``, ``1000:2000`` or ``1000-2000``."""
    out: list[PortRange] = []
    for value in values:
        parts = value.replace(" ", ",").split(",")
        if not value.strip() or any(not p for p in parts):
            raise BadValue(f"{value!r} is not a comma list of ports")
        for part in parts:
            m = re.fullmatch(r"(\d+)(?:[:-](\d+))?", part)
            if not m:
                raise BadValue(f"{part!r} is not a port or a port range like 1000:2000")
            low = int(m.group(1))
            high = int(m.group(2)) if m.group(2) else low
            if not (0 < low <= 65535 and 0 < high <= 65535):
                raise BadValue(f"{part!r}: ports run from 1 to 65535")
            if high < low:
                raise BadValue(f"{part!r}: the range is reversed")
            out.append(PortRange(low, high))
    return tuple(out)


def read_proto(text: str) -> str:
    t = text.strip().lower()
    if t in PROTO_NUMBERS:
        return "icmpv6" if t == "ipv6-icmp" else t
    if re.fullmatch(r"\d+", t) and 0 <= int(t) <= 255:
        return str(int(t))
    raise BadValue(
        f"{text!r} is not a protocol (use all, tcp, udp, icmp, a name like esp, or a number)"
    )


def check_name(name: str) -> str | None:
    """Why a policy/rule/interface/member name is bad, or None."""
    if not _NAME_RE.match(name):
        return "name may only contain A-Z, a-z, 0-9 and _"
    return None


def read_set_name(text: str) -> str:
    if not _SETNAME_RE.match(text) or len(text) > 63:
        raise BadValue(f"{text!r} is not a valid set name")
    return text


def read_ipset(text: str) -> str:
    """A rule's ``ipset``: a valid set name that is none of mwan's own sets."""
    name = read_set_name(text)
    theirs = reserved_ipset(name)
    if theirs is not None:
        raise BadValue(f"{name!r} is reserved: its nft set {theirs!r} is one mwan names itself "
                       "(connected, custom, dynamic and sticky_v4_RULE / sticky_v6_RULE); "
                       "name the set differently")
    return name


# Linux refuses these in a device name (dev_valid_name); nft reads '*' as a
# wildcard and quotes and backslashes as its own syntax.
_DEVICE_KERNEL_REFUSES = "/:"
_DEVICE_NFT_SPECIAL = "*\"'\\"


def device_name_problem(device: str) -> str | None:
    """Why ``device`` cannot be a Linux interface name that nft matches literally, or None.

    The kernel's ``dev_valid_name``: 1-15 bytes, not ``.`` or ``..``, no
    ``/``, ``:`` or blank.  mwan also refuses what nft would read as syntax
    (``*`` is a wildcard: ``eth*`` would match every eth device) and anything
    but printable ASCII.
    """
    if not device:
        return "is empty; give the Linux device name, e.g. 'eth1'"
    size = len(device.encode())
    if size > 15:
        return f"{device!r} is longer than the 15 bytes of a Linux device name"
    if device in (".", ".."):
        return f"{device!r} is not a Linux device name"
    for c in device:
        if c in _DEVICE_NFT_SPECIAL:
            return (f"{device!r}: {c!r} is not allowed in a device name (nft would read it as "
                    f"{'a wildcard' if c == '*' else 'quoting'}); name one device, e.g. 'eth1'")
        if c in _DEVICE_KERNEL_REFUSES or c.isspace() or not (c.isascii() and c.isprintable()):
            return (f"{device!r}: {char_name(c)} is not allowed in a Linux device name "
                    "(the kernel refuses '/', ':' and blanks; mwan takes printable ASCII)")
    return None


MAIN_RULE_PRIORITY = 32766  # the kernel's "from all lookup main"


def mark_mask_problem(mask: int) -> str | None:
    """Why ``mmx_mask`` has too many bits for mwan's ip rules to stay before main's, or None."""
    space = MarkSpace(mask)
    highest = FWMARK_PRIORITY + space.unreachable_id  # the 'fwmark ... unreachable' rule
    if highest < MAIN_RULE_PRIORITY:
        return None
    return (f"{space.mask:#x} has {space.bits} bits: the reserved ids (blackhole "
            f"{space.blackhole_id}, unreachable {space.unreachable_id}) would need ip rule "
            f"priority {highest}, past the main table's rule at {MAIN_RULE_PRIORITY}; use at "
            f"most 14 bits, e.g. 0x3F00 (the default) or 0xFF0000")
