"""The reporting commands against a running daemon in the lab."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

TAIL = """
config member 'wan_m1'
	option interface 'wan'
	option weight '3'
config member 'wanb_m1'
	option interface 'wanb'
	option weight '2'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config policy 'wanb_only'
	list use_member 'wanb_m1'
config rule 'https'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option use_policy 'balanced'
config rule 'to_server2'
	option dest_ip '203.0.113.0/24'
	option use_policy 'wanb_only'
config rule 'dns'
	option proto 'udp'
	option dest_port '53'
	option use_policy 'default'
config rule 'all'
	option use_policy 'wan_wanb'
"""


@pytest.fixture
def router(lab: Lab) -> Iterator[MwanRouter]:
    text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], interval=1,
                          failure_interval=1, recovery_interval=1, timeout=1, up=2,
                          down=2) + TAIL
    with MwanRouter(lab, text) as r:
        res = r.cli("start", check=False)
        assert res.returncode == 0, res.stderr + r.log()
        time.sleep(1.5)
        yield r


def out(r: MwanRouter, *args: str) -> str:
    res = r.cli(*args, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_outputs_after_start_and_after_an_outage(lab: Lab, router: MwanRouter) -> None:
    text = out(router, "interfaces")
    assert text.startswith("Interface status:\n")
    assert " interface wan is online " in text and "and tracking is active" in text
    pol = out(router, "policies")
    assert "Current ipv4 policies:\nbalanced:\n wan (60%)\n wanb (40%)\n" in pol
    assert "wan_wanb:\n wan (100%)\n" in pol
    conn = out(router, "connected")
    assert "Directly connected ipv4 networks:" in conn and "10.100.1.0/24" in conn
    lab.connect_many(lab.client_ns(1), lab.server_addr(4), 443, count=10)
    rules = json.loads(out(router, "rules", "--json"))["rules"]
    https = next(r for r in rules if r["rule"] == "https" and r["family"] == "ipv4")
    assert https["packets"] >= 10 and https["sticky"]
    assert " S balanced " in out(router, "rules")
    status = json.loads(out(router, "status", "--json"))
    assert set(status) >= {"interfaces", "policies", "connected", "rules", "uptime_s"}
    wan = status["interfaces"]["wan"]
    assert wan["status"] == "online" and wan["targets"][0]["latency_ms"] is not None

    lab.outage(1)
    deadline = time.monotonic() + 8
    while "interface wan is offline" not in out(router, "interfaces"):
        assert time.monotonic() < deadline, out(router, "status")
        time.sleep(0.2)
    pol = out(router, "policies")
    assert "balanced:\n wanb (100%)\n" in pol and "wan_wanb:\n wanb (100%)\n" in pol
    st = json.loads(out(router, "status", "--json"))["interfaces"]["wan"]
    assert all(t["status"] == "down" for t in st["targets"])
    lab.end_outage(1)
    deadline = time.monotonic() + 8
    while " interface wan is online " not in out(router, "interfaces"):
        assert time.monotonic() < deadline, out(router, "status")
        time.sleep(0.2)


def test_explain_agrees_with_real_connections(lab: Lab, router: MwanRouter) -> None:
    c, src = lab.client_ns(1), lab.client_addr(1)
    cases = [  # (dst, port, proto)
        (lab.server_addr(4), 443, "tcp"),  # https: balanced 60/40
        (lab.server2_addr(4), 80, "tcp"),  # to_server2: wanb only
        (lab.server_addr(4), 80, "tcp"),  # all: wan_wanb -> wan
        (lab.server_addr(4), 53, "udp"),  # dns: default (main table: wan, lowest metric)
    ]
    for dst, port, proto in cases:
        res = json.loads(out(router, "explain", "--src", src, "--dst", dst, "--dport", str(port),
                             "--proto", proto, "--json"))
        real = lab.connect_many(c, dst, port, count=200, proto=proto, concurrency=32)
        assert real.ok == 200, real.errors
        if res["wan"] == "balanced":
            for m in res["members"]:
                k = 1 if m["interface"] == "wan" else 2
                if res["rule"] == "https":  # sticky: one source stays on one WAN
                    continue
                assert abs(real.share(k) * 100 - m["percent"]) <= 8, (res, real.wans)
            if res["rule"] == "https":
                assert len(real.wans) == 1, real.wans
        elif res["wan"] == "default":
            assert real.wans == {1: 200}, (res, real.wans)  # main: wan has the lower metric
        else:
            k = 1 if res["wan"] == "wan" else 2
            assert real.wans == {k: 200}, (res, real.wans)


def test_commands_say_when_the_daemon_is_not_running(lab: Lab) -> None:
    with MwanRouter(lab, lab_interfaces(lab, ipv6=False) + TAIL) as r:
        res = r.cli("status", check=False)
        assert res.returncode == 1 and "not running" in res.stderr
        assert "Traceback" not in res.stderr
