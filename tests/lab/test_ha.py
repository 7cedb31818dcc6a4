"""Two routers, one LAN (issue 13): keepalived moves the addresses, conntrackd the flows.

Each test builds :class:`mwan.lab.ha.HaLab` (about 3 s) with a sub-second
VRRPv3 advert interval.  Timings are not asserted here (bench/ha_bench.py
measures them); what a user would check is: new connections go on, through
the other router and both WANs; established flows survive, each on its WAN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mwan.lab import Lab
from mwan.lab.ha import HaLab
from mwan.lab.netns import netns_names
from mwan.lab.router import lab_interfaces
from mwan.report.schema import SCHEMAS

pytestmark = pytest.mark.lab

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


def wait_for(pred: Callable[[], bool], timeout: float = 15.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture
def ha_lab(lab_available: tuple[bool, str]) -> Iterator[HaLab]:
    ok, reason = lab_available
    if not ok:
        pytest.skip(f"lab unavailable: {reason}")
    for tool in ("keepalived", "conntrackd"):
        if shutil.which(tool) is None and shutil.which(f"/usr/sbin/{tool}") is None:
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    lab = HaLab(isps=2, clients=1, advert_int=0.2)
    try:
        lab.build()
        cfg = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[0], interval="1",
                             up="2", down="2") + BALANCED
        lab.start(cfg)
        assert lab.wait_role("b", "BACKUP"), lab.routers["b"].file("keepalived.out")
        yield lab
    finally:
        lab.close()


def start_flows(lab: HaLab, duration: float) -> subprocess.Popen[str]:
    lab.flow_echo(FLOW_SERVER, 9000, duration=duration + 10)
    flows: subprocess.Popen[str] = lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "flows", "--dst", FLOW_SERVER, "--port", "9000", "--count", "20",
        "--stall", "10", "--duration", str(duration)), stdout=subprocess.PIPE, text=True)
    return flows


def flow_records(flows: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = flows.communicate(timeout=120)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def survivors(lab: HaLab, records: list[dict[str, Any]]) -> tuple[dict[int, int], list[Any]]:
    """(flow → its WAN, for flows that ended on the WAN they began on), what broke."""
    opened = {r["flow"]: r["seen"] for r in records if r["kind"] == "open" and r["gen"] == 0}
    ended = {r["flow"]: r["seen"] for r in records if r["kind"] == "end" and r["gen"] == 0}
    broken = [r for r in records if r["kind"] == "broken"]
    kept = {f: lab.wan_of(seen) or 0 for f, seen in opened.items() if ended.get(f) == seen}
    return kept, broken


def new_connections(lab: HaLab, count: int = 20) -> dict[int, int]:
    return lab.connect_many(lab.client_ns(1), lab.server_addr(), 80, count=count,
                            timeout=2).wans


def first_connection(lab: HaLab, timeout: float = 20) -> bool:
    return wait_for(lambda: lab.connect_many(lab.client_ns(1), lab.server_addr(), 80,
                                             count=1, timeout=0.5).only_wan is not None,
                    timeout=timeout, step=0.02)


def external_flows(lab: HaLab, r: str) -> int:
    """The long flows (to port 9000) router ``r`` holds for its peer."""
    return lab.routers[r].peer_flows(9000)


def test_primary_dies_flows_survive_failback_and_second_failover(ha_lab: HaLab) -> None:
    """Links of A cut → B; A returns (stays backup); B's keepalived SIGTERM → A; no flow lost."""
    lab = ha_lab
    assert lab.master() == "a"
    full = lab.routers["a"].status()
    jsonschema.Draft202012Validator(SCHEMAS["status"]).validate(full)  # the documented schema
    st = full["ha"]
    assert st["role"] == "MASTER" and st["sync"] == "ok", st
    assert lab.routers["b"].status()["ha"]["role"] == "BACKUP"
    flows = start_flows(lab, duration=30)
    assert wait_for(lambda: external_flows(lab, "b") >= 20, timeout=15)  # B holds A's flows
    assert lab.routers["b"].status()["ha"]["stats"]["external"] >= 20
    # the primary dies: every link down
    lab.fail_router("a", "links")
    assert first_connection(lab)
    assert lab.master() == "b"
    wans = new_connections(lab)
    assert sum(wans.values()) == 20 and set(wans) == {1, 2}, wans  # balanced, same policy
    assert lab.routers["b"].status()["ha"]["role"] == "MASTER"
    # failback: A returns and stays backup (no preemption); B keeps the flows
    lab.restore_router("a")
    assert lab.wait_role("a", "BACKUP", timeout=20), lab.routers["a"].file("keepalived.out")
    assert wait_for(lambda: all(i["online"] for i in
                                lab.routers["a"].status()["interfaces"].values()), timeout=20)
    assert lab.master() == "b"
    assert wait_for(lambda: external_flows(lab, "a") >= 20, timeout=15)  # A resynced
    # the second failover: B's keepalived is stopped (SIGTERM)
    lab.fail_router("b", "keepalived")
    assert lab.wait_role("a", "MASTER", timeout=20)
    assert first_connection(lab)
    wans = new_connections(lab)
    assert set(wans) == {1, 2}, wans
    # B's status says its keepalived is gone (read from its pid, not guessed from the hook)
    assert wait_for(lambda: lab.routers["b"].status()["ha"]["role"] == "STOPPED", timeout=20)
    assert "keepalived is not running" in lab.routers["b"].cli("status").stdout
    kept, broken = survivors(lab, flow_records(flows))
    assert not broken, broken
    assert len(kept) == 20, kept  # every flow, through the WAN it began on
    assert set(kept.values()) == {1, 2}  # and they were balanced over both WANs


