"""Flap storms in the lab: how the daemon holds up, against a quiet baseline of the same run.

    sudo .venv/bin/python -m bench.storm_bench [--seconds 60] [--baseline 20]

Two WANs tracked at ``interval 1 / up 3 / down 3 / timeout 1``.  Phases:

* quiet: nothing happens (the baseline);
* carrier storm: ISP 1 takes its side of wan's link down and up, five
  times a second;
* target storm: ISP 1 stops forwarding for one second, then forwards for
  one second, over and over (its targets answer every other round).

During each phase two clients ask the control socket back to back:
``state`` (what ``mwan3 interfaces`` asks) and ``report`` with the rule
counters (``mwan3 status``, which also waits for the kernel thread).
Reported per phase: their p50/p99/max, the applies per second, the
daemon's CPU, and after a storm the seconds until wan is back online
(target: ``up`` rounds + one timeout, i.e. within one tracking round of
what the machine needs).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mwan.daemon.control import PID_NAME, call
from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces
from mwan.lab.storm import CarrierFlapper, ControlSampler, percentile

FAST = {"interval": 1, "failure_interval": 1, "recovery_interval": 1, "timeout": 1,
        "up": 3, "down": 3}


@dataclass
class Phase:
    name: str
    seconds: float
    state_lat: list[float]
    report_lat: list[float]
    errors: list[str]
    applies: int
    cpu_s: float
    settle_s: float | None = None


class TargetFlapper(threading.Thread):
    """ISP ``k`` drops everything for ``period`` seconds, then forwards for as long."""

    def __init__(self, lab: Lab, k: int, period: float = 1.0) -> None:
        super().__init__(daemon=True, name="target-storm")
        self.lab, self.k, self.period = lab, k, period
        self._stop_flag = threading.Event()

    def run(self) -> None:
        on = False
        nxt = time.monotonic()
        while not self._stop_flag.is_set():
            on = not on
            (self.lab.outage if on else self.lab.end_outage)(self.k)
            nxt += self.period
            self._stop_flag.wait(max(0.0, nxt - time.monotonic()))
        if on:
            self.lab.end_outage(self.k)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interfaces(r: MwanRouter) -> dict[str, Any]:
    return call(r.run_dir, "state")["interfaces"]  # type: ignore[no-any-return]


def wait_for(cond: Callable[[], bool], timeout: float) -> float | None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(0.02)
    return time.monotonic() - t0


def phase(r: MwanRouter, pid: int, name: str, seconds: float,
          storm: CarrierFlapper | TargetFlapper | None) -> Phase:
    applies0, cpu0 = call(r.run_dir, "state")["applies"], cpu_seconds(pid)
    s_state = ControlSampler(r.run_dir, "state", pause=0.01)
    s_report = ControlSampler(r.run_dir, "report", pause=0.01)
    s_state.start()
    s_report.start()
    if storm is not None:
        storm.start()
    time.sleep(seconds)
    if storm is not None:
        storm.stop()
    applies = call(r.run_dir, "state")["applies"] - applies0
    cpu = cpu_seconds(pid) - cpu0
    out = Phase(name, seconds, s_state.stop(), s_report.stop(),
                s_state.errors + s_report.errors, applies, cpu)
    if storm is not None:
        out.settle_s = wait_for(lambda: all(i["online"] for i in interfaces(r).values()), 60)
    return out


def ms(values: list[float], pct: float) -> str:
    return f"{percentile(values, pct) * 1000:.1f}" if values else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60, help="length of each storm")
    ap.add_argument("--baseline", type=float, default=20, help="length of the quiet phase")
    a = ap.parse_args()
    ok, why = Lab.available()
    if not ok:
        print(f"lab unavailable: {why}", file=sys.stderr)
        return 2
    with Lab(isps=2, clients=1, ipv6=False) as lab:
        text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2],
                              **FAST) + TWO_WAN_POLICIES
        with MwanRouter(lab, text) as r:
            r.start()
            with open(os.path.join(r.run_dir, PID_NAME)) as fh:
                pid = int(fh.read())
            wait_for(lambda: all(i["online"] and i["last_test"]
                                 for i in interfaces(r).values()), 20)
            phases = []
            for name, seconds, storm in (
                    ("quiet", a.baseline, None),
                    ("carrier 5x/s", a.seconds, CarrierFlapper(lab, 1)),
                    ("target every other round", a.seconds, TargetFlapper(lab, 1))):
                print(f"{name}: {seconds:.0f} s ...", flush=True)
                phases.append(phase(r, pid, name, seconds, storm))
            log = r.log()
    base = phases[0]
    print()
    print(f"{'phase':26} {'answers':>7} {'state p50':>9} {'p99':>6} {'max':>6} "
          f"{'report p50':>10} {'p99':>6} {'max':>6} {'p99 x':>6} {'applies/s':>9} "
          f"{'CPU %':>6} {'settle s':>8} errors")
    for p in phases:
        ratio = (percentile(p.state_lat, 99) / percentile(base.state_lat, 99)
                 if p.state_lat and base.state_lat else float("nan"))
        settle = "-" if p is base else ("never" if p.settle_s is None else f"{p.settle_s:.1f}")
        print(f"{p.name:26} {len(p.state_lat) + len(p.report_lat):7d} "
              f"{ms(p.state_lat, 50):>9} {ms(p.state_lat, 99):>6} "
              f"{max(p.state_lat) * 1000:6.1f} {ms(p.report_lat, 50):>10} "
              f"{ms(p.report_lat, 99):>6} {max(p.report_lat) * 1000:6.1f} {ratio:6.2f} "
              f"{p.applies / p.seconds:9.2f} {100 * p.cpu_s / p.seconds:6.1f} {settle:>8} "
              f"{len(p.errors)}")
    worst = max(percentile(p.state_lat + p.report_lat, 99) for p in phases)
    print(f"\ncontrol-socket p99 over all phases and both commands: {worst * 1000:.1f} ms "
          f"(target < 100 ms: {'met' if worst < 0.1 else 'NOT met'})")
    print("carrier changes the daemon saw: "
          f"{log.count('ifdown (carrier lost)')} losses (the kernel reports a device's "
          "carrier about once a second at most)")
    print(f"connected/disconnected events: {log.count(' connected (')}/"
          f"{log.count(' disconnected (')}")
    print("settle target: up 3 x recovery_interval 1 + timeout 1 = 4 s after the storm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
