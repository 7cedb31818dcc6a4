"""Issue 12 item 2: a rule's ``src_iface`` matched the interface's name, not its device.

``option src_iface 'wan'`` (device ``eth1``) compiled to ``iifname "wan"``,
which no packet ever carries, so the rule never matched; and ``src_iface
'lan'``, an interface of /etc/config/network but not an mwan3 section, was
refused.  mwan3 matches ``-i <device>``: now the device of the mwan3
interface, or of any interface of the network config (``lan`` → ``br-lan``);
a name that is neither is a FILE:LINE error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from mwan.config.errors import ConfigError
from mwan.config.validate import parse_config
from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces
from mwan.plan.compile import compile_plan
from mwan.plan.state import IfaceRuntime, KernelFacts

RULES = """
config rule 'from_lan'
	option src_iface 'lan'
	option use_policy 'wanb_only'
config rule 'all'
	option use_policy 'wan_wanb'
"""
NETWORK = """
config interface 'lan'
	option device 'br-lan'
	option proto 'static'
"""


def iifnames(text: str, network: dict[str, str]) -> list[Any]:
    cfg = parse_config(text, "/etc/config/mwan3", network)
    runtime = {i.name: IfaceRuntime(i.name, up=True, online=True) for i in cfg.interfaces}
    rules = next(c for c in compile_plan(cfg, runtime, KernelFacts()).nft.chains
                 if c.name == "rules")
    return [s["match"]["right"] for r in rules.rules for s in r
            if "match" in s and s["match"]["left"] == {"meta": {"key": "iifname"}}]


WANS = """
config interface 'wan'
	option enabled '1'
	option device 'eth1'
config interface 'wanb'
	option enabled '1'
	option device 'eth2'
""" + TWO_WAN_POLICIES


def test_src_iface_compiles_to_the_device() -> None:
    assert iifnames(WANS + RULES, {"lan": "br-lan"}) == ["br-lan", "br-lan"]  # v4 and v6
    wan_rule = RULES.replace("'lan'", "'wanb'")
    assert iifnames(WANS + wan_rule, {}) == ["eth2", "eth2"]


def test_unknown_src_iface_names_file_and_line() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(WANS + RULES, "/etc/config/mwan3", {"guest": "br-guest"})
    line = (WANS + RULES).splitlines().index("\toption src_iface 'lan'") + 1
    assert f"/etc/config/mwan3:{line}" in str(exc.value)
    assert "unknown interface 'lan'" in str(exc.value)


@pytest.mark.lab
def test_src_iface_lan_routes_the_lans_connections(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(isps=2, clients=1, ipv6=False)
    with MwanRouter(lab, lab_interfaces(lab, ipv6=False) + TWO_WAN_POLICIES + RULES) as r:
        with open(os.path.join(r.dir, "no-network-config"), "w", encoding="utf-8") as fh:
            fh.write(NETWORK)  # the network config MwanRouter hands mwan
        res = r.cli("start", check=False)
        assert res.returncode == 0, res.stderr + r.log()
        server = lab.server_addr(4)
        real = lab.connect_many(lab.client_ns(1), server, 80, count=20, timeout=1.0)
        assert real.wans == {2: 20}, (real.wans, real.errors)  # wanb_only, not 'all' (wan)
        said = json.loads(r.cli("explain", "--src", lab.client_addr(1), "--dst", server,
                                "--dport", "80", "--json").stdout)
        assert (said["rule"], said["wan"]) == ("from_lan", "wanb"), said
