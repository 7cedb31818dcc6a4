"""Runs of rules as verdict maps (mwan.plan.group): the same first match as the linear chain.

No root.  The property test draws configs of up to 24 rules (overlapping
networks, port lists, protocols, ipset, src_iface, sticky, logging, both
families) and connections, and checks three deciders agree: the walk over
the linear steps, the walk over the grouped steps, and a small interpreter
of the rendered nft JSON (the ``rules`` chain and its maps' elements).
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from typing import Any

from fakes.configs import TWO_WANS
from hypothesis import given, settings
from hypothesis import strategies as st

from mwan.config.marks import MarkSpace
from mwan.config.model import Config, PortRange
from mwan.config.validate import parse_config
from mwan.plan import classify as C
from mwan.plan import group as G
from mwan.plan import nftexpr as X
from mwan.plan.compile import config_part, lookup_map

WANS = """
config globals 'globals'
	option logging '1'
""" + TWO_WANS + """
config policy 'pb'
	list use_member 'b'
"""
NETWORK = {"lan": "br-lan", "guest": "br-guest"}
SPACE = MarkSpace(0x3F00)
SETS = {"vpn_v4": [ipaddress.ip_network("198.51.100.7/32")],
        "vpn_v6": [ipaddress.ip_network("2001:db8:1::7/128")]}


def cfg_of(rules: str) -> Config:
    return parse_config(WANS + rules, "mwan3", NETWORK)


def target(d: C.Decision | None) -> str | None:
    return None if d is None else str(X.render_verdict(d)["goto"]["target"])


def decide(steps: tuple[C.Step, ...], p: C.Packet) -> str | None:
    return target(C.walk({"rules": steps}, "rules", p, SETS).decision)


# ------------------------------------------------- an interpreter of the rendered nft

def _value(e: Any, p: C.Packet) -> Any:
    if "meta" in e:
        return {"nfproto": p.family, "iifname": p.iif, "l4proto": p.proto}[e["meta"]["key"]]
    proto, fld = e["payload"]["protocol"], e["payload"]["field"]
    if proto in ("ip", "ip6"):
        if (proto == "ip") != (p.family == "ipv4"):
            return None
        return p.src if fld == "saddr" else p.dst
    if proto != "th" and p.proto != {"tcp": 6, "udp": 17}[proto]:
        return None
    if proto == "th" and p.proto not in (6, 17):
        return None  # the kernel reads other headers' bytes here; the key's l4proto fails
    return p.sport if fld == "sport" else p.dport


def _holds(right: Any, v: Any) -> bool:
    if v is None:
        return False
    if isinstance(right, str) and right.startswith("@"):
        return any(v in n for n in SETS[right[1:]] if n.version == v.version)
    if isinstance(right, dict) and "set" in right:
        return any(_holds(x, v) for x in right["set"])
    if isinstance(right, dict) and "prefix" in right:
        net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}")
        return not isinstance(v, int) and net.version == v.version and v in net
    if isinstance(right, dict) and "range" in right:
        return isinstance(v, int) and bool(right["range"][0] <= v <= right["range"][1])
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return isinstance(right, str) and ipaddress.ip_address(right) == v
    return bool(right == v)


def _key(key: Any, p: C.Packet) -> list[Any]:
    return [_value(k, p) for k in key["concat"]] if "concat" in key else [_value(key, p)]


def _elem_holds(val: Any, got: list[Any]) -> bool:
    vals = val["concat"] if isinstance(val, dict) and "concat" in val else [val]
    return len(vals) == len(got) and all(_holds(r, v) for r, v in zip(vals, got))


def run_rules(rules: list[list[Any]], maps: dict[str, list[Any]], p: C.Packet) -> str | None:
    for rule in rules:
        for stmt in rule:
            if "match" in stmt:
                m = stmt["match"]
                v = _value(m["left"], p)
                if not _holds(m["right"], v):
                    break
            elif "vmap" in stmt:
                got = _key(stmt["vmap"]["key"], p)
                hits = [t for k, t in maps[stmt["vmap"]["data"][1:]]
                        if _elem_holds(k["elem"]["val"], got)]
                assert len(hits) <= 1, "overlapping elements"  # the kernel refuses those
                if not hits:
                    break
                return str(hits[0]["goto"]["target"])
            elif "goto" in stmt:
                return str(stmt["goto"]["target"])
    return None


# ------------------------------------------------- drawing configs

NETS4 = ["198.51.100.0/24", "198.51.100.7", "198.51.100.9", "198.51.100.0/28",
         "203.0.113.0/25", "203.0.113.200", "192.168.1.0/25", "192.168.1.10"]
NETS6 = ["2001:db8:1::/48", "2001:db8:1::7", "2001:db8:2::/64"]


@st.composite
def rule_texts(draw: st.DrawFn) -> str:
    out = []
    for i in range(draw(st.integers(0, 24))):
        lines = [f"config rule 'r{i}'"]
        proto = draw(st.sampled_from(["tcp", "udp", "all", "tcp", "udp", "icmp", "47"]))
        lines.append(f"\toption proto '{proto}'")
        if proto in ("tcp", "udp"):
            for opt in ("src_port", "dest_port"):
                v = draw(st.sampled_from([None, "443", "80,53", "1000-2000", "1500,443", None]))
                if v:
                    lines.append(f"\toption {opt} '{v}'")
        v6 = draw(st.integers(0, 4)) == 0
        nets = NETS6 if v6 else NETS4
        for opt in ("src_ip", "dest_ip"):
            k = draw(st.integers(0, 2))
            for net in draw(st.lists(st.sampled_from(nets), min_size=k, max_size=k)):
                lines.append(f"\tlist {opt} '{net}'")
        if draw(st.integers(0, 9)) == 0:
            lines.append(f"\toption src_iface '{draw(st.sampled_from(['lan', 'guest']))}'")
        if draw(st.integers(0, 9)) == 0:
            lines.append("\toption ipset 'vpn'")
        if draw(st.integers(0, 9)) == 0:
            lines.append("\toption logging '1'")
        pol = draw(st.sampled_from(["pa", "pb", "pab", "pa", "pb", "default", "blackhole"]))
        lines.append(f"\toption use_policy '{pol}'")
        if pol not in ("default", "blackhole") and draw(st.integers(0, 4)) == 0:
            lines.append("\toption sticky '1'")
        out.append("\n".join(lines) + "\n")
    return "".join(out)


def pkt(src: str, dst: str, proto: int, sport: int | None, dport: int | None,
        iif: str) -> C.Packet:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if proto not in (6, 17):
        sport = dport = None
    return C.Packet("ipv4" if s.version == 4 else "ipv6", s, d, proto, sport, dport, iif)


packets4 = st.builds(
    pkt, src=st.sampled_from(["192.168.1.10", "192.168.1.200", "198.51.100.5"]),
    dst=st.sampled_from(["198.51.100.7", "198.51.100.9", "198.51.100.3", "203.0.113.200",
                         "203.0.113.5", "192.168.1.10", "192.0.2.1"]),
    proto=st.sampled_from([6, 17, 1, 47]), sport=st.sampled_from([1234, 443, 80, 1500]),
    dport=st.sampled_from([443, 53, 1500, 80, 2001]), iif=st.sampled_from(["br-lan", "br-guest"]))
packets6 = st.builds(
    pkt, src=st.sampled_from(["2001:db8:1::10", "2001:db8:9::1"]),
    dst=st.sampled_from(["2001:db8:1::7", "2001:db8:2::1", "2001:db8:3::1"]),
    proto=st.sampled_from([6, 17, 58]), sport=st.sampled_from([1234, 443]),
    dport=st.sampled_from([443, 53, 1500]), iif=st.sampled_from(["br-lan", "br-guest"]))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(rules=rule_texts(), ps=st.lists(st.one_of(packets4, packets6), min_size=8, max_size=8))
def test_grouped_and_linear_choose_the_same(rules: str, ps: list[C.Packet]) -> None:
    cfg = cfg_of(rules)
    linear = C.rule_steps(cfg, SPACE)
    steps = G.grouped(linear, min_group=2)  # small groups too, to meet more orders
    rendered = [list(X.render_step(s)) for s in steps]
    maps = {v.name: X.lookup_elements(v) for s in steps if isinstance(v := s.verdict, C.Lookup)}
    for p in ps:
        want = decide(linear, p)
        assert decide(steps, p) == want, (rules, p)
        assert run_rules(rendered, maps, p) == want, (rules, p)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(rules=rule_texts())
def test_a_maps_elements_never_overlap(rules: str) -> None:
    """The kernel refuses an interval map with overlapping elements (EEXIST)."""
    steps = G.grouped(C.rule_steps(cfg_of(rules), SPACE), min_group=2)
    for s in steps:
        if not isinstance(s.verdict, C.Lookup):
            continue
        boxes = [tuple(v) for e in s.verdict.entries for v in itertools.product(*e.values)]
        for a, b in itertools.combinations(boxes, 2):
            assert not all(_meets(x, y) for x, y in zip(a, b)), (a, b, rules)


def _meets(x: Any, y: Any) -> bool:
    if isinstance(x, (int, str)) and isinstance(y, (int, str)):
        return x == y
    if isinstance(x, PortRange) and isinstance(y, PortRange):
        return x.low <= y.high and y.low <= x.high
    return bool(x.overlaps(y))


# ------------------------------------------------- shapes and barriers

def rules_of(*specs: str) -> str:
    return "".join(f"config rule 'r{i}'\n{spec}\n" for i, spec in enumerate(specs))


def test_a_small_config_keeps_its_linear_chain() -> None:
    cfg = cfg_of(rules_of(*(f"\toption dest_ip '198.51.100.{i}'\n\toption use_policy 'pa'"
                            for i in range(3))))
    linear = C.rule_steps(cfg, SPACE)
    assert G.grouped(linear) == linear


def test_a_broader_rule_between_stays_a_barrier() -> None:
    """r0..r3 and r5..r8 have one shape; r4 (10/8 → pb) overlaps r5 only: r5 stays after it."""
    specs = [f"\toption dest_ip '10.0.0.{i}'\n\toption use_policy 'pa'" for i in range(4)]
    specs.append("\toption src_ip '192.168.1.0/24'\n\toption dest_ip '10.0.0.0/8'"
                 "\n\toption use_policy 'pb'")
    specs += [f"\toption dest_ip '{a}'\n\toption use_policy 'pa'"
              for a in ("10.0.0.200", "172.16.0.1", "172.16.0.2", "172.16.0.3")]
    steps = G.grouped(C.rule_steps(cfg_of(rules_of(*specs)), SPACE))
    kinds = [(s.kind, s.rule or s.comment) for s in steps]
    assert kinds[0] == ("group", "rules_v4_1") and ("rule", "r4") in kinds
    first = steps[0].verdict
    assert isinstance(first, C.Lookup)
    assert {e.rule for e in first.entries} == {"r0", "r1", "r2", "r3", "r6", "r7", "r8"}
    assert kinds.index(("rule", "r5")) > kinds.index(("rule", "r4"))
    lan = pkt("192.168.1.10", "10.0.0.200", 6, 1234, 80, "br-lan")
    assert decide(steps, lan) == "policy_pb_v4"


def test_the_benchmarks_thousand_rules_are_three_lookups() -> None:
    from bench.apply_bench import config_text
    cfg = parse_config(config_text(60, 1000), "bench")
    t0 = time.perf_counter()
    part = config_part(cfg)
    took = time.perf_counter() - t0
    assert len(part.rules.rules) == 3, [r for r in part.rules.comments]
    assert sum(len(m.elements or ()) for m in part.rule_maps) == 1250  # tcp: 2 ports each
    assert took < 5  # not a timing test: a guard against a quadratic grouping
    m = lookup_map(next(s.verdict for s in G.grouped(C.rule_steps(cfg, SPACE))
                        if isinstance(s.verdict, C.Lookup) and len(s.verdict.fields) == 3))
    assert set(m.type) == {"ipv4_addr", "inet_proto", "inet_service"} and m.counter
    assert m.type[0] == "ipv4_addr"  # distinct /32s: the most selective field first


def test_the_key_puts_the_field_that_overlaps_least_first() -> None:
    """nft's concatenated interval maps cost in proportion to the elements the first fields
    leave standing (bench/lookup_bench.py: 14 us against 0.4 us per lookup)."""
    specs = [f"\toption dest_ip '203.0.113.0/24'\n\toption proto 'tcp'\n"
             f"\toption dest_port '{1000 + i},{20000 + i}'\n\toption use_policy 'pa'"
             for i in range(20)]
    steps = G.grouped(C.rule_steps(cfg_of(rules_of(*specs)), SPACE))
    look = steps[0].verdict
    assert isinstance(look, C.Lookup) and look.fields == ("dport", "daddr", "l4proto")
    lan = pkt("192.168.1.10", "203.0.113.9", 6, 1234, 20007, "br-lan")
    assert decide(steps, lan) == "policy_pa_v4"
    assert lookup_map(look).type == ("inet_service", "ipv4_addr", "inet_proto")
