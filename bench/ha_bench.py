"""HA takeover in the two-router lab (issue 13): from the primary's death to the first new
LAN connection through the backup, and the share of established flows that survive.

    sudo .venv/bin/python -m bench.ha_bench [--trials 10] [--defaults-trials 10]

Two cases, each over N trials (medians reported):

* a sub-second VRRPv3 advert interval (``advert_int 0.2``): target < 1 s;
* keepalived's default interval (``advert_int 1``): target < 4 s.

Each trial: 20 long TCP flows (an echo every 100 ms) through the master,
balanced over both WANs; the peer's conntrackd holds them; then every link
of the master goes down (its death as the LAN sees it).  A LAN client opens a
new connection every 20 ms (``mwan.lab.traffic rate``); the takeover is the
start of the first that succeeds after the fault.  The flows count as
survivors when they end normally on the WAN they began on; their longest
stall (the endpoints' TCP retransmission backoff) is reported apart.  The
dead router is then restored (it stays backup: no preemption) and the next
trial kills the other one, so failover and failback alternate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from mwan.lab import Lab
from mwan.lab.ha import HaLab
from mwan.lab.router import lab_interfaces

BALANCED = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config rule 'default'
	option use_policy 'balanced'
"""
FLOW_SERVER = "198.51.100.20"
FLOWS = 20
AFTER = 8.0  # seconds the flows go on after the fault (they must resume within --stall)


def wait_for(pred: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def external(lab: HaLab, r: str) -> int:
    return lab.routers[r].peer_flows(9000)


def all_online(lab: HaLab, r: str) -> bool:
    ifs = lab.routers[r].status().get("interfaces", {})
    return bool(ifs) and all(i["online"] for i in ifs.values())


def trial(lab: HaLab, victim: str) -> dict[str, Any]:
    other = "b" if victim == "a" else "a"
    duration = 4.0 + AFTER
    flows = lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "flows", "--dst", FLOW_SERVER, "--port", "9000", "--count",
        str(FLOWS), "--interval", "0.1", "--stall", "7", "--duration", str(duration)),
        stdout=subprocess.PIPE, text=True)
    if not wait_for(lambda: external(lab, other) >= FLOWS, 15):
        raise RuntimeError(f"router {other} never held the {FLOWS} flows")
    time.sleep(1.0)  # a few echoes more, synced
    probe = lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "rate", "--dst", lab.server_addr(), "--port", "80", "--rate", "50",
        "--timeout", "0.3", "--duration", str(AFTER - 1)), stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    lab.fail_router(victim, "links")
    t0 = time.time()
    probe_out, _ = probe.communicate(timeout=60)
    flows_out, _ = flows.communicate(timeout=60)
    conns = [json.loads(x) for x in probe_out.splitlines() if x.startswith("{")]
    ok = sorted(c["t"] for c in conns if c["t"] > t0 and c["err"] is None)
    records = [json.loads(x) for x in flows_out.splitlines() if x.startswith("{")]
    opened = {r["flow"]: r["seen"] for r in records if r["kind"] == "open" and r["gen"] == 0}
    ended = {r["flow"]: r for r in records if r["kind"] == "end" and r["gen"] == 0}
    kept = [f for f, seen in opened.items() if f in ended and ended[f]["seen"] == seen]
    stall = max((ended[f]["max_gap"] for f in kept), default=None)
    wans = {lab.wan_of(opened[f]) for f in kept}
    master = lab.master()
    lab.restore_router(victim)
    if not lab.wait_role(victim, "BACKUP", 20):
        raise RuntimeError(f"router {victim} did not come back as backup")
    wait_for(lambda: all_online(lab, victim), 20)
    return {"victim": victim, "takeover_s": round(ok[0] - t0, 3) if ok else None,
            "flows": len(opened), "survived": len(kept), "wans": sorted(w or 0 for w in wans),
            "max_stall_s": stall, "new_master": master}


def run_case(advert: float, trials: int) -> list[dict[str, Any]]:
    out = []
    with HaLab(isps=2, clients=1, advert_int=advert) as lab:
        cfg = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[0], interval="1",
                             up="2", down="2") + BALANCED
        lab.start(cfg)
        lab.wait_role("b", "BACKUP", 20)
        lab.flow_echo(FLOW_SERVER, 9000)
        wait_for(lambda: all_online(lab, "a") and all_online(lab, "b"), 20)
        victim = "a"
        for _ in range(trials):
            r = trial(lab, victim)
            r["advert_int"] = advert
            print(json.dumps(r), flush=True)
            out.append(r)
            victim = r["new_master"] or ("b" if victim == "a" else "a")
    return out


def summary(name: str, rows: list[dict[str, Any]], target: float) -> str:
    times = [r["takeover_s"] for r in rows if r["takeover_s"] is not None]
    flows = sum(r["flows"] for r in rows)
    kept = sum(r["survived"] for r in rows)
    stalls = [r["max_stall_s"] for r in rows if r["max_stall_s"] is not None]
    med = statistics.median(times) if times else float("nan")
    return (f"{name}: n={len(rows)} takeover median {med:.3f} s "
            f"(min {min(times, default=float('nan')):.3f}, max {max(times, default=float('nan')):.3f}; "
            f"target < {target} s: {'met' if med < target else 'NOT met'}); "
            f"flows survived {kept}/{flows} ({100 * kept / max(flows, 1):.0f} %); "
            f"longest flow stall median {statistics.median(stalls) if stalls else float('nan'):.2f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="trials with advert_int 0.2")
    ap.add_argument("--defaults-trials", type=int, default=10, help="trials with advert_int 1")
    args = ap.parse_args(argv)
    ok, why = Lab.available()
    if not ok:
        print(f"lab unavailable: {why}", file=sys.stderr)
        return 2
    fast = run_case(0.2, args.trials) if args.trials else []
    slow = run_case(1.0, args.defaults_trials) if args.defaults_trials else []
    if fast:
        print(summary("advert_int 0.2 (VRRPv3)", fast, 1.0))
    if slow:
        print(summary("advert_int 1 (keepalived's default)", slow, 4.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
