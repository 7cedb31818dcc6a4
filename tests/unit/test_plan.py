"""The planner: pure, no root.  Golden files pin the compiled example config."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mwan.config.validate import load_config, parse_config
from mwan.plan.compile import compile_plan, desired_routes, desired_rules
from mwan.plan.policy import choose
from mwan.plan.state import AddrInfo, IfaceRuntime, KernelFacts, RouteInfo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "mwan" / "data" / "mwan3.example"
GOLDEN = Path(__file__).with_name("golden")

FACTS = KernelFacts(
    routes=(
        RouteInfo("ipv4", "default", dev="eth1", gateway="10.100.1.1", metric=10),
        RouteInfo("ipv4", "default", dev="eth2", gateway="10.100.2.1", metric=20),
        RouteInfo("ipv4", "10.100.1.0/24", dev="eth1", scope=253, prefsrc="10.100.1.2"),
        RouteInfo("ipv4", "10.100.2.0/24", dev="eth2", scope=253, prefsrc="10.100.2.2"),
        RouteInfo("ipv4", "192.168.1.0/24", dev="br-lan", scope=253),
        RouteInfo("ipv6", "2001:db8:1::/64", dev="br-lan", metric=256),
        RouteInfo("ipv6", "fe80::/64", dev="br-lan", metric=256),
    ),
    addresses=(
        AddrInfo("ipv4", "10.100.1.2", 24, "eth1"),
        AddrInfo("ipv4", "10.100.2.2", 24, "eth2"),
        AddrInfo("ipv4", "192.168.1.1", 24, "br-lan"),
    ),
    devices=("br-lan", "eth1", "eth2", "lo"),
)


def example(enable_all: bool = True) -> Any:
    cfg = load_config(str(EXAMPLE), "/nonexistent")
    devices = {"wan": "eth1", "wan6": "eth1", "wanb": "eth2", "wanb6": "eth2"}
    ifaces = tuple(replace(i, device=devices[i.name], enabled=enable_all or i.enabled)
                   for i in cfg.interfaces)
    return replace(cfg, interfaces=ifaces)


def runtime(**online: bool) -> dict[str, IfaceRuntime]:
    gws = {"wan": "10.100.1.1", "wanb": "10.100.2.1", "wan6": None, "wanb6": None}
    addrs = {"wan": ("10.100.1.2",), "wanb": ("10.100.2.2",), "wan6": (), "wanb6": ()}
    return {n: IfaceRuntime(n, up=True, online=o, gateway=gws[n], addresses=addrs[n])
            for n, o in online.items()}


def as_json(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.__dict__ if hasattr(o, "__dict__")
                                 else str(o)))


def golden(name: str, data: Any) -> None:
    path = GOLDEN / name
    text = json.dumps(data, indent=1, sort_keys=True, default=str) + "\n"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 to accept"


def plan_as_data(plan: Any) -> dict[str, Any]:
    return {
        "sets": [{"name": s.name, "type": s.type, "flags": list(s.flags), "timeout": s.timeout,
                  "elements": None if s.elements is None else list(s.elements)}
                 for s in plan.nft.sets],
        "chains": [{"name": c.name, "def": c.definition(), "rules": as_json(c.rules),
                    "comments": list(c.comments)} for c in plan.nft.chains],
        "rules": [as_json(r.__dict__) for r in plan.rules],
        "routes": [as_json(r.__dict__) for r in plan.routes],
    }


def test_golden_example_all_online() -> None:
    plan = compile_plan(example(), runtime(wan=True, wanb=True, wan6=True, wanb6=True), FACTS)
    golden("example_all_online.json", plan_as_data(plan))


def test_golden_example_wan_offline() -> None:
    plan = compile_plan(example(), runtime(wan=False, wanb=True, wan6=True, wanb6=False), FACTS)
    golden("example_wan_offline.json", plan_as_data(plan))


def test_balanced_shares_follow_weights() -> None:
    cfg = example()
    choice = choose(cfg, cfg.policy("balanced"), "ipv4", runtime(wan=True, wanb=True))
    assert [(s.interface, s.percent) for s in choice.shares] == [("wan", 50.0), ("wanb", 50.0)]
    choice = choose(cfg, cfg.policy("wanb_wan"), "ipv4", runtime(wan=True, wanb=True))
    assert [s.interface for s in choice.shares] == ["wanb"]


def test_lower_metric_wins_and_failover() -> None:
    cfg = example()
    pol = cfg.policy("wan_wanb")
    assert [s.interface for s in choose(cfg, pol, "ipv4", runtime(wan=True, wanb=True)).shares] \
        == ["wan"]
    assert [s.interface for s in choose(cfg, pol, "ipv4", runtime(wan=False, wanb=True)).shares] \
        == ["wanb"]
    nobody = choose(cfg, pol, "ipv4", runtime(wan=False, wanb=False))
    assert nobody.shares == () and nobody.last_resort == "unreachable"


def _policy_rule(plan: Any, name: str) -> Any:
    chain = next(c for c in plan.nft.chains if c.name == name)
    return chain.rules[0][0]


def test_numgen_map_is_exact_to_weights() -> None:
    text = """
