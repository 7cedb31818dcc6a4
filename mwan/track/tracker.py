"""The tracker of one interface: an asyncio task that probes and feeds the machine.

All targets of a round are probed at once (mwan3 probes them one after the
other), so a failed round costs one ``timeout``, not one per target; and
rounds start at a steady cadence (``interval`` apart, or the failure /
recovery interval), so an outage is declared at most
``interval x down + timeout`` after it begins.  The
daemon calls :meth:`Tracker.pause` on carrier loss / ``ifdown`` and
:meth:`Tracker.resume` when the device comes back; each cancels the round in
flight, so the machine never counts a round that straddled the change.

A failed round where a target's probe met a local error (too many open
files, no buffer space: ``TargetResult.local_error``) is skipped, not counted
against the WAN, and logged at most once per ``SKIP_SUMMARY_SECONDS``
(:class:`SkipLog`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..config.model import TRACK_PORTS, Interface
from .machine import (
    Params,
    State,
    Status,
    Step,
    Verdict,
    after_round,
    first_connect,
    pause,
    skipped,
)
from .probes import ProbeSpec, TargetResult, probe
from .window import Judgement, Level, Window, levels_of, next_level

log = logging.getLogger("mwan.track")

HISTORY_SECONDS = 3600.0
SKIP_SUMMARY_SECONDS = 60.0

Prober = Callable[[ProbeSpec, str], Awaitable[TargetResult]]
OnStep = Callable[["Tracker", Step, str], None]


@dataclass
class TargetStats:
    """What ``status`` shows for one target: the last test and the totals."""

    ip: str
    status: str = "unknown"
    latency_ms: float | None = None
    loss_pct: float | None = None
    error: str | None = None
    sent: int = 0
    lost: int = 0
    window: Window | None = None  # this target's quality window

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"ip": self.ip, "status": self.status, "latency_ms": self.latency_ms,
                "loss_pct": self.loss_pct, "error": self.error,
                "sent": self.sent, "lost": self.lost,
                "window": self.window.quality(now).as_dict() if self.window else None}


def probe_spec(iface: Interface, mark: int, source: str | None) -> ProbeSpec:
    method = iface.track_method
    port = iface.track_port or TRACK_PORTS.get(method)
    if method == "httping" and iface.httping_ssl and iface.track_port is None:
        port = 443
    return ProbeSpec(method=method, family=iface.family, device=iface.device, source=source,
                     mark=mark, count=iface.count, timeout=float(iface.timeout),
                     size=iface.size, max_ttl=iface.max_ttl, port=port,
                     https=iface.httping_ssl, dns_name=iface.track_dns_name)


def round_reason(targets: Sequence[TargetStats], step: Step, reliability: int) -> str:
    """One line on why the round went the way it did."""
    parts = []
    for t in targets:
        if t.status == Verdict.UP.value:
            parts.append(f"{t.ip} up {t.latency_ms:.0f} ms" if t.latency_ms is not None
                         else f"{t.ip} up")
        elif t.status == Verdict.SKIPPED.value:
            parts.append(f"{t.ip} degraded {t.latency_ms or 0:.0f} ms {t.loss_pct or 0:.0f}% loss")
        else:
            parts.append(f"{t.ip} down ({t.error or f'{t.loss_pct or 100:.0f}% loss'})")
    return f"{step.host_up}/{len(targets)} targets up, {reliability} needed: " + ", ".join(parts)


def rtts_of(r: TargetResult) -> tuple[float, ...]:
    """A result's RTTs (ms); a prober that gives only the average (tests): that, per answer."""
    rtts = getattr(r, "rtts_ms", None)
    if rtts is not None:
        return tuple(rtts)
    return (r.latency_ms,) * r.received if r.latency_ms is not None else ()


def local_failure(step: Step, results: Sequence[TargetResult]) -> str | None:
    """Why a failed round proves nothing about the WAN (a local error), or None."""
    if step.good:
        return None
    # getattr: a prober may return any machine.Result (tests do); only TargetResult says
    local = [r.error or "local error" for r in results if getattr(r, "local_error", False)]
    return local[0] if local else None


