"""mwan3's human layouts and the explain walk, from made-up reports (no root)."""

from __future__ import annotations

from typing import Any

from mwan.config.validate import parse_config
from mwan.plan.state import IfaceRuntime
from mwan.report import data, text
from mwan.report.explain import explain

NOW = 1_000_000.0


def report() -> dict[str, Any]:
    return {
        "interfaces": {
            "wan": {"online": True, "up": True, "status": "online", "tracking": "active",
                    "online_since": NOW - 54, "up_since": NOW - (71 * 3600 + 53 * 60 + 14),
                    "score": 12, "probes_sent": 40, "probes_lost": 1,
                    "targets": [{"ip": "198.51.100.1", "status": "up", "latency_ms": 3.25,
                                 "loss_pct": 0.0},
                                {"ip": "198.51.100.2", "status": "down", "latency_ms": None,
                                 "loss_pct": 100.0}]},
            "wanb": {"online": False, "up": False, "status": "offline", "tracking": "paused",
                     "targets": []},
        },
        "policies": {"ipv4": {"balanced": {"members": [
            {"interface": "wan", "percent": 60.0}, {"interface": "wanb", "percent": 40.0}],
            "last_resort": "unreachable"},
            "none_up": {"members": [], "last_resort": "blackhole"}}},
        "connected": {"ipv4": ["10.0.0.0/24", "192.168.1.0/24"], "ipv6": []},
        "rules": [{"rule": "https", "family": "ipv4", "policy": "balanced", "sticky": True,
                   "proto": "tcp", "src_ip": [], "dest_ip": [], "src_port": [],
                   "dest_port": ["443"], "ipset": None, "packets": 720_000, "bytes": 12_345_678},
                  {"rule": "default_rule", "family": "ipv4", "policy": "balanced",
                   "sticky": False, "proto": "all", "src_ip": [], "dest_ip": ["0.0.0.0/0"],
                   "src_port": [], "dest_port": [], "ipset": None, "packets": 5, "bytes": 300}],
    }


def test_interfaces_layout_is_mwan3s() -> None:
    assert text.interfaces(report(), NOW) == (
        "Interface status:\n"
        " interface wan is online 00h:00m:54s, uptime 71h:53m:14s and tracking is active\n"
        " interface wanb is offline and tracking is paused\n")


def test_policies_and_connected_layouts() -> None:
    assert text.policies(report()) == (
        "Current ipv4 policies:\nbalanced:\n wan (60%)\n wanb (40%)\nnone_up:\n blackhole\n")
    assert text.connected(report()) == (
        "Directly connected ipv4 networks:\n10.0.0.0/24\n192.168.1.0/24\n\n"
        "Directly connected ipv6 networks:\n")


def test_rules_layout_has_counters_sticky_marker_and_matches() -> None:
    out = text.rules(report())
    assert out.startswith("Active ipv4 user rules:\n")
    lines = out.splitlines()
    assert lines[1].split() == ["720K", "12345K", "S", "balanced", "https", "tcp", "dports", "443"]
    assert lines[2].split() == ["5", "300", "-", "balanced", "default_rule", "dst", "0.0.0.0/0"]
    assert "Active ipv6 user rules:" in out


def test_status_adds_per_target_latency_and_loss() -> None:
    out = text.status(report(), NOW)
    assert "wan: score 12, 40 probes sent, 1 lost" in out
    assert "198.51.100.1" in out and "3.2 ms" in out and "100%" in out
    assert " wanb: no track_ip" in out


def test_hms_and_si() -> None:
    assert text.hms(None) == "00h:00m:00s" and text.hms(3723) == "01h:02m:03s"
    assert text._si(99_999) == "99999" and text._si(100_000) == "100K"


CONFIG = """
config interface 'wan'
	option enabled '1'
config interface 'wanb'
	option enabled '1'
config member 'wan_m1_w3'
	option interface 'wan'
	option weight '3'
config member 'wanb_m1_w1'
	option interface 'wanb'
config policy 'balanced'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m1_w1'
config rule 'listed'
	option ipset 'vpn'
	option use_policy 'balanced'
config rule 'ssh'
	option proto 'tcp'
	option dest_port '22'
	option use_policy 'default'
config rule 'rest'
	option use_policy 'balanced'
"""


def test_explain_walk_with_ipsets_shares_and_last_resort() -> None:
    cfg = parse_config(CONFIG, "mwan3")
    up = {"wan": IfaceRuntime("wan", up=True, online=True, addresses=("10.0.1.2",)),
          "wanb": IfaceRuntime("wanb", up=True, online=True)}
    conn = {"ipv4": ["192.168.1.0/24"], "ipv6": []}
    res = explain(cfg, up, conn, "192.168.1.10", "198.51.100.7", "tcp", None, 443,
                  ipsets={"vpn": ["203.0.113.0/24"]})
    assert res["rule"] == "rest" and res["wan"] == "balanced"
    assert [(m["interface"], m["percent"]) for m in res["members"]] == [("wan", 75.0),
                                                                         ("wanb", 25.0)]
    assert any("not in ipset vpn" in s for s in res["steps"])
    res = explain(cfg, up, conn, "192.168.1.10", "203.0.113.9", "tcp", None, 22,
                  ipsets={"vpn": ["203.0.113.0/24"]})
    assert res["rule"] == "listed"
    assert explain(cfg, up, conn, "192.168.1.10", "198.51.100.7", "tcp", None, 22)["wan"] \
        == "default"
    assert explain(cfg, up, conn, "10.0.1.2", "198.51.100.7")["wan"] == "wan"
    assert explain(cfg, up, conn, "192.168.1.10", "192.168.1.20")["verdict"].startswith("main")
    down = {k: IfaceRuntime(k, up=True, online=False) for k in up}
    res = explain(cfg, down, conn, "192.168.1.10", "198.51.100.7")
    assert res["wan"] == "unreachable" and "last_resort" in text.explain(res)
    pol = data.policies(cfg, down)["ipv4"]["balanced"]
    assert pol["members"] == [] and pol["active"] == "unreachable"
