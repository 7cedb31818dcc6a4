"""ICMP, ICMPv6 and ARP packets for the probes: build and parse, no sockets. Pure."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ICMP4_ERRORS = {(3, 0): "network unreachable", (3, 1): "host unreachable",
                (3, 3): "port unreachable", (3, 13): "administratively prohibited"}
ICMP6_ERRORS = {(1, 0): "no route", (1, 1): "administratively prohibited",
                (1, 3): "address unreachable", (1, 4): "port unreachable"}


@dataclass(frozen=True)
class IcmpMessage:
    """An echo reply (``error`` None) or an error quoting one of our echo requests."""

    ident: int
    seq: int
    error: str | None = None
    quoted_dst: str | None = None  # the destination of the echo an error quotes


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, size: int, v6: bool) -> bytes:
    """An ICMP (type 8) or ICMPv6 (type 128) echo request; v6 checksums are the kernel's."""
    payload = bytes((i & 0xFF) for i in range(size))
    kind = 128 if v6 else 8
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq & 0xFFFF)
    if v6:
        return header + payload
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq & 0xFFFF) + payload


def parse_icmp(packet: bytes, v6: bool) -> IcmpMessage | None:
    """An echo reply or an error about an echo request, else None.

    IPv4 raw sockets deliver the IP header, IPv6 ones start at the ICMPv6 header.
    """
    if not v6:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8:
        return None
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    if kind == (129 if v6 else 0):
        return IcmpMessage(ident, seq) if code == 0 else None
    return _parse_icmp_error(kind, code, packet[8:], v6)


def _parse_icmp_error(kind: int, code: int, quoted: bytes, v6: bool) -> IcmpMessage | None:
    if v6:
        if kind not in (1, 3) or len(quoted) < 48 or quoted[6] != 58:
            return None
        reason = "hop limit exceeded" if kind == 3 else ICMP6_ERRORS.get((1, code), "unreachable")
        dst, inner = socket.inet_ntop(socket.AF_INET6, quoted[24:40]), quoted[40:48]
        echo = 128
    else:
        if kind not in (3, 11) or len(quoted) < 20 or quoted[9] != 1:
            return None
        ihl = (quoted[0] & 0x0F) * 4
        if len(quoted) < ihl + 8:
            return None
        reason = "ttl exceeded" if kind == 11 else ICMP4_ERRORS.get((3, code), "unreachable")
        dst, inner = socket.inet_ntoa(quoted[16:20]), quoted[ihl:ihl + 8]
        echo = 8
    if inner[0] != echo:
        return None
    _, _, _, ident, seq = struct.unpack("!BBHHH", inner)
    return IcmpMessage(ident, seq, reason, dst)


def arp_request(mac: bytes, source: str, target: str) -> bytes:
    """An Ethernet broadcast ARP who-has ``target`` from ``mac``/``source``."""
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac,
                      socket.inet_aton(source), b"\0" * 6, socket.inet_aton(target))
    return eth + arp


def parse_arp_reply(frame: bytes) -> str | None:
    """The sender IP of an Ethernet ARP reply frame, or None."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 2):
        return None
    return socket.inet_ntoa(frame[28:32])


def same_address(a: str, b: str) -> bool:
    """Whether two address strings name the same address (a ``%scope`` is ignored)."""
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return False


DNS_TYPES = {"A": 1, "NS": 2, "SOA": 6, "AAAA": 28}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
              5: "REFUSED"}


def dns_query(ident: int, name: str, qtype: int) -> bytes:
    """A DNS query (RFC 1035) for ``name`` (``.`` or ``""``: the root), recursion desired."""
    header = struct.pack("!HHHHHH", ident & 0xFFFF, 0x0100, 1, 0, 0, 0)
    labels = [x for x in name.strip(".").split(".") if x]
    qname = b"".join(bytes([len(x)]) + x.encode("ascii") for x in labels) + b"\0"
    return header + qname + struct.pack("!HH", qtype, 1)


def parse_dns_answer(data: bytes, ident: int) -> str | None:
    """The rcode name (``NOERROR``, ``NXDOMAIN``, ...) of a response to query ``ident``, or None
    when ``data`` is not one (too short, another id, not a response)."""
    if len(data) < 12:
        return None
    rid, flags = struct.unpack("!HH", data[:4])
    if rid != ident & 0xFFFF or not flags & 0x8000:
        return None
    return DNS_RCODES.get(flags & 0x0F, f"rcode {flags & 0x0F}")