class SkipLog:
    """Rate-limited lines about skipped rounds. Pure: the caller passes the time.

    The first skip of a spell gets a line, then one summary per ``every``
    seconds while skips go on, and one line when rounds count again.
    """

    def __init__(self, name: str, every: float = SKIP_SUMMARY_SECONDS) -> None:
        self.name = name
        self.every = every
        self.total = 0
        self._since: float | None = None  # the first skip of the current spell
        self._spell = 0
        self._unreported = 0
        self._last_line = 0.0

    def skip(self, now: float, why: str) -> str | None:
        self.total += 1
        self._spell += 1
        if self._since is None:
            self._since = self._last_line = now
            return (f"interface {self.name}: probe round skipped, not counted against the WAN:"
                    f" {why} (a local error of this router); further skips are summarised"
                    f" every {self.every:.0f} s")
        self._unreported += 1
        if now - self._last_line < self.every:
            return None
        n, self._unreported, self._last_line = self._unreported, 0, now
        return (f"interface {self.name}: {n} more probe rounds skipped in the last"
                f" {self.every:.0f} s: {why}")

    def counted(self, now: float) -> str | None:
        if self._since is None:
            return None
        line = (f"interface {self.name}: probe rounds count again, after {self._spell} skipped"
                f" in {now - self._since:.0f} s")
        self._since, self._spell, self._unreported = None, 0, 0
        return line


