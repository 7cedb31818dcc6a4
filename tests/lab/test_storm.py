"""Flap storms in the lab: the daemon keeps answering, applies coalesce, the state settles;
and with ``flap_threshold`` a flapping WAN is held down, then let back.

Two tracked WANs; ISP 1 takes its side of wan's link down and up five
times a second while a thread asks the daemon for its state back to back.
Timings here are generous bounds; bench/storm_bench.py measures them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from mwan.daemon.control import call
from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces
from mwan.lab.storm import CarrierFlapper, ControlSampler, percentile

pytestmark = pytest.mark.lab

FAST: dict[str, Any] = {"interval": 1, "failure_interval": 1, "recovery_interval": 1,
                        "timeout": 1, "up": 3, "down": 3}
STORM_S = 15


def config(lab: Lab, **opts: Any) -> str:
    return lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2],
                          **{**FAST, **opts}) + TWO_WAN_POLICIES


def state(r: MwanRouter) -> dict[str, Any]:
    return call(r.run_dir, "state")  # type: ignore[no-any-return]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, r: MwanRouter) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s\n{state(r)['interfaces']}\n"
                                 f"{r.log()[-3000:]}")
        time.sleep(0.05)
    return time.monotonic() - t0


def both_online(r: MwanRouter) -> bool:
    return all(i["online"] for i in state(r)["interfaces"].values())


def balanced_members(r: MwanRouter) -> list[str]:
    pol = call(r.run_dir, "report", rules=False)["policies"]["ipv4"]["balanced"]
    return [m["interface"] for m in pol["members"]]


def test_carrier_storm_keeps_the_daemon_answering_and_settles(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab))
    wait_for(lambda: both_online(r), 15, "both WANs online", r)
    applies_before = state(r)["applies"]
    sampler, flapper = ControlSampler(r.run_dir), CarrierFlapper(lab, 1)
    sampler.start()
    flapper.start()
    time.sleep(STORM_S)
    flapper.stop()
    applies = state(r)["applies"] - applies_before
    lat = sampler.stop()
    print(f"\n{flapper.changes} carrier changes, {applies} applies, {len(lat)} answers, "
          f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms, "
          f"max {max(lat) * 1000:.1f} ms")
    assert sampler.errors == [] and flapper.errors == []
    assert len(lat) > STORM_S * 10 and max(lat) < 2.0  # answered all along
    # every change needs the datapath changed at most once (netlink sends several
    # messages per change; they coalesce into one apply)
    assert 0 < applies <= flapper.changes + 5
    # the storm is over with carrier up: `up` good rounds later wan is back
    assert lab.carrier(1)
    wait_for(lambda: both_online(r), 3 * 1 + 1 + 5, "wan online after the storm", r)
    assert balanced_members(r) == ["wan", "wanb"]
    wan = state(r)["interfaces"]["wan"]
    assert wan["status"] == "online" and wan["held_until"] is None  # no dampening by default
    assert "dampened" not in r.log()


def test_flapping_wan_is_held_down_then_back(lab: Lab,
                                             mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab, flap_threshold=3, flap_window=30, flap_holddown=8))
    wait_for(lambda: both_online(r), 15, "both WANs online", r)
    # slower than the kernel's linkwatch (about one carrier report a second): each counts
    flapper = CarrierFlapper(lab, 1, down=1.2, up=1.2)
    flapper.start()
    wait_for(lambda: state(r)["interfaces"]["wan"]["held_until"] is not None, 15,
             "wan held down", r)
    flapper.stop()
    assert flapper.errors == [] and lab.carrier(1)
    wan = state(r)["interfaces"]["wan"]
    assert not wan["online"] and wan["flaps"] >= 3
    assert any("dampened: 3 flaps within 30 s" in e[1] for e in wan["events"])
    assert "wan is held down (flapping) until" in r.cli("interfaces").stdout
    # the tracker finds wan healthy again, but the hold-down keeps it out of the policies
    wait_for(lambda: state(r)["interfaces"]["wan"]["status"] == "online", 10,
             "wan's tracker online", r)
    wan = state(r)["interfaces"]["wan"]
    if wan["held_until"] is not None:  # (a slow machine may already be past the hold-down)
        assert not wan["online"] and balanced_members(r) == ["wanb"]
    # 8 s after the last flap the hold-down ends and wan, healthy, is back
    wait_for(lambda: state(r)["interfaces"]["wan"]["held_until"] is None, 8 + 5,
             "the hold-down over", r)
    wait_for(lambda: state(r)["interfaces"]["wan"]["online"], 2, "wan back in service", r)
    assert balanced_members(r) == ["wan", "wanb"]
    log = r.log()
    assert "interface wan dampened" in log and "interface wan undampened" in log
    assert "interface wanb dampened" not in log
