"""Regression (issue 12 item 5): an interface removed from the config left its routes.

The applier only looked at the WAN tables of the interfaces in the current
config, so when an interface was removed or disabled (a reload), mwan's
routes in its table stayed in the kernel for good.  mwan owns its routes
(proto 201) in every table it can use (1..252), and now empties the ones
no interface uses.  No root: the in-memory fake kernel.
"""

from __future__ import annotations

from fakes.kernel import FakeIPRoute, FakeNft, Link

from mwan.config.validate import parse_config
from mwan.kernel.apply import KernelApplier
from mwan.kernel.nft import NftApplier
from mwan.kernel.routing import Routing
from mwan.plan.compile import compile_plan
from mwan.plan.state import IfaceRuntime, KernelFacts


def config(n: int) -> str:
    return "".join(f"config interface 'wan{k}'\n\toption enabled '1'\n"
                   f"\toption device 'eth{k}'\n" for k in range(1, n + 1))


def test_routes_of_a_removed_interface_are_deleted() -> None:
    ipr = FakeIPRoute(links=[Link(1, "lo"), Link(2, "eth1"), Link(3, "eth2")])
    applier = KernelApplier(Routing(ipr), NftApplier(FakeNft()))
    facts = KernelFacts(devices=("eth1", "eth2", "lo"))
    both = parse_config(config(2))
    applier.apply(compile_plan(both, {n: IfaceRuntime(n, up=True, online=True, gateway=gw)
                                      for n, gw in (("wan1", "192.0.2.1"),
                                                    ("wan2", "198.51.100.1"))}, facts))
    assert {r.table for r in ipr.mwan_routes()} == {1, 2}
    one = parse_config(config(1))
    applier.apply(compile_plan(one, {"wan1": IfaceRuntime("wan1", up=True, online=True,
                                                          gateway="192.0.2.1")}, facts))
    assert {r.table for r in ipr.mwan_routes()} == {1}
