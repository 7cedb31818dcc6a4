"""The reporting commands against a running daemon in the lab."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from mwan.kernel import cgroups
from mwan.lab import Lab
from mwan.lab.results import parse_client_output
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces
from mwan.report.schema import SCHEMAS

pytestmark = pytest.mark.lab

TAIL = TWO_WAN_POLICIES + """config rule 'https'
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


def valid_json(r: MwanRouter, command: str, *args: str) -> dict[str, Any]:
    """``mwan3 COMMAND --json``, checked against its documented schema."""
    data: dict[str, Any] = json.loads(out(r, command, *args, "--json"))
    jsonschema.Draft202012Validator(SCHEMAS[command]).validate(data)
    return data


def all_json_valid(r: MwanRouter) -> dict[str, Any]:
    for name in ("interfaces", "policies", "connected", "rules"):
        valid_json(r, name)
    return valid_json(r, "status")


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
    status = all_json_valid(router)
    wan = status["interfaces"]["wan"]
    assert wan["status"] == "online" and wan["targets"][0]["latency_ms"] is not None

    lab.outage(1)
    deadline = time.monotonic() + 8
    while "interface wan is offline" not in out(router, "interfaces"):
        assert time.monotonic() < deadline, out(router, "status")
        time.sleep(0.2)
    pol = out(router, "policies")
    assert "balanced:\n wanb (100%)\n" in pol and "wan_wanb:\n wanb (100%)\n" in pol
    st = all_json_valid(router)["interfaces"]["wan"]
    assert all(t["status"] == "down" for t in st["targets"])
    lab.end_outage(1)
    deadline = time.monotonic() + 8
    while " interface wan is online " not in out(router, "interfaces"):
        assert time.monotonic() < deadline, out(router, "status")
        time.sleep(0.2)
    assert all_json_valid(router)["interfaces"]["wan"]["status"] == "online"


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


def _needs_cgroup2() -> None:
    if cgroups.first_mount(cgroups.cgroup2_mounts()) is None:
        pytest.skip("no cgroup2 mounted on this host: 'mwan3 use' cannot work here")


