"""Issue 14's options: sub-second timers, quality levels, DNS probes, quality-aware policies.

Validation (FILE:LINE), the pure member choice (avoid_degraded, balance latency with its
margins), the DNS packets, the report text.
"""

from __future__ import annotations

import struct

import pytest

from mwan.config.errors import ConfigError, Problem
from mwan.config.model import Config
from mwan.config.validate import parse_config
from mwan.plan.policy import choose
from mwan.plan.state import IfaceRuntime
from mwan.report import text
from mwan.track.packets import dns_query, parse_dns_answer

PATH = "/etc/config/mwan3"


def iface(extra: str = "", name: str = "wan") -> str:
    return f"""
config interface '{name}'
	option enabled '1'
	list track_ip '192.0.2.1'
{extra}"""


def problems(cfg_text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as e:
        parse_config(cfg_text, PATH)
    return list(e.value.problems)


def one(cfg_text: str) -> Problem:
    found = problems(cfg_text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# ---------------------------------------------------------------- timers

@pytest.mark.parametrize("value,seconds", [("10", 10.0), ("0.2", 0.2), ("200ms", 0.2),
                                           ("1.5s", 1.5), (".5", 0.5), ("86400", 86400.0)])
def test_timers_take_fractions_and_milliseconds(value: str, seconds: float) -> None:
    cfg = parse_config(iface(f"\toption interval '{value}'\n"), PATH)
    i = cfg.interface("wan")
    assert i.interval == pytest.approx(seconds)
    assert i.failure_interval == i.recovery_interval == i.interval  # default_from interval


def test_mwan3_integers_keep_their_meaning() -> None:
    i = parse_config(iface("\toption timeout '2'\n\toption interval '5'\n"), PATH).interface("wan")
    assert (i.timeout, i.interval) == (2, 5)


@pytest.mark.parametrize("opt,value,words", [
    ("interval", "10 minutes", "not a duration"),
    ("interval", "10ms", "below the minimum"),
    ("timeout", "61", "above the maximum 60"),
    ("down", "2.5", "only the timers"),
    ("count", "1.5", "not a whole number"),
    ("up", "200ms", "not a whole number"),
])
def test_bad_timer_values_name_file_and_line(opt: str, value: str, words: str) -> None:
    p = one(iface(f"\toption {opt} '{value}'\n"))
    assert (p.path, p.line, p.option) == (PATH, 5, opt)
    assert words in p.message


def test_window_shorter_than_the_interval() -> None:
    p = one(iface("\toption interval '30'\n\toption quality_window '10'\n"))
    assert (p.option, p.line) == ("quality_window", 6)
    assert "shorter than interval 30 s" in p.message
    # mwan3's long intervals with the default window and no level: fine
    parse_config(iface("\toption interval '120'\n"), PATH)


def test_quality_levels_must_be_in_order() -> None:
    found = problems(iface("\toption warn_loss '10'\n\toption warn_loss_recovery '10'\n"
                           "\toption warn_latency '500'\n\toption down_latency '400'\n"
                           "\toption down_loss_recovery '5'\n"))
    by_opt = {p.option: p for p in found}
    assert set(by_opt) == {"warn_loss_recovery", "warn_latency", "down_loss_recovery"}
    assert "not below warn_loss 10%" in by_opt["warn_loss_recovery"].message
    assert "warning level comes before the down level" in by_opt["warn_latency"].message
    assert "needs down_loss" in by_opt["down_loss_recovery"].message
    assert by_opt["warn_latency"].line == 7


def test_dns_options() -> None:
    cfg = parse_config(iface("\toption track_method 'dns'\n\toption track_dns_name "
                             "'example.org.'\n"), PATH)
    assert (cfg.interface("wan").track_method, cfg.interface("wan").track_dns_name) == (
        "dns", "example.org")
    assert parse_config(iface("\toption track_method 'nslookup'\n"), PATH).interface(
        "wan").track_dns_name == "."
    p = one(iface("\toption track_dns_name 'a..b'\n"))
    assert (p.option, p.line) == ("track_dns_name", 5)


def test_policy_options_and_defaults() -> None:
    cfg = parse_config(iface() + """
config member 'm1'
	option interface 'wan'
config policy 'p'
	list use_member 'm1'
	option balance 'latency'
	option avoid_degraded '1'
""", PATH)
    p = cfg.policy("p")
    assert (p.balance, p.avoid_degraded, p.latency_margin, p.latency_margin_pct) == (
        "latency", True, 20, 20)
    assert parse_config(iface(), PATH).interfaces[0].track_passive is False
    bad = one(iface() + "\nconfig policy 'p'\n\toption balance 'fastest'\n")
    assert bad.option == "balance"


# ---------------------------------------------------------------- member choice

TWO = """
config interface 'wan'
	option enabled '1'
config interface 'wanb'
	option enabled '1'
config interface 'wanc'
	option enabled '1'
config member 'a'
	option interface 'wan'
config member 'b'
	option interface 'wanb'
config member 'c'
	option interface 'wanc'
	option metric '2'
config policy 'p'
	list use_member 'a'
	list use_member 'b'
	list use_member 'c'
"""


def cfg_with(*opts: str) -> Config:
    return parse_config(TWO + "".join(f"\toption {o}\n" for o in opts), PATH)


def rt(**kw: tuple[bool, float | None]) -> dict[str, IfaceRuntime]:
    out = {}
    for name in ("wan", "wanb", "wanc"):
        degraded, lat = kw.get(name, (False, None))
        out[name] = IfaceRuntime(name, up=True, online=True, degraded=degraded, latency_ms=lat)
    return out


def names(cfg: Config, runtime: dict[str, IfaceRuntime]) -> list[str]:
    return [s.interface for s in choose(cfg, cfg.policy("p"), "ipv4", runtime).shares]


def test_default_is_mwan3s_weights_whatever_the_quality() -> None:
    cfg = cfg_with()
    c = choose(cfg, cfg.policy("p"), "ipv4", rt(wan=(True, 900.0), wanb=(False, 5.0)))
    assert [s.interface for s in c.shares] == ["wan", "wanb"] and not c.notes


def test_avoid_degraded_skips_a_degraded_member_while_a_healthy_one_is_online() -> None:
    cfg = cfg_with("avoid_degraded '1'")
    c = choose(cfg, cfg.policy("p"), "ipv4", rt(wan=(True, None)))
    assert [s.interface for s in c.shares] == ["wanb"]
    assert c.shares[0].percent == 100
    assert any("wan skipped: degraded" in n for n in c.notes)
    # both degraded: both still used (the tier is not given up for the next one)
    c = choose(cfg, cfg.policy("p"), "ipv4", rt(wan=(True, None), wanb=(True, None)))
    assert [s.interface for s in c.shares] == ["wan", "wanb"]
    assert any("no healthy member of metric 1" in n for n in c.notes)


def test_balance_latency_picks_the_fastest_and_keeps_it_within_the_margin() -> None:
    cfg = cfg_with("balance 'latency'")
    first = rt(wan=(False, 50.0), wanb=(False, 30.0))
    assert names(cfg, first) == ["wanb"]
    # wanb picked last time: wan at 25 ms is faster by 5 ms only (< 20 ms margin): kept
    r = rt(wan=(False, 25.0), wanb=(False, 30.0))
    r["wanb"] = IfaceRuntime("wanb", up=True, online=True, latency_ms=30.0, latency_pick=("p",))
    c = choose(cfg, cfg.policy("p"), "ipv4", r)
    assert [s.interface for s in c.shares] == ["wanb"] and "kept" in c.notes[0]
    # 100 ms against 30 ms: past both margins (20 ms, 20 %): switches
    r["wanb"] = IfaceRuntime("wanb", up=True, online=True, latency_ms=100.0,
                             latency_pick=("p",))
    assert names(cfg, r) == ["wan"]
    # the lower tier's member is never chosen while metric 1 has one online
    assert "wanc" not in names(cfg, rt(wanc=(False, 1.0), wan=(False, 500.0)))


def test_balance_latency_relative_margin() -> None:
    cfg = cfg_with("balance 'latency'", "latency_margin '0'", "latency_margin_pct '50'")
    r = rt(wan=(False, 120.0))
    r["wanb"] = IfaceRuntime("wanb", up=True, online=True, latency_ms=200.0, latency_pick=("p",))
    assert names(cfg, r) == ["wanb"]  # 80 ms faster, but 50 % of 200 is 100
    r["wan"] = IfaceRuntime("wan", up=True, online=True, latency_ms=90.0)
    assert names(cfg, r) == ["wan"]


def test_balance_latency_with_no_latency_yet_takes_the_first_listed() -> None:
    cfg = cfg_with("balance 'latency'")
    assert names(cfg, rt()) == ["wan"]
    assert names(cfg, rt(wanb=(False, 40.0))) == ["wanb"]


# ---------------------------------------------------------------- DNS packets

def test_dns_query_for_the_root_and_a_name() -> None:
    root = dns_query(0x1234, ".", 2)
    assert root == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\0" + b"\0\x02\0\x01"
    q = dns_query(7, "example.org", 1)
    assert q[12:] == b"\x07example\x03org\0\0\x01\0\x01"


def test_dns_answers_any_rcode_counts_only_for_our_id() -> None:
    def answer(ident: int, flags: int) -> bytes:
        return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0)
    assert parse_dns_answer(answer(7, 0x8180), 7) == "NOERROR"
    assert parse_dns_answer(answer(7, 0x8183), 7) == "NXDOMAIN"
    assert parse_dns_answer(answer(7, 0x8182), 7) == "SERVFAIL"
    assert parse_dns_answer(answer(8, 0x8180), 7) is None  # another query's answer
    assert parse_dns_answer(answer(7, 0x0100), 7) is None  # a query, not an answer
    assert parse_dns_answer(b"\0\x07", 7) is None


# ---------------------------------------------------------------- report text

def test_status_says_degraded_with_the_reason() -> None:
    report = {"interfaces": {"wan": {
        "online": True, "status": "online", "tracking": "active", "up": True,
        "online_since": 1, "up_since": 1, "degraded": True,
        "quality": {"sent": 100, "received": 88, "latency_ms": 20.0, "jitter_ms": 3.0,
                    "loss_pct": 12.0, "window_s": 60, "level": "degraded",
                    "reason": "loss 12%"},
        "targets": [], "score": 10}}}
    out = text.interfaces(report, 55)
    assert " interface wan is online (degraded: loss 12%) 00h:00m:54s" in out
    report["interfaces"]["wan"]["targets"] = [{
        "ip": "192.0.2.1", "status": "up", "latency_ms": 20.0, "loss_pct": 0.0,
        "window": {"sent": 100, "received": 88, "latency_ms": 20.0, "jitter_ms": 3.0,
                   "loss_pct": 12.0}}]
    t = text.targets(report)
    assert "quality over 60 s: latency 20.0 ms, jitter 3.0 ms, loss 12% (degraded: loss 12%)" in t
    assert "window   latency    20.0 ms  loss  12%  jitter 3.0 ms" in t
