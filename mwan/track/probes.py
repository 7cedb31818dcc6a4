"""Probes, in-process and asynchronous: no process per probe.

Every socket is bound to the tracked interface's device (``SO_BINDTODEVICE``),
marked with its mark (``SO_MARK``, so the datapath routes it by that
interface's table and the classifier leaves it alone) and bound to its
address, as mwan3's ``LD_PRELOAD`` wrapper does for its ``ping`` processes.

Methods (``track_method``):

* ``ping`` / ``nping-icmp``: ICMP / ICMPv6 echo on a raw socket, ``size``
  payload bytes, ``max_ttl`` hops; replies matched by identifier and sequence.
* ``arping`` / ``nping-arp``: an ARP who-has on the device (IPv4 only).
* ``httping``: ``HEAD /`` over TCP (or TLS, unverified); any HTTP status line
  counts.
* ``nping-tcp``: a TCP handshake; an accepted or a refused connection (RST)
  both mean the host answered.
* ``nping-udp``: one datagram; an answer or an ICMP port unreachable counts.

``count`` probes per target start 0.1 s apart (mwan3's ping spaces them 1 s)
and each waits up to ``timeout``; a target's result is never an exception for
a network failure, only a :class:`TargetResult` with ``error`` set.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import json
import os
import socket
import ssl
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

SO_MARK = getattr(socket, "SO_MARK", 36)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
ETH_P_ARP = 0x0806
SPACING = 0.1  # seconds between the probes of one target
METHODS = ("ping", "arping", "httping", "nping-tcp", "nping-udp", "nping-icmp", "nping-arp")


@dataclass(frozen=True)
class ProbeSpec:
    method: str
    family: str
    device: str
    source: str | None
    mark: int
    count: int = 1
    timeout: float = 4.0
    size: int = 56
    max_ttl: int = 60
    port: int | None = None
    https: bool = False


@dataclass(frozen=True)
class TargetResult:
    target: str
    sent: int
    received: int
    rtts_ms: tuple[float, ...]
    error: str | None = None

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    @property
    def latency_ms(self) -> float | None:
        return sum(self.rtts_ms) / len(self.rtts_ms) if self.rtts_ms else None

    @property
    def ok(self) -> bool:
        return self.received > 0


# ---------------------------------------------------------------- packets

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
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + payload
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload


def parse_echo_reply(packet: bytes, v6: bool) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply, or None.  IPv4 raw packets carry the IP header."""
    if not v6:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8:
        return None
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    if kind != (129 if v6 else 0) or code != 0:
        return None
    return ident, seq


def arp_request(mac: bytes, source: str, target: str) -> bytes:
    """An Ethernet broadcast ARP who-has ``target`` from ``mac``/``source``."""
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac,
                      socket.inet_aton(source), b"\0" * 6, socket.inet_aton(target))
    return eth + arp


