"""How fast mwan follows a DHCP lease that changes address and gateway (issue 16).

    sudo .venv/bin/python -m bench.dhcp_bench [--trials 5]

ISP 2 serves wan2's lease with dnsmasq, the router runs udhcpc
(mwan/lab/dhcp.py); each trial hands out the other of two leases (address
and gateway both change) and has the client renew.  Measured from the
moment the client's script bound the new lease (udhcpc's NAK → deconfig →
bound comes before it): wanb's table routes via the new gateway, a probe
leaves from the new address (conntrack), a new LAN connection by wanb is
masqueraded to the new address.  Target: each within 1 s.  ``down 8`` keeps
wanb online through udhcpc's few seconds without an address, so the numbers
are the daemon's and the kernel's, not the tracker's verdict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from mwan.lab import Lab
from mwan.lab.dhcp import DhcpWan, Lease
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

LEASES = (Lease("10.100.2.50", "10.100.2.1"), Lease("10.100.2.150", "10.100.2.254"))
RULES = "config rule 'to_server2'\n\toption dest_ip '203.0.113.0/24'\n" \
        "\toption use_policy 'wanb_only'\n"


def until(pred: Callable[[], bool], timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.time()
        time.sleep(0.01)
    raise TimeoutError


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    # per-WAN usage goes to a scratch dir, not the host's /var/lib/mwan
    os.environ.setdefault("MWAN_STATE_DIR", tempfile.mkdtemp(prefix="mwan-bench-state-"))
    with Lab(isps=2, clients=1, ipv6=False) as lab:
        wan = DhcpWan(lab, 2, tempfile.mkdtemp(prefix="mwan-dhcp-bench-"), metric=20)
        wan.serve(LEASES[0])
        wan.start_client()
        text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], interval=1,
                              failure_interval=1, recovery_interval=1, timeout=1, up=1,
                              down=8) + TWO_WAN_POLICIES + RULES
        with MwanRouter(lab, text) as r:
            r.start()
            time.sleep(3)

            def table_via(gw: str) -> bool:
                out = lab.exec(lab.router, "ip", "-4", "route", "show", "table", "all",
                               "proto", "201").stdout
                return f"default via {gw} dev wan2 table " in out

            def probe_from(addr: str) -> bool:
                out = lab.exec(lab.router, "conntrack", "-L", "-p", "icmp", "-s", addr,
                               check=False).stdout
                return "src=" in out

            def lan_from(addr: str) -> bool:
                seen = lab.connect_many(lab.client_ns(1), lab.server2_addr(4), 80, count=1,
                                        timeout=0.5).seen
                return seen == {addr: 1}

            rows: dict[str, list[float]] = {"table": [], "probe source": [], "masquerade": []}
            for n in range(args.trials):
                lease = LEASES[(n + 1) % 2]
                lab.exec(lab.router, "conntrack", "-F", check=False)
                bound = wan.change_lease(lease)["time"]
                gw, addr = lease.gateway, lease.address
                rows["table"].append(until(lambda gw=gw: table_via(gw)) - bound)
                rows["masquerade"].append(until(lambda a=addr: lan_from(a)) - bound)
                rows["probe source"].append(until(lambda a=addr: probe_from(a)) - bound)
                print(f"trial {n + 1}: "
                      + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), flush=True)
    print(f"\nafter the new lease is bound ({args.trials} trials), median / max:")
    for k, v in rows.items():
        verdict = "met" if max(v) <= 1.0 else "NOT met"
        print(f"  {k:<13} {statistics.median(v):.2f} s / {max(v):.2f} s  (target 1 s: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
