"""Probes, in-process and asynchronous: no process and no thread per probe.

Every socket is non-blocking, bound to the tracked interface's device
(``SO_BINDTODEVICE``), marked with its mark (``SO_MARK``, so the datapath
routes it by that interface's table and the classifier leaves it alone) and
bound to its address, as mwan3's ``LD_PRELOAD`` wrapper does for its probe
processes.  Sockets are closed on every path, timeouts and cancellation too.

Methods (``track_method``):

* ``ping`` / ``nping-icmp``: ICMP / ICMPv6 echo on a raw socket, ``size``
  payload bytes, ``max_ttl`` hops; replies matched by identifier, sequence and
  source.  An ICMP error quoting our echo (TTL exceeded, unreachable) ends
  that echo at once, with the reason.
* ``arping`` / ``nping-arp``: an Ethernet broadcast ARP who-has on the device
  (IPv4 only); each reply from the target answers the oldest open request.
* ``httping``: ``HEAD /`` over TCP (or TLS, unverified); any HTTP status line
  counts.  The RTT runs from the connect to the first answer bytes (as
  httping's ``time=``).  Port 80, or 443 with ``https``.
* ``nping-tcp``: a TCP handshake to port 80; an accepted or a refused
  connection (RST) both mean the host answered.
* ``nslookup`` / ``dns``: a DNS query for ``track_dns_name`` (the root: type
  NS; a name: type A) to port 53; any answer with the query's id counts,
  NXDOMAIN and SERVFAIL included (the resolver is there); an ICMP port
  unreachable (``ECONNREFUSED``) is a failure.
* ``nping-udp``: one datagram to port 53 on a connected socket; an answer or
  an ICMP port unreachable (``ECONNREFUSED``) counts, silence is a loss.

``count`` probes per target start ``SPACING`` (0.1 s) apart -- mwan3's ping
spaces them 1 s -- and each waits up to ``timeout``, so a target takes at most
``(count - 1) * SPACING + timeout``.  A network failure is never an
exception, only a :class:`TargetResult` with ``error`` set.

A local resource error (:data:`LOCAL_ERRNOS`: too many open files, no buffer
space, out of memory) says nothing about the WAN: such a result has
``local_error`` set, and the tracker skips the round instead of counting it.

``TargetResult.ok`` is "at least one answer" for every method (mwan3's nping
wants every probe answered; :attr:`TargetResult.all_answered` says that).

Debug one probe from a shell (inside the namespace that owns the device)::

    python -m mwan.track.probes --device wan1 --method ping --count 3 --json 192.0.2.1
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import ipaddress
import json
import os
import socket
import ssl
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from ..config.model import HTTPS_PORT, TRACK_METHODS, TRACK_PORTS
from .packets import (
    DNS_TYPES,
    ETH_P_ARP,
    arp_request,
    dns_query,
    echo_request,
    parse_arp_reply,
    parse_dns_answer,
    parse_icmp,
    same_address,
)

SO_MARK = getattr(socket, "SO_MARK", 36)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SOL_RAW = 255
ICMP_FILTER = 1  # SOL_RAW option: bitmask of ICMP types to drop
ICMP6_FILTER = 1  # IPPROTO_ICMPV6 option: 256-bit mask of ICMPv6 types to drop
SIOCGIFADDR = 0x8915
SPACING = 0.1  # seconds between the probes of one target
# errors of this router, not of the WAN: a probe that meets one proves nothing
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True)
class ProbeSpec:
    method: str
    family: str  # "ipv4" | "ipv6"
    device: str
    source: str | None
    mark: int
    count: int = 1
    timeout: float = 4.0
    size: int = 56
    max_ttl: int = 60
    port: int | None = None  # None: TRACK_PORTS (443 for httping with https)
    https: bool = False
    dns_name: str = "."  # nslookup / dns: the name asked for


@dataclass(frozen=True)
class TargetResult:
    target: str
    sent: int
    received: int
    rtts_ms: tuple[float, ...]
    error: str | None = None
    local_error: bool = False  # no answer because of this router (LOCAL_ERRNOS), not the WAN

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    @property
    def latency_ms(self) -> float | None:
        return sum(self.rtts_ms) / len(self.rtts_ms) if self.rtts_ms else None

    @property
    def ok(self) -> bool:
        return self.received > 0

    @property
    def all_answered(self) -> bool:
        """Every probe answered: mwan3's success rule for the nping methods."""
        return self.sent > 0 and self.received == self.sent


