"""The demo: a lab with three ISPs, mwan in its router, and traffic from the LAN.

    sudo ./scripts/demo.sh                 # runs until Ctrl-C
    sudo ./scripts/demo.sh --duration 20   # or for 20 seconds

It builds the lab (router, three ISPs, two LAN clients, an "internet"),
shows ``mwan3 check`` on the router's config, starts mwan in the router, and
every few seconds opens a batch of connections from the LAN and prints which
WAN they left by.  Halfway it cuts one ISP's upstream and later restores it.
Everything is removed on exit.
"""

from __future__ import annotations

import argparse
import sys
import time

from mwan.lab.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

POLICIES = """
config globals 'globals'
	option mmx_mask '0x3F00'

config member 'wan_m1_w3'
	option interface 'wan'
	option metric '1'
	option weight '3'
config member 'wanb_m1_w2'
	option interface 'wanb'
	option metric '1'
	option weight '2'
config member 'wanc_m2_w1'
	option interface 'wanc'
	option metric '2'
	option weight '1'
config member 'wan6_m1'
	option interface 'wan6'
config member 'wanb6_m1'
	option interface 'wanb6'

config policy 'balanced'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m1_w2'
	list use_member 'wanc_m2_w1'
	list use_member 'wan6_m1'
	list use_member 'wanb6_m1'
config policy 'wanc_wan'
	list use_member 'wanc_m2_w1'
	list use_member 'wan_m1_w3'

config rule 'https'
	option sticky '1'
	option dest_port '443'
	option proto 'tcp'
	option use_policy 'balanced'
config rule 'to_server2'
	option dest_ip '203.0.113.10'
	option use_policy 'wanc_wan'
config rule 'default_rule'
	option use_policy 'balanced'
"""


def demo_config(lab: Lab) -> str:
    return lab_interfaces(lab) + POLICIES


def show(lab: Lab, label: str) -> None:
    r = lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=100, timeout=1)
    shares = "  ".join(f"wan{k}: {r.wans.get(k, 0):3d}" for k in range(1, lab.isps + 1))
    print(f"  {label:<34} 100 new connections → {shares}  failed: {100 - r.ok}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=0,
                    help="stop after this many seconds (default: run until Ctrl-C)")
    args = ap.parse_args(argv)
    ok, why = Lab.available()
    if not ok:
        print(f"cannot build the lab here: {why}", file=sys.stderr)
        return 1
    with Lab(isps=3, clients=2) as lab, MwanRouter(lab, "") as router:
        router.write_config(demo_config(lab))
        print(f"lab {lab.id}: router {lab.router}, ISPs {', '.join(lab.isp_ns(k) for k in (1, 2, 3))}")
        print(f"\n$ mwan3 check --config {router.config}")
        res = router.cli("check", check=False)
        print(res.stdout + res.stderr, end="")
        print("$ mwan3 start")
        res = router.cli("start", check=False)
        print(res.stdout + res.stderr, end="")
        if res.returncode != 0:
            print(router.log())
            return 1
        print(f"\nTry, in another terminal:\n  ip netns exec {lab.router} nft list table inet mwan\n"
              f"  ip netns exec {lab.router} {' '.join(router.argv('ifdown', 'wanb'))}\n")
        print("policy 'balanced': wan 3, wanb 2 (metric 1), wanc 1 (metric 2, backup)")
        start = time.monotonic()
        step = 0
        try:
            while not args.duration or time.monotonic() - start < args.duration:
                step += 1
                if step == 3:
                    print("  -- mwan3 ifdown wan (take ISP 1 out of service)")
                    router.cli("ifdown", "wan")
                if step == 5:
                    print("  -- mwan3 ifdown wanb: only the backup is left")
                    router.cli("ifdown", "wanb")
                if step == 7:
                    print("  -- mwan3 ifup wan; mwan3 ifup wanb")
                    router.cli("ifup", "wan")
                    router.cli("ifup", "wanb")
                show(lab, f"t={time.monotonic() - start:5.1f}s")
                time.sleep(2)
        except KeyboardInterrupt:
            pass
        print("$ mwan3 stop")
        print(router.cli("stop", check=False).stdout, end="")
    print("lab removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
