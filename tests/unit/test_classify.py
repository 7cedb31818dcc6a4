"""The classifier as data (mwan.plan.classify): its walk, and that the nft rendering agrees.

No root.  The property test reads the rendered nft JSON with a small
interpreter of its own and checks that it decides every drawn connection
as :func:`classify.walk` does on the steps: the two consumers of one list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from fakes.configs import TWO_WANS
from hypothesis import given, settings
from hypothesis import strategies as st

from mwan.config.marks import MarkSpace
from mwan.config.model import Config
from mwan.config.validate import parse_config
from mwan.plan import classify as C
from mwan.plan import nftexpr as X
from mwan.plan.state import AddrInfo, IfaceRuntime, KernelFacts, RouteInfo
from mwan.report.explain import explain

WANS = TWO_WANS
NETWORK = {"lan": "br-lan", "guest": "br-guest"}
UP = {"wan": IfaceRuntime("wan", up=True, online=True, addresses=("10.0.1.2",)),
      "wanb": IfaceRuntime("wanb", up=True, online=True, addresses=("10.0.2.2",))}
SETS: dict[str, list[Any]] = {
    "connected_v4": [ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("10.0.1.0/24")],
    "custom_v4": [ipaddress.ip_network("172.16.0.0/12")],
    "dynamic_v4": [ipaddress.ip_network("203.0.113.0/24")],
    "vpn_v4": [ipaddress.ip_network("198.51.100.7/32")],
    "connected_v6": [], "custom_v6": [], "dynamic_v6": [], "vpn_v6": []}


def cfg_of(rules: str) -> Config:
    return parse_config(WANS + rules, "mwan3", NETWORK)


def pkt(src: str, dst: str, proto: int = 6, dport: int | None = 80, iif: str | None = "br-lan",
        sport: int | None = None) -> C.Packet:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    return C.Packet("ipv4" if s.version == 4 else "ipv6", s, d, proto, sport, dport, iif)


def decide(cfg: Config, p: C.Packet, start: str = "classify",
           contents: Mapping[str, Sequence[Any]] = SETS) -> str | None:
    """The chain the walk's decision goes to (mark_N, policy_P_v4, ...), None for main."""
    d = C.walk(C.classifier(cfg, UP), start, p, contents).decision
    return None if d is None else str(X.render_verdict(d)["goto"]["target"])


RULES = """
config rule 'lan_only'
	option src_iface 'lan'
	option proto 'tcp'
	option dest_port '443'
	option use_policy 'pab'
config rule 'rest'
	option use_policy 'pa'
"""


def test_walk_takes_the_datapaths_order() -> None:
    cfg = cfg_of(RULES)
    main = f"mark_{MarkSpace(cfg.globals.mmx_mask).default_id}"
    out = "198.51.100.1"
    assert decide(cfg, pkt("192.168.1.10", out, dport=443)) == "policy_pab_v4"
    assert decide(cfg, pkt("192.168.1.10", out, dport=443, iif="br-guest")) == "policy_pa_v4"
    assert decide(cfg, pkt("192.168.1.10", out, dport=80)) == "policy_pa_v4"
    # arriving on a WAN: that WAN (id 2), unless from a connected network
    assert decide(cfg, pkt("198.51.100.9", "192.168.1.10", iif="eth2")) == "mark_2"
    assert decide(cfg, pkt("10.0.1.1", "192.168.1.10", iif="eth1")) == main
    # to connected, custom, dynamic: main's mark (the default id)
    for dst in ("192.168.1.20", "172.16.3.4", "203.0.113.5"):
        assert decide(cfg, pkt("192.168.1.10", dst)) == main, dst
    # from a WAN's address: that WAN before the rules; the router's own: rules first
    assert decide(cfg, pkt("10.0.2.2", out, iif=None)) == "mark_2"
    assert decide(cfg, pkt("10.0.2.2", out, iif=None), "classify_out") == "policy_pa_v4"


def test_what_is_not_known_does_not_match() -> None:
    cfg = cfg_of(RULES)
    w = C.walk(C.classifier(cfg, UP), "classify", pkt("192.168.1.10", "198.51.100.1", dport=443,
                                                      iif=None), {})
    lan = next(o for o in w.outcomes if o.step.rule == "lan_only")
    assert lan.applied is None and lan.failed == C.Iif("br-lan")
    assert w.decision == C.ToPolicy("pa", "ipv4")


