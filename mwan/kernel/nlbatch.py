"""Many ip rule and route requests in few netlink writes.

pyroute2 sends one request per call and waits for its answer, through an
asyncio loop: about half a millisecond each, most of a full apply's netlink
time (60 WANs: 184 rules and 120 routes).  rtnetlink handles every message
of a write in order, each on its own (one failing does not stop the next),
and acknowledges each one.  So the requests are encoded here, with
pyroute2's numbers (message types, flags, attribute codes) and the same
header fields and attributes that its ``IPRoute.rule``/``IPRoute.route``
put into a message for the same keyword arguments (a unit test decodes
both), written many to a ``sendmsg``, and their acknowledgements read back
by sequence number.

The keyword arguments are those of :func:`mwan.kernel.routing.rule_request`
and :func:`~mwan.kernel.routing.route_request`.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pyroute2.netlink import (
    NETLINK_EXT_ACK,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_DELRULE, RTM_NEWROUTE, RTM_NEWRULE
from pyroute2.netlink.rtnl.fibmsg import FR_ACT_NAMES, fibmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

Kind = Literal["rule", "route"]
Request = tuple[Kind, str, dict[str, Any]]  # ("rule", "add", rule_request(r))

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # linux/netlink.h: acks without the request's payload
NLMSGERR_ATTR_MSG = 1  # linux/netlink.h: the extended ack's text
# requests per write: their acks (one skb each, ~600 bytes of receive buffer)
# must fit the socket's buffer until they are read
CHUNK = 128
RCVBUF = 1 << 20
# the kernel answers every request at once; waiting longer means something is wrong
ACK_TIMEOUT = 10.0

FLAGS = {"add": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
         "replace": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
         "del": NLM_F_REQUEST | NLM_F_ACK}
MSG_TYPE = {("rule", "add"): RTM_NEWRULE, ("rule", "del"): RTM_DELRULE,
            ("route", "replace"): RTM_NEWROUTE, ("route", "add"): RTM_NEWROUTE,
            ("route", "del"): RTM_DELROUTE}


def _codes(nla_map: Sequence[tuple[Any, ...]]) -> dict[str, int]:
    """Attribute name → code, from pyroute2's table (rows (code, name, type) or (name, type))."""
    out = {}
    for i, row in enumerate(nla_map):
        code, name = (row[0], row[1]) if isinstance(row[0], int) else (i, row[0])
        out[name] = code
    return out


RTA = _codes(rtmsg.nla_map)
FRA = _codes(fibmsg.nla_map)

_HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_BODY = struct.Struct("=BBBBBBBBI")  # rtmsg and fib_rule_hdr have the same layout
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")


def _attr(code: int, payload: bytes) -> bytes:
    n = _ATTR.size + len(payload)
    return _ATTR.pack(n, code) + payload + b"\0" * (-n % 4)


def _u32(code: int, value: int) -> bytes:
    return _attr(code, _U32.pack(value))


