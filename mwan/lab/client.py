"""Connection client: open COUNT new connections and report who the server saw.

Run inside a namespace::

    python -m mwan.lab.client --dst 198.51.100.10 --port 443 --count 1000 [--proto udp]
        [--sport 40000] [--src 192.168.1.10] [--timeout 2] [--concurrency 16]

Each TCP connection sends one newline and reads the echo server's line
(``<address> <port>``) until EOF; each UDP "connection" is a fresh socket
sending one datagram.  Prints one JSON object::

    {"count": 1000, "ok": 998, "seen": {"10.100.1.2": 600, ...},
     "ports": {"443": 998}, "errors": {"timeout": 2, "refused": 0, "unreachable": 0},
     "elapsed": 0.8}

Error kinds: ``timeout``, ``refused`` (RST / ICMP port unreachable),
``unreachable`` (ICMP host/net unreachable, no route), ``reset``,
``bad_reply`` and otherwise the lower-case errno name.  Stdlib only.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass

BASE_ERRORS = ("timeout", "refused", "unreachable")
UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


@dataclass(frozen=True)
class Attempt:
    """The parameters shared by every connection of a run."""

    dst: str
    port: int
    proto: str
    family: int
    sport: int | None
    src: str | None
    timeout: float


def error_kind(exc: BaseException) -> str:
    """Classify a failed connection."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in UNREACHABLE:
        return "unreachable"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__.lower()


def parse_reply(data: bytes) -> tuple[str, int] | None:
    """``b"10.100.1.2 443\\n"`` -> ("10.100.1.2", 443); None when it is not such a line."""
    parts = data.decode(errors="replace").split()
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _socket(a: Attempt) -> socket.socket:
    af = socket.AF_INET if a.family == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if a.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(af, kind)
    sock.setblocking(False)
    if a.sport is not None or a.src is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((a.src or ("0.0.0.0" if a.family == 4 else "::"), a.sport or 0))
    return sock


async def _exchange(a: Attempt) -> bytes:
    loop = asyncio.get_running_loop()
    with _socket(a) as sock:
        await loop.sock_connect(sock, (a.dst, a.port))
        await loop.sock_sendall(sock, b"\n")
        if a.proto == "udp":
            return await loop.sock_recv(sock, 2048)
        data = b""
        while chunk := await loop.sock_recv(sock, 2048):
            data += chunk
        return data


async def one(a: Attempt) -> tuple[str, int] | str:
    """One connection: the (address, port) the server reported, or an error kind."""
    try:
        data = await asyncio.wait_for(_exchange(a), a.timeout)
    except (TimeoutError, OSError) as e:
        return error_kind(e)
    reply = parse_reply(data)
    return reply if reply is not None else "bad_reply"


async def run(a: Attempt, count: int, concurrency: int) -> dict[str, object]:
    """Make ``count`` connections, at most ``concurrency`` at a time; the JSON-ready summary."""
    seen: Counter[str] = Counter()
    ports: Counter[str] = Counter()
    errors: Counter[str] = Counter({k: 0 for k in BASE_ERRORS})
    todo = iter(range(count))
    start = time.monotonic()

    async def worker() -> None:
        for _ in todo:
            result = await one(a)
            if isinstance(result, str):
                errors[result] += 1
            else:
                seen[result[0]] += 1
                ports[str(result[1])] += 1

    workers = 1 if a.sport is not None else max(1, min(concurrency, count))
    await asyncio.gather(*(worker() for _ in range(workers)))
    return {
        "count": count,
        "ok": sum(seen.values()),
        "seen": dict(seen),
        "ports": dict(ports),
        "errors": dict(errors),
        "elapsed": round(time.monotonic() - start, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints the JSON summary."""
    p = argparse.ArgumentParser(
        prog="python -m mwan.lab.client", description=__doc__.split("\n")[0]
    )
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    p.add_argument("--family", type=int, choices=(4, 6), help="default: from --dst")
    p.add_argument("--sport", type=int, help="fixed source port (forces one at a time)")
    p.add_argument("--src", help="source address to bind")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per connection")
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)
    family = args.family or (6 if ":" in args.dst else 4)
    attempt = Attempt(args.dst, args.port, args.proto, family, args.sport, args.src, args.timeout)
    print(json.dumps(asyncio.run(run(attempt, args.count, args.concurrency))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
