"""Issue 16 item 2: a WAN whose device does not exist when the daemon starts.

As ppp0 appears only once its PPPoE session is up (this kernel has no PPP),
the lab deletes wan2 before mwan starts and the test later creates a veth
named ppp0 to ISP 2 in its place: the WAN waits for it, comes online when
it appears and its probes pass, and goes offline when it vanishes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter

pytestmark = pytest.mark.lab

DEV = "ppp0"


def config(lab: Lab) -> str:
    common = "".join(f"\tlist track_ip '{t}'\n" for t in lab.track_targets(4)[:2]) + (
        "\toption family 'ipv4'\n\toption interval '1'\n\toption failure_interval '1'\n"
        "\toption recovery_interval '1'\n\toption timeout '1'\n\toption up '1'\n"
        "\toption down '2'\n")
    return (f"config interface 'wan'\n\toption enabled '1'\n\toption device 'wan1'\n{common}\n"
            f"config interface 'wanb'\n\toption enabled '1'\n\toption device '{DEV}'\n{common}\n"
            + TWO_WAN_POLICIES)


def status(r: MwanRouter, name: str) -> str:
    res = r.cli("interfaces", "--json", check=False)
    return str(json.loads(res.stdout)["interfaces"][name]["status"]) if res.returncode == 0 \
        else "?"


def wait_status(r: MwanRouter, name: str, want: str, timeout: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() < start + timeout:
        if status(r, name) == want:
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"{name} is {status(r, name)}, not {want}, after {timeout} s\n{r.log()[-4000:]}")


def session_up(lab: Lab) -> None:
    """ppp0 appears: a veth to ISP 2 with the router's address and default route on it."""
    isp = lab.isp_ns(2)
    lab.exec(lab.router, "ip", "link", "add", DEV, "type", "veth", "peer", "name", "rtr",
             "netns", isp)
    lab.exec(isp, "ip", "addr", "add", f"{lab.gateway(2)}/24", "dev", "rtr")
    lab.exec(isp, "ip", "link", "set", "rtr", "up")
    lab.exec(lab.router, "ip", "addr", "add", f"{lab.wan_addr(2)}/24", "dev", DEV)
    lab.exec(lab.router, "ip", "link", "set", DEV, "up")
    lab.exec(lab.router, "ip", "route", "add", "default", "via", lab.gateway(2), "dev", DEV,
             "metric", "20")


@pytest.mark.parametrize("lab", [{"ipv6": False}], indirect=True)
def test_wan_waits_for_its_device_then_follows_it(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    lab.exec(lab.router, "ip", "link", "del", lab.wan_device(2))  # ISP 2's end goes with it
    r = mwan(config(lab))
    wait_status(r, "wan", "online")
    answer = r.cli("ifup", "wanb", check=False).stdout
    assert "does not exist" in answer, answer
    assert status(r, "wanb") != "online"

    session_up(lab)
    took = wait_status(r, "wanb", "online")
    routes = lab.exec(lab.router, "ip", "-4", "route", "show", "table", "all",
                      "proto", "201").stdout
    assert f"default via {lab.gateway(2)} dev {DEV} table " in routes, routes
    print(f"\n{DEV} appeared: wanb online after {took:.2f} s")

    lab.exec(lab.router, "ip", "link", "del", DEV)
    took = wait_status(r, "wanb", "disabled")
    print(f"{DEV} vanished: wanb out of service after {took:.2f} s")
    assert status(r, "wan") == "online"
    routes = lab.exec(lab.router, "ip", "-4", "route", "show", "table", "all",
                      "proto", "201").stdout
    assert DEV not in routes, routes

    session_up(lab)  # the next session: online again
    wait_status(r, "wanb", "online")
