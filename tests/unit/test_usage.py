"""Per-WAN usage and data caps (issue 15): the pure book, periods, the file, the plan."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from mwan.config.caps import period_bounds, read_period, read_size
from mwan.config.errors import ConfigError
from mwan.config.fields import BadValue
from mwan.config.model import Config
from mwan.config.validate import parse_config
from mwan.daemon import usage as U
from mwan.plan.compile import USAGE_IN, USAGE_OUT, compile_nft
from mwan.plan.policy import choose
from mwan.plan.state import IfaceRuntime, KernelFacts
from mwan.report import text
from mwan.web import pages

CAPPED = """
config interface 'wan'
	option enabled '1'
	option data_cap '1M'
	option data_cap_period 'daily'
	option data_cap_action 'standby'

config interface 'wanb'
	option enabled '1'

config member 'wan_m1'
	option interface 'wan'

config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'

config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
"""


def cfg(text: str = CAPPED) -> Config:
    return parse_config(text, "f")


def test_sizes() -> None:
    assert read_size("20G") == 20 * 10**9 and read_size("500M") == 500 * 10**6
    assert read_size("1.5T") == 1_500_000_000_000 and read_size("10GiB") == 10 * 2**30
    assert read_size("900") == 900 and read_size("2 gb") == 2 * 10**9
    for bad in ("", "G", "-1G", "20X", "0"):
        with pytest.raises(BadValue):
            read_size(bad)


def test_periods() -> None:
    assert read_period("daily") == "daily" and read_period("weekly") == "weekly mon"
    assert read_period("Weekly Sunday") == "weekly sun" and read_period("monthly") == "monthly 1"
    assert read_period("monthly 15") == "monthly 15"
    for bad in ("yearly", "monthly 0", "monthly 32", "weekly someday", "daily 3"):
        with pytest.raises(BadValue):
            read_period(bad)
    now = dt.datetime(2026, 3, 10, 14, 30)
    assert period_bounds("daily", now) == (dt.datetime(2026, 3, 10), dt.datetime(2026, 3, 11))
    assert period_bounds("weekly mon", now) == (dt.datetime(2026, 3, 9), dt.datetime(2026, 3, 16))
    assert period_bounds("monthly 15", now) == (dt.datetime(2026, 2, 15),
                                                dt.datetime(2026, 3, 15))
    assert period_bounds("monthly 1", now)[0] == dt.datetime(2026, 3, 1)
    # day 31 in February: the month's last day
    assert period_bounds("monthly 31", dt.datetime(2026, 3, 5)) == (
        dt.datetime(2026, 2, 28), dt.datetime(2026, 3, 31))
    assert period_bounds("monthly 10", dt.datetime(2026, 1, 5))[0] == dt.datetime(2025, 12, 10)


def test_bad_cap_options_name_file_and_line() -> None:
    text = CAPPED.replace("'1M'", "'lots'").replace("'standby'", "'cut'")
    with pytest.raises(ConfigError) as exc:
        cfg(text)
    msg = str(exc.value)
    assert "f:4: section 'wan' option 'data_cap': 'lots' is not a size" in msg
    assert "f:6: section 'wan' option 'data_cap_action'" in msg
    c = cfg(CAPPED.replace("\toption data_cap '1M'\n", ""))
    assert any("data_cap_period" in w and "ignored without data_cap" in w for w in c.warnings)


def test_the_book_adds_growth_and_survives_counter_resets() -> None:
    b = U.UsageBook()
    b.add({"wan": {"in": (10, 1000), "out": (5, 500)}}, 1.0)
    b.add({"wan": {"in": (12, 1600), "out": (5, 500)}}, 2.0)
    u = b.get("wan")
    assert u.packets == {"in": 12, "out": 5} and u.bytes == {"in": 1600, "out": 500}
    assert u.last_traffic == 2.0
    b.add({"wan": {"in": (3, 300), "out": (1, 100)}}, 3.0)  # chain re-created: from zero
    assert u.bytes == {"in": 1900, "out": 600} and u.period_bytes == 2500
    # the file keeps everything (and loads back the same)
    again = U.UsageBook.loads(b.dumps())
    assert again.get("wan") == u


def test_cap_events_once_per_threshold_and_period() -> None:
    c = cfg()
    b = U.UsageBook()
    now = dt.datetime(2026, 3, 10, 12).timestamp()
    assert b.caps(c, now) == []
    b.add({"wan": {"out": (1, 760_000)}}, now)
    evs = b.caps(c, now)
    assert [(e.action, e.interface) for e in evs] == [("datacap_warn", "wan")]
    assert "75% of the data cap used: 760K of 1M" in evs[0].reason
    assert b.caps(c, now) == []  # once
    b.add({"wan": {"out": (2, 960_000)}}, now)
    assert [e.reason for e in b.caps(c, now)] == ["95% of the data cap used: 960K of 1M"]
    assert not b.standby(c)
    b.add({"wan": {"out": (3, 1_000_001)}}, now)
    [reached] = b.caps(c, now)
    assert reached.action == "datacap_reached" and "standby" in reached.reason
    assert b.standby(c) == {"wan"}
    tomorrow = now + 86400
    [reset] = b.caps(c, tomorrow)
    assert reset.action == "datacap_reset" and b.get("wan").period_bytes == 0
    assert not b.standby(c)
    # straight past the cap: only the cap is announced
    b.add({"wan": {"out": (4, 3_000_000)}}, tomorrow)
    assert [e.action for e in b.caps(c, tomorrow)] == ["datacap_reached"]


def test_a_cap_on_a_wan_without_traffic_announces_nothing() -> None:
    b = U.UsageBook()
    now = dt.datetime(2026, 3, 10, 12).timestamp()
    for k in range(3):
        assert b.caps(cfg(), now + k * 86400) == []
    assert b.report(cfg().interface("wan"))["cap_used_pct"] == 0


def test_standby_leaves_the_policy_while_another_member_is_online() -> None:
    c = cfg()
    both = {"wan": IfaceRuntime("wan", up=True, online=True, standby=True),
            "wanb": IfaceRuntime("wanb", up=True, online=True)}
    assert [s.interface for s in choose(c, c.policy("wan_wanb"), "ipv4", both).shares] == [
        "wanb"]
    assert choose(c, c.policy("wan_wanb"), "ipv4", both).notes == (
        "wan skipped: over its data cap (standby), another member is online",)
    alone = {**both, "wanb": IfaceRuntime("wanb", up=True, online=False)}
    assert [s.interface for s in choose(c, c.policy("wan_wanb"), "ipv4", alone).shares] == [
        "wan"]  # no other member online: back in use


def test_each_wan_mark_chain_counts_in_and_out() -> None:
    c = cfg()
    rt = {i.name: IfaceRuntime(i.name, up=True, online=True) for i in c.interfaces}
    table = compile_nft(c, rt, KernelFacts())
    chain = next(ch for ch in table.chains if ch.name == "mark_1")
    assert chain.comments == (None, USAGE_IN, USAGE_OUT)
    assert chain.rules[1][0] == {"match": {"op": "==", "left": {"meta": {"key": "iifname"}},
                                           "right": "wan"}}
    assert chain.rules[2][0]["match"]["op"] == "!=" and chain.rules[1][1] == {"counter": None}
    listed = [{"chain": "mark_1", "comment": USAGE_IN, "expr": [
        {"match": {}}, {"counter": {"packets": 3, "bytes": 300}}]},
        {"chain": "mark_1", "comment": USAGE_OUT, "expr": [{"counter": {"packets": 4,
                                                                        "bytes": 40}}]},
        {"chain": "rules", "comment": USAGE_IN, "expr": [{"counter": {"packets": 9,
                                                                      "bytes": 9}}]}]
    assert U.counters_of(listed, c) == {"wan": {"in": (3, 300), "out": (4, 40)}}


def test_a_corrupt_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "usage.json"
    path.write_text('{"version": 1, "interfaces": {"wan": {"packets": 3}}}')
    with caplog.at_level(logging.ERROR):
        book = U.load(str(path))
    assert book.usage == {} and (tmp_path / "usage.json.corrupt").exists()
    assert "is corrupt" in caplog.text and "counting from zero" in caplog.text
    assert U.load(str(tmp_path / "absent.json")).usage == {}


def test_saving_is_atomic_and_an_unwritable_dir_is_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = cfg(CAPPED.replace("config interface 'wan'",
                           f"config globals 'globals'\n\toption state_dir '{tmp_path}/s'\n\n"
                           "config interface 'wan'", 1))
    meter = U.UsageMeter(c, lambda: None, lambda ev: None, lambda: None)  # type: ignore[arg-type,return-value]
    meter.book.add({"wan": {"in": (1, 10)}}, 1.0)
    meter.save()
    assert U.load(str(tmp_path / "s" / "usage.json")).get("wan").bytes["in"] == 10
    assert [n for n in os.listdir(tmp_path / "s") if n.startswith(".usage.")] == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    meter.path = str(blocker / "usage.json")
    with caplog.at_level(logging.ERROR):
        meter.save()
        meter.save()
    assert caplog.text.count("cannot be written") == 1 and "routing goes on" in caplog.text


def test_env_moves_the_default_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MWAN_STATE_DIR", "/tmp/elsewhere")
    assert U.state_dir(cfg()) == "/tmp/elsewhere"
    explicit = cfg("config globals 'g'\n\toption state_dir '/srv/mwan'\n")
    assert U.state_dir(explicit) == "/srv/mwan"


def test_status_text_and_the_web_usage_bar() -> None:
    c = cfg()
    b = U.UsageBook()
    b.add({"wan": {"in": (10, 900_000), "out": (5, 60_000)}}, 1.0)
    assert [e.action for e in b.caps(c, dt.datetime(2026, 3, 10, 12).timestamp())] == [
        "datacap_warn"]  # the first reading counts in this period
    rep = {"interfaces": {"wan": {"usage": b.report(c.interface("wan")), "standby": False},
                          "wanb": {"usage": b.report(c.interface("wanb")), "standby": False}}}
    out = text.usage(rep)
    assert " wan: 900.0K / 60.0K, 10 / 5 packets; cap 960.0K of 1.0M (96%, daily, standby)" in out
    assert " wanb: 0B / 0B" in out
    bar = pages.usage_bar(b.report(c.interface("wan")))
    assert "<svg" in bar and "of 1.0 MB" in bar
    assert pages.usage_bar(b.report(c.interface("wanb"))).startswith('<span class="usage">')


def test_idle_interval_follows_the_counters(tmp_path: Path) -> None:
    class FakeTracker:
        def __init__(self) -> None:
            self.idle: list[float | None] = []

        def set_idle(self, seconds: float | None) -> None:
            self.idle.append(seconds)

    t = FakeTracker()
    c = parse_config(f"config globals 'g'\n\toption state_dir '{tmp_path}'\n" + CAPPED.replace(
        "\toption data_cap '1M'\n", "\toption idle_interval '300'\n"), "f")
    meter = U.UsageMeter(c, lambda: None, lambda ev: None, lambda: None,  # type: ignore[arg-type,return-value]
                         lambda: {"wan": t})
    meter.book = U.UsageBook()  # not the host's file
    meter._follow_idle(100.0)
    assert t.idle == [300.0]  # no traffic yet
    meter.book.add({"wan": {"in": (5, 500)}}, 110.0)
    meter._follow_idle(110.0)
    assert t.idle[-1] is None  # traffic: the usual interval
    meter.book.add({"wan": {"in": (5, 500)}}, 120.0)  # no growth
    meter._follow_idle(120.0)
    assert t.idle[-1] is None  # one quiet reading is not idle yet
    meter._follow_idle(130.0)
    assert t.idle[-1] == 300.0


def test_metrics_have_usage_caps_and_webhook_counts() -> None:
    import asyncio
    from typing import Any

    from mwan.web.metrics import Metrics

    c = cfg()
    b = U.UsageBook()
    b.add({"wan": {"in": (10, 1_200_000), "out": (5, 60_000)}}, 1.0)
    b.caps(c, dt.datetime(2026, 3, 10, 12).timestamp())
    rep: dict[str, Any] = {
        "interfaces": {n: {"usage": b.report(c.interface(n)), "standby": n in b.standby(c)}
                       for n in ("wan", "wanb")},
        "rules": [], "policies": {}, "uptime_s": 1,
        "notify": {"ops": {"sent": 3, "failed": 1, "attempts_failed": 4, "dropped": 2,
                           "queued": 0, "last_error": "HTTP 500"}}}

    class Door:
        def subscribe(self, listener: object) -> object:
            return lambda: None

        async def call(self, cmd: str, args: object = None) -> Any:
            return rep

    body, _ = asyncio.run(Metrics(Door()).render())  # type: ignore[arg-type]
    out = body.decode()
    assert 'mwan_interface_bytes_total{direction="in",interface="wan"} 1.2e+06' in out
    assert 'mwan_interface_bytes_total{direction="out",interface="wanb"} 0.0' in out
    assert 'mwan_interface_packets_total{direction="out",interface="wan"} 5.0' in out
    assert 'mwan_interface_data_cap_bytes{interface="wan"} 1e+06' in out
    assert 'mwan_interface_standby{interface="wan"} 1.0' in out
    assert 'mwan_interface_period_bytes{interface="wanb"}' not in out  # no cap there
    assert 'mwan_notify_failed_total{notify="ops"} 1.0' in out
    assert 'mwan_notify_dropped_total{notify="ops"} 2.0' in out


def test_state_dir_must_be_absolute() -> None:
    with pytest.raises(ConfigError, match="f:3: section 'globals' option 'state_dir': "
                       "'var/lib' is not an absolute path"):
        parse_config("\nconfig globals 'globals'\n\toption state_dir 'var/lib'\n", "f")


def test_a_clean_stop_forgets_the_raw_counters(tmp_path: Path) -> None:
    import asyncio

    c = parse_config(f"config globals 'g'\n\toption state_dir '{tmp_path}'\n" + CAPPED, "f")

    async def read() -> list[dict[str, object]]:
        return [{"chain": "mark_1", "comment": USAGE_IN,
                 "expr": [{"counter": {"packets": 7, "bytes": 700}}]}]

    meter = U.UsageMeter(c, read, lambda ev: None, lambda: None)
    asyncio.run(meter.stop())
    saved = U.load(str(tmp_path / "usage.json")).get("wan")
    assert saved.bytes["in"] == 700 and saved.last == {}  # the next table starts at zero
    again = U.UsageBook({"wan": saved})
    again.add({"wan": {"in": (9, 900)}}, 2.0)  # more than before, but a new counter
    assert again.get("wan").bytes["in"] == 1600
