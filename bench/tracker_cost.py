"""Tracker cost: the daemon tracking 16 interfaces x 4 targets at interval 1, against mwan3's way.

    sudo .venv/bin/python -m bench.tracker_cost [--seconds 60] [--wans 16] [--interval 0.2]

Both run in the same lab router, one after the other, for the same time:

* ours: ``mwan3 daemon`` with 16 tracked interfaces, 4 ``track_ip`` each,
  ``interval 1``, ``timeout 1``; CPU = user+system time of the daemon process
  over the window (from /proc), RSS = its peak (VmHWM).
* baseline: what mwan3track does, one shell loop per interface running one
  ``ping -n -c1 -W1 -I <dev>`` process per target per round, then ``sleep
  1``; CPU = user+system time of the loops and every process they ran
  (``wait4`` rusage).

Prints both, the ratio, and whether the targets hold (CPU < 1/10 of the
baseline, RSS < 60 MB).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mwan.daemon.control import PID_NAME
from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def config(lab: Lab, wans: int, interval: float = 1) -> str:
    timeout = min(1.0, interval)
    text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:4],
                          interval=f"{interval:g}", timeout=f"{timeout:g}", reliability=1)
    members = "".join(f"config member 'm{k}'\n\toption interface '{name}'\n\n"
                      for k, name in enumerate(_names(wans), 1))
    policy = "config policy 'all'\n" + "".join(
        f"\tlist use_member 'm{k}'\n" for k in range(1, wans + 1))
    return text + members + policy


def _names(wans: int) -> list[str]:
    from mwan.lab.router import wan_name
    return [wan_name(k) for k in range(1, wans + 1)]


def ours(lab: Lab, wans: int, seconds: float, interval: float = 1
         ) -> tuple[float, float, int]:
    with MwanRouter(lab, config(lab, wans, interval)) as r:
        r.start()
        with open(os.path.join(r.run_dir, PID_NAME)) as fh:
            pid = int(fh.read())
        time.sleep(3)  # past start-up
        c0 = cpu_seconds(pid)
        time.sleep(seconds)
        c1 = cpu_seconds(pid)
        rss = rss_peak_mb(pid)
        from mwan.daemon.control import call
        sent = sum(i["probes_sent"] for i in call(r.run_dir, "state")["interfaces"].values())
    return c1 - c0, rss, sent


LOOP = """
end=$(( $(date +%s) + {seconds} ))
while [ "$(date +%s)" -lt "$end" ]; do
  for t in {targets}; do ping -n -c1 -W1 -I {dev} -q "$t" >/dev/null 2>&1; done
  sleep {interval}
done
"""


def baseline(lab: Lab, wans: int, seconds: float, interval: float = 1) -> float:
    targets = " ".join(lab.track_targets(4)[:4])
    procs = [lab.popen(lab.router, ["bash", "-c", LOOP.format(
        seconds=int(seconds), targets=targets, dev=lab.wan_device(k), interval=f"{interval:g}")])
        for k in range(1, wans + 1)]
    total = 0.0
    for p in procs:
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
        total += ru.ru_utime + ru.ru_stime
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--wans", type=int, default=16)
    ap.add_argument("--interval", type=float, default=1.0,
                    help="seconds between rounds (sub-second: 0.2); timeout min(1, interval)")
    ap.add_argument("--no-baseline", action="store_true", help="only the daemon")
    a = ap.parse_args()
    with Lab(isps=a.wans, clients=1, ipv6=False) as lab:
        print(f"ours: mwan3 daemon, {a.wans} interfaces x 4 targets, interval {a.interval:g}, "
              f"{a.seconds:.0f} s ...", flush=True)
        cpu, rss, sent = ours(lab, a.wans, a.seconds, a.interval)
        base = 0.0
        if not a.no_baseline:
            print(f"baseline: {a.wans} shell loops, one ping process per probe, "
                  f"{a.seconds:.0f} s ...", flush=True)
            base = baseline(lab, a.wans, a.seconds, a.interval)
    ratio = cpu / base if base else float("nan")
    print()
    print(f"{'':28} {'CPU s':>8} {'CPU %':>7} {'RSS MB':>7}")
    print(f"{'mwan (one asyncio daemon)':28} {cpu:8.2f} {100 * cpu / a.seconds:7.1f} {rss:7.1f}")
    print(f"{'ping process per probe':28} {base:8.2f} {100 * base / a.seconds:7.1f} {'':>7}")
    print(f"ratio ours/baseline CPU: {ratio:.3f}  (target < 0.1: "
          f"{'met' if ratio < 0.1 else 'NOT met'}); RSS < 60 MB: "
          f"{'met' if rss < 60 else 'NOT met'}; probes sent by the daemon: {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