# ---------------------------------------------------------------- sockets

def _bind_and_mark(s: socket.socket, spec: ProbeSpec) -> None:
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, spec.device.encode())
    if spec.mark:
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, spec.mark)


def _socket(spec: ProbeSpec, kind: int, proto: int = 0) -> socket.socket:
    af = socket.AF_INET6 if spec.family == "ipv6" else socket.AF_INET
    s = socket.socket(af, kind, proto)
    try:
        _bind_and_mark(s, spec)
        if spec.source:
            s.bind((spec.source, 0))
    except BaseException:
        s.close()
        raise
    return s


def _icmp_filter(s: socket.socket, v6: bool) -> None:
    """Let only echo replies and the errors that may quote an echo reach this raw socket."""
    if v6:
        words = [0xFFFFFFFF] * 8
        for kind in (1, 3, 129):
            words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
        s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
    else:
        mask = ~((1 << 0) | (1 << 3) | (1 << 11)) & 0xFFFFFFFF
        s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", mask))


def device_ipv4(device: str) -> str | None:
    """The device's (primary) IPv4 address, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", device.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(res[20:24])


def _error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, EOFError):
        return "connection closed"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def is_local_error(exc: BaseException) -> bool:
    """Whether ``exc`` is this router's resource problem (fds, buffers, memory), not the WAN's."""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS)


def _result(target: str, sent: int, rtts: list[float], errors: list[str],
            local: bool = False) -> TargetResult:
    got = tuple(r * 1000 for r in rtts)
    return TargetResult(target, sent, len(got), got,
                        None if got else (errors[0] if errors else "timeout"),
                        local_error=local and not got)


async def _repeat(spec: ProbeSpec, target: str,
                  one: Callable[[], Awaitable[float]]) -> TargetResult:
    """Run ``count`` attempts ``SPACING`` apart, each up to ``timeout``; each returns an RTT (s)."""
    errors: list[str] = []
    local: list[str] = []

    async def attempt(i: int) -> float | None:
        await asyncio.sleep(i * SPACING)
        try:
            return await asyncio.wait_for(one(), spec.timeout)
        except (TimeoutError, OSError, EOFError) as exc:
            (local if is_local_error(exc) else errors).append(_error(exc))
            return None

    rtts = await asyncio.gather(*(attempt(i) for i in range(spec.count)))
    return _result(target, spec.count, [r for r in rtts if r is not None], local + errors,
                   bool(local))


class _Echoes:
    """Bookkeeping of ``count`` requests: sent times, answers, errors, and 'all settled'."""

    def __init__(self, count: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.count = count
        self.sent_at: dict[int, float] = {}
        self.rtts: dict[int, float] = {}
        self.errors: dict[int, str] = {}
        self.local = False  # a request failed with a local error (LOCAL_ERRNOS)
        self.settled = self.loop.create_future()

    def open(self, seq: int) -> bool:
        return seq in self.sent_at and seq not in self.rtts and seq not in self.errors

    def answer(self, seq: int) -> None:
        self.rtts[seq] = self.loop.time() - self.sent_at[seq]
        self._check()

    def fail(self, seq: int, reason: str) -> None:
        self.errors[seq] = reason
        self._check()

    def _check(self) -> None:
        if len(self.rtts) + len(self.errors) >= self.count and not self.settled.done():
            self.settled.set_result(None)

    async def run(self, send: Callable[[int], Awaitable[None]], timeout: float) -> None:
        """Send ``count`` requests ``SPACING`` apart, then wait for them to settle."""
        try:
            for seq in range(1, self.count + 1):
                if seq > 1:
                    await asyncio.sleep(SPACING)
                self.sent_at[seq] = self.loop.time()
                try:
                    await send(seq)
                except OSError as exc:
                    self.local = self.local or is_local_error(exc)
                    self.fail(seq, _error(exc))
            await asyncio.wait_for(asyncio.shield(self.settled), timeout)
        except TimeoutError:
            pass
        finally:
            self.settled.cancel()

    def result(self, target: str) -> TargetResult:
        errors = [self.errors[s] for s in sorted(self.errors)]
        return _result(target, self.count, [self.rtts[s] for s in sorted(self.rtts)], errors,
                       self.local)


# ---------------------------------------------------------------- methods

async def _ping(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    v6 = spec.family == "ipv6"
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = _socket(spec, socket.SOCK_RAW, proto)
    # fds are unique among open sockets, so concurrent probes of one process never share an id
    ident = (os.getpid() + sock.fileno()) & 0xFFFF
    echoes = _Echoes(spec.count)

    def readable() -> None:
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except OSError:  # BlockingIOError: drained
                return
            msg = parse_icmp(data, v6)
            if msg is None or msg.ident != ident or not echoes.open(msg.seq):
                continue
            if msg.error is None and same_address(addr[0], target):
                echoes.answer(msg.seq)
            elif msg.error is not None and same_address(msg.quoted_dst or "", target):
                echoes.fail(msg.seq, msg.error)

    async def send(seq: int) -> None:
        await loop.sock_sendto(sock, echo_request(ident, seq, spec.size, v6), (target, 0))

    try:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, spec.max_ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, spec.max_ttl)
        _icmp_filter(sock, v6)
        loop.add_reader(sock.fileno(), readable)
        await echoes.run(send, spec.timeout)
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
    return echoes.result(target)


async def _arping(spec: ProbeSpec, target: str) -> TargetResult:
    if spec.family != "ipv4":
        return TargetResult(target, 0, 0, (), "arping is IPv4 only")
    loop = asyncio.get_running_loop()
    source = spec.source or device_ipv4(spec.device) or "0.0.0.0"
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    echoes = _Echoes(spec.count)

    def readable() -> None:
        while True:
            try:
                frame = sock.recv(2048)
            except OSError:
                return
            if parse_arp_reply(frame) == target:  # a reply can't say which request: oldest open
                seq = next((s for s in sorted(echoes.sent_at) if echoes.open(s)), None)
                if seq is not None:
                    echoes.answer(seq)

    try:
        sock.setblocking(False)
        if spec.mark:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, spec.mark)
        sock.bind((spec.device, ETH_P_ARP))  # a packet socket's device binding
        mac = sock.getsockname()[4]
        if len(mac) != 6:
            return TargetResult(target, spec.count, 0, (), "no Ethernet address on the device")
        request = arp_request(mac, source, target)

        async def send(seq: int) -> None:
            await loop.sock_sendall(sock, request)

        loop.add_reader(sock.fileno(), readable)
        await echoes.run(send, spec.timeout)
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
    return echoes.result(target)


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
    port = spec.port or TRACK_PORTS["nping-tcp"]

    async def one() -> float:
        t0 = loop.time()
        try:
            (await _tcp_connect(spec, target, port)).close()
        except ConnectionRefusedError:  # a RST is an answer
            pass
        return loop.time() - t0

    return await _repeat(spec, target, one)


async def _nping_udp(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    port = spec.port or TRACK_PORTS["nping-udp"]

    async def one() -> float:
        t0 = loop.time()
        with _socket(spec, socket.SOCK_DGRAM) as sock:
            await loop.sock_connect(sock, (target, port))
            await loop.sock_sendall(sock, b"mwan probe\n")
            try:
                await loop.sock_recv(sock, 2048)
            except ConnectionRefusedError:  # ICMP port unreachable: the host is there
                pass
        return loop.time() - t0

    return await _repeat(spec, target, one)


async def _httping(spec: ProbeSpec, target: str) -> TargetResult:
    loop = asyncio.get_running_loop()
    port = spec.port or (HTTPS_PORT if spec.https else TRACK_PORTS["httping"])
    host = f"[{target}]" if ":" in target else target
    request = f"HEAD / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: mwan-httping\r\n\r\n".encode()
    ctx = None
    if spec.https:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

    async def one() -> float:
        t0 = loop.time()
        sock = await _tcp_connect(spec, target, port)
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=ctx, server_hostname=target if ctx else None)
        except BaseException:
            sock.close()
            raise
        try:
            writer.write(request)
            head = await reader.readexactly(5)
            rtt = loop.time() - t0
        finally:
            writer.transport.abort()  # closes the socket now, no TLS shutdown to wait for
        if head != b"HTTP/":
            raise OSError("not an HTTP answer")
        return rtt

    return await _repeat(spec, target, one)


async def _nslookup(spec: ProbeSpec, target: str) -> TargetResult:
    """A DNS query to the target (port 53); any answer counts, NXDOMAIN and SERVFAIL too."""
    loop = asyncio.get_running_loop()
    port = spec.port or TRACK_PORTS["nslookup"]
    qtype = DNS_TYPES["NS"] if spec.dns_name in (".", "") else DNS_TYPES["A"]

    async def one() -> float:
        t0 = loop.time()
        with _socket(spec, socket.SOCK_DGRAM) as sock:
            ident = int.from_bytes(os.urandom(2), "big")
            await loop.sock_connect(sock, (target, port))
            await loop.sock_sendall(sock, dns_query(ident, spec.dns_name, qtype))
            while parse_dns_answer(await loop.sock_recv(sock, 4096), ident) is None:
                pass  # not the answer to this query: keep waiting (the timeout bounds it)
        return loop.time() - t0

    return await _repeat(spec, target, one)


PROBES: dict[str, Callable[[ProbeSpec, str], Awaitable[TargetResult]]] = {
    "ping": _ping, "nping-icmp": _ping,
    "arping": _arping, "nping-arp": _arping,
    "httping": _httping, "nping-tcp": _nping_tcp, "nping-udp": _nping_udp,
    "nslookup": _nslookup, "dns": _nslookup,
}


async def probe(spec: ProbeSpec, target: str) -> TargetResult:
    """Probe one target ``spec.count`` times through ``spec.device``; never raises for the network.

    ValueError for an unknown method (a programming error: config/ validates it).
    """
    try:
        fn = PROBES[spec.method]
    except KeyError:
        raise ValueError(f"unknown track method {spec.method!r}") from None
    try:
        version = ipaddress.ip_address(target).version
    except ValueError:
        return TargetResult(target, spec.count, 0, (), "not an IP address")
    if version != (6 if spec.family == "ipv6" else 4):
        return TargetResult(target, spec.count, 0, (), f"not an {spec.family} address")
    try:
        return await fn(spec, target)
    except (OSError, MemoryError) as exc:  # socket setup: no such device, too many files...
        return TargetResult(target, spec.count, 0, (), _error(exc), is_local_error(exc))


# ---------------------------------------------------------------- debugging CLI

def main(argv: list[str] | None = None) -> int:
    """``python -m mwan.track.probes``: probe targets at once, one line each; 0 if all ok."""
    ap = argparse.ArgumentParser(description="probe targets the way the tracker does")
    ap.add_argument("targets", nargs="+")
    ap.add_argument("--method", default="ping", choices=TRACK_METHODS)
    ap.add_argument("--device", required=True)
    ap.add_argument("--source")
    ap.add_argument("--family", choices=("ipv4", "ipv6"))
    ap.add_argument("--mark", type=lambda v: int(v, 0), default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--max-ttl", type=int, default=60)
    ap.add_argument("--port", type=int)
    ap.add_argument("--https", action="store_true")
    ap.add_argument("--dns-name", default=".")
    ap.add_argument("--json", action="store_true", help="one JSON object per target")
    a = ap.parse_args(argv)
    family = a.family or ("ipv6" if ":" in a.targets[0] else "ipv4")
    spec = ProbeSpec(a.method, family, a.device, a.source, a.mark, a.count, a.timeout,
                     a.size, a.max_ttl, a.port, a.https, a.dns_name)

    async def run() -> list[TargetResult]:
        return list(await asyncio.gather(*(probe(spec, t) for t in a.targets)))

    results = asyncio.run(run())
    for r in results:
        if a.json:
            print(json.dumps({**asdict(r), "ok": r.ok, "loss_pct": r.loss_pct,
                              "latency_ms": r.latency_ms}))
        else:
            lat = f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else "-"
            print(f"{r.target} {r.received}/{r.sent} {lat} {r.error or ''}".rstrip())
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