def parse_arp_reply(frame: bytes) -> str | None:
    """The sender IP of an ARP reply frame, or None."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    if op != 2:
        return None
    return socket.inet_ntoa(frame[28:32])


# ---------------------------------------------------------------- sockets

def _socket(spec: ProbeSpec, kind: int, proto: int = 0) -> socket.socket:
    af = socket.AF_INET6 if spec.family == "ipv6" else socket.AF_INET
    s = socket.socket(af, kind, proto)
    try:
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, spec.device.encode())
        if spec.mark:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, spec.mark)
        if spec.source:
            s.bind((spec.source, 0))
    except BaseException:
        s.close()
        raise
    return s


def _error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return type(exc).__name__


async def _repeat(spec: ProbeSpec, target: str,
                  one: Callable[[], Awaitable[float | None]]) -> TargetResult:
    """Run ``count`` attempts, ``SPACING`` apart; each returns an RTT (s) or None."""
    errors: list[str] = []

    async def attempt(i: int) -> float | None:
        await asyncio.sleep(i * SPACING)
        try:
            return await asyncio.wait_for(one(), spec.timeout)
        except (TimeoutError, OSError) as exc:
            errors.append(_error(exc))
            return None

    rtts = await asyncio.gather(*(attempt(i) for i in range(spec.count)))
    got = tuple(r * 1000 for r in rtts if r is not None)
    return TargetResult(target, spec.count, len(got), got,
                        None if got else (errors[0] if errors else "no answer"))


# ---------------------------------------------------------------- methods

async def _ping(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    v6 = spec.family == "ipv6"
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    try:
        sock = _socket(spec, socket.SOCK_RAW, proto)
    except OSError as exc:
        return TargetResult(target, spec.count, 0, (), _error(exc))
    ident = int.from_bytes(os.urandom(2), "big")
    sent_at: dict[int, float] = {}
    rtts: dict[int, float] = {}
    done = loop.create_future()
    errors: list[str] = []

    def readable() -> None:
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                errors.append(_error(exc))
                return
            got = parse_echo_reply(data, v6)
            if got is None or got[0] != ident or got[1] not in sent_at or got[1] in rtts:
                continue
            if ipaddress.ip_address(addr[0]) != ipaddress.ip_address(target):
                continue
            rtts[got[1]] = loop.time() - sent_at[got[1]]
            if len(rtts) == spec.count and not done.done():
                done.set_result(None)

    try:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, spec.max_ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, spec.max_ttl)
        loop.add_reader(sock.fileno(), readable)
        for seq in range(1, spec.count + 1):
            if seq > 1:
                await asyncio.sleep(SPACING)
            sent_at[seq] = loop.time()
            try:
                await loop.sock_sendto(sock, echo_request(ident, seq, spec.size, v6),
                                       (target, 0))
            except OSError as exc:
                errors.append(_error(exc))
        try:
            await asyncio.wait_for(asyncio.shield(done), spec.timeout)
        except TimeoutError:
            pass
    except OSError as exc:
        errors.append(_error(exc))
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
        if not done.done():
            done.cancel()
    got = tuple(rtts[s] * 1000 for s in sorted(rtts))
    return TargetResult(target, spec.count, len(got), got,
                        None if got else (errors[0] if errors else "timeout"))


async def _arping(spec: ProbeSpec, target: str) -> TargetResult:
    if spec.family != "ipv4":
        return TargetResult(target, 0, 0, (), "arping is IPv4 only")
    loop = asyncio.get_running_loop()
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        sock.setblocking(False)
        sock.bind((spec.device, ETH_P_ARP))
        mac = sock.getsockname()[4]
    except OSError as exc:
        return TargetResult(target, spec.count, 0, (), _error(exc))
    request = arp_request(mac, spec.source or "0.0.0.0", target)
    replies: asyncio.Queue[float] = asyncio.Queue()

    def readable() -> None:
        while True:
            try:
                frame = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if parse_arp_reply(frame) == target:
                replies.put_nowait(loop.time())

    async def one() -> float:
        t0 = loop.time()
        while not replies.empty():
            replies.get_nowait()
        await loop.sock_sendall(sock, request)
        return await replies.get() - t0

    loop.add_reader(sock.fileno(), readable)
    try:
        rtts: list[float] = []
        errors: list[str] = []
        for i in range(spec.count):  # one at a time: a reply cannot say which request it answers
            if i:
                await asyncio.sleep(SPACING)
            try:
                rtts.append(await asyncio.wait_for(one(), spec.timeout))
            except (TimeoutError, OSError) as exc:
                errors.append(_error(exc))
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
    got = tuple(r * 1000 for r in rtts)
    return TargetResult(target, spec.count, len(got), got,
                        None if got else (errors[0] if errors else "timeout"))


async def _tcp_connect(spec: ProbeSpec, target: str, port: int) -> socket.socket:
    sock = _socket(spec, socket.SOCK_STREAM)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (target, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _nping_tcp(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    port = spec.port or 80

    async def one() -> float | None:
        t0 = loop.time()
        try:
            sock = await _tcp_connect(spec, target, port)
            sock.close()
        except ConnectionRefusedError:  # a RST is an answer
            pass
        return loop.time() - t0

    return await _repeat(spec, target, one)


async def _nping_udp(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    port = spec.port or 53

    async def one() -> float | None:
        t0 = loop.time()
        with _socket(spec, socket.SOCK_DGRAM) as sock:
            await loop.sock_connect(sock, (target, port))
            await loop.sock_sendall(sock, b"\0" * 8)
            try:
                await loop.sock_recv(sock, 2048)
            except ConnectionRefusedError:  # ICMP port unreachable: the host is there
                pass
        return loop.time() - t0

    return await _repeat(spec, target, one)


async def _httping(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    port = spec.port or (443 if spec.https else 80)
    host = f"[{target}]" if ":" in target else target

    async def one() -> float | None:
        t0 = loop.time()
        sock = await _tcp_connect(spec, target, port)
        ctx = None
        if spec.https:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=ctx, server_hostname=target if ctx else None)
        try:
            writer.write(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n"
                         "User-Agent: mwan-httping\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line.startswith(b"HTTP/"):
            raise OSError(errno.EPROTO, "not an HTTP answer")
        return loop.time() - t0

    return await _repeat(spec, target, one)


PROBES: dict[str, Callable[[ProbeSpec, str], Awaitable[TargetResult]]] = {
    "ping": _ping, "nping-icmp": _ping,
    "arping": _arping, "nping-arp": _arping,
    "httping": _httping, "nping-tcp": _nping_tcp, "nping-udp": _nping_udp,
}


async def probe(spec: ProbeSpec, target: str) -> TargetResult:
    """Probe one target ``spec.count`` times through ``spec.device``."""
    try:
        fn = PROBES[spec.method]
    except KeyError:
        raise ValueError(f"unknown track method {spec.method!r}") from None
    try:
        return await fn(spec, target)
    except OSError as exc:
        return TargetResult(target, spec.count, 0, (), _error(exc))


def main(argv: list[str] | None = None) -> int:
    """``python -m mwan.track.probes``: one probe, for debugging (prints JSON)."""
    ap = argparse.ArgumentParser(description="probe targets the way the tracker does")
    ap.add_argument("targets", nargs="+")
    ap.add_argument("--method", default="ping", choices=METHODS)
    ap.add_argument("--device", required=True)
    ap.add_argument("--source")
    ap.add_argument("--family", default=None, choices=("ipv4", "ipv6"))
    ap.add_argument("--mark", type=lambda v: int(v, 0), default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--max-ttl", type=int, default=60)
    ap.add_argument("--port", type=int)
    ap.add_argument("--https", action="store_true")
    a = ap.parse_args(argv)
    family = a.family or ("ipv6" if ":" in a.targets[0] else "ipv4")
    spec = ProbeSpec(a.method, family, a.device, a.source, a.mark, a.count, a.timeout,
                     a.size, a.max_ttl, a.port, a.https)

    async def run() -> list[TargetResult]:
        return list(await asyncio.gather(*(probe(spec, t) for t in a.targets)))

    for r in asyncio.run(run()):
        print(json.dumps({**asdict(r), "ok": r.ok, "loss_pct": r.loss_pct,
                          "latency_ms": r.latency_ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