class Tracker:
    """Probe one interface's targets forever; report each step through ``on_step``."""

    def __init__(self, iface: Interface, mark: int, source: Callable[[], str | None],
                 on_step: OnStep, prober: Prober = probe,
                 clock: Callable[[], float] = time.time) -> None:
        self.iface = iface
        self.params = Params.of(iface)
        self.mark = mark
        self._source = source
        self._on_step = on_step
        self._prober = prober
        self._clock = clock
        self.state = State(Status.DISABLED, 0)
        self.targets = [TargetStats(str(ip), window=Window(iface.quality_window))
                        for ip in iface.track_ip]
        self.window = Window(iface.quality_window)  # every target's probes
        self.levels = levels_of(iface)
        self.judgement = Judgement(Level.OK)
        self.suspicions = 0  # immediate rounds started by passive suspicion
        self._last_suspect = -1e9
        # (time, latency, loss, status, the window's jitter)
        self.history: deque[tuple[float, float | None, float | None, str, float | None]] = (
            deque())
        self.last_test: float | None = None
        self.last_reason = ""
        self.probes_sent = 0
        self.probes_lost = 0
        self.skips = SkipLog(iface.name)
        self._wake = asyncio.Event()
        self._round: asyncio.Task[list[TargetResult]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.idle_sleep: float | None = None  # idle_interval while the WAN is idle (issue 15)

    # ------------------------------------------------------------ control
    def set_idle(self, seconds: float | None) -> None:
        """Rounds at least ``seconds`` apart while online and steady (None: traffic again,
        a round now, then the usual interval); the daemon's usage meter calls it."""
        if seconds is None and self.idle_sleep is not None:
            self._wake.set()
        self.idle_sleep = seconds

    def start(self, device_up: bool, online: bool | None = None) -> None:
        if device_up:
            self._step(first_connect(self.params, online), "tracking started")
        self._task = asyncio.create_task(self._run(), name=f"track-{self.iface.name}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._round:
            self._round.cancel()

    def pause(self, reason: str) -> None:
        """Offline at once (carrier lost, device gone, ifdown); probes stop."""
        if self.state.status == Status.DISABLED:
            return
        self._interrupt()
        self._step(pause(self.state), reason)

    def resume(self, reason: str, online: bool | None = None) -> None:
        """Probe again; ``online=False`` makes it earn ``up`` good rounds first."""
        if self.state.status != Status.DISABLED:
            return
        self._interrupt()
        self._step(first_connect(self.params, online), reason)

    def suspect(self, reason: str) -> bool:
        """Real traffic looks unanswered: probe now instead of at the next round (probes
        still decide).  Only while in the policies (online, disconnecting), between
        rounds, at most once per ``timeout`` (a failing round lasts that long), so
        while the evidence goes on the ``down`` rounds come one after the other.
        Returns whether a round was started."""
        now = self._clock()
        if (not self.state.online or self._round is not None
                or now - self._last_suspect < self.iface.timeout):
            return False
        self._last_suspect = now
        self.suspicions += 1
        log.info("interface %s: %s; probing now", self.iface.name, reason)
        self._wake.set()
        return True

    def latency_ms(self) -> float | None:
        """The interface window's average latency (``balance latency`` compares these)."""
        return self.window.quality(self._clock()).latency_ms

    @property
    def degraded(self) -> bool:
        """The quality window is at its warning (or down) level."""
        return self.judgement.level != Level.OK

    def _interrupt(self) -> None:
        if self._round and not self._round.done():
            self._round.cancel()
        self._wake.set()

    def _step(self, step: Step, reason: str) -> None:
        self.state = step.state
        self._on_step(self, step, reason)

    # ------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while True:
            if not self.state.active:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()
            started = asyncio.get_running_loop().time()
            spec = probe_spec(self.iface, self.mark, self._source())
            self._round = asyncio.ensure_future(self._probe_all(spec))
            try:
                results = await self._round
            except asyncio.CancelledError:
                if self._task and self._task.cancelling():
                    raise
                continue  # paused or resumed mid-round: this round does not count
            finally:
                self._round = None
            if self._wake.is_set():
                continue
            step = after_round(self.params, self.state, results)
            why = local_failure(step, results)
            if why is not None:  # this router's problem: neither good nor bad for the WAN
                step = skipped(self.params, self.state)
                self.last_reason = f"round skipped: {why} (a local error, not the WAN's)"
                line = self.skips.skip(self._clock(), why)
                if line:
                    log.warning("%s", line)
            else:
                line = self.skips.counted(self._clock())
                if line:
                    log.warning("%s", line)
                step = self._judge(results, step)
                self._record(results, step)
                self._step(step, self.last_reason)
            # rounds start every `sleep` seconds (mwan3 sleeps after the probes instead,
            # which adds a timeout per round to the detection time)
            elapsed = asyncio.get_running_loop().time() - started
            try:
                sleep = step.sleep if self.idle_sleep is None or step.state.status is not \
                    Status.ONLINE else max(step.sleep, self.idle_sleep)
                await asyncio.wait_for(self._wake.wait(), max(0.0, sleep - elapsed))
            except TimeoutError:
                pass

    def _judge(self, results: Sequence[TargetResult], step: Step) -> Step:
        """Feed the windows; the down level fails the round, the warning level is an event."""
        now = self._clock()
        for t, r in zip(self.targets, results):
            rtts = rtts_of(r)
            if t.window is not None:
                t.window.add(now, r.sent, rtts)
            self.window.add(now, r.sent, rtts)
        was = self.judgement
        self.judgement = next_level(self.levels, self.window.quality(now), was)
        if self.judgement.level == Level.DOWN:
            step = after_round(self.params, self.state, results, window_down=True)
        if (was.level == Level.OK) != (self.judgement.level == Level.OK):
            event = "degraded" if self.judgement.level != Level.OK else "healthy"
            step = replace(step, events=step.events + (event,))
        return step

    async def _probe_all(self, spec: ProbeSpec) -> list[TargetResult]:
        return list(await asyncio.gather(*(self._prober(spec, t.ip) for t in self.targets)))

    def _record(self, results: Sequence[TargetResult], step: Step) -> None:
        now = self._clock()
        self.last_test = now
        latencies, losses = [], []
        for t, r, v in zip(self.targets, results, step.verdicts):
            t.status = v.value
            t.latency_ms = r.latency_ms
            t.loss_pct = r.loss_pct
            t.error = r.error
            t.sent += r.sent
            t.lost += r.sent - r.received
            self.probes_sent += r.sent
            self.probes_lost += r.sent - r.received
            if r.latency_ms is not None:
                latencies.append(r.latency_ms)
            losses.append(r.loss_pct)
        latency = sum(latencies) / len(latencies) if latencies else None
        loss = sum(losses) / len(losses) if losses else None
        self.history.append((now, latency, loss, step.state.status.value,
                             self.window.quality(now).jitter_ms))
        while self.history and self.history[0][0] < now - HISTORY_SECONDS:
            self.history.popleft()
        self.last_reason = round_reason(self.targets, step, self.params.reliability)
        if self.judgement.level != Level.OK:
            self.last_reason += (f"; window {self.iface.quality_window:g} s: "
                                 f"{self.judgement.level.value} ({self.judgement.reason})")

    # ------------------------------------------------------------ reporting
    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "quality": {**self.window.quality(now).as_dict(),
                        "window_s": self.iface.quality_window,
                        "level": self.judgement.level.value,
                        "reason": self.judgement.reason or None},
            "degraded": self.degraded,
            "suspicions": self.suspicions,
            "tracking": "active" if self.state.active else "paused",
            "status": self.state.status.value,
            "score": self.state.score,
            "lost": self.state.lost,
            "turn": self.state.turn,
            "last_test": self.last_test,
            "targets": [t.as_dict(now) for t in self.targets],
            "probes_sent": self.probes_sent,
            "probes_lost": self.probes_lost,
            "rounds_skipped": self.skips.total,
            "history": [list(h) for h in self.history],
        }
