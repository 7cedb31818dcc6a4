"""The tracker's state machine (mwan3track's counting), on a simulated clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mwan.track.machine import (
    Params,
    State,
    Status,
    Verdict,
    after_round,
    first_connect,
    pause,
    verdict,
)


@dataclass(frozen=True)
class R:
    ok: bool
    latency_ms: float | None = 10.0
    loss_pct: float = 0.0


GOOD, BAD = R(True), R(False, None, 100.0)


def run(p: Params, s: State, rounds: list[list[R]]) -> tuple[State, list[tuple[str, ...]], list[float]]:
    events, sleeps = [], []
    for results in rounds:
        step = after_round(p, s, results)
        s = step.state
        events.append(step.events)
        sleeps.append(step.sleep)
    return s, events, sleeps


P = Params(up=3, down=4, reliability=1, interval=10, failure_interval=5, recovery_interval=2)


def online() -> State:
    return first_connect(P).state


def test_first_connect_follows_initial_state() -> None:
    on = first_connect(P)
    assert on.state == State(Status.ONLINE, 7) and on.events == ("connected",) and on.sleep == 0
    off = first_connect(Params(initial_online=False))
    assert off.state.status == Status.OFFLINE and off.state.score == 0
    assert first_connect(P, online=False).state.status == Status.OFFLINE


def test_down_failed_rounds_take_it_offline() -> None:
    s, events, sleeps = run(P, online(), [[BAD]] * 4)
    assert s.status == Status.OFFLINE and s.score == 0
    assert events == [("disconnecting",), (), (), ("disconnected",)]
    assert sleeps == [5, 5, 5, 5]  # failure_interval while disconnecting


def test_one_good_round_cancels_disconnecting() -> None:
    s, events, sleeps = run(P, online(), [[BAD], [BAD], [GOOD]])
    assert s == State(Status.ONLINE, 7, 0, 3)
    assert events == [("disconnecting",), (), ()]
    assert sleeps[-1] == 10
    # and the count starts over: three more failures are not enough
    s, events, _ = run(P, s, [[BAD]] * 3)
    assert s.status == Status.DISCONNECTING


def test_up_good_rounds_bring_it_online() -> None:
    s = first_connect(P, online=False).state
    s, events, sleeps = run(P, s, [[GOOD]] * 3)
    assert s.status == Status.ONLINE and s.score == 7 and s.turn == 0
    assert events == [("connecting",), (), ("connected",)]
    assert sleeps == [2, 2, 2]  # recovery_interval while connecting
    s, _, sleeps = run(P, s, [[GOOD]])
    assert sleeps == [10]


def test_a_failure_while_connecting_starts_over() -> None:
    s = first_connect(P, online=False).state
    s, events, sleeps = run(P, s, [[GOOD], [GOOD], [BAD], [GOOD], [GOOD]])
    assert s.status == Status.CONNECTING and s.score == 2
    assert events == [("connecting",), (), (), ("connecting",), ()]
    assert sleeps[2] == 10  # offline, keep_failure_interval off: steady interval


def test_keep_failure_interval_while_offline() -> None:
    p = Params(up=3, down=2, interval=10, failure_interval=3, keep_failure_interval=True)
    s = first_connect(p, online=False).state
    _, _, sleeps = run(p, s, [[BAD], [BAD]])
    assert sleeps == [3, 3]


def test_up_1_and_down_1() -> None:
    p = Params(up=1, down=1)
    s, events, _ = run(p, first_connect(p).state, [[BAD], [GOOD]])
    assert events == [("disconnecting", "disconnected"), ("connecting", "connected")]
    assert s.status == Status.ONLINE


def test_reliability_counts_targets() -> None:
    p = Params(up=1, down=1, reliability=2)
    s = first_connect(p).state
    assert after_round(p, s, [GOOD, GOOD, BAD]).state.status == Status.ONLINE
    step = after_round(p, s, [GOOD, BAD, BAD])
    assert step.state.status == Status.OFFLINE and step.host_up == 1 and not step.good
    assert step.state.lost == 2


def test_reliability_above_targets_never_online() -> None:
    p = Params(up=1, down=1, reliability=3)
    s = first_connect(p, online=False).state
    s, _, _ = run(p, s, [[GOOD, GOOD]] * 5)
    assert s.status == Status.OFFLINE


def test_lost_counts_failed_targets_until_a_good_round() -> None:
    s, _, _ = run(P, online(), [[BAD, BAD], [BAD]])
    assert s.lost == 3
    s, _, _ = run(P, s, [[GOOD]])
    assert s.lost == 0


QP = Params(up=1, down=1, check_quality=True, failure_latency=1000, recovery_latency=500,
            failure_loss=40, recovery_loss=10)


@pytest.mark.parametrize("latency,loss,expected", [
    (100, 0, Verdict.UP),
    (500, 10, Verdict.UP),  # at the recovery thresholds: up
    (600, 0, Verdict.SKIPPED),  # between: neither
    (100, 20, Verdict.SKIPPED),
    (1000, 0, Verdict.DOWN),  # at the failure thresholds: down
    (100, 40, Verdict.DOWN),
    (2000, 50, Verdict.DOWN),
])
def test_quality_verdicts(latency: float, loss: float, expected: Verdict) -> None:
    assert verdict(QP, R(True, latency, loss)) == expected


def test_quality_no_answer_is_down() -> None:
    assert verdict(QP, R(False, None, 100.0)) == Verdict.DOWN


def test_quality_in_between_band_is_a_failed_round() -> None:
    # mwan3 compatible (docs/architecture.md, mwan3 §9.8): a 'skipped' target does not count toward reliability
    step = after_round(QP, first_connect(QP).state, [R(True, 700, 0)])
    assert step.verdicts == (Verdict.SKIPPED,) and not step.good
    assert step.state.status == Status.OFFLINE
    assert step.state.lost == 0  # only 'down' targets count as lost


def test_quality_hysteresis_needs_recovery_thresholds() -> None:
    p = Params(up=2, down=2, check_quality=True)
    s = first_connect(p, online=False).state
    # 20 % loss is below failure_loss but above recovery_loss: never recovers
    s, _, _ = run(p, s, [[R(True, 50, 20)]] * 5)
    assert s.status == Status.OFFLINE
    s, _, _ = run(p, s, [[R(True, 50, 5)]] * 2)
    assert s.status == Status.ONLINE


def test_pause_is_immediate_and_says_disconnected_only_when_online() -> None:
    step = pause(online())
    assert step.state.status == Status.DISABLED and step.events == ("disconnected",)
    assert not step.state.online and not step.state.active
    assert pause(first_connect(P, online=False).state).events == ()


def simulate_detection(p: Params, timeout: float, targets: int = 1) -> float:
    """Worst-case seconds from a link dying to 'disconnected', as the tracker schedules.

    Rounds start ``step.sleep`` apart (start to start) and probe every target
    at once, so a failed round ends one ``timeout`` after it starts whatever
    the number of targets.  Worst case: the link dies just after a round
    that then succeeded.
    """
    start, s = 0.0, first_connect(p).state
    step = after_round(p, s, [GOOD] * targets)
    s = step.state
    while True:
        start += max(step.sleep, timeout)
        step = after_round(p, s, [BAD] * targets)
        s = step.state
        if "disconnected" in step.events:
            return start + timeout


def test_detection_time_on_the_simulated_clock() -> None:
    # interval 1, down 3, timeout 1: within interval x down + timeout
    fast = Params(up=3, down=3, interval=1, failure_interval=1, recovery_interval=1)
    assert simulate_detection(fast, timeout=1) == 1 * 3 + 1
    # mwan3's defaults with its shipped 4 targets: ~2 min in mwan3 (sequential probes,
    # sleep after probing), 10 x 5 + 4 = 54 s here
    assert simulate_detection(Params(), timeout=4, targets=4) == 10 * 5 + 4
