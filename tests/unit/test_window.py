"""Quality windows and levels (track/window.py) on a fake clock; the down level in the machine."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from mwan.config.validate import parse_config
from mwan.track.machine import Params, State, Status, after_round
from mwan.track.window import (
    MIN_PROBES,
    Judgement,
    Level,
    Levels,
    Quality,
    Thresholds,
    Window,
    levels_of,
    next_level,
)


def test_window_average_jitter_and_loss() -> None:
    w = Window(10)
    for i, rtt in enumerate((10.0, 20.0, 30.0)):
        w.add(float(i), 1, (rtt,))
    w.add(3.0, 1, ())  # one lost
    q = w.quality(3.0)
    assert (q.sent, q.received) == (4, 3)
    assert q.latency_ms == pytest.approx(20.0)
    assert q.jitter_ms == pytest.approx(math.sqrt(200 / 3))
    assert q.loss_pct == pytest.approx(25.0)


def test_window_forgets_what_is_older_than_its_span() -> None:
    w = Window(5)
    w.add(0.0, 1, ())  # a loss at t=0
    w.add(4.0, 1, (50.0,))
    assert w.quality(4.5).loss_pct == pytest.approx(50.0)
    q = w.quality(5.5)  # the loss is 5.5 s old: gone
    assert (q.sent, q.loss_pct, q.latency_ms, q.jitter_ms) == (1, 0.0, 50.0, 0.0)
    assert q.full  # filling since t=0, 5.5 s >= half the span
    assert w.quality(100.0) == Quality()  # empty: nothing known, filling starts over


def test_window_sums_do_not_drift_over_many_samples() -> None:
    rng = random.Random(1)
    w = Window(2)
    t = 0.0
    for _ in range(20000):
        t += 0.2
        w.add(t, 1, (rng.uniform(1, 100),))
    q = w.quality(t)
    assert q.sent in (10, 11) and q.jitter_ms is not None and q.jitter_ms >= 0
    assert q.latency_ms is not None and 1 <= q.latency_ms <= 100


def test_thresholds_default_recovery_values() -> None:
    t = Thresholds.make(100, None, 20, None, 10, None)
    assert (t.latency_recovery, t.jitter_recovery, t.loss_recovery) == (80, 16, 5)
    assert Thresholds.make(100, 50, None, None, 10, 2).loss_recovery == 2
    assert not Thresholds().enabled


def q(loss: float, latency: float = 10.0, jitter: float = 1.0, sent: int = 100) -> Quality:
    received = round(sent * (100 - loss) / 100)
    return Quality(sent, received, latency, jitter, full=True)


WARN_LOSS = Levels(warn=Thresholds.make(None, None, None, None, 10, 5))


def test_warning_level_hysteresis_on_loss() -> None:
    ok = Judgement(Level.OK)
    j = next_level(WARN_LOSS, q(9), ok)
    assert j.level == Level.OK
    j = next_level(WARN_LOSS, q(12), j)
    assert j == Judgement(Level.DEGRADED, "loss 12%")
    # between recovery (5) and the threshold (10): stays degraded
    j = next_level(WARN_LOSS, q(7), j)
    assert j.level == Level.DEGRADED and j.reason == "loss 7%"
    j = next_level(WARN_LOSS, q(5), j)
    assert j == Judgement(Level.OK)


def test_too_few_probes_keep_the_level() -> None:
    degraded = Judgement(Level.DEGRADED, "loss 50%")
    assert next_level(WARN_LOSS, q(0, sent=MIN_PROBES - 1), degraded) is degraded
    young = Quality(100, 50, 10.0, 1.0, full=False)
    assert next_level(WARN_LOSS, young, Judgement(Level.OK)).level == Level.OK
    assert next_level(Levels(), q(90), Judgement(Level.OK)).level == Level.OK  # off


def test_down_level_over_warning_and_its_own_recovery() -> None:
    levels = Levels(warn=Thresholds.make(200, None, 50, None, 10, None),
                    down=Thresholds.make(500, 300, None, None, 40, 20))
    j = next_level(levels, q(0, latency=250), Judgement(Level.OK))
    assert j == Judgement(Level.DEGRADED, "latency 250 ms")
    j = next_level(levels, q(45, latency=250), j)
    assert j.level == Level.DOWN and "loss 45%" in j.reason
    j = next_level(levels, q(25, latency=100), j)  # above down's loss recovery (20)
    assert j.level == Level.DOWN
    j = next_level(levels, q(15, latency=100), j)  # below down's, above warn's recovery (5)
    assert j.level == Level.DEGRADED
    j = next_level(levels, q(0, latency=100, jitter=60), j)
    assert j == Judgement(Level.DEGRADED, "jitter 60 ms")
    assert next_level(levels, q(0, latency=100, jitter=30), j).level == Level.OK


def test_fifteen_percent_loss_degrades_within_one_window_and_does_not_flap() -> None:
    """The bench's case on a fake clock: interval 0.2, 60 s window, warn_loss 10 (recovery 5),
    ten minutes."""
    rng = random.Random(15)
    w, j, t = Window(60), Judgement(Level.OK), 0.0
    levels = Levels(warn=Thresholds.make(None, None, None, None, 10, None))
    first = None
    changes = 0
    for _ in range(3000):
        t += 0.2
        w.add(t, 1, () if rng.random() < 0.15 else (20.0,))
        nj = next_level(levels, w.quality(t), j)
        changes += nj.level != j.level
        j = nj
        if first is None and j.level == Level.DEGRADED:
            first = t
    assert first is not None and first <= 60
    assert changes == 1 and j.level == Level.DEGRADED


def test_levels_of_reads_the_interface_options() -> None:
    cfg = parse_config("""
config interface 'wan'
	option enabled '1'
	list track_ip '192.0.2.1'
	option warn_loss '10'
	option down_latency '800'
	option down_latency_recovery '400'
""", "/etc/config/mwan3")
    lv = levels_of(cfg.interface("wan"))
    assert lv.warn == Thresholds.make(None, None, None, None, 10, None)
    assert (lv.down.latency, lv.down.latency_recovery, lv.down.loss) == (800, 400, None)


@dataclass(frozen=True)
class R:
    ok: bool
    latency_ms: float | None = 10.0
    loss_pct: float = 0.0


def test_machine_window_down_fails_a_round_that_answered() -> None:
    p = Params(up=2, down=2)
    s = State(Status.ONLINE, 4)
    step = after_round(p, s, [R(True)], window_down=True)
    assert not step.good and step.state.status == Status.DISCONNECTING
    step = after_round(p, step.state, [R(True)], window_down=True)
    assert step.state.status == Status.OFFLINE and "disconnected" in step.events
    # without the flag: exactly mwan3's counting (a good round)
    assert after_round(p, s, [R(True)]).good
