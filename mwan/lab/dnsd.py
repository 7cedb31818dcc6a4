"""A tiny DNS responder for the lab's internet namespace (DNS probes, issue 14).

    python -m mwan.lab.dnsd --listen 192.0.2.53 [--rcode NXDOMAIN] [--delay-file F] [--log F]

Answers every query on UDP port 53 of ``--listen`` with the question and the
chosen rcode (no records): any answer is what a ``dns`` probe wants.  The
delay before each answer is read from ``--delay-file`` (milliseconds; absent
or empty: none; ``5,120``: each in turn, which is jitter), so a test can give each WAN's target its own latency without
netem.  ``--log`` gets one line per query: ``<source address> <name>``.
Prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import select
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lab import Lab

RCODES = {"NOERROR": 0, "SERVFAIL": 2, "NXDOMAIN": 3, "REFUSED": 5}


def question_name(query: bytes) -> str:
    """The first question's name (``.`` for the root), or ``?`` if it cannot be read."""
    labels: list[str] = []
    off = 12
    while off < len(query):
        n = query[off]
        if n == 0:
            return ".".join(labels) or "."
        labels.append(query[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return "?"


def answer(query: bytes, rcode: int) -> bytes | None:
    """A response to ``query``: same id and question, QR and RA set, ``rcode``; None if junk."""
    if len(query) < 12:
        return None
    ident, flags, qd = struct.unpack("!HHH", query[:6])
    if flags & 0x8000:  # a response, not a query
        return None
    header = struct.pack("!HHHHHH", ident, 0x8080 | (flags & 0x0100) | rcode, qd, 0, 0, 0)
    return header + query[12:]


class Responder(asyncio.DatagramProtocol):
    def __init__(self, rcode: int, delay_file: Path | None, log: Path | None) -> None:
        self.rcode = rcode
        self.delay_file = delay_file
        self.log = log
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def _delay(self) -> float:
        try:
            text = self.delay_file.read_text().strip() if self.delay_file else ""
        except OSError:
            return 0.0
        if not text:
            return 0.0
        values = [float(v) for v in text.split(",")]  # several: taken in turn (jitter)
        self.answered += 1
        return values[self.answered % len(values)] / 1000

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(f"{addr[0]} {question_name(data)}\n")
        reply = answer(data, self.rcode)
        if reply is None or self.transport is None:
            return
        delay = self._delay()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.transport.sendto, reply, addr)
        else:
            self.transport.sendto(reply, addr)


async def serve(a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in a.listen else socket.AF_INET
    await loop.create_datagram_endpoint(
        lambda: Responder(RCODES[a.rcode], a.delay_file, a.log),
        local_addr=(a.listen, a.port), family=family)
    print("ready", flush=True)
    await asyncio.Event().wait()


def start(lab: Lab, address: str, *, rcode: str = "NXDOMAIN", delay_file: Path | None = None,
          log: Path | None = None) -> subprocess.Popen[Any]:
    """Put ``address`` on inet's loopback (outside the echo server's tproxy) and answer DNS
    there; returns once it listens (the lab kills it when it closes)."""
    lab.ip(lab.inet, "addr", "add", f"{address}/{128 if ':' in address else 32}", "dev", "lo")
    args = ["--listen", address, "--rcode", rcode]
    args += ["--delay-file", str(delay_file)] if delay_file else []
    args += ["--log", str(log)] if log else []
    proc = lab.popen(lab.inet, lab.python("mwan.lab.dnsd", *args), stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if not ready or proc.stdout.readline().strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"mwan.lab.dnsd on {address} did not start")
    return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--rcode", choices=sorted(RCODES), default="NXDOMAIN")
    ap.add_argument("--delay-file", type=Path)
    ap.add_argument("--log", type=Path)
    try:
        asyncio.run(serve(ap.parse_args(argv)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
