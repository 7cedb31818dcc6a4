"""Issue 16 item 2: a WAN whose address comes from DHCP changes under the daemon.

ISP 2 serves its lease with dnsmasq, the router's wan2 runs udhcpc (no
netifd, as on a Debian router).  When the lease comes back with another
address and gateway, the WAN's table, its ip rules, its probes' source
address and the masquerade follow; the test allows a few seconds and
prints how long each took after the client bound the new lease (the 1 s
target is measured there and in bench/dhcp_bench.py, not asserted).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from mwan.lab import Lab
from mwan.lab.dhcp import DhcpWan, Lease
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

FIRST = Lease("10.100.2.50", "10.100.2.1")
SECOND = Lease("10.100.2.150", "10.100.2.254")
RULES = """config rule 'to_server2'
	option dest_ip '203.0.113.0/24'
	option use_policy 'wanb_only'
config rule 'all'
	option use_policy 'wan_wanb'
"""


def config(lab: Lab) -> str:
    return lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], interval=1,
                          failure_interval=1, recovery_interval=1, timeout=1, up=1,
                          down=3) + TWO_WAN_POLICIES + RULES


@pytest.fixture
def dhcp_wan(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DhcpWan]:
    for tool in ("dnsmasq", "udhcpc", "conntrack"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    w = DhcpWan(lab, 2, str(tmp_path_factory.mktemp("dhcp")), metric=20)
    w.serve(FIRST)
    w.start_client()
    yield w  # the lab kills dnsmasq and udhcpc when it closes


def status(r: MwanRouter, name: str) -> str:
    res = r.cli("interfaces", "--json", check=False)
    return str(json.loads(res.stdout)["interfaces"][name]["status"]) if res.returncode == 0 \
        else "?"


def wait_for(what: str, pred: Callable[[], bool], r: MwanRouter, timeout: float = 20.0
             ) -> float:
    """Poll ``pred``; the time it first held (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.time()
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout} s\n{r.log()[-4000:]}")


def mwan_routes(lab: Lab) -> str:
    return lab.exec(lab.router, "ip", "-4", "route", "show", "table", "all", "proto", "201").stdout


def wanb_table_default(lab: Lab, gateway: str) -> bool:
    return any(line.startswith(f"default via {gateway} dev wan2 table ")
               for line in mwan_routes(lab).splitlines())


def probe_sources(lab: Lab) -> set[str]:
    """Source addresses of the router's own ICMP flows out of wan2 (its probes)."""
    out = lab.exec(lab.router, "conntrack", "-L", "-p", "icmp", check=False).stdout
    return {w.split("=", 1)[1] for line in out.splitlines() for w in line.split()[:8]
            if w.startswith("src=10.100.2.")}


def server_sees(lab: Lab) -> dict[str, int]:
    return lab.connect_many(lab.client_ns(1), lab.server2_addr(4), 80, count=1).seen


@pytest.mark.parametrize("lab", [{"ipv6": False}], indirect=True)
def test_lease_with_new_address_and_gateway_is_followed(
        lab: Lab, dhcp_wan: DhcpWan, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab))
    wait_for("wanb online", lambda: status(r, "wanb") == "online", r)
    assert wanb_table_default(lab, FIRST.gateway), mwan_routes(lab)
    assert server_sees(lab) == {FIRST.address: 1}
    assert FIRST.address in probe_sources(lab)
    rules = lab.exec(lab.router, "ip", "-4", "rule", "show").stdout
    wanb_rules = sorted(line for line in rules.splitlines() if "wan2" in line or "lookup 2" in line)

    lab.exec(lab.router, "conntrack", "-F", check=False)
    bound = dhcp_wan.change_lease(SECOND)["time"]
    t_table = wait_for("wanb's table via the new gateway",
                       lambda: wanb_table_default(lab, SECOND.gateway), r)
    t_probe = wait_for("probes from the new address",
                       lambda: SECOND.address in probe_sources(lab), r)
    wait_for("wanb online", lambda: status(r, "wanb") == "online", r)
    t_nat = wait_for("LAN traffic masqueraded to the new address",
                     lambda: server_sees(lab) == {SECOND.address: 1}, r)
    print(f"\nafter the new lease was bound: wanb's table {t_table - bound:.2f} s, "
          f"probes from the new source {t_probe - bound:.2f} s, "
          f"LAN traffic out by it {t_nat - bound:.2f} s")
    assert not wanb_table_default(lab, FIRST.gateway), mwan_routes(lab)
    rules = lab.exec(lab.router, "ip", "-4", "rule", "show").stdout
    assert sorted(line for line in rules.splitlines()
                  if "wan2" in line or "lookup 2" in line) == wanb_rules
    assert status(r, "wan") == "online"
