"""Probes without namespaces: results, packets, and TCP/UDP/HTTP probes over loopback.

The packet tests are pure.  The loopback tests bind to ``lo`` (SO_BINDTODEVICE,
allowed unprivileged since Linux 5.7) and skip where that is refused.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mwan.track.packets import (
    ETH_P_ARP,
    IcmpMessage,
    arp_request,
    checksum,
    echo_request,
    parse_arp_reply,
    parse_icmp,
    same_address,
)
from mwan.track.probes import ProbeSpec, TargetResult, probe

# -- results ------------------------------------------------------------------


def test_result_properties() -> None:
    r = TargetResult("192.0.2.1", 4, 3, (10.0, 20.0, 30.0))
    assert r.ok and not r.all_answered
    assert r.loss_pct == 25.0 and r.latency_ms == 20.0
    lost = TargetResult("192.0.2.1", 2, 0, (), "timeout")
    assert not lost.ok and lost.loss_pct == 100.0 and lost.latency_ms is None
    nothing = TargetResult("2001:db8::1", 0, 0, (), "arping is IPv4 only")
    assert nothing.loss_pct == 100.0 and not nothing.ok and not nothing.all_answered
    assert TargetResult("192.0.2.1", 2, 2, (1.0, 2.0)).all_answered


# -- ICMP ---------------------------------------------------------------------


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement: 220d)
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF  # odd length: padded with a zero byte


@pytest.mark.parametrize("size", [0, 1, 56, 1400])
def test_echo_request_v4(size: int) -> None:
    pkt = echo_request(0x1234, 7, size, v6=False)
    assert len(pkt) == 8 + size
    kind, code, _, ident, seq = struct.unpack("!BBHHH", pkt[:8])
    assert (kind, code, ident, seq) == (8, 0, 0x1234, 7)
    assert checksum(pkt) == 0  # a correct checksum makes the sum all ones


def test_echo_request_v6_leaves_checksum_to_kernel() -> None:
    pkt = echo_request(1, 2, 56, v6=True)
    assert len(pkt) == 64 and pkt[0] == 128 and pkt[2:4] == b"\0\0"


def ipv4_header(src: str, dst: str, proto: int = 1, ihl: int = 5) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 0, 0, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr + b"\0" * (ihl * 4 - 20)


def ipv6_header(src: str, dst: str, nxt: int = 58) -> bytes:
    return (struct.pack("!IHBB", 6 << 28, 0, nxt, 64)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst))


def test_parse_echo_reply_v4_skips_ip_header_with_options() -> None:
    reply = struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 3) + b"x" * 56
    for ihl in (5, 6):
        assert parse_icmp(ipv4_header("192.0.2.1", "10.100.1.2", ihl=ihl) + reply, False) \
            == IcmpMessage(0xBEEF, 3)
    request = echo_request(0xBEEF, 3, 8, v6=False)  # our own request is not a reply
    assert parse_icmp(ipv4_header("10.100.1.2", "192.0.2.1") + request, False) is None
    assert parse_icmp(b"\x45" + b"\0" * 10, False) is None


def test_parse_echo_reply_v6() -> None:
    assert parse_icmp(struct.pack("!BBHHH", 129, 0, 0, 9, 1), True) == IcmpMessage(9, 1)
    assert parse_icmp(struct.pack("!BBHHH", 128, 0, 0, 9, 1), True) is None
    assert parse_icmp(b"\x81\0", True) is None


def test_parse_icmp_errors_quote_our_echo() -> None:
    echo = echo_request(0x4242, 5, 56, v6=False)
    quoted = ipv4_header("10.100.1.2", "192.0.2.1") + echo[:8]
    ttl = struct.pack("!BBHI", 11, 0, 0, 0) + quoted
    assert parse_icmp(ipv4_header("10.100.1.1", "10.100.1.2") + ttl, False) == IcmpMessage(
        0x4242, 5, "ttl exceeded", "192.0.2.1")
    unreach = struct.pack("!BBHI", 3, 1, 0, 0) + quoted
    msg = parse_icmp(ipv4_header("10.100.1.1", "10.100.1.2") + unreach, False)
    assert msg is not None and msg.error == "host unreachable"
    # an error about a UDP datagram is not about our echo
    udp = struct.pack("!BBHI", 3, 3, 0, 0) + ipv4_header("10.100.1.2", "192.0.2.1", 17) + b"\0" * 8
    assert parse_icmp(ipv4_header("192.0.2.1", "10.100.1.2") + udp, False) is None

    echo6 = echo_request(0x77, 9, 56, v6=True)
    quoted6 = ipv6_header("2001:db8:100:1::2", "2001:db8:ffff::1") + echo6[:8]
    hop = struct.pack("!BBHI", 3, 0, 0, 0) + quoted6
    assert parse_icmp(hop, True) == IcmpMessage(0x77, 9, "hop limit exceeded", "2001:db8:ffff::1")
    noroute = struct.pack("!BBHI", 1, 0, 0, 0) + quoted6
    assert parse_icmp(noroute, True) == IcmpMessage(0x77, 9, "no route", "2001:db8:ffff::1")
    assert parse_icmp(struct.pack("!BBHI", 1, 0, 0, 0) + quoted6[:20], True) is None


def test_same_address() -> None:
    assert same_address("2001:db8::1", "2001:DB8:0::1")
    assert same_address("fe80::1%wan1", "fe80::1")
    assert not same_address("192.0.2.1", "192.0.2.2")
    assert not same_address("", "192.0.2.1")


# -- ARP ----------------------------------------------------------------------

MAC = bytes.fromhex("020000000001")
GW_MAC = bytes.fromhex("020000000002")


def test_arp_request_is_a_broadcast_who_has() -> None:
    frame = arp_request(MAC, "10.100.1.2", "10.100.1.1")
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC
    assert struct.unpack("!H", frame[12:14])[0] == ETH_P_ARP
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert frame[22:28] == MAC and socket.inet_ntoa(frame[28:32]) == "10.100.1.2"
    assert frame[32:38] == b"\0" * 6 and socket.inet_ntoa(frame[38:42]) == "10.100.1.1"
    assert parse_arp_reply(frame) is None  # a request is not a reply


def test_parse_arp_reply() -> None:
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, GW_MAC,
                      socket.inet_aton("10.100.1.1"), MAC, socket.inet_aton("10.100.1.2"))
    frame = MAC + GW_MAC + struct.pack("!H", ETH_P_ARP) + arp
    assert parse_arp_reply(frame) == "10.100.1.1"
    assert parse_arp_reply(frame + b"\0" * 18) == "10.100.1.1"  # Ethernet padding
    assert parse_arp_reply(frame[:41]) is None
    assert parse_arp_reply(frame[:12] + b"\x08\x00" + frame[14:]) is None  # IPv4, not ARP


# -- probe(): argument handling, no network ------------------------------------


def spec(method: str = "ping", family: str = "ipv4", device: str = "lo", **kw: Any) -> ProbeSpec:
    return ProbeSpec(method=method, family=family, device=device, source=kw.pop("source", None),
                     mark=kw.pop("mark", 0), **kw)


def test_unknown_method_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown track method"):
        asyncio.run(probe(spec("traceroute"), "192.0.2.1"))


def test_arping_is_ipv4_only() -> None:
    r = asyncio.run(probe(spec("arping", "ipv6"), "2001:db8::1"))
    assert r == TargetResult("2001:db8::1", 0, 0, (), "arping is IPv4 only") and not r.ok


def test_target_of_the_wrong_family_is_an_error_result() -> None:
    r = asyncio.run(probe(spec("nping-tcp", "ipv4"), "2001:db8::1"))
    assert not r.ok and r.error == "not an ipv4 address" and r.sent == 1
    r = asyncio.run(probe(spec("ping"), "www.example.org"))
    assert not r.ok and r.error == "not an IP address"


def test_missing_device_is_an_error_result() -> None:
    for method in ("nping-tcp", "nping-udp", "httping"):
        r = asyncio.run(probe(spec(method, device="mwan-nosuch0", count=2), "127.0.0.1"))
        assert r.sent == 2 and r.received == 0 and r.error, r


# -- TCP/UDP/HTTP over loopback -------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_on_lo(fn: Callable[[], Awaitable[None]]) -> None:
    with socket.socket() as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        except PermissionError:
            pytest.skip("SO_BINDTODEVICE not permitted here")
    before = open_fds()
    asyncio.run(fn())
    assert open_fds() == before  # every socket closed


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_tcp_accepted_or_refused_both_answer() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            r = await probe(spec("nping-tcp", port=port, count=3, source="127.0.0.1"),
                            "127.0.0.1")
            assert r.received == 3 and r.all_answered and len(r.rtts_ms) == 3
        refused = await probe(spec("nping-tcp", port=free_port(socket.SOCK_STREAM)), "127.0.0.1")
        assert refused.ok and refused.error is None

    run_on_lo(main)


def test_udp_answer_or_port_unreachable_counts_silence_does_not() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.transport.sendto(data, addr)

        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        r = await probe(spec("nping-udp", port=port, count=2), "127.0.0.1")
        transport.close()
        assert r.received == 2, r
        closed = await probe(spec("nping-udp", port=free_port(socket.SOCK_DGRAM)), "127.0.0.1")
        assert closed.ok, closed  # ICMP port unreachable: the host answered
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            t0 = loop.time()
            lost = await probe(spec("nping-udp", port=silent.getsockname()[1], timeout=0.3,
                                    count=2), "127.0.0.1")
            took = loop.time() - t0
        assert not lost.ok and lost.error == "timeout" and lost.loss_pct == 100.0
        assert 0.3 <= took < 0.3 + 0.1 + 0.3  # (count-1) * SPACING + timeout

    run_on_lo(main)


def test_httping_needs_an_http_status_line() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        assert request.startswith(b"HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\n")
        writer.write(b"HTTP/1.0 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        for handler, ok in ((http, True), (not_http, False)):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                r = await probe(spec("httping", port=port, timeout=1), "127.0.0.1")
            assert r.ok is ok, r
            if not ok:
                assert r.error == "not an HTTP answer"

    run_on_lo(main)


def test_cancelled_probes_close_their_sockets() -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            port = silent.getsockname()[1]
            task = asyncio.ensure_future(
                probe(spec("nping-udp", port=port, count=5, timeout=5), "127.0.0.1"))
            await asyncio.sleep(0.25)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run_on_lo(main)


# -- local errors (issue 11 item 3) ---------------------------------------------


def test_local_errors_are_told_apart() -> None:
    import errno

    from mwan.track.probes import is_local_error

    for e in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
        assert is_local_error(OSError(e, os.strerror(e)))
    assert is_local_error(MemoryError())
    for e in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENODEV, errno.EADDRNOTAVAIL):
        assert not is_local_error(OSError(e, os.strerror(e)))
    assert not is_local_error(TimeoutError())


def test_a_socket_that_cannot_be_made_is_a_local_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from mwan.track import probes

    def no_fds(*a: Any, **k: Any) -> socket.socket:
        raise OSError(errno.EMFILE, "Too many open files")

    async def main(method: str) -> TargetResult:
        with monkeypatch.context() as m:  # after the loop made its own sockets
            m.setattr(probes.socket, "socket", no_fds)
            return await probe(spec(method, count=2), "127.0.0.1")

    for method in ("ping", "nping-tcp", "nping-udp", "httping", "arping"):
        r = asyncio.run(main(method))
        assert not r.ok and r.local_error and r.error == "too many open files", (method, r)
    assert not TargetResult("192.0.2.1", 1, 0, (), "timeout").local_error


def test_no_buffer_space_on_send_is_a_local_error() -> None:
    import errno

    if os.geteuid() != 0:
        pytest.skip("raw ICMP sockets need root")

    async def enobufs(*a: Any, **k: Any) -> None:
        raise OSError(errno.ENOBUFS, "No buffer space available")

    async def main(method: str) -> TargetResult:
        loop = asyncio.get_running_loop()
        loop.sock_sendto = enobufs  # type: ignore[method-assign]
        loop.sock_sendall = enobufs  # type: ignore[method-assign]
        return await probe(spec(method, count=2, timeout=0.5), "127.0.0.1")

    def check() -> None:
        for method in ("ping", "nping-udp"):
            r = asyncio.run(main(method))
            assert not r.ok and r.local_error, (method, r)
            assert r.error == "no buffer space available", r

    run_on_lo(lambda: asyncio.sleep(0))
    check()
