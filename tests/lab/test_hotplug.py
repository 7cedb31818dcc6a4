"""Issue 16 item 3: OpenWrt's hotplug script against a running daemon.

netifd runs /etc/hotplug.d/iface/* through hotplug-call, which sources each
script in a subshell with ACTION, INTERFACE and DEVICE in the environment;
the test does the same in the lab router, with `mwan3` on PATH pointing at
the router's daemon.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

HOTPLUG = Path(__file__).resolve().parents[2] / "openwrt" / "files" / "mwan.hotplug"


@pytest.fixture
def router(lab: Lab) -> Iterator[MwanRouter]:
    text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], interval=1,
                          failure_interval=1, recovery_interval=1, timeout=1, up=1,
                          down=2) + TWO_WAN_POLICIES
    with MwanRouter(lab, text) as r:
        res = r.cli("start", check=False)
        assert res.returncode == 0, res.stderr + r.log()
        yield r


def hotplug_call(lab: Lab, r: MwanRouter, action: str, interface: str, device: str
                 ) -> tuple[int, str]:
    """Run the script as OpenWrt's /sbin/hotplug-call does: `( . script )`, netifd's env."""
    bindir = os.path.join(r.dir, "bin")
    os.makedirs(bindir, exist_ok=True)
    shim = os.path.join(bindir, "mwan3")
    with open(shim, "w", encoding="utf-8") as fh:  # /usr/sbin/mwan3 of this router
        fh.write(f'#!/bin/sh\nexec {sys.executable} -m mwan.cli.main --config {r.config} '
                 f'--run-dir {r.run_dir} --network-config /nonexistent "$@"\n')
    os.chmod(shim, 0o755)
    res = lab.exec(lab.router, "sh", "-c", '( . "$1" )', "hotplug-call", str(HOTPLUG),
                   check=False, env={"ACTION": action, "INTERFACE": interface, "DEVICE": device,
                                     "PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"})
    return res.returncode, res.stdout + res.stderr


def status(r: MwanRouter, name: str) -> str:
    res = r.cli("interfaces", "--json", check=False)
    if res.returncode != 0:
        return "?"
    return str(json.loads(res.stdout)["interfaces"][name]["status"])


def wait_status(r: MwanRouter, name: str, want: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(r, name) == want:
            return
        time.sleep(0.2)
    pytest.fail(f"{name} is {status(r, name)}, not {want}:\n{r.log()}")


def test_netifd_ifdown_and_ifup_reach_the_daemon(lab: Lab, router: MwanRouter) -> None:
    wait_status(router, "wanb", "online")
    rc, out = hotplug_call(lab, router, "ifdown", "wanb", lab.wan_device(2))
    assert rc == 0, out
    wait_status(router, "wanb", "disabled")
    assert status(router, "wan") == "online"
    rc, out = hotplug_call(lab, router, "ifup", "wanb", lab.wan_device(2))
    assert rc == 0, out
    wait_status(router, "wanb", "online")


def test_events_it_does_not_handle_are_ignored(lab: Lab, router: MwanRouter) -> None:
    wait_status(router, "wan", "online")
    for action, iface in (("ifup", "lan"),            # not an mwan interface
                          ("ifupdate", "wan"),        # address change: the daemon follows netlink
                          ("connected", "wan"),       # mwan's own tracker event
                          ("ifdown", "")):            # no INTERFACE
        rc, out = hotplug_call(lab, router, action, iface, "br-lan")
        assert rc == 0, (action, iface, out)
    assert status(router, "wan") == "online" and status(router, "wanb") == "online"


def test_ignored_while_the_daemon_is_not_running(lab: Lab, router: MwanRouter) -> None:
    router.stop()
    rc, out = hotplug_call(lab, router, "ifup", "wan", lab.wan_device(1))
    assert rc == 0, out
