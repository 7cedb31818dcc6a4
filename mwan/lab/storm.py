"""Storms for the lab: a carrier that flaps, and a client that keeps asking the daemon.

Used by tests/lab/test_storm.py and bench/storm_bench.py.  Both run in a
thread each, so the caller can watch the daemon meanwhile.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

from mwan.daemon.control import call

if TYPE_CHECKING:
    from mwan.lab.lab import Lab


class CarrierFlapper(threading.Thread):
    """ISP ``k`` takes its side of the router link down for ``down`` seconds, then up
    for ``up`` seconds, over and over (the default: five cycles a second).

    ``stop()`` ends the storm with the carrier up.  ``changes`` counts the
    link changes made (two per cycle).  The kernel's linkwatch reports a
    device's carrier changes about once a second at most, so a faster storm
    reaches the daemon as about one change a second.
    """

    def __init__(self, lab: Lab, k: int, down: float = 0.1, up: float = 0.1) -> None:
        super().__init__(daemon=True, name=f"flap-wan{k}")
        self.lab, self.k, self.down, self.up = lab, k, down, up
        self.changes = 0
        self.errors: list[str] = []
        self._stop_flag = threading.Event()

    def run(self) -> None:
        nxt = time.monotonic()
        up = True
        while not self._stop_flag.is_set():
            try:
                if up:
                    self.lab.cut_carrier(self.k)
                else:
                    self.lab.restore_carrier(self.k)
            except Exception as exc:  # noqa: BLE001 - reported, the storm goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            up = not up
            self.changes += 1
            nxt += self.up if up else self.down
            self._stop_flag.wait(max(0.0, nxt - time.monotonic()))
        if not up:
            self.lab.restore_carrier(self.k)
            self.changes += 1

    def stop(self) -> None:
        self._stop_flag.set()
        self.join()


class ControlSampler(threading.Thread):
    """Asks the daemon ``cmd`` (``state``: what ``mwan3 interfaces`` asks) back to back.

    ``latencies`` holds each answer's seconds; ``errors`` what went wrong.
    """

    def __init__(self, run_dir: str, cmd: str = "state", pause: float = 0.01) -> None:
        super().__init__(daemon=True, name="control-sampler")
        self.run_dir, self.cmd, self.pause = run_dir, cmd, pause
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop_flag = threading.Event()

    def run(self) -> None:
        while not self._stop_flag.is_set():
            t0 = time.monotonic()
            try:
                call(self.run_dir, self.cmd, timeout=10)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.latencies.append(time.monotonic() - t0)
            self._stop_flag.wait(self.pause)

    def stop(self) -> list[float]:
        self._stop_flag.set()
        self.join()
        return self.latencies


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]
