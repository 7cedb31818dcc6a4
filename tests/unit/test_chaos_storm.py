"""The chaos benchmark's storm script and its classification of failures (pure, no root)."""

from __future__ import annotations

from bench import chaos_storm as cs


def done(t: float, kind: str, wan: int = 0, dt: float = 0.01) -> cs.Done:
    return cs.Done(cs.Action(t, kind, wan), 1000 + t, 1000 + t + dt)


def test_storm_is_reproducible_from_its_seed_and_every_fault_ends() -> None:
    a, b = cs.storm(300, 3, 7), cs.storm(300, 3, 7)
    assert a == b and a != cs.storm(300, 3, 8)
    kinds = {x.kind for x in a}
    assert {cs.RESTART, cs.NFT_FLUSH, cs.RULES_DEL, cs.KILL9, cs.GATEWAY, cs.CARRIER_DOWN,
            cs.OUTAGE, cs.LOSS} <= kinds
    assert all(x.t < 300 for x in a)
    for k in (1, 2, 3):
        for start, end in cs.FAULT_ENDS.items():
            mine = [x.kind for x in a if x.wan == k and x.kind in (start, end)]
            assert mine.count(start) == mine.count(end)
            assert not mine or mine[-1] == end


def test_every_wan_cut_spans_and_failure_classes() -> None:
    runs = [done(10, cs.OUTAGE, 1), done(12, cs.CARRIER_DOWN, 2), done(14, cs.OUTAGE_END, 1),
            done(20, cs.CARRIER_UP, 2), done(30, cs.NFT_FLUSH)]
    cl = cs.Classifier.of(runs, wans=2, lag=5)
    assert [(round(s - 1000, 2), round(e - 1000, 2)) for s, e in cl.blackouts] == [(12, 14.01)]
    assert cl.connection(1013, 0.5) == "all_wans_cut"
    assert cl.connection(1011, 0.1) == cs.OUTAGE
    assert cl.connection(1016, 0.1) == cs.CARRIER_DOWN
    assert cl.connection(1022, 0.1) == "recovering"
    assert cl.connection(1040, 0.1) == "none"
    assert cl.flow(1, 1011, 1016) == "wan_cut"
    assert cl.flow(1, 1029.9, 1030.4) == "during nft_flush"
    assert cl.flow(1, 1040, 1045) == "unexplained"
    flap = cs.Classifier.of([done(50, cs.CARRIER_DOWN, 2), done(50.1, cs.CARRIER_UP, 2)], 2, 5)
    assert flap.flow(2, 1049, 1051) == "carrier_flap"
    assert cs.Classifier.died("wan_cut") and not cs.Classifier.died("during nft_flush")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert cs.percentile(values, 50) == 50 and cs.percentile(values, 99) == 99
    assert cs.percentile([], 50) is None
