"""Failback control (issue 15): long-lived flows when the preferred WAN comes back.

Two policies over the same members (wan metric 1, wanb metric 2): ``mv``
with ``failback 'move'`` (port 9000) and ``kp`` with the default ``keep``
(port 9001).  With wan down, long flows of both open on wanb; then wan comes
back.  ``kp``'s flows stay on wanb to their end (mwan3's behaviour, and the
other policy's flows are untouched); ``mv``'s flows on wanb end (their
conntrack entries, found by mark and by the policy's label bit, are
deleted) and their replacements go to wan.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

POLICIES = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'mv'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
	option failback 'move'
config policy 'kp'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config rule 'to_mv'
	option proto 'tcp'
	option dest_port '9000'
	option use_policy 'mv'
config rule 'to_kp'
	option proto 'tcp'
	option dest_port '9001'
	option use_policy 'kp'
"""
SERVER = "198.51.100.20"


def records(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = proc.communicate(timeout=60)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_move_ends_the_policys_flows_on_the_backup_keep_leaves_them(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    m = mwan(lab_interfaces(lab, ipv6=False) + POLICIES)
    for port in (9000, 9001):
        lab.flow_echo(SERVER, port, duration=60)
    m.cli("ifdown", "wan")
    flows = {port: lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "flows", "--dst", SERVER, "--port", str(port), "--count", "4",
        "--interval", "0.2", "--stall", "5", "--duration", "16"), stdout=subprocess.PIPE,
        text=True) for port in (9000, 9001)}
    time.sleep(3)  # open, on wanb
    m.cli("ifup", "wan")
    mv, kp = records(flows[9000]), records(flows[9001])

    def wan(r: dict[str, Any]) -> int | None:
        return lab.wan_of(r["seen"])

    # keep: every flow opened on wanb and ended there, none broke
    assert [r for r in kp if r["kind"] == "broken"] == [], kp
    kept = [r for r in kp if r["kind"] == "end"]
    assert len(kept) == 4 and {wan(r) for r in kept} == {2}, kp
    # move: the first flows opened on wanb and ended at the failback ...
    first = [r for r in mv if r["kind"] == "open" and r["gen"] == 0]
    assert len(first) == 4 and {wan(r) for r in first} == {2}, mv
    broken = [r for r in mv if r["kind"] == "broken" and r["gen"] == 0]
    assert len(broken) == 4, mv
    # ... and their replacements went to wan
    again = [r for r in mv if r["kind"] == "open" and r["gen"] >= 1]
    assert again and {wan(r) for r in again} == {1}, mv
    assert "policy mv failback move: wan is preferred again; deleted" in m.log()
    assert "policy kp failback" not in m.log()


def test_move_also_moves_a_sticky_rules_flows_from_known_sources(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    # the first flow passes the policy chain and records the source on wanb; the
    # next three are sent there by the sticky gate, which sets the label too
    sticky = POLICIES.replace("\toption use_policy 'mv'\n",
                              "\toption use_policy 'mv'\n\toption sticky '1'\n")
    m = mwan(lab_interfaces(lab, ipv6=False) + sticky)
    lab.flow_echo(SERVER, 9000, duration=60)
    m.cli("ifdown", "wan")
    proc = lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "flows", "--dst", SERVER, "--port", "9000", "--count", "4",
        "--interval", "0.2", "--stall", "5", "--duration", "16"), stdout=subprocess.PIPE,
        text=True)
    time.sleep(3)  # open, on wanb
    elems = lab.exec(lab.router, "nft", "list", "set", "inet", "mwan", "sticky_v4_to_mv").stdout
    assert lab.client_addr(1) in elems, elems
    m.cli("ifup", "wan")
    mv = records(proc)
    first = [r for r in mv if r["kind"] == "open" and r["gen"] == 0]
    assert len(first) == 4 and {lab.wan_of(r["seen"]) for r in first} == {2}, mv
    assert len([r for r in mv if r["kind"] == "broken" and r["gen"] == 0]) == 4, mv
    again = [r for r in mv if r["kind"] == "open" and r["gen"] >= 1]
    assert again and {lab.wan_of(r["seen"]) for r in again} == {1}, mv
