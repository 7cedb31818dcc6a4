"""Tracking, events and the route monitor with real packets in the lab.

mwan runs in the lab router with a failover policy (wan, then wanb) and
tracks the internet's targets through each WAN; faults are injected at the
ISPs and a LAN client's new connections show which WAN is in use.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from mwan.daemon.control import call
from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

FAST: dict[str, Any] = {"interval": 1, "failure_interval": 1, "recovery_interval": 1, "timeout": 1,
                            "up": 3, "down": 3}

POLICY = """
config member 'wan_m1'
	option interface 'wan'
	option metric '1'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
	option last_resort 'unreachable'
config rule 'all'
	option dest_ip '0.0.0.0/0'
	option use_policy 'wan_wanb'
"""


def config(lab: Lab, method: str = "ping", targets: list[str] | None = None,
           **opts: Any) -> str:
    o = {**FAST, **opts}
    o.setdefault("track_ip", targets or lab.track_targets(4)[:2])
    return lab_interfaces(lab, ipv6=False, track_method=method, **o) + POLICY


def state(r: MwanRouter) -> dict[str, Any]:
    return call(r.run_dir, "state")["interfaces"]  # type: ignore[no-any-return]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, r: MwanRouter) -> float:
    """Poll ``cond`` until true; the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s\n{state(r)}\n{r.log()[-3000:]}")
        time.sleep(0.05)
    return time.monotonic() - t0


def wan_now(lab: Lab) -> int | None:
    return lab.which_wan(lab.client_ns(1), lab.server_addr(4), 80, timeout=0.5)


def online(r: MwanRouter, name: str) -> bool:
    return bool(state(r)[name]["online"])


def started(r: MwanRouter) -> None:
    wait_for(lambda: all(i["last_test"] for i in state(r).values()), 5, "first tests", r)


# ---------------------------------------------------------------- detection

def test_outage_detected_and_recovered(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab))
    started(r)
    assert wan_now(lab) == 1
    t0 = time.monotonic()
    lab.outage(1)
    wait_for(lambda: wan_now(lab) == 2, 10, "new connections on wanb", r)
    moved = time.monotonic() - t0
    # interval x down + timeout = 4 s, plus the client's own start-up (slow when loaded;
    # the time itself is bench/failover_bench.py's)
    assert moved <= 4 + 3, moved
    st = state(r)["wan"]
    assert st["status"] == "offline" and not st["online"]
    assert all(t["status"] == "down" for t in st["targets"])
    assert "disconnected" in r.log()
    lab.end_outage(1)
    t0 = time.monotonic()
    wait_for(lambda: wan_now(lab) == 1, 10, "back on wan", r)
    assert time.monotonic() - t0 <= 3 * 1 + 1 + 3  # up x recovery_interval + timeout
    assert state(r)["wan"]["status"] == "online"


def test_carrier_loss_moves_traffic_within_a_second(lab: Lab,
                                                     mwan: Callable[[str], MwanRouter]) -> None:
    # slow tracking: only the netlink carrier event can be this fast
    r = mwan(config(lab, interval=30, failure_interval=30, recovery_interval=1, timeout=2))
    started(r)
    assert wan_now(lab) == 1
    t0 = time.monotonic()
    lab.cut_carrier(1)
    # far below the 30 s interval: only the netlink path can do it.  The bound is loose
    # because each check spawns the CLI (slow on a loaded machine); the time itself is
    # measured in bench/failover_bench.py (carrier loss: ~0.02 s)
    wait_for(lambda: not online(r, "wan"), 5.0, "wan offline on carrier loss", r)
    assert time.monotonic() - t0 < 5.0
    assert wan_now(lab) == 2
    st = state(r)["wan"]
    assert st["tracking"] == "paused" and not st["carrier"]
    lab.restore_carrier(1)
    # carrier back starts recovery: `up` good rounds at recovery_interval
    wait_for(lambda: online(r, "wan"), 3 * 1 + 2 + 3, "wan online after carrier back", r)
    assert wan_now(lab) == 1


