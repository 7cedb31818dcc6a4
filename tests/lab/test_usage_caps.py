"""Per-WAN usage and data caps (issue 15), with real packets through the lab.

The counters are nft rules in each WAN's mark chain; ``status`` reads them;
the usage file in the state directory keeps them across a restart.  A data
cap with ``standby`` takes its WAN out of a policy while another member is
online, and its events reach the user script.  A corrupt or unwritable
usage file is logged and routing goes on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

FAILOVER = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config rule 'default'
	option use_policy 'wan_wanb'
"""

SCRIPT = """#!/bin/sh
echo "$ACTION $INTERFACE" >> {out}
"""


def wait_for(pred: Callable[[], bool], timeout: float = 20.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def status(m: MwanRouter) -> dict[str, Any]:
    return json.loads(m.cli("status", "--json").stdout)  # type: ignore[no-any-return]


def usage(m: MwanRouter, name: str) -> dict[str, Any]:
    return status(m)["interfaces"][name]["usage"]  # type: ignore[no-any-return]


def config(lab: Lab, state_dir: str, wan_extra: str = "", globals_extra: str = "") -> str:
    ifaces = lab_interfaces(lab, ipv6=False)
    if wan_extra:
        ifaces = ifaces.replace("option family 'ipv4'\n", "option family 'ipv4'\n" + wan_extra,
                                1)
    return (f"config globals 'globals'\n\toption state_dir '{state_dir}'\n{globals_extra}\n"
            + ifaces + FAILOVER)


def test_usage_counts_both_ways_and_survives_a_restart(lab: Lab, mwan: Callable[[str],
                                                                            MwanRouter],
                                                       tmp_path: Path) -> None:
    m = mwan(config(lab, str(tmp_path)))
    assert lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=20).wans == {1: 20}
    u = usage(m, "wan")
    # each connection: handshake, request and answer both ways, at least 5 packets each way
    assert u["rx_packets"] >= 20 * 3 and u["tx_packets"] >= 20 * 3, u
    assert u["rx_bytes"] > 0 and u["tx_bytes"] > 0
    assert usage(m, "wanb")["tx_packets"] == 0  # no traffic there
    text = m.cli("status").stdout
    assert "Usage (in / out" in text and " wan: " in text
    m.stop()
    saved = json.loads((tmp_path / "usage.json").read_text())
    assert saved["interfaces"]["wan"]["packets"]["out"] >= u["tx_packets"]
    m.start()
    again = usage(m, "wan")
    assert again["tx_packets"] >= u["tx_packets"] and again["rx_bytes"] >= u["rx_bytes"]
    lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=5)
    assert usage(m, "wan")["tx_packets"] > again["tx_packets"]


def test_standby_cap_moves_traffic_and_runs_the_script(lab: Lab, mwan: Callable[[str],
                                                                               MwanRouter],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "events"
    script = tmp_path / "mwan3.user"
    script.write_text(SCRIPT.format(out=out))
    os.chmod(script, 0o755)
    m = mwan(config(lab, str(tmp_path / "state"),
                    "\toption data_cap '20K'\n\toption data_cap_action 'standby'\n"
                    "\toption data_cap_period 'daily'\n",
                    f"\toption user_script '{script}'\n"))
    srv = lab.server_addr(4)
    assert lab.which_wan(lab.client_ns(1), srv, 80) == 1
    lab.connect_many(lab.client_ns(1), srv, 80, count=5)
    used = usage(m, "wan")
    each = (used["rx_bytes"] + used["tx_bytes"]) / 6  # about 550 bytes a connection
    more = int((0.85 * 20_000 - used["period_bytes"]) / each)  # to about 85 % of the cap
    lab.connect_many(lab.client_ns(1), srv, 80, count=more)
    first = status(m)["interfaces"]["wan"]
    assert 75 <= first["usage"]["cap_used_pct"] < 100 and not first["standby"], first["usage"]
    lab.connect_many(lab.client_ns(1), srv, 80, count=40)  # past 20K
    st = status(m)["interfaces"]["wan"]
    assert st["standby"] and st["usage"]["cap_used_pct"] >= 100, st["usage"]
    assert wait_for(lambda: lab.which_wan(lab.client_ns(1), srv, 80) == 2), m.log()
    seen = wait_for(lambda: out.exists() and "datacap_reached wan" in out.read_text())
    assert seen, m.log()
    lines = out.read_text().splitlines()
    assert "datacap_warn wan" in lines and lines.index("datacap_warn wan") < lines.index(
        "datacap_reached wan")
    assert "data cap reached" in m.log()
    # no other member online: back in use
    m.cli("ifdown", "wanb")
    assert wait_for(lambda: lab.which_wan(lab.client_ns(1), srv, 80) == 1), m.log()


def test_cap_without_traffic_and_a_corrupt_usage_file(lab: Lab, mwan: Callable[[str],
                                                                             MwanRouter],
                                                      tmp_path: Path) -> None:
    (tmp_path / "usage.json").write_text("{not json")
    m = mwan(config(lab, str(tmp_path), "\toption data_cap '20G'\n"))
    assert "is corrupt" in m.log() and (tmp_path / "usage.json.corrupt").exists()
    assert "data cap 20G" in m.log()  # the cap is announced, 0 used
    st = status(m)["interfaces"]["wan"]
    assert st["usage"]["period_bytes"] == 0 and not st["standby"]
    assert lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=5).wans == {1: 5}


def test_unwritable_state_dir_is_logged_and_routing_goes_on(lab: Lab, mwan: Callable[[str],
                                                                                   MwanRouter],
                                                            tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    m = mwan(config(lab, str(blocker / "state")))  # a directory under a regular file
    assert lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=5).wans == {1: 5}
    m.stop()
    assert "cannot be written" in m.log() and "routing goes on" in m.log()


def test_idle_interval_probes_less_while_no_traffic(lab: Lab, mwan: Callable[[str],
                                                                            MwanRouter],
                                                    tmp_path: Path) -> None:
    import subprocess

    target = lab.track_targets(4)[0]
    ifaces = lab_interfaces(lab, ipv6=False, track_ip=target, interval="1", up="1",
                            idle_interval="30")
    m = mwan(f"config globals 'globals'\n\toption state_dir '{tmp_path}'\n\n" + ifaces
             + FAILOVER)

    def sent() -> int:
        return int(status(m)["interfaces"]["wan"]["probes_sent"])  # also reads the counters

    assert wait_for(lambda: status(m)["interfaces"]["wan"]["online"]), m.log()
    sent()
    sent()  # two readings without traffic: idle
    idle_from = sent()
    time.sleep(6)
    idle_rounds = sent() - idle_from
    assert idle_rounds <= 2, idle_rounds  # one round per 30 s (interval 1 s when active)
    server = "198.51.100.20"
    lab.flow_echo(server, 9000, duration=30)
    lab.popen(lab.client_ns(1), Lab.python("mwan.lab.traffic", "flows", "--dst", server,
                                           "--port", "9000", "--count", "1", "--interval",
                                           "0.2", "--duration", "20"),
              stdout=subprocess.DEVNULL)
    before = usage(m, "wan")["tx_packets"]
    assert wait_for(lambda: usage(m, "wan")["tx_packets"] > before + 5)  # the flow runs
    active_from = sent()  # traffic: a round at once, then every second
    time.sleep(6)
    active_rounds = sent() - active_from
    assert active_rounds >= 3, (idle_rounds, active_rounds)
