"""Flap dampening: the pure hold-down on a fake clock, its options, its report, and the
daemon's use of it (links and verdicts handed in by hand; no root, no kernel)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from mwan.config.errors import ConfigError
from mwan.config.model import Interface
from mwan.config.validate import parse_config
from mwan.daemon.interfaces import Interfaces
from mwan.plan.state import KernelFacts
from mwan.report import text
from mwan.track.dampen import Change, Dampening, DampenParams, disable, expire, record
from mwan.track.machine import Params, after_round, first_connect

P = DampenParams(threshold=3, window=10, holddown=30)


def flaps(p: DampenParams, times: list[float], d: Dampening | None = None
          ) -> tuple[Dampening, list[tuple[float, Change]]]:
    d = d or Dampening()
    changes = []
    for t in times:
        d, c = record(p, d, t)
        if c is not None:
            changes.append((t, c))
    return d, changes


def test_off_by_default_never_holds() -> None:
    p = DampenParams()
    assert not p.enabled
    d, changes = flaps(p, [i * 0.2 for i in range(300)])  # 5 per second for a minute
    assert changes == [] and not d.held and d.recent == ()


def test_threshold_within_window_starts_a_hold_down() -> None:
    d, changes = flaps(P, [0, 4, 9])
    assert changes == [(9, Change.DAMPENED)]
    assert d.held and d.held_until == 39


def test_flaps_spread_wider_than_the_window_do_not() -> None:
    d, changes = flaps(P, [0, 6, 11, 17, 22, 28])  # never 3 within 10 s
    assert changes == [] and not d.held
    assert d.flaps(P, 28) == 2


def test_only_threshold_transitions_are_kept() -> None:
    p = DampenParams(threshold=4, window=60, holddown=5)
    d, _ = flaps(p, [i * 0.2 for i in range(1000)])
    assert len(d.recent) == 4


def test_hold_ends_after_holddown_when_calm() -> None:
    d, _ = flaps(P, [0, 1, 2])
    assert expire(d, 31.9) == (d, None)
    released, change = expire(d, 32)
    assert change is Change.UNDAMPENED and not released.held


def test_flapping_while_held_restarts_the_hold_down_without_a_new_event() -> None:
    d, changes = flaps(P, [0, 1, 2, 20, 21, 22])
    assert changes == [(2, Change.DAMPENED)]  # one start, no second event
    assert d.held_until == 52  # 30 s after the flap that reached the threshold again
    assert expire(d, 40)[1] is None  # the first deadline passed: still held
    assert expire(d, 52)[1] is Change.UNDAMPENED


def test_a_lone_flap_while_held_does_not_extend() -> None:
    d, _ = flaps(P, [0, 1, 2, 25])  # 25: only one flap within the 10 s window
    assert d.held_until == 32


def test_flapping_again_after_release_dampens_again() -> None:
    d, _ = flaps(P, [0, 1, 2])
    d, _ = expire(d, 40)
    d, changes = flaps(P, [41, 42, 43], d)
    assert changes == [(43, Change.DAMPENED)]


def test_disable_releases() -> None:
    d, _ = flaps(P, [0, 1, 2])
    assert disable(d) == (Dampening(), Change.UNDAMPENED)
    assert disable(Dampening()) == (Dampening(), None)


# ------------------------------------------------------------ options

CFG = """\
config interface 'wan'
	option enabled '1'
{opts}
config member 'wan_m1'
	option interface 'wan'

config policy 'only'
	list use_member 'wan_m1'
