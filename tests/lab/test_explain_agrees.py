"""explain's answer is the WAN that real connections take, for random configs (issue 12 item 1).

explain evaluates the classifier's steps (mwan.plan.classify), the compiler
renders the same steps to nft; here hypothesis draws rule lists (proto,
ports, addresses, src_iface, ipset, sticky, the special policies), the
contents of an ipset and of ``dynamic_v4``, and whether wanb is down, then
compares ``mwan3 explain`` with connections made through the lab's router.
A bounded, derandomized sample keeps it stable and under two minutes.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

POLICIES = TWO_WAN_POLICIES + """config policy 'wan_only'
	list use_member 'wan_m1'
"""
# lan is br-lan, the clients' bridge; guest's device does not exist; wan is wan1
NETWORK = """config interface 'lan'
	option device 'br-lan'
config interface 'guest'
	option device 'br-guest'
"""
USE = ("wanb_only", "balanced", "wan_only", "unreachable", "wan_wanb", "default", "blackhole")
SERVER, SERVER2 = "198.51.100.10", "203.0.113.10"  # mwan.lab.addressing's two servers
CLIENTS = ("192.168.1.10", "192.168.1.11")
N = 6  # connections per check


@dataclass(frozen=True)
class Conn:
    client: int
    dst: str
    proto: str
    port: int


def rule_text(rnd: random.Random, name: str) -> str:
    """One rule; each option set with some chance, so that rules match often enough."""
    lines = [f"config rule '{name}'"]
    proto = rnd.choice(["all", "all", "tcp", "udp"])
    if proto != "all":
        lines.append(f"\toption proto '{proto}'")
        if rnd.random() < 0.4:
            lines.append(f"\toption dest_port '{rnd.choice(['443', '8000-8100', '80,53'])}'")
    for opt, chance, values in (("dest_ip", 0.3, ["203.0.113.0/24", SERVER]),
                                ("src_ip", 0.3, [*CLIENTS, "192.168.1.0/24"]),
                                ("src_iface", 0.4, ["lan", "lan", "guest", "wan"]),
                                ("ipset", 0.25, ["vpn"])):
        if rnd.random() < chance:
            lines.append(f"\toption {opt} '{rnd.choice(values)}'")
    use = rnd.choice(USE)
    lines.append(f"\toption use_policy '{use}'")
    if use not in ("default", "unreachable", "blackhole") and rnd.random() < 0.3:
        lines.append("\toption sticky '1'")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Example:
    rules: str
    vpn: list[str]
    dynamic: list[str]
    wanb_down: bool
    conns: list[Conn]


def draw_example(rnd: random.Random) -> Example:
    """From a Random that hypothesis seeds (derandomized: the same every run)."""
    rules = "".join(rule_text(rnd, f"r{i}") for i in range(rnd.randint(1, 4)))
    conns = [Conn(rnd.choice([1, 2]), rnd.choice([SERVER, SERVER2]), rnd.choice(["tcp", "udp"]),
                  rnd.choice([80, 443, 8050, 53])) for _ in range(3)]
    return Example(rules, rnd.choice([[], [SERVER], [SERVER2]]),
                   [SERVER2] if rnd.random() < 0.25 else [], rnd.random() < 0.3, conns)


def check(lab: Lab, r: MwanRouter, c: Conn) -> None:
    res = r.cli("explain", "--src", CLIENTS[c.client - 1], "--dst", c.dst, "--proto", c.proto,
                "--dport", str(c.port), "--json", check=False)
    assert res.returncode == 0, res.stderr
    said = json.loads(res.stdout)
    real = lab.connect_many(lab.client_ns(c.client), c.dst, c.port, count=N, proto=c.proto,
                            timeout=1.0, concurrency=N)
    where = (c, said, real.wans, real.errors)
    wan = said["wan"]
    if wan in ("unreachable", "blackhole"):
        assert real.ok == 0, where
    elif wan == "default":
        assert real.wans == {1: N}, where  # main: wan has the lower metric
    elif wan == "balanced":
        members = {1 if m["interface"] == "wan" else 2 for m in said["members"]}
        assert real.ok == N and set(real.wans) <= members, where
    else:
        assert real.wans == {1 if wan == "wan" else 2: N}, where


def test_explain_agrees_with_real_connections_for_random_configs(
        make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(isps=2, clients=2, ipv6=False)
    assert lab.client_addr(1) == CLIENTS[0] and lab.client_addr(2) == CLIENTS[1]
    assert (lab.server_addr(4), lab.server2_addr(4)) == (SERVER, SERVER2)
    head = lab_interfaces(lab, ipv6=False) + POLICIES
    with MwanRouter(lab, head) as r:
        with open(os.path.join(r.dir, "no-network-config"), "w", encoding="utf-8") as fh:
            fh.write(NETWORK)  # the network config MwanRouter hands mwan
        down = [False]

        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  phases=(Phase.explicit, Phase.generate),
                  suppress_health_check=list(HealthCheck))
        @given(st.randoms(use_true_random=True))
        def example(rnd: random.Random) -> None:
            ex = draw_example(rnd)
            note(repr(ex))
            rules, vpn, dynamic, wanb_down = ex.rules, ex.vpn, ex.dynamic, ex.wanb_down
            r.write_config(head + rules)
            res = r.cli("restart", check=False)  # reload in place (start the first time)
            assert res.returncode == 0, res.stderr + r.log()[-2000:]
            if down[0] != wanb_down:
                r.cli("ifdown" if wanb_down else "ifup", "wanb")
                down[0] = wanb_down
            lab.nft(lab.router, "flush set inet mwan dynamic_v4", check=False)
            lab.nft(lab.router, "flush set inet mwan vpn_v4", check=False)
            for set_name, members in (("dynamic_v4", dynamic), ("vpn_v4", vpn)):
                if members:
                    lab.nft(lab.router, f"add element inet mwan {set_name} "
                                        f"{{ {', '.join(members)} }}", check=False)
            lab.exec(lab.router, "conntrack", "-F", check=False)  # no mark from the last config
            for c in ex.conns:
                check(lab, r, c)

        example()