def test_wan_failure_on_primary_sync_broken_then_netns_deleted(ha_lab: HaLab) -> None:
    """An ISP outage is handled by mwan on the master as on one router; a cut sync link is
    shown as broken; deleting A's namespace hands everything to B with the flows."""
    lab = ha_lab
    a, b = lab.routers["a"], lab.routers["b"]

    def online(r: str, name: str) -> bool:
        return bool(lab.routers[r].status()["interfaces"][name]["online"])

    assert wait_for(lambda: online("a", "wan") and online("a", "wanb"), timeout=20)
    lab.outage(1)
    assert wait_for(lambda: not online("a", "wan"), timeout=20), a.log()
    assert wait_for(lambda: not online("b", "wan"), timeout=20)  # hot standby tracks too
    assert new_connections(lab, 10) == {2: 10}
    assert lab.master() == "a"  # no VRRP change for an ISP outage
    lab.end_outage(1)
    assert wait_for(lambda: online("a", "wan"), timeout=20)
    assert set(new_connections(lab)) == {1, 2}
    # the sync link breaks: both say so
    lab.exec(lab.ns_of("b"), "ip", "link", "set", "sync0", "down")
    assert wait_for(lambda: a.status()["ha"]["sync"] != "ok", timeout=15)
    assert b.status()["ha"]["sync"] == "link-down"
    lab.exec(lab.ns_of("b"), "ip", "link", "set", "sync0", "up")
    assert wait_for(lambda: a.status()["ha"]["sync"] == "ok" and
                    b.status()["ha"]["sync"] == "ok", timeout=15)
    out = a.cli("status").stdout
    assert "HA: MASTER" in out and "sync with 10.254.0.2 on sync0: ok" in out, out
    # the peer stops answering on the sync link (its link stays up): unreachable
    block = ('table netdev mwan_test_block {\n  chain in {\n    type filter hook ingress '
             'device "sync0" priority 0; policy drop;\n  }\n}\n')
    lab.nft(lab.ns_of("b"), block)
    assert wait_for(lambda: a.status()["ha"]["sync"] == "peer-unreachable", timeout=40), \
        a.status()["ha"]
    assert "BROKEN: peer 10.254.0.2 unreachable" in a.cli("status").stdout
    lab.nft(lab.ns_of("b"), "delete table netdev mwan_test_block\n")
    assert wait_for(lambda: a.status()["ha"]["sync"] == "ok", timeout=40), a.status()["ha"]
    # the primary's namespace is deleted (a router that is gone)
    flows = start_flows(lab, duration=14)
    assert wait_for(lambda: external_flows(lab, "b") >= 20, timeout=15)
    lab.fail_router("a", "netns")
    assert first_connection(lab)
    assert lab.master() == "b"
    wans = new_connections(lab)
    assert set(wans) == {1, 2}, (wans, b.status()["interfaces"], b.log()[-3000:])
    kept, broken = survivors(lab, flow_records(flows))
    assert not broken and len(kept) == 20, (kept, broken)
    st = b.status()["ha"]
    assert st["role"] == "MASTER" and st["sync"] == "link-down", st


def demo(state_dir: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mwan.lab.demo", "--state-dir", str(state_dir),
                           *args], capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def test_demo_ha_start_fail_restore_stop(lab_available: tuple[bool, str],
                                         tmp_path: Path) -> None:
    """./scripts/demo.sh start --ha, fail-router a, restore-router a, stop (nothing left)."""
    ok, reason = lab_available
    if not ok:
        pytest.skip(f"lab unavailable: {reason}")
    if shutil.which("keepalived") is None and shutil.which("/usr/sbin/keepalived") is None:
        pytest.skip("keepalived is not installed")
    sd = tmp_path / "demo"
    state: dict[str, Any] = {}
    try:
        r = demo(sd, "start", "--ha", "--no-forward", "--no-web")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "fail-router a" in r.stdout
        state = json.loads((sd / "state.json").read_text())
        assert state["ha"] and set(state["routers"]) == {"a", "b"}
        st = demo(sd, "status")
        assert st.returncode == 0, st.stdout + st.stderr
        assert "VRRP roles: a: MASTER, b: BACKUP" in st.stdout and "HA: MASTER" in st.stdout
        r = demo(sd, "fail-router", "a")
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 20
        while "is on b" not in (out := demo(sd, "status").stdout):
            assert time.monotonic() < deadline, out
            time.sleep(0.5)
        r = demo(sd, "restore-router", "a")
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 20
        while "a: BACKUP, b: MASTER" not in (out := demo(sd, "status").stdout):
            assert time.monotonic() < deadline, out
            time.sleep(0.5)
        assert demo(sd, "fail-router", "c").returncode != 0
    finally:
        stop = demo(sd, "stop", timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    if state:
        assert not [n for n in netns_names() if n.startswith(str(state["lab"]))]
        assert not os.path.exists(str(state["ha_dir"]))
