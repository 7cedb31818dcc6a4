"""The tracker's state machine, exactly as mwan3track counts (docs/architecture.md, mwan3 §3.3). Pure.

Each test ("round") probes every target; a target is ``up``, ``down`` or
(with ``check_quality``, in the band between the recovery and failure
thresholds) ``skipped``.  A round is good when at least ``reliability``
targets are up.  The score walks between 0 and ``up + down``:

* online, score ``up+down``: ``down`` failed rounds in a row take it to
  ``up`` → *disconnected* (score 0); the first failure says *disconnecting*,
  one good round cancels it.
* offline, score 0: ``up`` good rounds in a row → *connected* (score
  ``up+down``); the first good round says *connecting*; a failed round
  starts over.

The interval to the next round is ``interval`` when steady,
``failure_interval`` while disconnecting, ``recovery_interval`` while
connecting, and ``failure_interval`` while offline when
``keep_failure_interval`` is set.

A round whose failure is this router's own (a local resource error such as
"too many open files") is *skipped* (:func:`skipped`): neither good nor
failed, the state stays and the next round comes at the state's interval.
mwan3 has no such notion (its ping just fails); it never changes a verdict
mwan3 would reach from the WAN's answers.

Nothing here reads a clock or a socket: a step takes the state and the
round's results and returns the next state, the sleep and the events.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Protocol

from ..config.model import InitialState, Interface


class Status(str, enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    CONNECTING = "connecting"
    DISCONNECTING = "disconnecting"
    DISABLED = "disabled"  # paused: the device is down or the interface was taken down


class Verdict(str, enum.Enum):
    UP = "up"
    DOWN = "down"
    SKIPPED = "skipped"


class Result(Protocol):
    """What the machine needs of one target's probe result."""

    @property
    def ok(self) -> bool: ...

    @property
    def latency_ms(self) -> float | None: ...

    @property
    def loss_pct(self) -> float: ...


@dataclass(frozen=True)
class Params:
    """The interface options the machine reads: same names, the option tables' defaults."""

    up: int = Interface.up
    down: int = Interface.down
    reliability: int = Interface.reliability
    interval: float = Interface.interval
    failure_interval: float = Interface.failure_interval
    recovery_interval: float = Interface.recovery_interval
    keep_failure_interval: bool = Interface.keep_failure_interval
    check_quality: bool = Interface.check_quality
    failure_latency: float = Interface.failure_latency
    recovery_latency: float = Interface.recovery_latency
    failure_loss: float = Interface.failure_loss
    recovery_loss: float = Interface.recovery_loss
    initial_online: bool = Interface.initial_state == InitialState.ONLINE

    @classmethod
    def of(cls, iface: Interface) -> Params:
        same = {f.name: getattr(iface, f.name) for f in fields(cls) if f.name != "initial_online"}
        return cls(**same, initial_online=iface.initial_state == InitialState.ONLINE)


@dataclass(frozen=True)
class State:
    status: Status
    score: int
    lost: int = 0  # failed targets since the last good round
    turn: int = 0  # rounds since the last 'connected'

    @property
    def active(self) -> bool:
        return self.status != Status.DISABLED

    @property
    def online(self) -> bool:
        """In the policies: online, or still disconnecting."""
        return self.status in (Status.ONLINE, Status.DISCONNECTING)


@dataclass(frozen=True)
class Step:
    state: State
    sleep: float  # seconds to the next round
    events: tuple[str, ...] = ()  # connecting / connected / disconnecting / disconnected
    verdicts: tuple[Verdict, ...] = ()
    host_up: int = 0
    good: bool = True  # the round met ``reliability``


NO_ANSWER_LATENCY = 999999.0


def verdict(p: Params, r: Result) -> Verdict:
    """One target's verdict for the round."""
    if not p.check_quality:
        return Verdict.UP if r.ok else Verdict.DOWN
    latency = r.latency_ms if r.ok and r.latency_ms is not None else NO_ANSWER_LATENCY
    loss = r.loss_pct if r.ok else 100.0
    if loss >= p.failure_loss or latency >= p.failure_latency:
        return Verdict.DOWN
    if loss <= p.recovery_loss and latency <= p.recovery_latency:
        return Verdict.UP
    return Verdict.SKIPPED


def first_connect(p: Params, online: bool | None = None) -> Step:
    """Start (or resume) tracking; ``online`` overrides ``initial_state``.

    Online starts at score ``up+down`` (connected), offline at 0 (it must
    earn ``up`` good rounds).  The first round runs at once.
    """
    start_online = p.initial_online if online is None else online
    if start_online:
        return Step(State(Status.ONLINE, p.up + p.down), 0.0, ("connected",))
    return Step(State(Status.OFFLINE, 0), 0.0, ("disconnected",))


def pause(s: State) -> Step:
    """Carrier lost, device gone or ``ifdown``: offline at once, no more probes."""
    events = ("disconnected",) if s.online else ()
    return Step(State(Status.DISABLED, 0, s.lost, s.turn), 0.0, events)


def skipped(p: Params, s: State) -> Step:
    """A round that says nothing about the WAN: same state, the state's own interval."""
    if s.status == Status.CONNECTING:
        sleep = p.recovery_interval
    elif s.status == Status.DISCONNECTING or (
            s.status == Status.OFFLINE and p.keep_failure_interval):
        sleep = p.failure_interval
    else:
        sleep = p.interval
    return Step(s, float(sleep), good=False)


def after_round(p: Params, s: State, results: Sequence[Result],
                window_down: bool = False) -> Step:
    """The next state after one round of probes (one result per target).

    ``window_down``: the quality window is at its down level
    (:mod:`.window`), so the round fails whatever its targets said.
    """
    verdicts = tuple(verdict(p, r) for r in results)
    host_up = sum(1 for v in verdicts if v == Verdict.UP)
    lost = s.lost + sum(1 for v in verdicts if v == Verdict.DOWN)
    events: list[str] = []
    if host_up < p.reliability or window_down:  # failed round
        score = s.score - 1
        status = s.status
        sleep = p.interval
        if score < p.up:
            score = 0
            if status == Status.CONNECTING:
                status = Status.OFFLINE  # mwan3 leaves 'connecting' showing; it is not online
            if p.keep_failure_interval:
                sleep = p.failure_interval
        elif score == p.up:
            if status != Status.DISCONNECTING:
                events.append("disconnecting")
            events.append("disconnected")
            status, score, sleep = Status.OFFLINE, 0, p.failure_interval
        else:
            if status != Status.DISCONNECTING:
                events.append("disconnecting")
            status, sleep = Status.DISCONNECTING, p.failure_interval
        nxt = replace(s, status=status, score=score, lost=lost, turn=s.turn + 1)
    else:  # good round
        score = s.score + 1
        turn = s.turn + 1
        if score < p.up:
            if s.status != Status.CONNECTING:
                events.append("connecting")
            status, sleep = Status.CONNECTING, p.recovery_interval
        elif score == p.up:
            if s.status != Status.CONNECTING:
                events.append("connecting")
            events.append("connected")
            status, score, sleep, turn = Status.ONLINE, p.up + p.down, p.recovery_interval, 0
        else:
            status, score, sleep = Status.ONLINE, p.up + p.down, p.interval
        nxt = State(status, score, 0, turn)
    return Step(nxt, float(sleep), tuple(events), verdicts, host_up,
                host_up >= p.reliability and not window_down)