"""


def iface(opts: str = "") -> Interface:
    return parse_config(CFG.format(opts=opts), "/etc/config/mwan3").interface("wan")


def test_options_default_to_off() -> None:
    i = iface()
    assert (i.flap_threshold, i.flap_window, i.flap_holddown) == (0, 60, 120)
    assert not DampenParams.of(i).enabled


def test_options_read() -> None:
    i = iface("\toption flap_threshold '5'\n\toption flap_window '30'\n"
              "\toption flap_holddown '300'\n")
    assert DampenParams.of(i) == DampenParams(5, 30.0, 300.0)


@pytest.mark.parametrize("opt, value, says", [
    ("flap_threshold", "1", "at least 2"),
    ("flap_threshold", "-1", "below the minimum 0"),
    ("flap_threshold", "many", "not a whole number"),
    ("flap_window", "0", "below the minimum 1"),
    ("flap_holddown", "86401", "above the maximum 86400"),
])
def test_bad_values_name_file_line_and_option(opt: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(CFG.format(opts=f"\toption {opt} '{value}'\n"), "/etc/config/mwan3")
    (p,) = e.value.problems
    assert (p.line, p.option) == (3, opt) and says in p.message
    assert str(p).startswith("/etc/config/mwan3:3:")


# ------------------------------------------------------------ report

def test_text_says_held_down_until() -> None:
    now = 1_000_000.0
    rep = {"interfaces": {"wan": {"online": False, "up": True, "status": "online",
                                  "tracking": "active", "held_until": now + 83}}}
    out = text.interfaces(rep, now)
    assert f"interface wan is held down (flapping) until {text.clock(now + 83)} " \
           "(00h:01m:23s left) and tracking is active" in out


# ------------------------------------------------------------ in the daemon

DAEMON_CFG = """\
config globals 'globals'
	option mmx_mask '0x3F00'

config interface 'wan'
	option enabled '1'
	option device 'wan0'
	option flap_threshold '3'
	option flap_window '60'
	option flap_holddown '1'

config member 'wan_m1'
	option interface 'wan'

config policy 'only'
	list use_member 'wan_m1'
"""


def link(carrier: bool) -> dict[str, dict[str, Any]]:
    return {"wan0": {"up": True, "carrier": carrier}}


def interfaces(actions: list[str] | None = None) -> Interfaces:
    """The daemon's interface state on its own (no kernel, no apply loop)."""
    def sink(now: float, iface: Interface, action: str, reason: str) -> None:
        if actions is not None:
            actions.append(action)

    return Interfaces(parse_config(DAEMON_CFG, "mwan3"), lambda: None, sink)


def test_daemon_holds_a_flapping_carrier_down_then_releases() -> None:
    actions: list[str] = []

    async def storm() -> None:
        d = interfaces(actions)
        d.update(KernelFacts(), link(True))
        assert d.runtime()["wan"].online  # untracked: online with carrier
        for _ in range(3):
            d.update(KernelFacts(), link(False))
            d.update(KernelFacts(), link(True))
        st = d.status["wan"]
        assert st.held and not d.runtime()["wan"].online  # carrier up, but held down
        assert actions.count("dampened") == 1
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not st.held:
                break
        assert not st.held and d.runtime()["wan"].online  # healthy: back in service
        assert actions[-1] == "undampened"

    asyncio.run(storm())


def test_daemon_release_while_unhealthy_stays_offline() -> None:
    async def storm() -> None:
        d = interfaces()
        d.update(KernelFacts(), link(True))
        for _ in range(3):
            d.update(KernelFacts(), link(True))
            d.update(KernelFacts(), link(False))  # ends without carrier
        st = d.status["wan"]
        assert st.held
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not st.held:
                break
        assert not st.held and not d.runtime()["wan"].online
        assert "not healthy" in st.events[-1][1]

    asyncio.run(storm())


# ------------------------------------------------------------ a target answering every other round

@dataclass(frozen=True)
class Answer:
    ok: bool
    latency_ms: float | None = 1.0
    loss_pct: float = 0.0


def disconnects(p: Params, rounds: int) -> list[int]:
    """The rounds at which the machine says disconnected, one target answering every other."""
    step = first_connect(p, online=True)
    out = []
    for n in range(rounds):
        step = after_round(p, step.state, [Answer(n % 2 == 0)])
        if "disconnected" in step.events:
            out.append(n)
    return out


def test_every_other_round_lost_never_flaps_with_down_above_one() -> None:
    # one good round cancels 'disconnecting': the score never reaches 'up'
    assert disconnects(Params(up=3, down=3), 600) == []
    assert disconnects(Params(), 600) == []


def test_every_other_round_lost_with_down_1_flaps_and_dampening_holds_it() -> None:
    p = Params(up=1, down=1, interval=1)
    times = [float(n) for n in disconnects(p, 60)]  # a round a second
    assert len(times) == 30  # down, up, down, up...: the storm dampening is for
    d, changes = flaps(DampenParams(threshold=5, window=60, holddown=120), times)
    assert changes == [(times[4], Change.DAMPENED)]
    assert d.held_until == times[-1] + 120