def test_src_iface_steps_carry_the_device() -> None:
    steps = C.rule_steps(cfg_of(RULES.replace("'lan'", "'wanb'")), MarkSpace(0x3F00))
    assert [m for st_ in steps for m in st_.matches if isinstance(m, C.Iif)] == \
        [C.Iif("eth2"), C.Iif("eth2")]


# ------------------------------------------------- the rendering read back

def _left(e: Any, p: C.Packet) -> Any:
    """The value of a left-hand expression for the packet; None: the match cannot hold."""
    if "meta" in e:
        return {"nfproto": p.family, "iifname": p.iif, "l4proto": p.proto, "mark": 0}[
            e["meta"]["key"]]
    if "&" in e:
        return _left(e["&"][0], p) & e["&"][1]
    proto, field = e["payload"]["protocol"], e["payload"]["field"]
    if proto in ("ip", "ip6"):
        if (proto == "ip") != (p.family == "ipv4"):
            return None
        return p.src if field == "saddr" else p.dst
    if p.proto != {"tcp": 6, "udp": 17}[proto]:
        return None
    return p.sport if field == "sport" else p.dport


def _in(right: Any, v: Any, sets: Mapping[str, Sequence[Any]]) -> bool:
    if isinstance(right, str) and right.startswith("@"):
        return any(v in n for n in sets[right[1:]] if n.version == v.version)
    if isinstance(right, dict) and "set" in right:
        return any(_in(x, v, sets) for x in right["set"])
    if isinstance(right, dict) and "prefix" in right:
        net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}")
        return net.version == v.version and v in net
    if isinstance(right, dict) and "range" in right:
        return bool(right["range"][0] <= v <= right["range"][1])
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_address(right) == v
    return bool(right == v)


def run_nft(chains: Mapping[str, Sequence[Sequence[Any]]], name: str, p: C.Packet,
            sets: Mapping[str, Sequence[Any]]) -> str | None:
    """Where the rendered chain sends the packet: a goto target outside the chains, or None."""
    for rule in chains[name]:
        ok = True
        for stmt in rule:
            if "match" in stmt:
                m = stmt["match"]
                v = _left(m["left"], p)
                hit = v is not None and _in(m["right"], v, sets)
                if not (hit if m["op"] in ("==", "in") else v is not None and not hit):
                    ok = False
                    break
            elif "vmap" in stmt:
                v = _left(stmt["vmap"]["key"], p)
                target = next((t for k, t in stmt["vmap"]["data"]["set"]
                               if v is not None and _in(k, v, sets)), None)
                if target is None:
                    ok = False
                    break
                return str(target["goto"]["target"])
            elif "goto" in stmt or "jump" in stmt:
                target = (stmt.get("goto") or stmt["jump"])["target"]
                if target not in chains:
                    return str(target)
                got = run_nft(chains, target, p, sets)
                if got is not None or "goto" in stmt:
                    return got
            elif "return" in stmt:
                return None
        if not ok:
            continue
    return None


@st.composite
def rule_texts(draw: st.DrawFn) -> str:
    """Up to four rules, each option set or not (combinations validation accepts)."""
    out = []
    for i in range(draw(st.integers(0, 4))):
        lines = [f"config rule 'r{i}'"]
        proto = draw(st.sampled_from(["tcp", "udp", "all", "tcp", "udp", "icmp", "47"]))
        lines.append(f"\toption proto '{proto}'")
        if proto in ("tcp", "udp"):
            for opt in ("src_port", "dest_port"):
                v = draw(st.sampled_from(["1000-2000", None, "443", "80,53"]))
                if v:
                    lines.append(f"\toption {opt} '{v}'")
        for opt, values in (("src_ip", ["192.168.1.0/25", "192.168.1.10", "10.0.0.0/8",
                                        "0.0.0.0/0"]),
                            ("dest_ip", ["198.51.100.0/24", "198.51.100.7", "198.51.100.9"]),
                            ("src_iface", ["lan", "guest", "wan", "wanb"]),
                            ("ipset", ["vpn"])):
            v = draw(st.sampled_from([None, *values, None]))
            if v:
                lines.append(f"\toption {opt} '{v}'")
        lines.append(f"\toption use_policy '{draw(st.sampled_from(['pa', 'pab', 'default']))}'")
        if draw(st.booleans()):
            lines.append("\toption sticky '1'")
        out.append("\n".join(lines) + "\n")
    return "".join(out)