def _message(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(_HDR.size + len(body), msg_type, flags, seq, 0) + body


def _table_field(table: int) -> int:
    """The header's 8-bit table: the id, or RT_TABLE_COMPAT (252) past 255 (as pyroute2)."""
    return table if table <= 255 else 252


def encode_rule(cmd: str, seq: int, kw: dict[str, Any]) -> bytes:
    """RTM_NEWRULE/RTM_DELRULE for ``IPRoute.rule(cmd, **kw)``."""
    table = kw.get("table")
    body = _BODY.pack(kw["family"], 0, 0, 0, _table_field(table) if table else 0, 0, 0,
                      FR_ACT_NAMES[kw["action"]], 0)
    body += _u32(FRA["FRA_PRIORITY"], kw["priority"])
    body += _attr(FRA["FRA_PROTOCOL"], bytes((kw["protocol"],)))
    if table:
        body += _u32(FRA["FRA_TABLE"], table)
    if "fwmark" in kw:
        body += _u32(FRA["FRA_FWMARK"], kw["fwmark"])
        body += _u32(FRA["FRA_FWMASK"], kw["fwmask"])
    if kw.get("iifname") is not None:
        body += _attr(FRA["FRA_IIFNAME"], kw["iifname"].encode() + b"\0")
    return _message(MSG_TYPE[("rule", cmd)], FLAGS[cmd], seq, body)


def encode_route(cmd: str, seq: int, kw: dict[str, Any]) -> bytes:
    """RTM_NEWROUTE/RTM_DELROUTE for ``IPRoute.route(cmd, **kw)``."""
    family = kw["family"]
    dst = kw["dst"]
    addr, _, plen = ("", "", "0") if dst == "default" else dst.partition("/")
    if addr and not plen:
        plen = "32" if family == socket.AF_INET else "128"
    body = _BODY.pack(family, int(plen), 0, 0, _table_field(kw["table"]), kw["proto"],
                      kw["scope"], kw["type"], 0)
    body += _u32(RTA["RTA_TABLE"], kw["table"])
    if addr:
        body += _attr(RTA["RTA_DST"], socket.inet_pton(family, addr))
    if "oif" in kw:
        body += _u32(RTA["RTA_OIF"], kw["oif"])
    if "gateway" in kw:
        body += _attr(RTA["RTA_GATEWAY"], socket.inet_pton(family, kw["gateway"]))
    if "prefsrc" in kw:
        body += _attr(RTA["RTA_PREFSRC"], socket.inet_pton(family, kw["prefsrc"]))
    if "priority" in kw:
        body += _u32(RTA["RTA_PRIORITY"], kw["priority"])
    return _message(MSG_TYPE[("route", cmd)], FLAGS[cmd], seq, body)


ENCODERS = {"rule": encode_rule, "route": encode_route}


def encode(req: Request, seq: int) -> bytes:
    kind, cmd, kw = req
    return ENCODERS[kind](cmd, seq, kw)


def parse_acks(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(sequence, errno (0: done), the kernel's message) of each NLMSG_ERROR in ``data``."""
    off = 0
    while off + _HDR.size <= len(data):
        length, msg_type, flags, seq, _port = _HDR.unpack_from(data, off)
        if length < _HDR.size:
            break
        if msg_type == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + _HDR.size)
            text = ""
            if flags & NLM_F_ACK_TLVS:  # after the error and the request (its header if capped)
                inner = off + _HDR.size + 4
                (req_len,) = _U32.unpack_from(data, inner)
                start = inner + (_HDR.size if flags & NLM_F_CAPPED else (req_len + 3) & ~3)
                text = _ack_text(data[start:off + length])
            yield seq, -err, text
        off += (length + 3) & ~3


def _ack_text(tlvs: bytes) -> str:
    off = 0
    while off + _ATTR.size <= len(tlvs):
        n, code = _ATTR.unpack_from(tlvs, off)
        if n < _ATTR.size:
            break
        if code == NLMSGERR_ATTR_MSG:
            return tlvs[off + _ATTR.size:off + n].split(b"\0", 1)[0].decode(errors="replace")
        off += (n + 3) & ~3
    return ""


class NetlinkBatch:
    """A NETLINK_ROUTE socket that sends requests in batches and reads their acks."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sock.settimeout(ACK_TIMEOUT)
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            try:
                self._sock.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:  # an old kernel: full acks, no messages
                pass
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._seq = itertools.count((os.getpid() & 0xFFFF) << 16)

    def close(self) -> None:
        self._sock.close()

    def run(self, requests: Sequence[Request]) -> list[NetlinkError | None]:
        """Send every request, in order; the kernel's answer to each (None: done).

        Raises :class:`OSError` (``TimeoutError`` after :data:`ACK_TIMEOUT`) if the
        socket fails: what the kernel did is then unknown.
        """
        out: list[NetlinkError | None] = []
        for start in range(0, len(requests), CHUNK):
            out += self._chunk(requests[start:start + CHUNK])
        return out

    def _chunk(self, requests: Sequence[Request]) -> list[NetlinkError | None]:
        seqs = [next(self._seq) & 0xFFFFFFFF for _ in requests]
        self._sock.send(b"".join(encode(r, s) for r, s in zip(requests, seqs)))
        index = {s: i for i, s in enumerate(seqs)}
        answers: dict[int, NetlinkError | None] = {}
        while len(answers) < len(requests):
            try:
                data = self._sock.recv(65536)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # acks were lost: the rest is unknown
                    lost = NetlinkError(errno.ENOBUFS, "netlink acknowledgements lost")
                    return [answers.get(i, lost) for i in range(len(requests))]
                raise
            for seq, err, text in parse_acks(data):
                if seq in index:
                    answers[index[seq]] = \
                        NetlinkError(err, text or os.strerror(err)) if err else None
        return [answers[i] for i in range(len(requests))]
