"""The kernel diff without root: golden nft batches, and the appliers against a fake kernel.

As Tailscale's ``TestRouterStates``: sequences of desired states (a few
configs × interface states, in random order, with the applier's memory
dropped now and then) are applied to an in-memory kernel, which must hold
the last desired state after each apply.  With a fraction of the netlink and
nft calls failing, an apply either leaves the kernel in the desired state or
raises (or names the routes the kernel refused), what the appliers remember
of the kernel is never wrong, and the next apply without failures converges.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes.kernel import Chaos, FakeIPRoute, FakeNft, Faults, Link
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2.netlink.exceptions import ChaoticException, NetlinkError

from mwan.config.model import Config
from mwan.config.validate import load_config, parse_config
from mwan.kernel.apply import KernelApplier
from mwan.kernel.diff import (
    NOTHING,
    UNKNOWN_ELEMENTS,
    NftKnown,
    batch_chains,
    known_from_listing,
    nft_batch,
    normal_routes,
    route_ops,
    rule_ops,
)
from mwan.kernel.nft import NftApplier, NftError
from mwan.kernel.routing import Routing, RoutingError
from mwan.plan.compile import compile_plan
from mwan.plan.state import (
    AddrInfo,
    Desired,
    IfaceRuntime,
    IpRule,
    KernelFacts,
    NftTable,
    Route,
    RouteInfo,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "mwan" / "data" / "mwan3.example"
GOLDEN = Path(__file__).with_name("golden")

DEVICES = {"lo": 1, "br-lan": 2, "eth1": 3, "eth2": 4, "eth3": 5}
FACTS = KernelFacts(
    routes=(
        RouteInfo("ipv4", "default", dev="eth1", gateway="192.0.2.1", metric=10),
        RouteInfo("ipv4", "default", dev="eth2", gateway="198.51.100.1", metric=20),
        RouteInfo("ipv4", "192.0.2.0/24", dev="eth1", scope=253, prefsrc="192.0.2.2"),
        RouteInfo("ipv4", "198.51.100.0/24", dev="eth2", scope=253, prefsrc="198.51.100.2"),
        RouteInfo("ipv4", "203.0.113.0/25", dev="eth3", scope=253, prefsrc="203.0.113.2"),
        RouteInfo("ipv4", "192.168.1.0/24", dev="br-lan", scope=253),
        RouteInfo("ipv4", "10.9.0.0/16", type="unreachable"),
        RouteInfo("ipv6", "2001:db8:1::/64", dev="br-lan", metric=256),
        RouteInfo("ipv6", "2001:db8:2::/64", dev="eth1"),
        RouteInfo("ipv6", "fe80::/64", dev="br-lan", metric=256),
    ),
    addresses=(
        AddrInfo("ipv4", "192.0.2.2", 24, "eth1"),
        AddrInfo("ipv4", "198.51.100.2", 24, "eth2"),
        AddrInfo("ipv4", "203.0.113.2", 25, "eth3"),
        AddrInfo("ipv4", "192.168.1.1", 24, "br-lan"),
        AddrInfo("ipv6", "2001:db8:1::1", 64, "br-lan"),
    ),
    devices=tuple(sorted(DEVICES)),
)
GATEWAYS = {"eth1": "192.0.2.1", "eth2": "198.51.100.1", "eth3": "203.0.113.1"}


def example() -> Config:
    cfg = load_config(str(EXAMPLE), "/nonexistent")
    devices = {"wan": "eth1", "wan6": "eth1", "wanb": "eth2", "wanb6": "eth2"}
    return replace(cfg, interfaces=tuple(replace(i, device=devices[i.name], enabled=True)
                                         for i in cfg.interfaces))


def two_wans(sticky_timeout: int = 600, third: bool = False) -> Config:
    names = [("wan", "eth1"), ("wanb", "eth2")] + ([("wanc", "eth3")] if third else [])
    text = "".join(f"config interface '{n}'\n\toption enabled '1'\n\toption device '{d}'\n"
                   f"\toption family 'ipv4'\n" for n, d in names)
    text += "".join(f"config member '{n}_m1'\n\toption interface '{n}'\n" for n, _ in names)
    text += "config policy 'balanced'\n" + "".join(f"\tlist use_member '{n}_m1'\n"
                                                   for n, _ in names)
    text += "config policy 'first'\n\tlist use_member 'wan_m1'\n\toption last_resort 'default'\n"
    text += f"""
config rule 'sticky_https'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option timeout '{sticky_timeout}'
	option use_policy 'balanced'
config rule 'listed'
	option ipset 'myset'
	option use_policy 'first'
config rule 'default'
	option use_policy 'balanced'