# mostly LAN traffic to the outside, so that the rules get to decide
packets = st.builds(
    pkt, src=st.sampled_from(["192.168.1.10", "192.168.1.200", "198.51.100.5", "192.168.1.10",
                              "10.0.1.1", "10.0.2.2"]),
    dst=st.sampled_from(["198.51.100.7", "198.51.100.9", "8.8.8.8", "198.51.100.7",
                         "192.168.1.20", "203.0.113.1"]),
    proto=st.sampled_from([6, 17, 1, 47, 6, 17]), dport=st.sampled_from([443, None, 53, 1500]),
    iif=st.sampled_from(["br-lan", "br-guest", "br-lan", "br-guest", "eth1", "eth2"]),
    sport=st.sampled_from([1234, None, 80]))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(rules=rule_texts(), p=packets, wanb_up=st.booleans())
def test_rendered_nft_decides_as_the_walk(rules: str, p: C.Packet, wanb_up: bool) -> None:
    cfg = cfg_of(rules)
    runtime = {**UP, "wanb": IfaceRuntime("wanb", up=wanb_up, online=wanb_up,
                                          addresses=("10.0.2.2",))}
    steps = C.classifier(cfg, runtime)
    rendered = {name: [X.render_step(s) for s in chain] for name, chain in steps.items()}
    for start in ("classify", "classify_out"):
        d = C.walk(steps, start, p, SETS).decision
        want = None if d is None else X.render_verdict(d)["goto"]["target"]
        assert run_nft(rendered, start, p, SETS) == want, (start, rules, p)


# ------------------------------------------------- explain reads the same steps

def test_explain_sees_src_iface_dynamic_sets_and_inbound() -> None:
    cfg = cfg_of(RULES)
    facts = KernelFacts(
        routes=(RouteInfo("ipv4", "192.168.1.0/24", dev="br-lan", scope=253),
                RouteInfo("ipv4", "10.0.1.0/24", dev="eth1", scope=253),
                RouteInfo("ipv4", "default", dev="eth1", gateway="10.0.1.1")),
        addresses=(AddrInfo("ipv4", "10.0.1.2", 24, "eth1"),
                   AddrInfo("ipv4", "192.168.1.1", 24, "br-lan")))
    conn = {"ipv4": ["192.168.1.0/24", "10.0.1.0/24"], "ipv6": []}

    def ask(src: str, dst: str, dport: int = 443, **kw: Any) -> dict[str, Any]:
        return explain(cfg, UP, conn, src, dst, "tcp", None, dport, facts=facts, **kw)

    # src_iface lan: the device of main's route back to the source is br-lan
    res = ask("192.168.1.10", "198.51.100.1")
    assert (res["rule"], res["wan"]) == ("lan_only", "balanced"), res
    res = ask("192.168.1.10", "198.51.100.1", iif="br-guest")
    assert res["rule"] == "rest" and \
        "rule lan_only: no (arrives on br-guest, not br-lan (src_iface lan))" in res["steps"]
    res = explain(cfg, UP, conn, "192.168.1.10", "198.51.100.1", "tcp", None, 443)
    assert res["rule"] == "rest" and any("is not known" in s for s in res["steps"]), res
    # the dynamic set: main; arriving on a WAN: that WAN (main for a connected source)
    res = ask("192.168.1.10", "203.0.113.5", dynamic={"ipv4": ["203.0.113.0/24"]})
    assert (res["wan"], res["verdict"]) == ("default", "main table (dynamic set)")
    assert ask("198.51.100.9", "192.168.1.10", iif="eth2")["wan"] == "wanb"
    assert ask("10.0.1.1", "192.168.1.10")["verdict"] == "main table (connected network)"
    # the router's own address is no arriving device: its WAN, as before
    assert ask("10.0.1.2", "198.51.100.1")["wan"] == "wan"
    with pytest.raises(ValueError, match="iif"):
        ask("192.168.1.10", "198.51.100.1", iif="eth*")
