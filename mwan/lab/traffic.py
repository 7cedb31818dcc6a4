"""Traffic for benchmarks: a steady rate of new connections, long-lived flows, and their echo.

Run inside lab namespaces; every mode ends by itself after ``--duration``::

    python -m mwan.lab.traffic echo --bind 198.51.100.20 --port 9000      # in inet
    python -m mwan.lab.traffic rate --dst 198.51.100.10 --port 80 --rate 50 --duration 60
    python -m mwan.lab.traffic flows --dst 198.51.100.20 --port 9000 --count 20 --duration 60

``echo`` keeps each TCP connection open and answers every line with
``<client address> <line>`` (so a flow learns the address the server saw:
the WAN it leaves by).  ``rate`` opens new connections to the lab's echo
server at a fixed rate (as :mod:`mwan.lab.client` does, one each).  ``flows``
keeps COUNT TCP connections open; each sends a line every ``--interval``
and waits for its echo.  A flow is broken when a send or receive fails or
the echo takes more than ``--stall`` seconds; it is then replaced by a new
one.  ``rate`` and ``flows`` print one JSON object per line, times from
``time.time()``::

    {"kind": "conn", "t": 1764570000.1, "dt": 0.003, "seen": "10.100.1.2", "err": null}
    {"kind": "open", "flow": 3, "gen": 0, "t": ..., "seen": "10.100.2.2"}
    {"kind": "open_failed", "flow": 3, "gen": 1, "t": ..., "err": "timeout"}
    {"kind": "broken", "flow": 3, "gen": 0, "t": ..., "last_ok": ..., "seen": ..., "reason": ...,
     "echoes": 812, "max_gap": 0.41}
    {"kind": "end", "flow": 3, "gen": 1, "t": ..., "seen": ..., "echoes": 40, "max_gap": 0.21}

``echo`` prints ``ready`` once it listens.  Stdlib only (and
:mod:`mwan.lab.client`), so it starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from mwan.lab.client import Attempt, error_kind, one

Emit = Callable[[dict[str, object]], None]
REOPEN_PAUSE = 0.5  # seconds between a broken flow and its replacement


def emit_stdout(record: dict[str, object]) -> None:
    """Print one JSON line and flush (the reader correlates times while the run goes on)."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


# -- the long-flow echo server --------------------------------------------------

