"""The kernel takes every grouped rules chain (plan/group.py) and its maps.

An interval map refuses overlapping elements (EEXIST), so this checks the
grouping's promise that a map's elements are disjoint against real
nftables: 40 seeded random configs of 8-60 rules (overlapping networks and
ports, every key field, both families, sticky, ipset, logging) are applied
in the lab's router, each one after the other (so maps are refilled,
re-created and deleted by difference), then re-read from a listing, whose
key types must be the ones given (a sixth field overflowed nft 1.0.6's key
type and aborted libnftables when listed).  The
decisions themselves are the unit property test's (tests/unit/test_group.py)
and the datapath test's (real packets).
"""

from __future__ import annotations

import json
import sys

import pytest
from fakes.configs import TWO_WANS

from mwan.lab import Lab

pytestmark = pytest.mark.lab

SCRIPT = r'''
import json, random
from mwan.config.marks import MarkSpace
from mwan.config.validate import parse_config
from mwan.plan.classify import rule_steps
from mwan.kernel.nft import NftApplier
from mwan.plan.compile import compile_nft, config_part
from mwan.plan.state import IfaceRuntime, KernelFacts
TWO_WANS = {two_wans!r}

WANS = """
config globals 'globals'
	option logging '1'
""" + TWO_WANS
NETS4 = ["198.51.100.0/24", "198.51.100.7", "198.51.100.9", "198.51.100.0/28",
         "203.0.113.0/25", "203.0.113.200", "192.0.2.0/24", "192.0.2.10"]
NETS6 = ["2001:db8:1::/48", "2001:db8:1::7", "2001:db8:2::/64"]
rng = random.Random(17)
nft = NftApplier()
runtime = {n: IfaceRuntime(n, up=True, online=True) for n in ("wan", "wanb")}
out = []
for trial in range(40):
    rules = []
    for i in range(rng.randint(8, 60)):
        lines = [f"config rule 'r{i}'"]
        proto = rng.choice(["tcp", "udp", "all", "tcp", "udp", "icmp", "47"])
        lines.append(f"\toption proto '{proto}'")
        if proto in ("tcp", "udp"):
            for opt in ("src_port", "dest_port"):
                v = rng.choice([None, "443", "80,53", "1000-2000", "1500,443", None,
                                str(rng.randint(1, 65535)), f"{rng.randint(1, 9000)}-9999"])
                if v:
                    lines.append(f"\toption {opt} '{v}'")
        v6 = rng.random() < 0.25
        for opt in ("src_ip", "dest_ip"):
            for _ in range(rng.randint(0, 2) if opt == "src_ip" else rng.randint(1, 2)):
                if rng.random() < 0.2:  # broad or shared: overlaps, barriers
                    net = rng.choice(NETS6 if v6 else NETS4)
                elif v6:
                    net = f"2001:db8:5::{rng.randint(1, 9999):x}"
                else:
                    net = f"198.18.{rng.randint(0, 3)}.{rng.randint(1, 254)}"
                lines.append(f"\tlist {opt} '{net}'")
        if rng.random() < 0.15:
            lines.append(f"\toption src_iface '{rng.choice(['wan', 'wanb'])}'")
        if rng.random() < 0.05:
            lines.append("\toption ipset 'vpn'")
        if rng.random() < 0.05:
            lines.append("\toption logging '1'")
        pol = rng.choice(["pa", "pab", "default", "blackhole"])
        lines.append(f"\toption use_policy '{pol}'")
        if pol in ("pa", "pab") and rng.random() < 0.2:
            lines.append("\toption sticky '1'")
        rules.append("\n".join(lines) + "\n")
    cfg = parse_config(WANS + "".join(rules), "mwan3")
    part = config_part(cfg)
    table = compile_nft(cfg, runtime, KernelFacts(), part)
    nft.apply(table)
    nft.forget()
    again = nft.apply(table)  # from the kernel's listing: maps refilled, nothing refused
    for m in part.rule_maps:  # the listing decodes each key's types as given
        listed = next(o["map"] for o in nft.listing("map", m.name) or () if "map" in o)
        assert tuple(listed["type"]) == m.type or listed["type"] == m.type, (m.type, listed)
    out.append([len(rule_steps(cfg, MarkSpace(cfg.globals.mmx_mask))), len(part.rules.rules), len(part.rule_maps),
                sum(len(m.elements or ()) for m in part.rule_maps)])
nft.remove()
print(json.dumps(out))
'''


def test_the_kernel_takes_every_grouped_chain(lab: Lab) -> None:
    script = SCRIPT.replace("{two_wans!r}", repr(TWO_WANS))
    res = lab.exec(lab.router, sys.executable, "-c", script, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    trials = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(trials) == 40
    grouped = [t for t in trials if t[2] > 0]
    assert len(grouped) >= 25, trials  # most configs do group
    assert sum(t[3] for t in grouped) > 500
    assert all(t[1] < t[0] for t in grouped)  # fewer nft rules than linear steps
