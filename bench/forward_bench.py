"""Forwarding cost: many parallel TCP flows LAN -> internet through the router, with and without mwan.

    sudo .venv/bin/python -m bench.forward_bench [--reps 5] [--seconds 5] [--flows 32]

One lab (router, two ISPs, one LAN client, the internet); an ``iperf3``
server on an internet address.  Alternating, in the same run:

* baseline: the router with no mwan ruleset (plain forwarding + the lab's
  masquerade);
* mwan: ``mwan3 start`` with 1000 rules, none of which matches the iperf3
  server, so every new flow walks all of them before the last rule sends it
  to a balanced policy; established packets only restore their connection's
  mark.

Reports the median aggregate throughput of ``iperf3 -P <flows>`` for each
and the ratio (target >= 95 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

SERVER = "203.0.113.99"  # an internet address outside the lab's echo proxy


def config(lab: Lab, rules: int) -> str:
    text = lab_interfaces(lab, ipv6=False) + """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
"""
    for i in range(rules - 1):
        proto = ("tcp", "udp", "all")[i % 3]
        text += (f"config rule 'r{i}'\n\toption use_policy 'balanced'\n"
                 f"\toption dest_ip '198.18.{i // 256}.{i % 256}'\n\toption proto '{proto}'\n")
        if proto != "all":
            text += f"\toption dest_port '{1000 + i}'\n"
    text += "config rule 'last'\n\toption use_policy 'balanced'\n"
    return text


def iperf(lab: Lab, seconds: float, flows: int) -> float:
    """Aggregate received throughput in Gbit/s."""
    out = lab.exec(lab.client_ns(1), "iperf3", "-c", SERVER, "-P", str(flows), "-t",
                   str(seconds), "-J", timeout=seconds + 30).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--flows", type=int, default=32)
    ap.add_argument("--rules", type=int, default=1000)
    a = ap.parse_args()
    base, ours = [], []
    with Lab(isps=2, clients=1, ipv6=False) as lab:
        lab.ip(lab.inet, "addr", "add", f"{SERVER}/32", "dev", "lo")
        lab.popen(lab.inet, ["iperf3", "-s", "-B", SERVER], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        text = config(lab, a.rules)
        for i in range(a.reps):
            b = iperf(lab, a.seconds, a.flows)
            with MwanRouter(lab, text) as r:
                r.start()
                rules = lab.exec(lab.router, "nft", "list", "chain", "inet", "mwan",
                                 "rules").stdout.count("goto")
                o = iperf(lab, a.seconds, a.flows)
            base.append(b)
            ours.append(o)
            print(f"  rep {i + 1}: no ruleset {b:.2f} Gbit/s, mwan ({rules} rules) {o:.2f} Gbit/s",
                  flush=True)
    mb, mo = statistics.median(base), statistics.median(ours)
    print(f"\niperf3 -P {a.flows}, {a.seconds:.0f} s, {a.reps} alternating runs (medians):")
    print(f"  no ruleset: {mb:.2f} Gbit/s")
    print(f"  mwan, {a.rules} rules: {mo:.2f} Gbit/s")
    print(f"  ratio: {mo / mb:.3f} (target >= 0.95: {'met' if mo / mb >= 0.95 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
