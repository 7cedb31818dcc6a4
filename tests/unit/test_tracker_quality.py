"""The tracker's quality window and passive suspicion, with a fake prober and a fake clock."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from mwan.config.model import Interface
from mwan.track.machine import Status, Step
from mwan.track.tracker import Tracker


@dataclass(frozen=True)
class Res:
    target: str
    sent: int
    received: int
    rtts_ms: tuple[float, ...]
    error: str | None = None
    local_error: bool = False

    @property
    def ok(self) -> bool:
        return self.received > 0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent

    @property
    def latency_ms(self) -> float | None:
        return sum(self.rtts_ms) / len(self.rtts_ms) if self.rtts_ms else None


class World:
    """Each probe round: 4 probes per target, ``lost`` of them unanswered; a fake clock."""

    def __init__(self) -> None:
        self.lost = 0
        self.rtt = 20.0
        self.now = 1000.0
        self.rounds = 0

    def clock(self) -> float:
        return self.now

    async def prober(self, spec: object, target: str) -> Res:
        self.rounds += 1
        self.now += 1.0  # each probe moves the fake clock one second on
        got = tuple(self.rtt for _ in range(4 - self.lost))
        return Res(target, 4, len(got), got, None if got else "timeout")


def iface(**kw: object) -> Interface:
    base: dict[str, object] = {
        "name": "wan", "id": 1, "device": "wan1", "enabled": True,
        "track_ip": (ipaddress.ip_address("192.0.2.1"),),
        "interval": 0.01, "failure_interval": 0.01, "recovery_interval": 0.01,
        "up": 2, "down": 2, "timeout": 1, "quality_window": 20}
    base.update(kw)
    return Interface(**base)  # type: ignore[arg-type]


def make(world: World, **kw: object) -> tuple[Tracker, list[tuple[str, ...]]]:
    events: list[tuple[str, ...]] = []

    def on_step(tr: Tracker, step: Step, reason: str) -> None:
        if step.events:
            events.append(step.events)

    tr = Tracker(iface(**kw), 0x100, lambda: "10.0.0.2", on_step, prober=world.prober,
                 clock=world.clock)
    return tr, events


async def until(cond: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


def test_warning_level_degrades_stays_online_and_recovers() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w, warn_loss=20)
        tr.start(device_up=True)
        w.lost = 1  # 25 % loss: every round still good
        await until(lambda: tr.degraded)
        assert tr.state.status == Status.ONLINE
        assert any("degraded" in e for e in events)
        snap = tr.snapshot()
        assert snap["degraded"] and snap["quality"]["level"] == "degraded"
        assert snap["quality"]["reason"] == "loss 25%"
        assert snap["targets"][0]["window"]["loss_pct"] == 25.0
        assert "window 20 s: degraded (loss 25%)" in tr.last_reason
        w.lost = 0
        await until(lambda: not tr.degraded)
        assert any("healthy" in e for e in events)
        assert tr.state.status == Status.ONLINE
        assert len(snap["history"][-1]) == 5  # the window's jitter
        await tr.close()

    asyncio.run(main())


def test_down_level_takes_it_offline_though_targets_answer() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w, down_latency=500, down_latency_recovery=200)
        tr.start(device_up=True)
        w.rtt = 800.0  # answers, but slow
        await until(lambda: tr.state.status == Status.OFFLINE)
        assert any("disconnected" in e for e in events)
        w.rtt = 300.0  # below the threshold, above its recovery value: stays offline
        for _ in range(30):
            await asyncio.sleep(0.01)
        w.rtt = 20.0  # the window drains below 200 ms, then `up` good rounds
        await until(lambda: tr.state.status == Status.ONLINE)
        await tr.close()

    asyncio.run(main())


def test_without_levels_mwan3s_verdicts_only() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w)
        tr.start(device_up=True)
        w.lost, w.rtt = 3, 5000.0
        await until(lambda: w.rounds > 30)
        assert tr.state.status == Status.ONLINE and not tr.degraded
        assert all(e in (("connected",),) for e in events)
        await tr.close()

    asyncio.run(main())


def test_suspicion_starts_a_round_now_at_most_once_per_timeout() -> None:
    async def main() -> None:
        w = World()
        tr, _ = make(w, interval=3600, failure_interval=3600, recovery_interval=3600,
                     timeout=10)
        tr.start(device_up=True)
        await until(lambda: w.rounds == 1)
        await asyncio.sleep(0.05)
        assert w.rounds == 1  # the next round is an hour away
        assert tr.suspect("3 new TCP connections unanswered")
        await until(lambda: w.rounds == 2)
        assert not tr.suspect("again")  # within timeout (fake clock)
        assert tr.snapshot()["suspicions"] == 1
        w.now += 11
        assert tr.suspect("later")
        await until(lambda: w.rounds == 3)
        await tr.close()

    asyncio.run(main())
