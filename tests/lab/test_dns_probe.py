"""DNS probes (track_method nslookup / dns) with real packets: a DNS responder in the lab's
internet answers NXDOMAIN, which counts; an echo of the query (not an answer) does not."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mwan.daemon.control import call
from mwan.lab import Lab, dnsd
from mwan.lab.router import MwanRouter

pytestmark = pytest.mark.lab

DNS = "192.0.2.53"  # not one of inet's echo hosts: only the responder answers there
FAST = {"interval": "0.5", "failure_interval": "500ms", "recovery_interval": "0.5",
        "timeout": "0.5", "up": 2, "down": 2}

POLICY = """
config member 'wan_m1'
	option interface 'wan'
	option metric '1'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config rule 'all'
	option dest_ip '0.0.0.0/0'
	option use_policy 'wan_wanb'
"""


def section(lab: Lab, k: int, name: str, **opts: Any) -> str:
    lines = [f"config interface '{name}'", "\toption enabled '1'",
             f"\toption device '{lab.wan_device(k)}'"]
    for key, value in {**FAST, **opts}.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"\t{'list' if isinstance(value, list) else 'option'} {key} '{v}'")
    return "\n".join(lines) + "\n\n"


def state(r: MwanRouter) -> dict[str, Any]:
    return call(r.run_dir, "state")["interfaces"]  # type: ignore[no-any-return]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, r: MwanRouter) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s\n{state(r)}\n{r.log()[-3000:]}")
        time.sleep(0.05)


def test_dns_probe_answers_count_and_an_outage_is_seen(
        lab: Lab, mwan: Callable[[str], MwanRouter], tmp_path: Path) -> None:
    log = tmp_path / "queries"
    dnsd.start(lab, DNS, log=log)
    r = mwan(section(lab, 1, "wan", track_method="dns", track_ip=[DNS])
             + section(lab, 2, "wanb", track_method="nslookup", track_ip=[DNS],
                       track_dns_name="example.org") + POLICY)
    wait_for(lambda: all(i["online"] and i["last_test"] for i in state(r).values()), 10,
             "both online on NXDOMAIN answers", r)
    st = state(r)
    assert st["wan"]["targets"][0]["status"] == "up"
    assert st["wan"]["targets"][0]["latency_ms"] is not None
    # each WAN's queries left by its own device: the responder saw both WAN addresses
    seen = log.read_text().splitlines()
    assert f"{lab.wan_addr(1)} ." in seen and f"{lab.wan_addr(2)} example.org" in seen
    lab.outage(1)
    wait_for(lambda: not state(r)["wan"]["online"], 2 * 0.5 + 0.5 + 5, "wan offline", r)
    assert state(r)["wanb"]["online"]
    lab.end_outage(1)
    wait_for(lambda: state(r)["wan"]["online"], 2 * 0.5 + 0.5 + 5, "wan back", r)


def test_an_echo_is_not_a_dns_answer(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    dnsd.start(lab, DNS)
    echo = lab.track_targets(4)[0]  # inet's echo server sends the query back as it is
    r = mwan(section(lab, 1, "wan", track_method="dns", track_ip=[echo])
             + section(lab, 2, "wanb", track_method="dns", track_ip=[DNS]) + POLICY)
    wait_for(lambda: not state(r)["wan"]["online"] and state(r)["wanb"]["online"], 10,
             "wan offline (no DNS answer), wanb online", r)
    assert state(r)["wan"]["targets"][0]["status"] == "down"
