"""Drift detection and repair bookkeeping, pure: no kernel, a fake clock."""

from __future__ import annotations

import struct

from mwan.daemon import adopt
from mwan.daemon.drift import RepairGovernor, nft_drift, routing_drift
from mwan.daemon.repair import ApplyHealth, Repairs
from mwan.kernel.nftmon import (
    NFNL_SUBSYS_NFTABLES,
    NFT_MSG,
    Batch,
    Batcher,
    GenEvent,
    ObjEvent,
    Own,
    Stream,
    parse,
)
from mwan.plan.state import Desired, IpRule, NftSet, NftTable, Route
from mwan.report.text import health

NFT = 10 << 8


def nla(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\0" * ((4 - len(raw) % 4) % 4)


def msg(mtype: int, family: int, *attrs: bytes, port: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), NFT | mtype, 0, 0, port) + body


def s(text: str) -> bytes:
    return text.encode() + b"\0"


def test_parse_objects_and_generation() -> None:
    buf = (msg(2, 1, nla(1, s("mwan")))  # DELTABLE inet mwan
           + msg(8, 1, nla(1, s("mwan")), nla(2, s("rules")))  # DELRULE
           + msg(12, 1, nla(1, s("mwan")), nla(2, s("myset_v4")))  # NEWSETELEM
           + msg(15, 0, nla(1, struct.pack(">I", 7)), nla(2, struct.pack(">I", 4242)),
                 nla(3, s("nft"))))
    evs = list(parse(buf))
    assert evs == [ObjEvent("table", True, 1, "mwan", None),
                   ObjEvent("rule", True, 1, "mwan", "rules"),
                   ObjEvent("element", False, 1, "mwan", "myset_v4"),
                   GenEvent(7, 4242, "nft")]


def test_parse_skips_junk_and_other_subsystems() -> None:
    other = struct.pack("=IHHII", 20, (1 << 8) | 2, 0, 0, 0) + b"\0" * 4
    assert list(parse(other + b"\x01\x02")) == []
    assert list(parse(b"")) == []
    assert list(parse(struct.pack("=IHHII", 3, NFT, 0, 0, 0))) == []  # length < header


def test_batcher_keeps_only_the_table_and_closes_on_newgen() -> None:
    b = Batcher(1, "mwan")
    assert b.feed(ObjEvent("rule", False, 1, "other", "c")) is None
    assert b.feed(ObjEvent("rule", False, 2, "mwan", "c")) is None  # ip family, not inet
    assert b.feed(GenEvent(1, 5, "x")) is None  # nothing of ours in that batch
    b.feed(ObjEvent("chain", True, 1, "mwan", "rules"))
    batch = b.feed(GenEvent(2, 99, "firewalld"))
    assert batch == Batch((ObjEvent("chain", True, 1, "mwan", "rules"),), 99, "firewalld")
    assert batch.who() == "firewalld[99]"


def test_message_types_are_nfnetlinks() -> None:
    """nftmon keeps its own copy of the numbers (pyroute2's module costs the daemon RSS)."""
    from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES as subsys
    from pyroute2.netlink.nfnetlink import nftsocket

    assert NFNL_SUBSYS_NFTABLES == subsys
    assert NFT_MSG == {k[len("NFT_MSG_"):]: v for k, v in vars(nftsocket).items()
                       if k.startswith("NFT_MSG_")}


def gen(pid: int, port: int, proc: str = "nft") -> bytes:
    return msg(15, 0, nla(1, struct.pack(">I", 1)), nla(2, struct.pack(">I", pid)),
               nla(3, s(proc)), port=port)


def batch_from(port: int, pid: int, proc: str = "nft") -> bytes:
    return (msg(6, 1, nla(1, s("mwan")), nla(2, s("rules")), port=port)  # NEWRULE
            + msg(3, 1, nla(1, s("mwan")), nla(3, s("c")), port=port)  # NEWCHAIN
            + gen(pid, port, proc))


def test_stream_learns_its_own_port_and_skips_its_batches_unparsed() -> None:
    own = Own({100, 101})
    st = Stream(Batcher(1, "mwan"), own)
    assert st.feed(batch_from(7000, 101, "python")) == ([], False)  # ours: dropped, port learned
    assert own.ports == {7000}
    # from a known port, object messages are not even parsed (a truncated one is fine)
    junk = struct.pack("=IHHII", 24, NFT | 6, 0, 0, 7000) + b"\xff" * 8
    assert st.feed(junk + gen(100, 7000, "python")) == ([], False)
    # a foreign batch, between two of ours, comes out exactly as before
    foreign = batch_from(555, 4242)
    assert list(parse(foreign))[:2] == [ObjEvent("rule", False, 1, "mwan", "rules"),
                                        ObjEvent("chain", False, 1, "mwan", "c")]
    batches, lost = st.feed(batch_from(7000, 101) + foreign + batch_from(7000, 101))
    assert not lost and batches == [Batch((ObjEvent("rule", False, 1, "mwan", "rules"),
                                           ObjEvent("chain", False, 1, "mwan", "c")), 4242, "nft")]


def test_stream_with_no_own_ids_parses_every_batch() -> None:
    st = Stream(Batcher(1, "mwan"), Own(set()))
    batches, lost = st.feed(batch_from(7000, 101))
    assert not lost and len(batches) == 1 and batches[0].pid == 101


