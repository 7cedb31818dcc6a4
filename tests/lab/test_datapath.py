"""The datapath with real packets: mwan in the lab's router, connections from LAN clients.

No tracking here (no track_ip): interfaces are online while their carrier
is up, and ``mwan3 ifdown``/``ifup`` move them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, kernel_snapshot, lab_interfaces

pytestmark = pytest.mark.lab

MEMBERS = """
config member 'wan_m1_w3'
	option interface 'wan'
	option metric '1'
	option weight '3'
config member 'wanb_m1_w2'
	option interface 'wanb'
	option metric '1'
	option weight '2'
config member 'wan_m1_w1'
	option interface 'wan'
config member 'wanb_m1_w1'
	option interface 'wanb'
config member 'wanb_m2_w1'
	option interface 'wanb'
	option metric '2'
config member 'wan6_m1'
	option interface 'wan6'
config member 'wanb6_m1'
	option interface 'wanb6'
config member 'wanb6_m2'
	option interface 'wanb6'
	option metric '2'

config policy 'balanced'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m1_w2'
config policy 'even'
	list use_member 'wan_m1_w1'
	list use_member 'wanb_m1_w1'
	list use_member 'wan6_m1'
	list use_member 'wanb6_m1'
config policy 'wan_wanb'
	list use_member 'wan_m1_w1'
	list use_member 'wanb_m2_w1'
	list use_member 'wan6_m1'
	list use_member 'wanb6_m2'
config policy 'wan_only'
	list use_member 'wan_m1_w1'
	list use_member 'wan6_m1'
config policy 'wanb_only'
	list use_member 'wanb_m1_w1'
	list use_member 'wanb6_m1'
"""


def config(lab: Lab, rules: str, extra: str = "") -> str:
    return lab_interfaces(lab) + MEMBERS + extra + rules


def rule(name: str, policy: str, **opts: str) -> str:
    lines = [f"config rule '{name}'", f"\toption use_policy '{policy}'"]
    lines += [f"\toption {k} '{v}'" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


def client(lab: Lab, i: int = 1) -> str:
    return lab.client_ns(i)


# ---------------------------------------------------------------- balancing

def test_weights_3_2_give_60_40(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    mwan(config(lab, rule("all", "balanced")))
    r = lab.connect_many(client(lab), lab.server_addr(4), 80, count=1000, concurrency=32)
    assert r.ok == 1000, r.errors
    assert abs(r.share(1) - 0.60) <= 0.05 and abs(r.share(2) - 0.40) <= 0.05, r.wans


def test_equal_weights_give_50_50(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    mwan(config(lab, rule("all", "even")))
    r = lab.connect_many(client(lab), lab.server_addr(4), 80, count=1000, concurrency=32)
    assert r.ok == 1000, r.errors
    assert abs(r.share(1) - 0.5) <= 0.05, r.wans
    r6 = lab.connect_many(client(lab), lab.server_addr(6), 80, count=400, concurrency=32)
    assert r6.ok == 400, r6.errors
    assert abs(r6.share(1) - 0.5) <= 0.08, r6.wans


@pytest.mark.parametrize("lab", [{"isps": 3}], indirect=True)
def test_three_members_1_1_2(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    text = lab_interfaces(lab, ipv6=False) + """
config member 'a'
	option interface 'wan'
config member 'b'
	option interface 'wanb'
config member 'c'
	option interface 'wanc'
	option weight '2'
config policy 'three'
	list use_member 'a'
	list use_member 'b'
	list use_member 'c'
