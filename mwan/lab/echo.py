"""Echo server: tells each client the address it came from and the port it hit.

Run inside a namespace::

    python -m mwan.lab.echo --transparent 7      # inet: nft tproxy sends every port here
    python -m mwan.lab.echo --port 2222 --port 53  # plain listener (e.g. in the router)

Every TCP connection and every UDP datagram gets one line,
``<client address> <local port>\\n``; a TCP request that starts with
``GET ``/``HEAD `` gets an HTTP/1.0 200 response with that line as body
(for httping-style probes).  A TCP client that sends nothing is answered
after a short wait.  Prints ``ready`` on stdout once every socket is bound.
Stdlib only, so it starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Any

SOL_IP = 0
SOL_IPV6 = 41
IP_PKTINFO = 8
IP_TRANSPARENT = 19
IP_RECVORIGDSTADDR = 20  # same value as IP_ORIGDSTADDR (the cmsg type)
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_RECVORIGDSTADDR = 74
IPV6_TRANSPARENT = 75

SILENT_CLIENT_WAIT = 0.5  # seconds to wait for a request before answering anyway
HTTP_METHODS = (b"GET ", b"HEAD ")


def client_host(addr: str) -> str:
    """The printable client address (``::ffff:a.b.c.d`` shown as ``a.b.c.d``)."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def answer_line(client: str, port: int) -> bytes:
    """The reply: ``<client> <port>\\n``."""
    return f"{client_host(client)} {port}\n".encode()


def http_response(body: bytes, head: bool) -> bytes:
    """A complete HTTP/1.0 200 response carrying ``body``."""
    header = (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    return header if head else header + body


def _sockaddr(data: bytes, family: int) -> tuple[str, int]:
    """Decode a ``struct sockaddr_in``/``sockaddr_in6`` from a cmsg."""
    port = struct.unpack("!H", data[2:4])[0]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, data[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, data[8:24]), port


def _listen_socket(family: int, kind: int, port: int, transparent: bool) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(SOL_IPV6, socket.IPV6_V6ONLY, 1)
    if transparent:
        if family == socket.AF_INET:
            sock.setsockopt(SOL_IP, IP_TRANSPARENT, 1)
        else:
            sock.setsockopt(SOL_IPV6, IPV6_TRANSPARENT, 1)
    if kind == socket.SOCK_DGRAM:
        if family == socket.AF_INET:
            sock.setsockopt(SOL_IP, IP_RECVORIGDSTADDR, 1)
            sock.setsockopt(SOL_IP, IP_PKTINFO, 1)
        else:
            sock.setsockopt(SOL_IPV6, IPV6_RECVORIGDSTADDR, 1)
            sock.setsockopt(SOL_IPV6, IPV6_RECVPKTINFO, 1)
    sock.bind(("0.0.0.0" if family == socket.AF_INET else "::", port))
    sock.setblocking(False)
    if kind == socket.SOCK_STREAM:
        sock.listen(512)
    return sock


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """What the client sends first; for HTTP, up to the end of the headers."""
    try:
        data = await asyncio.wait_for(reader.read(4096), SILENT_CLIENT_WAIT)
        while data.startswith(HTTP_METHODS) and b"\r\n\r\n" not in data and b"\n\n" not in data:
            more = await asyncio.wait_for(reader.read(4096), SILENT_CLIENT_WAIT)
            if not more:
                break
            data += more
    except (TimeoutError, ConnectionError):
        return b""
    return data


async def handle_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one TCP connection and close it."""
    peer = writer.get_extra_info("peername")
    local = writer.get_extra_info("sockname")  # with tproxy: the original destination
    try:
        request = await _read_request(reader)
        line = answer_line(peer[0], local[1])
        if request.startswith(HTTP_METHODS):
            writer.write(http_response(line, head=request.startswith(b"HEAD ")))
        else:
            writer.write(line)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class UdpEcho:
    """Answers datagrams on one socket; replies come from the address and port that were hit."""

    def __init__(self, sock: socket.socket, transparent: bool) -> None:
        self.sock = sock
        self.transparent = transparent
        self.family = sock.family

    def readable(self) -> None:
        """Drain the socket (called by the event loop)."""
        while True:
            try:
                data, ancdata, _flags, peer = self.sock.recvmsg(2048, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error from an earlier reply
            try:
                self._answer(data, ancdata, peer)
            except OSError:
                pass

    def _answer(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], peer: tuple[Any, ...]
    ) -> None:
        orig = None
        for level, kind, cdata in ancdata:
            if (level, kind) in ((SOL_IP, IP_RECVORIGDSTADDR), (SOL_IPV6, IPV6_RECVORIGDSTADDR)):
                orig = _sockaddr(cdata, self.family)
        if orig is None:
            return
        reply = answer_line(peer[0], orig[1])
        if data.startswith(HTTP_METHODS):
            reply = http_response(reply, head=data.startswith(b"HEAD "))
        if self.transparent:
            self._reply_from(orig, reply, peer)
        else:
            self.sock.sendmsg([reply], [self._pktinfo(orig[0])], 0, peer)

    def _pktinfo(self, src: str) -> tuple[int, int, bytes]:
        """A cmsg that makes the reply leave from ``src``."""
        if self.family == socket.AF_INET:
            spec = socket.inet_pton(socket.AF_INET, src)
            return SOL_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, spec, b"\0" * 4)
        return SOL_IPV6, IPV6_PKTINFO, socket.inet_pton(socket.AF_INET6, src) + b"\0" * 4

    def _reply_from(self, orig: tuple[str, int], reply: bytes, peer: tuple[Any, ...]) -> None:
        """tproxy: the original port is not ours, so send from a transparent socket bound to it."""
        with socket.socket(self.family, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.family == socket.AF_INET:
                s.setsockopt(SOL_IP, IP_TRANSPARENT, 1)
            else:
                s.setsockopt(SOL_IPV6, IPV6_TRANSPARENT, 1)
            s.bind(orig)
            s.sendto(reply, peer)


async def serve(ports: list[int], transparent: bool, families: Sequence[int]) -> None:
    """Listen on every port (TCP and UDP, each family) until cancelled."""
    loop = asyncio.get_running_loop()
    servers = []
    udp = []
    for port in ports:
        for family in families:
            tcp = _listen_socket(family, socket.SOCK_STREAM, port, transparent)
            servers.append(await asyncio.start_server(handle_tcp, sock=tcp))
            sock = _listen_socket(family, socket.SOCK_DGRAM, port, transparent)
            echo = UdpEcho(sock, transparent)
            loop.add_reader(sock.fileno(), echo.readable)
            udp.append(echo)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    for echo in udp:
        loop.remove_reader(echo.sock.fileno())
        echo.sock.close()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m mwan.lab.echo", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, action="append", default=[], help="plain listen port")
    p.add_argument("--transparent", type=int, metavar="PORT", help="tproxy target port")
    p.add_argument("--family", type=int, choices=(4, 6), action="append", help="default: both")
    args = p.parse_args(argv)
    if not args.port and args.transparent is None:
        p.error("give --port or --transparent")
    families = [socket.AF_INET if f == 4 else socket.AF_INET6 for f in (args.family or [4, 6])]
    ports = [args.transparent] if args.transparent is not None else args.port
    try:
        asyncio.run(serve(ports, args.transparent is not None, families))
    except OSError as e:
        print(f"echo: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
