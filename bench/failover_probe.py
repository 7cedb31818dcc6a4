"""Runs in a LAN client: open a new TCP connection every few ms, print when and by which WAN.

Each output line is ``<unix time> <address the server saw | error>``; the
benchmark reads them to find the first new connection that succeeded
through the backup after a fault.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

from mwan.lab.client import parse_reply


def attempt(dst: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((dst, port), timeout=timeout) as s:
            s.sendall(b"\n")
            data = b""
            while chunk := s.recv(2048):
                data += chunk
        reply = parse_reply(data)
        return reply[0] if reply else "bad_reply"
    except OSError as exc:
        return type(exc).__name__


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dst")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--every", type=float, default=0.02, help="seconds between new connections")
    ap.add_argument("--timeout", type=float, default=0.3)
    a = ap.parse_args()
    lock = threading.Lock()

    def one(started: float) -> None:
        seen = attempt(a.dst, a.port, a.timeout)
        with lock:
            sys.stdout.write(f"{started:.4f} {seen}\n")
            sys.stdout.flush()

    while True:  # a thread per attempt, so a dead WAN's timeouts never delay the next one
        started = time.time()
        threading.Thread(target=one, args=(started,), daemon=True).start()
        time.sleep(a.every)


if __name__ == "__main__":
    main()