def test_loss_with_check_quality(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab, count=10, check_quality=1, reliability=1, timeout=1))
    started(r)
    lab.set_loss(1, 40)
    wait_for(lambda: not online(r, "wan"), 20, "wan offline at 40 % loss", r)
    assert wan_now(lab) == 2
    assert any((t["loss_pct"] or 0) >= 10 for t in state(r)["wan"]["targets"])
    lab.clear_loss(1)
    wait_for(lambda: online(r, "wan"), 15, "wan back at 0 % loss", r)
    assert all(t["loss_pct"] == 0 for t in state(r)["wan"]["targets"])


ARP_DROP = """table arp mwtest {
    chain in {
        type filter hook input priority 0; policy drop;
    }
}
"""
ARP_PASS = "delete table arp mwtest"


@pytest.mark.parametrize("method", ["ping", "arping", "httping", "nping-tcp", "nping-udp",
                                    "nping-icmp"])
def test_each_method_detects_outage_and_recovery(lab: Lab, mwan: Callable[[str], MwanRouter],
                                                 method: str) -> None:
    if method == "arping":  # ARP reaches only the link: track the gateway, break ARP
        targets = None
        text = config(lab, method, up=2, down=2)
        text = text.replace(f"'{lab.track_targets(4)[0]}'", "'GW'")
        text = text.replace(f"\tlist track_ip '{lab.track_targets(4)[1]}'\n", "")
        parts = text.split("config interface")
        parts[1] = parts[1].replace("'GW'", f"'{lab.gateway(1)}'")
        parts[2] = parts[2].replace("'GW'", f"'{lab.gateway(2)}'")
        text = "config interface".join(parts)
        break_it = lambda: lab.nft(lab.isp_ns(1), ARP_DROP)
        fix_it = lambda: lab.nft(lab.isp_ns(1), ARP_PASS)
    else:
        targets = [lab.server_addr(4)] if method in ("httping", "nping-tcp", "nping-udp") \
            else None
        text = config(lab, method, targets=targets, up=2, down=2)
        break_it = lambda: lab.outage(1)
        fix_it = lambda: lab.end_outage(1)
    r = mwan(text)
    started(r)
    wait_for(lambda: online(r, "wan") and online(r, "wanb"), 5, "both online", r)
    break_it()
    wait_for(lambda: not online(r, "wan"), 2 * 1 + 1 + 3, f"{method}: wan offline", r)
    assert online(r, "wanb")
    fix_it()
    wait_for(lambda: online(r, "wan"), 2 * 1 + 1 + 3, f"{method}: wan back", r)
    assert state(r)["wan"]["probes_sent"] > 0


# ---------------------------------------------------------------- events

SCRIPT = """#!/bin/sh
echo "$ACTION $INTERFACE $DEVICE $(env | cut -d= -f1 | sort | tr '\\n' ,)" >> {out}
"""


def test_user_script_sees_each_event(lab: Lab, mwan: Callable[[str], MwanRouter],
                                     tmp_path: Any) -> None:
    out = tmp_path / "events"
    script = tmp_path / "mwan3.user"
    script.write_text(SCRIPT.format(out=out))
    os.chmod(script, 0o755)
    text = config(lab, up=2, down=2).replace(
        "config member", f"config globals 'globals'\n\toption user_script '{script}'\n\n"
        "config member", 1)
    r = mwan(text)
    started(r)

    def seen() -> list[str]:
        return out.read_text().splitlines() if out.exists() else []

    wait_for(lambda: any(x.startswith("ifup wan ") for x in seen()), 5, "ifup at start", r)
    lab.outage(1)
    wait_for(lambda: any(x.startswith("disconnected wan ") for x in seen()), 8,
             "disconnected", r)
    lab.end_outage(1)
    wait_for(lambda: any(x.startswith("connected wan ") for x in seen()), 8, "connected", r)
    r.cli("ifdown", "wanb")
    wait_for(lambda: any(x.startswith("ifdown wanb ") for x in seen()), 5, "ifdown", r)
    r.cli("ifup", "wanb")
    wait_for(lambda: len([x for x in seen() if x.startswith("ifup wanb")]) >= 2, 5, "ifup", r)
    lines = seen()
    wan1 = [x for x in lines if " wan " in f" {x} " and x.split()[1] == "wan"]
    order = [x.split()[0] for x in wan1]
    assert order[order.index("disconnecting"):][:4] == [
        "disconnecting", "disconnected", "connecting", "connected"], lines
    for x in lines:
        _action, iface, device, names = x.split()
        assert device == lab.wan_device(1 if iface == "wan" else 2), x
        # ACTION, INTERFACE, DEVICE, PATH and nothing of the daemon's environment
        # (PWD is the shell's own)
        assert set(names.strip(",").split(",")) <= {"ACTION", "INTERFACE", "DEVICE", "PATH",
                                                    "PWD"}, x