"""
    return parse_config(text)


CONFIGS = {"example": example(), "two": two_wans(), "two_short_sticky": two_wans(300),
           "three": two_wans(third=True)}
# interface states: (up, online)
STATES = ((True, True), (True, False), (False, False))


def runtime(cfg: Config, states: Mapping[str, tuple[bool, bool]]) -> dict[str, IfaceRuntime]:
    out = {}
    for i in cfg.interfaces:
        up, online = states.get(i.name, (True, True))
        gw = GATEWAYS.get(i.device or "") if i.family == "ipv4" else None
        out[i.name] = IfaceRuntime(i.name, up=up, online=online, gateway=gw)
    return out


def desired(name: str, states: Mapping[str, tuple[bool, bool]] | None = None) -> Desired:
    return _desired(name, tuple(sorted((states or {}).items())))


@functools.cache
def _desired(name: str, states: tuple[tuple[str, tuple[bool, bool]], ...]) -> Desired:
    cfg = CONFIGS[name]
    return compile_plan(cfg, runtime(cfg, dict(states)), FACTS)


def golden(name: str, data: Any) -> None:
    path = GOLDEN / name
    text = json.dumps(data, indent=1, sort_keys=True, default=str) + "\n"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 to accept"


def plain(batch: list[dict[str, Any]]) -> Any:
    return json.loads(json.dumps(batch))


def ops(batch: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(op, kind, name or chain) of each command."""
    out = []
    for cmd in batch:
        (op, body), = cmd.items()
        (kind, obj), = body.items()
        out.append((op, kind, obj.get("name") or obj.get("chain")))
    return out


# ---------------------------------------------------------------- golden batches

def test_golden_first_apply() -> None:
    table = desired("example").nft
    batch = nft_batch(table, NOTHING)
    golden("nft_batch_first_apply.json", plain(batch))
    nft = FakeNft()
    assert nft.json_cmd({"nftables": batch})[0] == 0
    assert nft.differences(table) == []


def test_reapply_is_an_empty_batch() -> None:
    table = desired("example").nft
    assert nft_batch(table, NftKnown.applied(table)) == []


def test_one_interface_offline_touches_only_its_chains() -> None:
    before = desired("example").nft
    after = desired("example", {"wan": (True, False)}).nft
    batch = nft_batch(after, NftKnown.applied(before))
    golden("nft_batch_wan_offline.json", plain(batch))
    old = {c.name: c for c in before.chains}
    differ = {c.name for c in after.chains if old.get(c.name) != c}
    assert differ and len(differ) < len(after.chains) / 2
    assert batch_chains(batch) == differ
    assert {kind for _op, kind, _n in ops(batch)} == {"table", "chain", "rule"}
    nft = FakeNft()
    nft.json_cmd({"nftables": nft_batch(before, NOTHING)})
    assert nft.json_cmd({"nftables": batch})[0] == 0
    assert nft.differences(after) == []


def test_set_shape_change_deletes_and_recreates_the_set() -> None:
    before, after = desired("two").nft, desired("two_short_sticky").nft
    batch = nft_batch(after, NftKnown.applied(before))
    golden("nft_batch_sticky_timeout.json", plain(batch))
    changed = [s.name for s in after.sets if s not in before.sets]
    assert changed and all(n.startswith("sticky") for n in changed)
    steps = ops(batch)
    for name in changed:
        delete = steps.index(("delete", "set", name))
        assert steps[delete + 1] == ("add", "set", name)
        # every chain is emptied first: a set in use cannot be deleted
        flushes = [i for i, s in enumerate(steps) if s[:2] == ("flush", "chain")]
        assert len(flushes) == len(after.chains) and max(flushes) < delete
    nft = FakeNft()
    nft.json_cmd({"nftables": nft_batch(before, NOTHING)})
    assert nft.json_cmd({"nftables": batch})[0] == 0
    assert nft.differences(after) == []


def test_after_forget_chains_are_rewritten_and_kept_sets_keep_their_elements() -> None:
    table = desired("two").nft
    nft = FakeNft()
    nft.json_cmd({"nftables": nft_batch(table, NOTHING)})
    kept = [s.name for s in table.sets if s.elements is None]
    nft.json_cmd({"nftables": [{"add": {"element": {
        "family": "inet", "table": "mwan", "name": "dynamic_v4", "elem": ["192.0.2.77"]}}}]})
    known = known_from_listing(nft.json_cmd({"nftables": [{"list": {"table": {
        "family": "inet", "name": "mwan"}}}]})[1]["nftables"])
    assert set(known.chains) == {c.name for c in table.chains}
    assert all(s.elements == UNKNOWN_ELEMENTS for s in known.sets.values())
    batch = nft_batch(table, known)
    assert batch_chains(batch) == {c.name for c in table.chains}
    assert not [s for s in ops(batch) if s[1] in ("set", "element") and s[2] in kept]
    assert nft.json_cmd({"nftables": batch})[0] == 0
    assert nft.differences(table) == []
    assert nft.table is not None and nft.table.elements["dynamic_v4"] == ["192.0.2.77"]


