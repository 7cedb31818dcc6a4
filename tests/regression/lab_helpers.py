"""Helpers of the lab regression tests: a two-WAN failover config, state, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mwan.daemon.control import call
from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

FAST: dict[str, Any] = {"interval": 1, "failure_interval": 1, "recovery_interval": 1,
                        "timeout": 1, "up": 3, "down": 3}

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


def config(lab: Lab, extra: str = "", **opts: Any) -> str:
    """wan and wanb tracked by ping of two of the internet's targets; ``extra`` appended."""
    o = {**FAST, **opts}
    o.setdefault("track_ip", lab.track_targets(4)[:2])
    return lab_interfaces(lab, ipv6=False, track_method="ping", **o) + POLICY + extra


def state(r: MwanRouter) -> dict[str, Any]:
    return call(r.run_dir, "state")["interfaces"]  # type: ignore[no-any-return]


def online(r: MwanRouter, name: str) -> bool:
    return bool(state(r)[name]["online"])


def wait_for(cond: Callable[[], bool], timeout: float, what: str, r: MwanRouter) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s\n{r.log()[-3000:]}")
        time.sleep(0.05)


def first_rounds(r: MwanRouter, *names: str) -> None:
    """Wait for the first probe round of each named interface."""
    wait_for(lambda: all(state(r)[n]["last_test"] for n in names), 5, "first tests", r)