config interface 'a'
  option enabled 1
config interface 'b'
  option enabled 1
config interface 'c'
  option enabled 1
config member 'a1'
  option interface 'a'
  option weight 1
config member 'b1'
  option interface 'b'
  option weight 1
config member 'c2'
  option interface 'c'
  option weight 2
config policy 'p'
  list use_member 'a1'
  list use_member 'b1'
  list use_member 'c2'
"""
    cfg = parse_config(text)
    rt = {n: IfaceRuntime(n, up=True, online=True) for n in "abc"}
    stmt = _policy_rule(compile_plan(cfg, rt, KernelFacts()), "policy_p_v4")
    assert stmt["vmap"]["key"] == {"numgen": {"mode": "random", "mod": 4, "offset": 0}}
    owners = Counter()
    for key, verdict in stmt["vmap"]["data"]["set"]:
        lo, hi = (key, key) if isinstance(key, int) else key["range"]
        owners[verdict["goto"]["target"]] += hi - lo + 1
    assert owners == {"mark_1": 1, "mark_2": 1, "mark_3": 2}


@pytest.mark.parametrize("last_resort,chain", [("unreachable", "mark_62"),
                                               ("blackhole", "mark_61"), ("default", "mark_63")])
def test_last_resort(last_resort: str, chain: str) -> None:
    text = f"""
config interface 'a'
  option enabled 1
config member 'm'
  option interface 'a'
config policy 'p'
  list use_member 'm'
  option last_resort '{last_resort}'
"""
    cfg = parse_config(text)
    plan = compile_plan(cfg, {"a": IfaceRuntime("a", up=True, online=False)}, KernelFacts())
    assert _policy_rule(plan, "policy_p_v4") == {"goto": {"target": chain}}


def test_ip_rules_priorities_default_mask() -> None:
    cfg = example()
    rules = desired_rules(cfg, runtime(wan=True, wanb=False, wan6=True, wanb6=True))
    by_prio = {(r.priority, r.family): r for r in rules}
    assert by_prio[(1001, "ipv4")].iif == "eth1" and by_prio[(1001, "ipv4")].table == 254
    assert by_prio[(2001, "ipv4")].fwmark == 0x100 and by_prio[(2001, "ipv4")].table == 1
    assert by_prio[(3001, "ipv4")].action == "unreachable"
    assert by_prio[(2061, "ipv4")].action == "blackhole" and by_prio[(2061, "ipv4")].fwmark \
        == 0x3D00
    assert by_prio[(2062, "ipv6")].action == "unreachable" and by_prio[(2062, "ipv6")].fwmark \
        == 0x3E00
    assert all(r.fwmask in (None, 0x3F00) for r in rules)


def test_routes_copy_main_and_default() -> None:
    cfg = example()
    routes = desired_routes(cfg, runtime(wan=True, wanb=True), FACTS)
    t1 = {r.dst: r for r in routes if r.table == 1}
    assert t1["default"].gateway == "10.100.1.1" and t1["default"].dev == "eth1"
    assert {"10.100.1.0/24", "192.168.1.0/24"} <= set(t1)
    assert "10.100.2.0/24" not in t1  # another WAN's route: the connected set covers it
    t3 = {r.dst: r for r in routes if r.table == 3}
    assert t3["default"].gateway == "10.100.2.1"
    assert {"10.100.2.0/24", "192.168.1.0/24"} <= set(t3) and "10.100.1.0/24" not in t3


def test_mark_bits_never_outside_mask() -> None:
    plan = compile_plan(example(), runtime(wan=True, wanb=True, wan6=True, wanb6=True), FACTS)
    for chain in plan.nft.chains:
        if chain.name.startswith(("mark_", "save_")):
            mangle = chain.rules[0][0]["mangle"]
            keep, value = mangle["value"]["|"][0]["&"][1], mangle["value"]["|"][1]
            assert keep == ~0x3F00 & 0xFFFFFFFF and value & ~0x3F00 == 0


def test_rule_families_split() -> None:
    text = """
config interface 'a'
  option enabled 1
config member 'm'
  option interface 'a'
config policy 'p'
  list use_member 'm'
config rule 'mixed'
  option dest_ip '198.51.100.0/24,2001:db8::/32'
  option use_policy 'p'
config rule 'v4only'
  option src_ip '192.168.1.10'
  option use_policy 'p'
"""
    cfg = parse_config(text)
    plan = compile_plan(cfg, {"a": IfaceRuntime("a", up=True, online=True)}, KernelFacts())
    rules = next(c for c in plan.nft.chains if c.name == "rules")
    assert list(rules.comments) == ["mixed", "mixed", "v4only"]