def test_rule_and_route_ops_add_before_delete() -> None:
    a = IpRule(2001, "ipv4", "lookup", table=1, fwmark=0x100, fwmask=0x3F00)
    b = IpRule(2002, "ipv4", "lookup", table=2, fwmark=0x200, fwmask=0x3F00)
    assert rule_ops({a, b}, {a}) == [("add", b)]
    assert rule_ops({b}, {a}) == [("add", b), ("del", a)]
    assert rule_ops({a}, {a}) == []
    r1 = Route(1, "ipv4", "default", dev="eth1", gateway="192.0.2.1")
    r2 = Route(1, "ipv4", "default", dev="eth1", gateway="192.0.2.254")
    assert route_ops({r2}, {r1}) == [("del", r1), ("replace", r2)]


# ---------------------------------------------------------------- the fake kernel

def fake_kernel() -> FakeIPRoute:
    """Links, and the rules and main routes that are not mwan's (they must stay)."""
    ipr = FakeIPRoute(links=[Link(i, n) for n, i in DEVICES.items()])
    for fam in (socket.AF_INET, socket.AF_INET6):
        for prio, table in ((0, 255), (32766, 254)):
            ipr.rules.append({"family": fam, "priority": prio, "protocol": 2, "action": 1,
                              "table": table, "fwmark": 0, "fwmask": 0, "iifname": None})
    ipr.route("replace", family=socket.AF_INET, table=254, dst="default", proto=4,
              oif=DEVICES["eth1"], gateway="192.0.2.1", priority=10)
    ipr.route("replace", family=socket.AF_INET, table=254, dst="192.0.2.0/24", proto=2,
              scope=253, oif=DEVICES["eth1"], prefsrc="192.0.2.2")
    return ipr


def foreign(ipr: FakeIPRoute) -> Any:
    """The rules and routes that are not mwan's (in any order)."""
    return (sorted(json.dumps(r, sort_keys=True) for r in ipr.rules if r["protocol"] != 201),
            sorted(json.dumps(r, sort_keys=True) for r in ipr.routes if r["proto"] != 201))


def mismatch(ipr: FakeIPRoute, nft: FakeNft, want: Desired,
             refused: frozenset[Route] = frozenset()) -> list[str]:
    out = nft.differences(want.nft)
    if ipr.mwan_rules() != set(want.rules):
        out.append(f"rules: {sorted(ipr.mwan_rules() ^ set(want.rules))}")
    routes = normal_routes(want.routes) - refused
    if ipr.mwan_routes() != routes:
        out.append(f"routes: {sorted(ipr.mwan_routes() ^ routes, key=str)}")
    return out


def memory_is_true(applier: KernelApplier, ipr: FakeIPRoute, nft: FakeNft) -> list[str]:
    """What the appliers remember of the kernel, where it differs from the kernel."""
    out = []
    rules, routes = applier.routing.remembered
    if rules is not None and rules != ipr.mwan_rules():
        out.append("rules cache")
    if routes is not None and \
            routes[1] != {r for r in ipr.mwan_routes() if r.table in routes[0]}:
        out.append("routes cache")
    known = applier.nft.known
    t = nft.table
    if known is not None:
        if t is None:
            if known.chains or known.sets:
                out.append("nft: table gone")
        elif set(known.chains) != set(t.chains) or set(known.sets) != set(t.sets):
            out.append("nft: chain or set names")
        else:
            content = NftTable(
                chains=tuple(c for c in known.chains.values() if c is not None),
                sets=tuple(s for s in known.sets.values() if s.elements is not None
                           and s.elements != UNKNOWN_ELEMENTS))
            diff = [d for d in nft.differences(content) if not d.startswith(("chains", "sets"))]
            shapes = {n: s for n, s in known.sets.items()}
            diff += [f"set {n} shape" for n, d in t.sets.items()
                     if known_from_listing([{"set": d}]).sets[n].shape() != shapes[n].shape()]
            out += [f"nft: {d}" for d in diff]
    return out


def make_applier(ipr: Any, nft: Any) -> KernelApplier:
    return KernelApplier(Routing(ipr), NftApplier(nft))


STEP = st.tuples(st.sampled_from(sorted(CONFIGS)),
                 st.lists(st.sampled_from(STATES), min_size=4, max_size=4),
                 st.booleans())