def test_use_runs_a_command_through_the_chosen_wan(lab: Lab, router: MwanRouter) -> None:
    """``mwan3 use wanb CMD``: CMD's connections leave by wanb although the rules say wan."""
    _needs_cgroup2()
    dst = lab.server_addr(4)
    plain = parse_client_output(
        lab.exec(lab.router, *Lab.python("mwan.lab.client", f"--dst={dst}", "--port=80",
                                         "--count=20")).stdout, lab.isps)
    assert plain.wans == {1: 20}, plain.wans  # rule 'all' -> wan_wanb -> wan
    for proto in ("tcp", "udp"):
        res = router.cli("use", "wanb", *Lab.python(
            "mwan.lab.client", f"--dst={dst}", "--port=80", "--count=20", f"--proto={proto}"),
            check=False)
        assert res.returncode == 0, res.stderr + router.log()
        used = parse_client_output(res.stdout, lab.isps)
        assert used.wans == {2: 20}, (proto, used.wans)
    # curl, unchanged: the server saw wanb's address
    res = router.cli("use", "wanb", "curl", "-s", "--max-time", "5", f"http://{dst}/",
                     check=False)
    assert res.returncode == 0, res.stderr
    assert lab.wan_of(res.stdout.split()[0]) == 2, res.stdout
    # children inherit the group; the command's exit status is ours
    res = router.cli("use", "wanb", "sh", "-c", "exit 7", check=False)
    assert res.returncode == 7, res.stderr
    res = router.cli("use", "wanb", "no-such-program-mwan", check=False)
    assert res.returncode == 127 and "no-such-program-mwan" in res.stderr
    res = router.cli("use", "nosuch", "true", check=False)
    assert res.returncode == 1 and "unknown interface 'nosuch'" in res.stderr
    # ping (an ICMP socket) follows it too: wanb's ISP counts the echo requests
    lab.nft(lab.isp_ns(2), "add table inet mwcount\n"
            "add chain inet mwcount c { type filter hook forward priority 0; }\n"
            f"add rule inet mwcount c ip daddr {dst} icmp type echo-request counter\n")
    res = router.cli("use", "wanb", "ping", "-n", "-q", "-c", "3", "-i", "0.2", dst, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    counted = lab.exec(lab.isp_ns(2), "nft", "list", "table", "inet", "mwcount").stdout
    assert "counter packets 3 " in counted, counted


def test_stop_removes_the_use_groups(lab: Lab, router: MwanRouter) -> None:
    _needs_cgroup2()
    res = router.cli("use", "wan", "cat", "/proc/self/cgroup")
    group = res.stdout.strip().split("::", 1)[1]
    assert group.endswith("/wan"), res.stdout
    router.stop()
    mounts = cgroups.cgroup2_mounts()
    assert mounts, "no cgroup2 mounted on this host"
    base = os.path.dirname(group)
    m = mounts[0]
    assert not os.path.exists(os.path.join(m.point, base.lstrip("/"))), base


def test_connected_and_rules_read_the_kernel_without_the_daemon(lab: Lab,
                                                                 router: MwanRouter) -> None:
    lab.connect_many(lab.client_ns(1), lab.server_addr(4), 443, count=5)
    with open(os.path.join(router.run_dir, "mwan3.pid")) as fh:
        os.kill(int(fh.read()), 9)
    time.sleep(0.3)
    conn = out(router, "connected")
    assert "Directly connected ipv4 networks:" in conn and "10.100.1.0/24" in conn
    rules = json.loads(out(router, "rules", "--json"))["rules"]
    assert next(r for r in rules if r["rule"] == "https")["packets"] >= 5
    res = router.cli("interfaces", check=False)
    assert res.returncode == 1 and "not running" in res.stderr
    assert "removed anything it had left" in out(router, "stop")
    m = cgroups.first_mount(cgroups.cgroup2_mounts())
    if m is not None:  # the dead daemon's `mwan3 use` groups are gone too
        assert not os.path.exists(os.path.join(m.point, cgroups.base_name(router.run_dir)))
    res = router.cli("connected", check=False)
    assert res.returncode == 1 and "no table in the kernel" in res.stderr


TEN_RULES = TWO_WAN_POLICIES + """config rule 'from_client2'
	option src_ip '{client2}'
	option use_policy 'wanb_only'
config rule 'to_server2'
	option dest_ip '203.0.113.0/24'
	option use_policy 'wanb_only'
config rule 'dns'
	option proto 'udp'
	option dest_port '53'
	option use_policy 'default'
config rule 'alt_ports'
	option proto 'tcp'
	option dest_port '8000-8100'
	option use_policy 'wanb_only'
config rule 'udp_sport'
	option proto 'udp'
	option src_port '40000:40010'
	option use_policy 'wanb_only'
config rule 'smtp'
	option proto 'tcp'
	option dest_port '25'
	option use_policy 'unreachable'
config rule 'listed'
	option proto 'tcp'
	option dest_port '81'
	option ipset 'vpn_hosts'
	option use_policy 'wanb_only'
config rule 'https'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option use_policy 'balanced'
config rule 'web_alt'
	option proto 'tcp'
	option dest_port '9080,9443'
	option use_policy 'balanced'
config rule 'all'
	option use_policy 'wan_wanb'
"""


def test_explain_agrees_with_200_real_connections_over_ten_rules(make_lab: Callable[..., Lab]
                                                                 ) -> None:
    lab = make_lab(isps=2, clients=2, ipv6=False)
    text = lab_interfaces(lab, ipv6=False) + TEN_RULES.replace("{client2}", lab.client_addr(2))
    server, server2 = lab.server_addr(4), lab.server2_addr(4)
    cases = [  # (client, dst, dport, proto, sport)
        (2, server, 80, "tcp", None),  # from_client2
        (1, server2, 80, "tcp", None),  # to_server2
        (1, server, 53, "udp", None),  # dns -> default (main: wan)
        (1, server, 8050, "tcp", None),  # alt_ports
        (1, server, 5000, "udp", 40005),  # udp_sport
        (1, server, 25, "tcp", None),  # smtp -> unreachable
        (1, server, 81, "tcp", None),  # listed (ipset)
        (1, server, 82, "tcp", None),  # not listed: port 82 -> all
        (1, server, 443, "tcp", None),  # https sticky balanced
        (1, server, 9443, "tcp", None),  # web_alt balanced 60/40
        (1, server, 80, "tcp", None),  # all
    ]
    with MwanRouter(lab, text) as r:
        r.start()
        lab.nft(lab.router, f"add element inet mwan vpn_hosts_v4 {{ {server} }}")
        seen_rules = set()
        for client, dst, port, proto, sport in cases:
            args = ["explain", "--src", lab.client_addr(client), "--dst", dst, "--dport",
                    str(port), "--proto", proto, "--json"]
            if sport is not None:
                args += ["--sport", str(sport)]
            res = json.loads(out(r, *args))
            jsonschema.Draft202012Validator(SCHEMAS["explain"]).validate(res)
            seen_rules.add(res["rule"])
            # 200 of each kind; 600 where shares are compared (4 sigma of a 60/40 split
            # is then 8 points)
            n = 600 if res["wan"] == "balanced" and res["rule"] != "https" else 200
            real = lab.connect_many(lab.client_ns(client), dst, port, count=n, proto=proto,
                                    sport=sport, concurrency=32, timeout=1.0)
            where = (res, real.wans, real.errors)
            if res["wan"] == "unreachable":
                # none gets through; the first ones get ICMP errors at once (the kernel's
                # route.error_cost, a host-wide sysctl, rate-limits the rest into timeouts)
                assert real.ok == 0 and real.errors.get("unreachable", 0) >= 1, where
                continue
            assert real.ok == n, where
            if res["wan"] == "balanced" and res["rule"] == "https":
                assert len(real.wans) == 1, where  # sticky: one source stays on one WAN
            elif res["wan"] == "balanced":
                for m in res["members"]:
                    k = 1 if m["interface"] == "wan" else 2
                    assert abs(real.share(k) * 100 - m["percent"]) <= 8, where
            elif res["wan"] == "default":
                assert real.wans == {1: n}, where  # main: wan has the lower metric
            else:
                assert real.wans == {1 if res["wan"] == "wan" else 2: n}, where
        assert seen_rules == {"from_client2", "to_server2", "dns", "alt_ports", "udp_sport",
                              "smtp", "listed", "https", "web_alt", "all"}
