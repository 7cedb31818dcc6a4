"""The fake kernel of tests/fakes answers as the real one does, where the appliers look.

The property tests of tests/unit/test_kernel_diff.py trust the fake.  Here
the same desired states (two WANs, IPv4 and IPv6, a sticky rule, an ipset
rule; then one WAN offline, the sticky set changing shape, one interface
disabled, and back) are applied to the lab router's real kernel and to the
fake: the real kernel takes every batch the fake takes, each apply changes
as many things on both, and read back through the appliers after
``forget()`` the chains, the sets' shapes (type, flags, timeout as the
listing reports them), the rule count per chain, and mwan's ip rules and
routes are the same.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mwan.lab import Lab
from mwan.lab.router import lab_interfaces

pytestmark = pytest.mark.lab

TESTS = Path(__file__).resolve().parents[1]

POLICIES = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config member 'wan6_m1'
	option interface 'wan6'
config member 'wanb6_m1'
	option interface 'wanb6'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
	list use_member 'wan6_m1'
	list use_member 'wanb6_m1'
config rule 'sticky_https'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option timeout '300'
	option use_policy 'balanced'
config rule 'listed'
	option ipset 'myset'
	option use_policy 'balanced'
config rule 'default'
	option use_policy 'balanced'
"""

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from fakes.kernel import FakeIPRoute, FakeNft, Link
from mwan.config.validate import parse_config
from mwan.kernel.apply import OWN_TABLES, KernelApplier
from mwan.kernel.diff import known_from_listing
from mwan.kernel.nft import NftApplier
from mwan.kernel.routing import Routing
from mwan.plan.compile import compile_plan
from mwan.plan.state import IfaceRuntime

gateways = json.loads(sys.argv[3])
real = KernelApplier()
facts = real.routing.facts()


def plan(text, offline=()):
    cfg = parse_config(text)
    runtime = {i.name: IfaceRuntime(i.name, up=True, online=i.name not in offline,
                                    gateway=gateways.get(i.name)) for i in cfg.interfaces}
    return compile_plan(cfg, runtime, facts)


desired = plan(sys.argv[2])
# one interface offline, a sticky set changing shape, one interface gone (a reload)
others = [plan(sys.argv[2], offline=("wanb",)),
          plan(sys.argv[2].replace("option timeout '300'", "option timeout '600'")),
          plan(sys.argv[2].replace("config interface 'wanb6'\n\toption enabled '1'",
                                   "config interface 'wanb6'\n\toption enabled '0'"))]
links = [Link(v["index"], name) for name, v in real.routing.links().items()]
fake = KernelApplier(Routing(FakeIPRoute(links=links)), NftApplier(FakeNft()))
out = {}
for name, a in (("real", real), ("fake", fake)):
    a.apply(desired)
    a.forget()
    known = known_from_listing(a.nft.list_table() or [])
    again = a.apply(desired)
    steps = [[r.nft_commands, r.rule_changes, r.route_changes]
             for r in (a.apply(d) for d in others + [desired])]
    out[name] = {
        "chains": sorted(known.chains),
        "sets": sorted([n, repr(s.shape())] for n, s in known.sets.items()),
        "rules_per_chain": {c: sum(1 for o in a.nft.listing("chain", c) or [] if "rule" in o)
                            for c in sorted(known.chains)},
        "ip_rules": sorted(map(repr, a.routing.owned_rules())),
        "routes": sorted(map(repr, a.routing.owned_routes(OWN_TABLES))),
        "reapply": [again.nft_commands, again.rule_changes, again.route_changes],
        "steps": steps,
        "refused": sorted(map(repr, a.routing.refused)),
    }
real.remove()
print(json.dumps(out))
"""


def test_fake_reads_back_what_the_real_kernel_does(lab: Lab) -> None:
    assert lab.ipv6
    gateways = {"wan": lab.gateway(1), "wanb": lab.gateway(2),
                "wan6": lab.gateway(1, 6), "wanb6": lab.gateway(2, 6)}
    text = lab_interfaces(lab) + POLICIES
    res = lab.exec(lab.router, sys.executable, "-c", PROBE, str(TESTS), text,
                   json.dumps(gateways), timeout=60)
    out = json.loads(res.stdout)
    real, fake = out["real"], out["fake"]
    assert real["chains"] and real["routes"] and real["ip_rules"]
    assert any("timeout" in s for _n, s in real["sets"])
    assert real["steps"][2][1] and real["steps"][2][2]  # wanb6's rules and routes went
    for key in real:
        assert real[key] == fake[key], key