def step_desired(step: tuple[str, list[tuple[bool, bool]], bool]) -> Desired:
    name, states, _forget = step
    names = [i.name for i in CONFIGS[name].interfaces]
    return desired(name, dict(zip(names, states, strict=False)))


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=8))
def test_any_sequence_of_states_ends_in_the_last(steps: list[Any]) -> None:
    ipr, nft = fake_kernel(), FakeNft()
    applier = make_applier(ipr, nft)
    before = foreign(ipr)
    for k, step in enumerate(steps):
        want = step_desired(step)
        if step[2]:
            applier.forget()
        applier.apply(want)
        assert mismatch(ipr, nft, want) == [], f"after step {k}: {step[:2]}"
        assert memory_is_true(applier, ipr, nft) == []
        assert applier.routing.refused == frozenset()
        assert foreign(ipr) == before
        if k == 0:  # dnsmasq fills a set that is never mwan's to fill
            nft.json_cmd({"nftables": [{"add": {"element": {
                "family": "inet", "table": "mwan", "name": "dynamic_v4",
                "elem": ["192.0.2.77"]}}}]})
        else:
            assert nft.table is not None and nft.table.elements["dynamic_v4"] == ["192.0.2.77"]
    # and once there, the same state again sends nothing
    sent = len(nft.batches), ipr.calls
    result = applier.apply(want)
    assert not result.changed and len(nft.batches) == sent[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=6), st.randoms(use_true_random=False),
       st.sampled_from([0.05, 0.2, 0.5]))
def test_failing_calls_never_leave_a_wrong_memory(steps: list[Any], rng: random.Random,
                                                  rate: float) -> None:
    ipr, nft = fake_kernel(), FakeNft()
    cipr, cnft = Chaos(ipr, rate, rng), Chaos(nft, rate, rng)
    applier = make_applier(cipr, cnft)
    before = foreign(ipr)
    for k, step in enumerate(steps):
        want = step_desired(step)
        if step[2]:
            applier.forget()
        try:
            applier.apply(want)
        except (NftError, RoutingError, NetlinkError, ChaoticException):
            pass  # the failure is reported: the daemon retries the apply
        else:
            assert mismatch(ipr, nft, want, applier.routing.refused) == [], f"step {k}"
        assert memory_is_true(applier, ipr, nft) == [], f"after step {k}"
        assert foreign(ipr) == before
    cipr.on = cnft.on = False
    applier.apply(want)
    assert mismatch(ipr, nft, want) == []
    assert applier.routing.refused == frozenset()


def test_a_refused_batch_is_carried_by_the_error() -> None:
    nft = FakeNft()
    applier = NftApplier(nft)
    table = desired("two").nft
    applier.apply(table)
    broken = replace(table, chains=table.chains + (replace(
        table.chains[0], name="extra", hook=None, rules=(({"jump": {"target": "nowhere"}},),),
        comments=()),))
    with pytest.raises(NftError) as err:
        applier.apply(broken)
    assert err.value.batch == nft_batch(broken, NftKnown.applied(table))
    assert str(err.value) == (f"nft refused a batch of {len(err.value.batch)} commands: "
                              "Could not process rule: No such file or directory")
    assert nft.differences(table) == []  # the batch is atomic
    applier.apply(table)  # and what is remembered is still true
    assert nft.batches[-1:] != [] and nft.differences(table) == []


def test_a_route_that_cannot_be_deleted_does_not_hold_the_rules() -> None:
    ipr, nft = fake_kernel(), FakeNft()
    faults = Faults(ipr)
    applier = make_applier(faults, nft)
    applier.apply(desired("two"))
    want = desired("three")  # wanc's rules and routes come, wanb's default route changes
    faults.fail("route", NetlinkError(errno.EBUSY, "Device or resource busy"),
                when=lambda cmd, **kw: cmd == "del")
    with pytest.raises(RoutingError, match="cannot delete route"):
        applier.apply(want)
    assert ipr.mwan_rules() == set(want.rules)
    assert memory_is_true(applier, ipr, nft) == []
    applier.apply(want)
    assert mismatch(ipr, nft, want) == []


def test_remove_takes_away_what_it_can() -> None:
    ipr, nft = fake_kernel(), FakeNft()
    faults = Faults(ipr)
    applier = make_applier(faults, nft)
    before = foreign(ipr)
    applier.apply(desired("example"))
    faults.fail("route", NetlinkError(errno.EBUSY, "Device or resource busy"),
                when=lambda cmd, **kw: cmd == "del")
    applier.remove()  # logs the route it could not delete
    assert nft.table is None and ipr.mwan_rules() == set() and len(ipr.mwan_routes()) == 1
    applier.remove()
    assert ipr.mwan_routes() == set() and foreign(ipr) == before