def test_stream_reports_a_port_given_to_someone_else() -> None:
    """A known port whose NEWGEN names another process: its messages were skipped, so the
    caller must look at the table (lost), and the port is mwan's no more."""
    own = Own({101}, {7000})
    st = Stream(Batcher(1, "mwan"), own)
    assert st.feed(batch_from(7000, 4242)) == ([], True)
    assert own.ports == set()
    batches, lost = st.feed(batch_from(7000, 4242))  # from now on parsed again
    assert not lost and batches and batches[0].pid == 4242


def desired(sets: tuple[NftSet, ...] = ()) -> Desired:
    return Desired(nft=NftTable(sets=sets), rules=(), routes=(), tables=())


def test_nft_drift_ignores_elements_that_others_fill() -> None:
    d = desired((NftSet("myset_v4", "ipv4_addr", ("interval",), elements=None),
                 NftSet("connected_v4", "ipv4_addr", ("interval",), elements=("10.0.0.0/8",))))
    dnsmasq = Batch((ObjEvent("element", False, 1, "mwan", "myset_v4"),), 10, "dnsmasq")
    assert nft_drift(dnsmasq, d) is None
    foreign = Batch((ObjEvent("element", True, 1, "mwan", "connected_v4"),), 11, "nft")
    drift = nft_drift(foreign, d)
    assert drift is not None and drift.kinds == ("nft_element",)
    assert "set connected_v4 deleted" in drift.what and drift.who == "nft[11]"


def test_nft_drift_of_a_deleted_table_is_one_finding() -> None:
    evs = (ObjEvent("rule", True, 1, "mwan", "rules"), ObjEvent("chain", True, 1, "mwan", "x"),
           ObjEvent("table", True, 1, "mwan", None))
    drift = nft_drift(Batch(evs, 1, "nft"), desired())
    assert drift is not None
    assert drift.kinds == ("nft_table",) and drift.what == "nft table inet mwan deleted"


def test_nft_drift_counts_rules() -> None:
    evs = tuple(ObjEvent("rule", False, 1, "mwan", "rules") for _ in range(3))
    drift = nft_drift(Batch(evs, 1, "nft"), desired())
    assert drift is not None and drift.what == "3 rules in chain rules added"


def test_routing_drift() -> None:
    r1 = IpRule(2001, "ipv4", "lookup", table=1, fwmark=0x100, fwmask=0x3F00)
    r2 = IpRule(3001, "ipv4", "unreachable", fwmark=0x100, fwmask=0x3F00)
    route = Route(table=1, family="ipv4", dst="default", dev="eth1", gateway="192.0.2.1")
    assert routing_drift([r1, r2], [route], [r1, r2], [route]) is None
    d = routing_drift([r1, r2], [route], [r1], [])
    assert d is not None and d.kinds == ("ip_rule", "route")
    assert "1 ip rule(s) missing (priority 3001)" in d.what
    assert "route(s) missing from table(s) 1" in d.what


def test_governor_allows_a_burst_then_backs_off_exponentially() -> None:
    g = RepairGovernor(burst=3, window=10, first_backoff=1, max_backoff=8)
    assert [g.record(t) for t in (0, 0.1, 0.2)] == [0, 0, 0]
    assert g.record(0.3) == 1 and g.delay(0.3) == 1 and g.fighting
    assert g.record(1.4) == 2 and g.record(3.5) == 4 and g.record(7.6) == 8
    assert g.record(15.7) == 8  # capped
    assert g.delay(30) == 0
    # a quiet window resets it
    assert g.record(100) == 0 and not g.fighting


def test_repairs_record_and_snapshot() -> None:
    r = Repairs()
    drift = nft_drift(Batch((ObjEvent("table", True, 1, "mwan", None),), 5, "nft"), desired())
    assert drift is not None
    r.found(drift, 10.0)
    assert r.due(10.0) == 0
    items = r.take()
    d = desired((NftSet("myset_v4", "ipv4_addr", ("interval",), elements=None),))
    entries = r.done(items, 10.05, d)
    assert entries[0][2] == "repair" and "by nft[5]" in entries[0][3]
    snap = r.snapshot(10.1)
    assert snap["total"] == 1 and snap["by_kind"] == {"nft_table": 1}
    assert snap["recent"][0]["ms"] == 50.0
    text = health({"repairs": snap, "apply_error": None}, 12.0)
    assert text.startswith("Repairs: 1 (nft_table 1); last ") and "by nft[5]" in text


def test_apply_health_backs_off_and_recovers() -> None:
    h = ApplyHealth(first=0.5, cap=4)
    assert [h.failed(RuntimeError("nft refused"), t) for t in range(5)] == [0.5, 1, 2, 4, 4]
    snap = h.snapshot()
    assert snap is not None and snap["since"] == 0 and snap["reason"] == "nft refused"
    assert "Apply failing since" in health({"apply_error": snap}, 30)
    h.ok()
    assert h.snapshot() is None and h.total_failures == 5


def test_adopt_state_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = str(tmp_path)
    assert adopt.load(run) is None
    adopt.save(run, {"wan": True, "wanb": False})
    assert adopt.load(run) == {"wan": True, "wanb": False}
    (tmp_path / adopt.STATE_NAME).write_text("{not json")
    assert adopt.load(run) is None
    adopt.remove(run)
    adopt.remove(run)
