"""The tracker's asyncio driver with a fake prober (no sockets, no root)."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from mwan.config.model import Interface
from mwan.track.machine import Status, Step
from mwan.track.tracker import Tracker, probe_spec


@dataclass(frozen=True)
class FakeResult:
    target: str
    sent: int
    received: int
    latency_ms: float | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.received > 0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent


class World:
    """Which targets answer; counts probes."""

    def __init__(self) -> None:
        self.alive = True
        self.probes = 0
        self.delay = 0.0

    async def prober(self, spec: object, target: str) -> FakeResult:
        self.probes += 1
        await asyncio.sleep(self.delay)
        if self.alive:
            return FakeResult(target, 1, 1, 5.0)
        return FakeResult(target, 1, 0, None, "timeout")


def iface(**kw: object) -> Interface:
    base: dict[str, object] = {
        "name": "wan", "id": 1, "device": "wan1", "enabled": True,
        "track_ip": (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")),
        "interval": 0.02, "failure_interval": 0.02, "recovery_interval": 0.02, "up": 2, "down": 2, "timeout": 1}
    base.update(kw)
    return Interface(**base)  # type: ignore[arg-type]


def make(world: World, **kw: object) -> tuple[Tracker, list[tuple[str, ...]]]:
    events: list[tuple[str, ...]] = []

    def on_step(tr: Tracker, step: Step, reason: str) -> None:
        if step.events:
            events.append(step.events)

    return Tracker(iface(**kw), 0x100, lambda: "10.0.0.2", on_step, prober=world.prober), events


async def until(cond: object, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


def test_goes_offline_and_back() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w)
        tr.start(device_up=True)
        await until(lambda: tr.last_test is not None)
        assert tr.state.status == Status.ONLINE
        w.alive = False
        await until(lambda: tr.state.status == Status.OFFLINE)
        assert ("disconnected",) in events
        assert all(t.status == "down" and t.error == "timeout" for t in tr.targets)
        w.alive = True
        await until(lambda: tr.state.status == Status.ONLINE)
        assert events[-1] == ("connected",)
        snap = tr.snapshot()
        assert snap["tracking"] == "active" and snap["probes_lost"] >= 4
        assert len(snap["history"]) >= 4
        await tr.close()

    asyncio.run(main())


def test_pause_cancels_the_round_and_resume_starts_offline() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w)
        tr.start(device_up=True)
        await until(lambda: tr.last_test is not None)
        w.delay = 10  # a round hangs
        await asyncio.sleep(0.05)
        tr.pause("carrier lost")
        assert tr.state.status == Status.DISABLED and events[-1] == ("disconnected",)
        probes = w.probes
        await asyncio.sleep(0.1)
        assert w.probes == probes  # no probing while paused
        w.delay = 0
        tr.resume("carrier up", online=False)
        assert tr.state.status == Status.OFFLINE
        await until(lambda: tr.state.status == Status.ONLINE)
        await tr.close()

    asyncio.run(main())


def test_not_started_while_device_down() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w)
        tr.start(device_up=False)
        await asyncio.sleep(0.05)
        assert w.probes == 0 and tr.state.status == Status.DISABLED and events == []
        assert tr.snapshot()["tracking"] == "paused"
        await tr.close()

    asyncio.run(main())


def test_rounds_run_at_a_steady_cadence() -> None:
    async def main() -> None:
        w = World()
        w.delay = 0.05  # each probe takes 50 ms, the interval is 100 ms
        tr, _ = make(w, interval=0.1)
        tr.start(device_up=True)
        await asyncio.sleep(0.55)
        await tr.close()
        # start-to-start cadence: ~6 rounds (mwan3's sleep-after-probe would give ~4)
        assert 5 <= len(tr.history) <= 7, len(tr.history)

    asyncio.run(main())


def test_probe_spec_from_interface() -> None:
    spec = probe_spec(iface(track_method="nping-tcp", count=3, size=100), 0x300, "10.0.0.2")
    assert (spec.method, spec.device, spec.mark, spec.source, spec.count, spec.size, spec.port) \
        == ("nping-tcp", "wan1", 0x300, "10.0.0.2", 3, 100, 80)
    assert probe_spec(iface(track_method="httping", httping_ssl=True), 0, None).port == 443
    assert probe_spec(iface(track_method="nping-udp", track_port=5353), 0, None).port == 5353


# ---------------------------------------------------------------- local errors (issue 11 item 3)

@dataclass(frozen=True)
class LocalFailure(FakeResult):
    local_error: bool = True


def test_local_errors_skip_the_round() -> None:
    async def main() -> None:
        w = World()
        tr, events = make(w, down=1, up=1)
        tr.start(device_up=True)
        await until(lambda: tr.last_test is not None)

        async def emfile(spec: object, target: str) -> FakeResult:
            w.probes += 1
            return LocalFailure(target, 1, 0, None, "too many open files")

        tr._prober = emfile  # type: ignore[assignment]
        probes = w.probes
        await until(lambda: w.probes >= probes + 20)  # ten rounds
        assert tr.state.status == Status.ONLINE and events == [("connected",)]
        assert tr.snapshot()["rounds_skipped"] >= 10
        assert "too many open files" in tr.last_reason
        tr._prober = w.prober  # type: ignore[assignment]
        w.alive = False  # a real outage still counts
        await until(lambda: tr.state.status == Status.OFFLINE)
        await tr.close()

    asyncio.run(main())


def test_a_good_round_with_a_local_error_still_counts() -> None:
    async def main() -> None:
        w = World()
        tr, _ = make(w, down=1, up=1)

        async def half(spec: object, target: str) -> FakeResult:
            if target == "192.0.2.1":
                return LocalFailure(target, 1, 0, None, "no buffer space available")
            return FakeResult(target, 1, 1, 5.0)

        tr._prober = half  # type: ignore[assignment]
        tr.start(device_up=True, online=False)
        await until(lambda: tr.state.status == Status.ONLINE)  # 1 of 2 up meets reliability 1
        assert tr.skips.total == 0
        await tr.close()

    asyncio.run(main())


def test_skip_log_is_rate_limited() -> None:
    from mwan.track.tracker import SkipLog

    s = SkipLog("wan", every=60)
    lines = [s.skip(t * 0.5, "too many open files") for t in range(400)]  # 200 s of skips
    said = [x for x in lines if x]
    assert len(said) == 4, said  # the first, then one summary per 60 s
    assert "not counted against the WAN" in said[0]
    assert said[1].startswith("interface wan: 120 more probe rounds skipped")
    assert s.skip(200, "x") is None
    assert "after 401 skipped in 200 s" in (s.counted(200.0) or "")
    assert s.counted(201.0) is None  # said once
    assert s.skip(300, "x") and s.total == 402  # a new spell starts with a line


def test_skipped_keeps_state_and_cadence() -> None:
    from mwan.track.machine import Params, State, skipped

    p = Params(interval=10, failure_interval=3, recovery_interval=2)
    for status, sleep in ((Status.ONLINE, 10), (Status.DISCONNECTING, 3),
                          (Status.CONNECTING, 2), (Status.OFFLINE, 10)):
        s = State(status, 4, 1, 2)
        step = skipped(p, s)
        assert step.state == s and step.sleep == sleep and step.events == () and not step.good
    assert skipped(Params(keep_failure_interval=True, failure_interval=3),
                   State(Status.OFFLINE, 0)).sleep == 3
