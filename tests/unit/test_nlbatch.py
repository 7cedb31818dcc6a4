"""Batched netlink requests (mwan.kernel.nlbatch) say what pyroute2 would say. No root.

Each rule and route request mwan sends is encoded by nlbatch and by
pyroute2's ``IPBatch`` (its ``IPRoute.rule``/``route`` without the socket),
and both are decoded by pyroute2: the message type, flags, header fields
and attributes must be the same.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest
from pyroute2.iproute.linux import IPBatch
from pyroute2.netlink import NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from mwan.kernel import nlbatch
from mwan.kernel.routing import route_request, rule_request
from mwan.plan.state import IpRule, Route

RULES = [
    IpRule(1001, "ipv4", "lookup", table=254, iif="wan"),
    IpRule(1002, "ipv6", "lookup", table=254, iif="a-much-longer1"),
    IpRule(2001, "ipv4", "lookup", table=1, fwmark=0x100, fwmask=0x3F00),
    IpRule(2061, "ipv4", "blackhole", fwmark=0x3D00, fwmask=0x3F00),
    IpRule(3002, "ipv6", "unreachable", fwmark=0x200, fwmask=0x3F00),
]
DEVICES = {"wan": 5, "wanb": 700}
ROUTES = [
    Route(1, "ipv4", "default", dev="wan", gateway="192.0.2.1"),
    Route(1, "ipv4", "192.0.2.0/24", dev="wan", prefsrc="192.0.2.2", scope=253),
    Route(2, "ipv4", "198.51.100.7/32", dev="wanb", metric=10),
    Route(2, "ipv6", "2001:db8:1::/64", dev="wanb", metric=1024),
    Route(2, "ipv6", "default", dev="wanb", gateway="fe80::1", metric=5),
    Route(3, "ipv4", "203.0.113.0/24", type="unreachable"),
    Route(252, "ipv6", "2001:db8::/32", type="blackhole", metric=1024),
]


def decoded(buf: bytes, cls: Any) -> list[tuple[Any, ...]]:
    out, off = [], 0
    while off < len(buf):
        length, msg_type, flags = struct.unpack_from("=IHH", buf, off)
        m = cls(bytes(buf[off:off + length]))
        m.decode()
        out.append((msg_type, flags, {f[0]: m[f[0]] for f in cls.fields},
                    sorted((str(a[0]), a[1]) for a in m["attrs"])))
        off += length
    return out


@pytest.mark.parametrize("cmd", ["add", "del"])
def test_rules_encode_as_pyroute2_does(cmd: str) -> None:
    ipb = IPBatch()
    for r in RULES:
        ipb.rule(cmd, **rule_request(r))
    ours = b"".join(nlbatch.encode(("rule", cmd, rule_request(r)), n)
                    for n, r in enumerate(RULES))
    assert decoded(ours, fibmsg) == decoded(ipb.batch, fibmsg)


@pytest.mark.parametrize("cmd", ["replace", "del"])
def test_routes_encode_as_pyroute2_does(cmd: str) -> None:
    ipb = IPBatch()
    for r in ROUTES:
        ipb.route(cmd, **route_request(r, DEVICES))
    ours = b"".join(nlbatch.encode(("route", cmd, route_request(r, DEVICES)), n)
                    for n, r in enumerate(ROUTES))
    assert decoded(ours, rtmsg) == decoded(ipb.batch, rtmsg)


def ack(seq: int, err: int, text: str = "", capped: bool = True) -> bytes:
    request = struct.pack("=IHHII", 16 if capped else 24, 24, 5, seq, 0)
    if not capped:
        request += b"\0" * 8
    tlvs = b""
    if text:
        payload = text.encode() + b"\0"
        tlvs = struct.pack("=HH", 4 + len(payload), nlbatch.NLMSGERR_ATTR_MSG) + payload
        tlvs += b"\0" * (-len(tlvs) % 4)
    flags = (NLM_F_ACK_TLVS if text else 0) | (NLM_F_CAPPED if capped else 0)
    body = struct.pack("=i", -err) + request + tlvs
    return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, flags, seq, 0) + body


def test_acks_are_read_with_their_errno_and_message() -> None:
    data = ack(7, 0) + ack(8, errno.ENETUNREACH, "Nexthop has invalid gateway") + \
        ack(9, errno.EEXIST, "", capped=False) + ack(10, errno.ENOENT, "gone", capped=False)
    assert list(nlbatch.parse_acks(data)) == [
        (7, 0, ""), (8, errno.ENETUNREACH, "Nexthop has invalid gateway"), (9, errno.EEXIST, ""),
        (10, errno.ENOENT, "gone")]