class UdpFlow:
    """One long-lived UDP flow from a client: which WAN does the server see it on?"""

    CODE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.connect((sys.argv[1], int(sys.argv[2])))
for line in sys.stdin:
    s.send(b"x")
    try:
        print(s.recv(200).decode().split()[0], flush=True)
    except OSError:
        print("error", flush=True)
"""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.proc = lab.popen(lab.client_ns(1),
                              ["python3", "-c", self.CODE, lab.server_addr(4), "5000"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def wan(self) -> int | None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.lab.wan_of(self.proc.stdout.readline().strip())


@pytest.mark.parametrize("flush", [True, False])
def test_flush_conntrack_moves_established_flow(lab: Lab, mwan: Callable[[str], MwanRouter],
                                                flush: bool) -> None:
    opts: dict[str, Any] = {"up": 2, "down": 2}
    if flush:
        opts["flush_conntrack"] = ["disconnected"]
    r = mwan(config(lab, **opts))
    started(r)
    flow = UdpFlow(lab)
    assert flow.wan() == 1
    lab.outage(1)
    wait_for(lambda: not online(r, "wan"), 6, "wan offline", r)
    time.sleep(0.3)  # the flush runs after the apply
    seen = {flow.wan() for _ in range(3)}
    if flush:
        assert seen == {2}, seen
        assert "flushed" in r.log()
    else:
        assert 2 not in seen  # without the flush the flow keeps its (dead) WAN


# ---------------------------------------------------------------- route monitor

def routes(lab: Lab, table: int | str) -> str:
    return lab.ip(lab.router, "route", "show", "table", str(table)).stdout


def test_route_monitor_follows_main(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab, interval=30))
    started(r)
    extra = "10.250.0.0/24"
    lab.ip(lab.router, "route", "add", extra, "dev", "lo")  # any non-default route

    def in_both() -> bool:
        return extra in routes(lab, 1) and extra in routes(lab, 2)

    assert wait_for(in_both, 1.0, "new main route copied to each WAN table", r) < 1.0
    lab.ip(lab.router, "route", "del", extra, "dev", "lo")
    wait_for(lambda: extra not in routes(lab, 1) + routes(lab, 2), 1.0, "route removed", r)

    # a gateway change on wan (DHCP renew onto another gateway)
    new_gw = lab.gateway(1).rsplit(".", 1)[0] + ".254"
    lab.ip(lab.isp_ns(1), "addr", "add", new_gw + "/24", "dev", "rtr")
    lab.ip(lab.router, "route", "replace", "default", "via", new_gw, "dev",
           lab.wan_device(1), "metric", "10")
    wait_for(lambda: f"default via {new_gw}" in routes(lab, 1), 1.0, "new gateway in table 1",
             r)
    assert f"default via {lab.gateway(2)}" in routes(lab, 2)
    assert state(r)["wan"]["gateway"] == new_gw

    # an address added to wan: WAN-source traffic from it uses wan
    new_addr = lab.wan_addr(1).rsplit(".", 1)[0] + ".3"
    lab.ip(lab.router, "addr", "add", new_addr + "/24", "dev", lab.wan_device(1))
    wait_for(lambda: new_addr in state(r)["wan"]["addresses"], 1.0, "address seen", r)
    ruleset = lab.exec(lab.router, "nft", "list", "table", "inet", "mwan").stdout
    assert new_addr in ruleset