""" + rule("all", "three")
    mwan(text)
    r = lab.connect_many(client(lab), lab.server_addr(4), 80, count=1000, concurrency=32)
    assert r.ok == 1000, r.errors
    # 1000 draws: one standard deviation of a share is at most 1.6 points; 4 sigma
    assert abs(r.share(1) - 0.25) <= 0.064 and abs(r.share(2) - 0.25) <= 0.064 \
        and abs(r.share(3) - 0.5) <= 0.064, r.wans


# ---------------------------------------------------------------- failover

class UdpFlow:
    """One long-lived UDP flow from a client (one conntrack entry): ask which WAN it uses."""

    CODE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
for line in sys.stdin:
    s.send(b"x")
    try:
        print(s.recv(200).decode().split()[0], flush=True)
    except OSError as e:
        print("error", flush=True)
"""

    def __init__(self, lab: Lab, ns: str, dst: str, port: int) -> None:
        self.lab = lab
        self.proc = lab.popen(ns, ["python3", "-c", self.CODE, dst, str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def wan(self) -> int | None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.lab.wan_of(self.proc.stdout.readline().strip())


def test_failover_order_and_existing_flows(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    m = mwan(config(lab, rule("all", "wan_wanb")))
    srv = lab.server_addr(4)
    assert lab.connect_many(client(lab), srv, 80, count=20).wans == {1: 20}
    flow_b = UdpFlow(lab, client(lab), srv, 5001)
    assert flow_b.wan() == 1
    m.cli("ifdown", "wan")
    assert lab.connect_many(client(lab), srv, 80, count=20).wans == {2: 20}
    flow_a = UdpFlow(lab, client(lab), srv, 5002)  # opened while wan is down: via wanb
    assert flow_a.wan() == 2
    m.cli("ifup", "wan")
    assert lab.connect_many(client(lab), srv, 80, count=20).wans == {1: 20}
    # the flow opened during the outage keeps its WAN while that WAN is up
    assert flow_a.wan() == 2
    assert lab.connect_many(client(lab), lab.server_addr(6), 80, count=10).wans == {1: 10}


# ---------------------------------------------------------------- rules

@pytest.mark.parametrize("lab", [{"clients": 2}], indirect=True)
def test_rule_matches(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    srv, srv2 = lab.server_addr(4), lab.server2_addr(4)
    rules = (
        rule("by_dst", "wanb_only", dest_ip=f"{srv2}/32")
        + rule("by_src", "wanb_only", src_ip=lab.client_addr(2, 4))
        + rule("by_port", "wanb_only", proto="tcp", dest_port="8000:8010,22")
        + rule("by_sport", "wanb_only", proto="tcp", src_port="40000")
        + rule("by_proto", "wanb_only", proto="udp")
        + rule("v6_only", "wanb_only", family="ipv6")
        + rule("rest", "wan_only")
    )
    mwan(config(lab, rules))
    c1, c2 = client(lab, 1), client(lab, 2)
    assert lab.which_wan(c1, srv2, 80) == 2  # dest_ip matches
    assert lab.which_wan(c1, srv, 80) == 1  # ...and not
    assert lab.which_wan(c2, srv, 80) == 2  # src_ip matches
    assert lab.which_wan(c1, srv, 8005) == 2 and lab.which_wan(c1, srv, 22) == 2  # ports
    assert lab.which_wan(c1, srv, 8011) == 1
    assert lab.which_wan(c1, srv, 80, sport=40000) == 2  # src_port
    assert lab.which_wan(c1, srv, 80, sport=40001) == 1
    assert lab.which_wan(c1, srv, 80, proto="udp") == 2  # proto
    assert lab.which_wan(c1, lab.server_addr(6), 80) == 2  # family ipv6
    assert lab.which_wan(c1, srv, 443) == 1


def test_first_match_wins_and_default_policy(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    srv, srv2 = lab.server_addr(4), lab.server2_addr(4)
    rules = (rule("first", "wanb_only", dest_ip=srv2)
             + rule("second", "wan_only", dest_ip=srv2)
             + rule("to_main", "default", dest_ip=srv)
             + rule("rest", "wanb_only"))
    mwan(config(lab, rules))
    assert lab.connect_many(client(lab), srv2, 80, count=10).wans == {2: 10}
    # `default` is the main table: its lowest-metric default route is wan1
    assert lab.connect_many(client(lab), srv, 80, count=10).wans == {1: 10}


def test_ipset_rule_and_survives_reapply(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    srv, srv2 = lab.server_addr(4), lab.server2_addr(4)
    m = mwan(config(lab, rule("vpn", "wanb_only", ipset="vpn") + rule("rest", "wan_only")))
    assert lab.which_wan(client(lab), srv2, 80) == 1  # empty set: no match
    lab.nft(lab.router, f"add element inet mwan vpn_v4 {{ {srv2} }}")
    assert lab.connect_many(client(lab), srv2, 80, count=10).wans == {2: 10}
    assert lab.which_wan(client(lab), srv, 80) == 1
    m.cli("ifdown", "wan")
    m.cli("ifup", "wan")
    m.cli("restart")
    assert lab.connect_many(client(lab), srv2, 80, count=10).wans == {2: 10}


def test_sticky_keeps_source_on_one_wan(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    rules = (rule("https", "even", proto="tcp", dest_port="443", sticky="1", timeout="600")
             + rule("rest", "even"))
    mwan(config(lab, rules))
    srv = lab.server_addr(4)
    sticky = lab.connect_many(client(lab), srv, 443, count=20, concurrency=1)
    assert sticky.ok == 20 and len(sticky.wans) == 1, sticky.wans
    spread = lab.connect_many(client(lab), srv, 80, count=20, concurrency=1)
    assert spread.ok == 20 and len(spread.wans) == 2, spread.wans


def test_sticky_source_moves_when_its_wan_goes_down(lab: Lab,
                                                    mwan: Callable[[str], MwanRouter]) -> None:
    m = mwan(config(lab, rule("https", "even", proto="tcp", dest_port="443", sticky="1")))
    srv = lab.server_addr(4)
    first = lab.connect_many(client(lab), srv, 443, count=10, concurrency=1)
    assert first.ok == 10 and len(first.wans) == 1, first.wans
    (stuck,) = first.wans
    m.cli("ifdown", "wan" if stuck == 1 else "wanb")
    moved = lab.connect_many(client(lab), srv, 443, count=10, concurrency=1)
    assert moved.wans == {3 - stuck: 10}, moved.wans  # to the other WAN, and sticks there
    elems = lab.exec(lab.router, "nft", "list", "set", "inet", "mwan", "sticky_v4_https").stdout
    assert lab.client_addr(1) in elems and "expires" in elems, elems


# ---------------------------------------------------------------- last resort

@pytest.mark.parametrize("last_resort", ["unreachable", "blackhole", "default"])
def test_last_resort(lab: Lab, mwan: Callable[[str], MwanRouter], last_resort: str) -> None:
    extra = f"""
config member 'only_b'
	option interface 'wanb'
config policy 'lr'
	list use_member 'only_b'
	option last_resort '{last_resort}'
"""
    m = mwan(config(lab, rule("all", "lr"), extra))
    srv = lab.server_addr(4)
    assert lab.which_wan(client(lab), srv, 80) == 2
    m.cli("ifdown", "wanb")
    t0 = time.monotonic()
    r = lab.connect_many(client(lab), srv, 80, count=1, timeout=2)
    took = time.monotonic() - t0
    if last_resort == "unreachable":
        assert r.errors.get("unreachable") == 1 and took < 1.0, (r.errors, took)
    elif last_resort == "blackhole":
        assert r.errors.get("timeout") == 1, r.errors
    else:
        assert r.wans == {1: 1}, (r.wans, r.errors)


# ---------------------------------------------------------------- inbound, router

def test_inbound_answered_by_the_wan_it_came_in(lab: Lab, mwan: Callable[[str], MwanRouter]
                                                ) -> None:
    mwan(config(lab, rule("all", "wan_only")))
    lab.serve(lab.router, [2222])
    # ISPs drop packets with foreign sources (BCP38): a reply leaving by wan1 is lost
    r = lab.connect_many(lab.inet, lab.wan_addr(2, 4), 2222, count=10, timeout=2)
    assert r.ok == 10, r.errors
    r6 = lab.connect_many(lab.inet, lab.wan_addr(2, 6), 2222, count=5, timeout=2)
    assert r6.ok == 5, r6.errors
    assert lab.which_wan(client(lab), lab.server_addr(4), 80) == 1


def test_router_traffic_follows_rules_lan_stays_local(lab: Lab,
                                                      mwan: Callable[[str], MwanRouter]) -> None:
    srv2 = lab.server2_addr(4)
    mwan(config(lab, rule("to_srv2", "wanb_only", dest_ip=srv2) + rule("rest", "wan_only")))
    assert lab.connect_many(lab.router, srv2, 80, count=5).wans == {2: 5}
    assert lab.connect_many(lab.router, lab.server_addr(4), 80, count=5).wans == {1: 5}
    lab.serve(client(lab), [7777])
    r = lab.connect_many(lab.router, lab.client_addr(1, 4), 7777, count=5)
    assert r.ok == 5 and r.seen == {lab.lan_gateway(4): 5}, (r.seen, r.errors)


# ---------------------------------------------------------------- lifecycle

def test_stop_restores_exact_kernel_state(lab: Lab) -> None:
    before = kernel_snapshot(lab)
    with MwanRouter(lab, config(lab, rule("s", "even", sticky="1", proto="tcp", dest_port="443")
                                + rule("i", "wan_only", ipset="myset")
                                + rule("rest", "even"))) as m:
        m.start()
        during = kernel_snapshot(lab)
        assert during != before and "table inet mwan" in during["nft"]
        assert lab.connect_many(client(lab), lab.server_addr(4), 443, count=5).ok == 5
        m.cli("ifdown", "wanb")
        m.stop()
    assert kernel_snapshot(lab) == before


def test_reapply_unchanged_config_changes_nothing(lab: Lab, mwan: Callable[[str], MwanRouter]
                                                  ) -> None:
    m = mwan(config(lab, rule("s", "even", sticky="1", proto="tcp", dest_port="443")
                    + rule("rest", "even")))
    before = kernel_snapshot(lab)
    mon = lab.popen(lab.router, ["ip", "monitor", "rule", "route"], stdout=subprocess.PIPE,
                    text=True)
    nmon = lab.popen(lab.router, ["nft", "monitor"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    m.cli("restart")
    m.cli("ifup", "wan")  # already up: nothing to do
    time.sleep(0.3)
    mon.terminate()
    nmon.terminate()
    assert mon.communicate()[0] == "" and nmon.communicate()[0] == ""
    assert kernel_snapshot(lab) == before


def test_bad_config_on_restart_changes_nothing(lab: Lab, mwan: Callable[[str], MwanRouter]
                                               ) -> None:
    m = mwan(config(lab, rule("rest", "wan_only")))
    before = kernel_snapshot(lab)
    m.write_config(config(lab, rule("rest", "no_such_policy")))
    res = m.cli("restart", check=False)
    assert res.returncode == 1 and "unknown policy 'no_such_policy'" in res.stderr
    assert kernel_snapshot(lab) == before
    assert lab.which_wan(client(lab), lab.server_addr(4), 80) == 1


def test_grouped_rules_keep_first_match_on_real_packets(lab: Lab,
                                                        mwan: Callable[[str], MwanRouter]) -> None:
    """Runs of rules become verdict maps (plan/group.py): first match and counters as before.

    Ports 7000..7019 alternate nothing: all go to wan, except that an earlier
    rule 'broad' (7010-7012 → wanb) must still win over the later 7010..7012
    rules; ten /32 rules to other hosts come before the one for server2.
    """
    import json

    srv, srv2 = lab.server_addr(4), lab.server2_addr(4)
    rules = "".join(rule(f"p{p}", "wan_only", proto="tcp", dest_port=str(p))
                    for p in range(7000, 7010))
    rules += rule("broad", "wanb_only", proto="tcp", dest_port="7010-7012")
    rules += "".join(rule(f"p{p}", "wan_only", proto="tcp", dest_port=str(p))
                     for p in range(7010, 7020))
    rules += "".join(rule(f"h{k}", "wan_only", dest_ip=f"198.51.100.{200 + k}")
                     for k in range(10))
    rules += rule("to_server2", "wanb_only", dest_ip=f"{srv2}/32")
    rules += rule("rest", "wan_only")
    m = mwan(config(lab, rules))
    table = lab.exec(lab.router, "nft", "list", "chain", "inet", "mwan", "rules").stdout
    assert table.count("vmap @rules_v4_") >= 2, table
    c1 = client(lab)
    assert lab.which_wan(c1, srv, 7005) == 1
    assert lab.which_wan(c1, srv, 7011) == 2  # the earlier, broader rule
    assert lab.which_wan(c1, srv, 7015) == 1
    assert lab.connect_many(c1, srv2, 80, count=10).wans == {2: 10}  # the last of its map
    assert lab.which_wan(c1, srv, 443) == 1
    counted = {r["rule"]: r["packets"] for r in json.loads(m.cli("rules", "--json").stdout)
               ["rules"] if r["family"] == "ipv4"}
    assert counted["to_server2"] >= 10 and counted["broad"] >= 1 and counted["p7005"] >= 1
    assert counted["p7011"] == 0 and counted["h3"] == 0
