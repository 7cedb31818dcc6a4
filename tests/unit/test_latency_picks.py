"""The daemon's memory for ``balance latency``: each policy keeps its pick until another
member is faster by the margins (daemon/interfaces.Interfaces.runtime), and a changed pick
asks for an apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mwan.config.validate import parse_config
from mwan.daemon.interfaces import Interfaces
from mwan.plan.policy import choose
from mwan.track.machine import State, Status, Step

CONFIG = """
config interface 'wan'
	option enabled '1'
	list track_ip '192.0.2.1'
config interface 'wanb'
	option enabled '1'
	list track_ip '192.0.2.2'
config member 'a'
	option interface 'wan'
config member 'b'
	option interface 'wanb'
config policy 'fast'
	list use_member 'a'
	list use_member 'b'
	option balance 'latency'
"""


@dataclass
class FakeTracker:
    iface: Any
    latency: float | None = None
    degraded: bool = False

    def latency_ms(self) -> float | None:
        return self.latency


def make() -> tuple[Interfaces, dict[str, FakeTracker], list[int]]:
    cfg = parse_config(CONFIG, "/etc/config/mwan3")
    applies: list[int] = []
    ifs = Interfaces(cfg, lambda: applies.append(1), lambda *a: None)
    fakes = {i.name: FakeTracker(i) for i in cfg.interfaces}
    for name, st in ifs.status.items():
        st.device_present = st.carrier = st.online = True
        ifs.trackers[name] = fakes[name]  # type: ignore[assignment]
    return ifs, fakes, applies


def picked(ifs: Interfaces) -> list[str]:
    rt = ifs.runtime()
    return [s.interface for s in choose(ifs.cfg, ifs.cfg.policy("fast"), "ipv4", rt).shares]


def test_the_pick_sticks_within_the_margin_and_moves_past_it() -> None:
    ifs, fakes, _ = make()
    fakes["wan"].latency, fakes["wanb"].latency = 50.0, 30.0
    assert picked(ifs) == ["wanb"]
    fakes["wan"].latency = 25.0  # 5 ms faster: within the 20 ms margin
    assert picked(ifs) == ["wanb"]
    assert picked(ifs) == ["wanb"]  # asking again changes nothing
    fakes["wan"].latency = 5.0  # 25 ms and 83 % faster: past both margins
    assert picked(ifs) == ["wan"]
    fakes["wanb"].latency = 1.0  # 4 ms faster: wan stays
    assert picked(ifs) == ["wan"]


def test_a_changed_pick_asks_for_an_apply() -> None:
    ifs, fakes, applies = make()
    fakes["wan"].latency, fakes["wanb"].latency = 10.0, 100.0
    step = Step(State(Status.ONLINE, 10), 1.0, (), verdicts=("up",))  # type: ignore[arg-type]
    ifs.quality_apply(step)
    n = len(applies)
    ifs.quality_apply(step)
    assert len(applies) == n  # same pick: no apply
    fakes["wan"].latency = 200.0
    ifs.quality_apply(step)
    assert len(applies) == n + 1
