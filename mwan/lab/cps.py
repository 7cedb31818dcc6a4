"""Connection-rate load: a server that accepts and closes, and a client that opens as fast as it can.

Run inside lab namespaces (``bench/cps_bench.py`` does)::

    python -m mwan.lab.cps server --port 8080 [--procs 2]        # in inet; prints "ready"
    python -m mwan.lab.cps client --dst 203.0.113.99 --port 8080 --start-at EPOCH \\
        --seconds 5 [--concurrency 32] [--src 192.168.1.10,...]

Each client process keeps ``--concurrency`` non-blocking TCP connects in
flight (one epoll loop, no asyncio: the loop is the client's ceiling).  A
connection counts once its handshake completes (the socket turns
writable without error); it is then closed with ``SO_LINGER`` 0, so the
client sends an RST and keeps no TIME_WAIT: its ports are free again at
once.  Every connection is new to conntrack on the way (a reused 5-tuple
whose old entry is still in CLOSE is killed and recreated as new).

The server listens with ``SO_REUSEPORT`` in ``--procs`` processes, each
accepting and closing in a blocking loop.

The client waits until ``--start-at`` (``time.time()``), counts for
``--seconds`` and prints one JSON line (``cpu``: its own CPU seconds, ``user`` the part in user space)::

    {"ok": 51234, "errors": {"timeout": 3}, "seconds": 5.0, "cpu": 4.1, "user": 2.0}

Stdlib only, so it starts fast.
"""

from __future__ import annotations

import argparse
import errno
import json
import multiprocessing
import os
import select
import signal
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass

LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, no TIME_WAIT
CONNECT_TIMEOUT = 1.0  # an attempt still pending after this counts as "timeout"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


@dataclass(frozen=True)
class Load:
    """One client process's job."""

    dst: str
    port: int
    seconds: float
    concurrency: int
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tally:
    """What one client process did while it was counting."""

    ok: int
    errors: dict[str, int]
    seconds: float
    cpu: float = 0.0  # this process's CPU seconds (user + system) while counting
    user: float = 0.0  # of which in user space (the interpreter's own work)

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "errors": self.errors, "seconds": self.seconds,
                           "cpu": self.cpu, "user": self.user})


def parse_tally(line: str) -> Tally:
    """The :class:`Tally` a client printed."""
    d = json.loads(line)
    return Tally(int(d["ok"]), {str(k): int(v) for k, v in d["errors"].items()},
                 float(d["seconds"]), float(d.get("cpu", 0.0)), float(d.get("user", 0.0)))


def error_name(code: int) -> str:
    """A short name for a failed connect's errno."""
    return {errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timeout",
            errno.ECONNRESET: "reset", errno.EHOSTUNREACH: "unreachable",
            errno.ENETUNREACH: "unreachable", errno.EADDRNOTAVAIL: "no_port"}.get(
                code, errno.errorcode.get(code, str(code)).lower())


# -- the client ---------------------------------------------------------------------

def _open(load: Load, n: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    if load.sources:
        # choose the port at connect time (per destination), not at bind time
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((load.sources[n % len(load.sources)], 0))
    s.connect_ex((load.dst, load.port))
    return s


def run_client(load: Load) -> Tally:
    """Open connections for ``load.seconds``, always ``load.concurrency`` in flight."""
    ep = select.epoll()
    pending: dict[int, tuple[socket.socket, float]] = {}
    errors: Counter[str] = Counter()
    ok = opened = 0
    cpu0 = os.times()
    start = time.monotonic()
    end = start + load.seconds
    next_sweep = start + 0.1
    out = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP

    def launch(now: float) -> None:
        nonlocal opened
        while len(pending) < load.concurrency:
            try:
                s = _open(load, opened)
            except OSError as e:
                errors[error_name(e.errno or 0)] += 1
                return
            opened += 1
            pending[s.fileno()] = (s, now)
            ep.register(s.fileno(), out)

    now = start
    launch(now)
    while now < end:
        for fd, _ in ep.poll(min(0.05, max(0.0, end - now))):
            s, _t0 = pending.pop(fd)
            ep.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                errors[error_name(err)] += 1
            else:
                ok += 1
            s.close()
        now = time.monotonic()
        if now >= next_sweep:
            next_sweep = now + 0.1
            for fd, (s, t0) in list(pending.items()):
                if now - t0 > CONNECT_TIMEOUT:
                    del pending[fd]
                    ep.unregister(fd)
                    s.close()
                    errors["timeout"] += 1
        launch(now)
    elapsed = time.monotonic() - start
    cpu1 = os.times()
    user = cpu1.user - cpu0.user
    cpu = user + cpu1.system - cpu0.system
    for s, _ in pending.values():
        s.close()
    ep.close()
    return Tally(ok, dict(errors), round(elapsed, 3), round(cpu, 3), round(user, 3))


# -- the server ---------------------------------------------------------------------

def _listener(port: int, backlog: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    s.listen(backlog)
    return s


def _accept_forever(s: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            c, _ = s.accept()
        except OSError:
            continue
        c.close()


def serve(port: int, procs: int, backlog: int = 4096) -> None:
    """Accept and close on ``port`` in ``procs`` processes until killed; print ``ready``."""
    socks = [_listener(port, backlog) for _ in range(procs)]
    workers = [multiprocessing.Process(target=_accept_forever, args=(s,), daemon=True)
               for s in socks[1:]]
    for w in workers:
        w.start()
    print("ready", flush=True)
    try:
        _accept_forever(socks[0])
    finally:
        for w in workers:
            w.kill()


# -- command line ---------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m mwan.lab.cps",
                                 description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server", help="accept and close")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--procs", type=int, default=2)
    c = sub.add_parser("client", help="open new connections as fast as possible")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--start-at", type=float, default=0.0, help="time.time() to start at")
    c.add_argument("--concurrency", type=int, default=32)
    c.add_argument("--src", default="", help="comma-separated source addresses")
    args = ap.parse_args(argv)
    if args.mode == "server":
        serve(args.port, args.procs)
        return 0
    load = Load(args.dst, args.port, args.seconds, args.concurrency,
                tuple(a for a in args.src.split(",") if a))
    time.sleep(max(0.0, args.start_at - time.time()))
    print(run_client(load).to_json(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