async def _echo_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = str(writer.get_extra_info("peername")[0])
    try:
        while line := await reader.readline():
            writer.write(f"{peer} ".encode() + line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def echo_server(bind: str, port: int, duration: float | None) -> None:
    """Answer every line of every connection until SIGTERM or ``duration`` seconds."""
    server = await asyncio.start_server(_echo_lines, bind, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    server.close()


# -- new connections at a fixed rate ----------------------------------------------

async def _attempt(a: Attempt, emit: Emit) -> None:
    t = time.time()
    start = time.monotonic()
    result = await one(a)
    dt = round(time.monotonic() - start, 4)
    if isinstance(result, str):
        emit({"kind": "conn", "t": t, "dt": dt, "seen": None, "err": result})
    else:
        emit({"kind": "conn", "t": t, "dt": dt, "seen": result[0], "err": None})


async def connection_rate(a: Attempt, rate: float, duration: float, emit: Emit) -> int:
    """Start a new connection every 1/``rate`` s for ``duration`` s; the number started."""
    n = int(rate * duration)
    start = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        task = asyncio.create_task(_attempt(a, emit))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return n


# -- long-lived flows ---------------------------------------------------------------

@dataclass(frozen=True)
class FlowParams:
    """What every long flow of a run shares."""

    dst: str
    port: int
    interval: float
    stall: float
    connect_timeout: float = 2.0


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg: str,
                    stall: float) -> str:
    """Send ``msg`` and return the address the server saw; raise on failure or a stall."""
    writer.write(msg.encode() + b"\n")
    await asyncio.wait_for(writer.drain(), stall)
    line = await asyncio.wait_for(reader.readline(), stall)
    parts = line.decode(errors="replace").split()
    if len(parts) != 2 or parts[1] != msg:
        raise ConnectionError("bad echo" if line else "closed")
    return parts[0]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "stall"
    if isinstance(exc, ConnectionError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return error_kind(exc)


async def _one_flow(p: FlowParams, flow: int, gen: int, end: float, emit: Emit) -> None:
    """Open one flow and keep it echoing until ``end`` (monotonic) or until it breaks."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(p.dst, p.port), p.connect_timeout)
    except (TimeoutError, OSError) as e:
        emit({"kind": "open_failed", "flow": flow, "gen": gen, "t": time.time(),
              "err": error_kind(e)})
        await asyncio.sleep(max(0.0, min(REOPEN_PAUSE, end - time.monotonic())))
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    seen, echoes, max_gap, last_ok = "", 0, 0.0, time.time()
    try:
        seen = await _exchange(reader, writer, "hello", p.stall)
        last_ok = time.time()
        emit({"kind": "open", "flow": flow, "gen": gen, "t": last_ok, "seen": seen})
        tick = time.monotonic()
        while True:
            tick += p.interval
            if tick >= end:
                break
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            await _exchange(reader, writer, str(echoes), p.stall)
            now = time.time()
            max_gap, last_ok, echoes = max(max_gap, now - last_ok), now, echoes + 1
        emit({"kind": "end", "flow": flow, "gen": gen, "t": time.time(), "seen": seen,
              "echoes": echoes, "max_gap": round(max_gap, 3)})
    except (TimeoutError, OSError) as e:
        emit({"kind": "broken", "flow": flow, "gen": gen, "t": time.time(), "last_ok": last_ok,
              "seen": seen or None, "reason": _reason(e), "echoes": echoes,
              "max_gap": round(max_gap, 3)})
        await asyncio.sleep(max(0.0, min(REOPEN_PAUSE, end - time.monotonic())))
    finally:
        writer.close()


async def _flow_slot(p: FlowParams, flow: int, delay: float, end: float, emit: Emit) -> None:
    await asyncio.sleep(delay)
    gen = 0
    while time.monotonic() < end - p.interval:
        await _one_flow(p, flow, gen, end, emit)
        gen += 1


async def long_flows(p: FlowParams, count: int, duration: float, emit: Emit) -> None:
    """Keep ``count`` flows going for ``duration`` seconds (starts spread over one interval)."""
    end = time.monotonic() + duration
    await asyncio.gather(*(_flow_slot(p, i, p.interval * i / count, end, emit)
                           for i in range(count)))


# -- command line ---------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m mwan.lab.traffic",
                                 description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo", help="line echo server for long flows")
    e.add_argument("--bind", required=True)
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--duration", type=float, help="stop after this many seconds")
    r = sub.add_parser("rate", help="new connections at a fixed rate")
    f = sub.add_parser("flows", help="long-lived flows checked for liveness")
    for p in (r, f):
        p.add_argument("--dst", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--duration", type=float, required=True)
    r.add_argument("--rate", type=float, default=50.0, help="new connections per second")
    r.add_argument("--timeout", type=float, default=2.0, help="seconds per connection")
    f.add_argument("--count", type=int, default=20)
    f.add_argument("--interval", type=float, default=0.2, help="seconds between echoes")
    f.add_argument("--stall", type=float, default=5.0, help="an echo later than this breaks")
    args = ap.parse_args(argv)
    if args.mode == "echo":
        asyncio.run(echo_server(args.bind, args.port, args.duration))
    elif args.mode == "rate":
        family = 6 if ":" in args.dst else 4
        attempt = Attempt(args.dst, args.port, "tcp", family, None, None, args.timeout)
        asyncio.run(connection_rate(attempt, args.rate, args.duration, emit_stdout))
    else:
        params = FlowParams(args.dst, args.port, args.interval, args.stall)
        asyncio.run(long_flows(params, args.count, args.duration, emit_stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
