"""Regression (issue 12 item 5): a failed listing of the nft table doubled every rule.

After ``forget()`` (drift repair) the applier lists the kernel's table.  A
listing that failed for any reason (not only "no such table") was taken for
an empty table: the batch then added every chain (a no-op, they exist) and
appended every rule a second time.  Now such a failure raises, nothing is
sent, and the next apply converges.  No root: the in-memory fake nft.
"""

from __future__ import annotations

import pytest
from fakes.kernel import FakeNft, Faults

from mwan.config.validate import parse_config
from mwan.kernel.nft import NftApplier, NftError
from mwan.plan.compile import compile_plan
from mwan.plan.state import IfaceRuntime, KernelFacts

CONFIG = """
config interface 'wan'
	option enabled '1'
	option device 'eth1'
config interface 'wanb'
	option enabled '1'
	option device 'eth2'
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config rule 'default'
	option use_policy 'balanced'
"""


def test_failed_listing_does_not_append_rules_again() -> None:
    cfg = parse_config(CONFIG)
    runtime = {n: IfaceRuntime(n, up=True, online=True) for n in ("wan", "wanb")}
    table = compile_plan(cfg, runtime, KernelFacts(devices=("eth1", "eth2"))).nft
    nft = FakeNft()
    faults = Faults(nft)
    applier = NftApplier(faults)
    applier.apply(table)
    applier.forget()
    faults.fail("json_cmd", (1, "", "internal:0:0-0: Error: Resource temporarily unavailable\n"),
                when=lambda cmd: "list" in cmd["nftables"][0])
    with pytest.raises(NftError, match="cannot list table inet mwan"):
        applier.apply(table)
    assert nft.differences(table) == []
    applier.apply(table)
    assert nft.differences(table) == []
