"""The daemon's interface state: status per interface, its trackers, its events.

Everything that changes whether an interface is in service goes through
here: carrier changes read off the kernel, the trackers' verdicts, `mwan3
ifup`/`ifdown`, flap dampening.  Each change is an event (logged, counted,
handed to the hooks and to subscribers) and a request for a new apply; the
apply loop then reads :meth:`Interfaces.runtime` to plan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..config.marks import MarkSpace
from ..config.model import Config, InitialState, Interface
from ..plan.policy import choose
from ..plan.state import IfaceRuntime, KernelFacts
from ..track import dampen
from ..track.dampen import Change, Dampening, DampenParams
from ..track.machine import Step
from ..track.passive import PassiveTracking
from ..track.tracker import Tracker
from .ifstate import IfaceStatus, addresses_for, gateway_for

log = logging.getLogger("mwan")
LOUD = {"dampened": logging.WARNING, "undampened": logging.WARNING}  # flap hold-downs

EventSink = Callable[[float, Interface, str, str], None]


class Interfaces:
    """Status and trackers of the config's enabled interfaces."""

    def __init__(self, cfg: Config, request_apply: Callable[[], None], sink: EventSink) -> None:
        self.cfg = cfg
        self.status: dict[str, IfaceStatus] = {}
        self.trackers: dict[str, Tracker] = {}
        self.facts = KernelFacts()
        self.links: dict[str, dict[str, Any]] = {}
        # the transitions of every interface, newest last (web UI log, metrics)
        self.event_log: deque[tuple[float, str, str, str]] = deque(maxlen=1000)
        self.transitions: Counter[tuple[str, str]] = Counter()
        # trackers to resume once the WAN's routes are back: (tracker, reason, online)
        self.resume_after_apply: list[tuple[Tracker, str, bool | None]] = []
        # (policy, family) -> the interface a balance latency policy picked last
        self.latency_picks: dict[tuple[str, str], str] = {}
        self.passive = PassiveTracking()  # track_passive: conntrack events → suspicion
        self._request_apply = request_apply
        self._sink = sink
        self.sync()

    # ------------------------------------------------------------ config
    def sync(self) -> None:
        """Match the status table to the config's enabled interfaces."""
        names = {i.name for i in self.cfg.enabled_interfaces}
        for name in list(self.status):
            if name not in names:
                timer = self.status.pop(name).hold_timer
                if timer is not None:
                    timer.cancel()
        for iface in self.cfg.enabled_interfaces:
            if iface.name in self.status and not DampenParams.of(iface).enabled:
                self._release(iface, dampen.disable(self.status[iface.name].dampening),
                              "dampening switched off")
            if iface.name not in self.status:
                st = IfaceStatus(iface.name)
                st.online = iface.initial_state == InitialState.ONLINE
                if st.online:
                    st.online_since = time.time()
                else:
                    st.offline_since = time.time()
                self.status[iface.name] = st

    def switch(self, cfg: Config) -> None:
        """Use ``cfg`` from now on; trackers follow (the changed ones restart)."""
        self.cfg = cfg
        self.sync()
        self.start_trackers(self.sync_trackers())

    def interface(self, name: str) -> Interface:
        return self.cfg.interface(name)

    # ------------------------------------------------------------ reading
    def runtime(self) -> dict[str, IfaceRuntime]:
        out = {}
        for iface in self.cfg.enabled_interfaces:
            st = self.status[iface.name]
            up = st.admin_up and st.device_present and st.carrier
            tr = self.trackers.get(iface.name)
            out[iface.name] = IfaceRuntime(
                name=iface.name, up=up, online=up and st.online and not st.held,
                gateway=gateway_for(iface, self.facts) if up else None,
                addresses=addresses_for(iface, self.facts),
                degraded=tr is not None and tr.degraded,
                latency_ms=tr.latency_ms() if tr is not None else None,
            )
        return self._with_latency_picks(out)

    def _with_latency_picks(self, rt: dict[str, IfaceRuntime]) -> dict[str, IfaceRuntime]:
        """``balance latency`` policies pick with hysteresis: each remembers its last pick."""
        policies = [p for p in self.cfg.policies if p.balance == "latency"]
        if not policies:
            return rt

        def marked(picks: dict[tuple[str, str], str]) -> dict[str, IfaceRuntime]:
            return {n: replace(r, latency_pick=tuple(sorted(
                p for (p, _), i in picks.items() if i == n))) for n, r in rt.items()}

        before = marked(self.latency_picks)
        picks: dict[tuple[str, str], str] = {}
        for fam in ("ipv4", "ipv6"):
            for p in policies:
                shares = choose(self.cfg, p, fam, before).shares
                if shares:
                    picks[(p.name, fam)] = shares[0].interface
        self.latency_picks = picks
        return marked(picks)

    def mark_of(self, iface: Interface) -> int:
        return MarkSpace(self.cfg.globals.mmx_mask).mark(iface.id)

    def source_of(self, iface: Interface) -> str | None:
        addrs = addresses_for(iface, self.facts)
        return addrs[0] if addrs else None

    def link_up(self, name: str) -> bool:
        st = self.status[name]
        return st.admin_up and st.device_present and st.carrier

    # ------------------------------------------------------------ kernel facts
    def update(self, facts: KernelFacts, links: dict[str, dict[str, Any]]) -> None:
        """New routes, addresses and links from the kernel: carrier changes are events."""
        self.facts = facts
        self.links = links
        now = time.time()
        for iface in self.cfg.enabled_interfaces:
            st = self.status[iface.name]
            link = links.get(iface.device)
            present = link is not None
            carrier = bool(link and link["up"] and link["carrier"])
            was_up = st.device_present and st.carrier
            st.device_present, st.carrier = present, carrier
            if (present and carrier) != was_up:
                reason = ("carrier up" if carrier else
                          ("device gone" if not present else "carrier lost"))
                st.up_since = now if carrier else None
                self.event(iface, "ifup" if carrier else "ifdown", reason)
                if not carrier:
                    self._flap(iface, reason)
                tracker = self.trackers.get(iface.name)
                if tracker is None:
                    continue
                if carrier and st.admin_up:
                    # once the WAN's routes are back (after this apply), earn 'up' good rounds
                    self.resume_after_apply.append((tracker, reason, False))
                elif not carrier:
                    tracker.pause(reason)

    def resume_trackers(self) -> None:
        """After an apply: the trackers waiting for their WAN's routes probe again."""
        resume, self.resume_after_apply = self.resume_after_apply, []
        for tracker, reason, resume_online in resume:
            if self.trackers.get(tracker.iface.name) is tracker:
                tracker.resume(reason, online=resume_online)

    # ------------------------------------------------------------ tracking
    def sync_trackers(self) -> list[Tracker]:
        """Match the trackers to the config; returns the ones to start."""
        wanted = {i.name: i for i in self.cfg.enabled_interfaces if i.tracked}
        for name, tr in list(self.trackers.items()):
            if wanted.get(name) != tr.iface:
                asyncio.ensure_future(tr.close())
                del self.trackers[name]
        new = []
        for name, iface in wanted.items():
            if name not in self.trackers:
                tr = Tracker(iface, self.mark_of(iface),
                             lambda iface=iface: self.source_of(iface),  # type: ignore[misc]
                             self._on_track_step)
                self.trackers[name] = tr
                new.append(tr)
        for iface in self.cfg.enabled_interfaces:
            if not iface.tracked:
                self.status[iface.name].online = True  # no track_ip: online whenever up
        return new

    def start_trackers(self, trackers: list[Tracker]) -> None:
        for tr in trackers:
            st = self.status[tr.iface.name]
            tr.start(self.link_up(tr.iface.name), online=st.online)
        self.passive.sync(self.trackers, {n: self.mark_of(t.iface) for n, t in
                                          self.trackers.items()}, self.cfg.globals.mmx_mask)

    async def close_trackers(self) -> None:
        self.passive.close()
        await asyncio.gather(*(tr.close() for tr in self.trackers.values()),
                             return_exceptions=True)
        self.trackers.clear()

    def _on_track_step(self, tracker: Tracker, step: Step, reason: str) -> None:
        name = tracker.iface.name
        self.quality_apply(step)
        for ev in step.events:
            if ev == "connected":
                self.set_online(name, True, reason)
            elif ev == "disconnected":
                self.set_online(name, False, reason)
            else:
                self.event(tracker.iface, ev, reason)
        if step.verdicts and not step.events:
            log.debug("interface %s %s score %d: %s", name, step.state.status.value,
                      step.state.score, reason)

    def quality_apply(self, step: Step) -> None:
        """A new apply when quality changes what a quality-aware policy chooses."""
        changed = "degraded" in step.events or "healthy" in step.events
        if changed and any(p.avoid_degraded or p.balance == "latency" for p in self.cfg.policies):
            self._request_apply()
        if step.verdicts and any(p.balance == "latency" for p in self.cfg.policies):
            before = dict(self.latency_picks)
            self.runtime()  # refreshes the picks
            if self.latency_picks != before:
                self._request_apply()

    # ------------------------------------------------------------ changes
    def event(self, iface: Interface, action: str, reason: str) -> None:
        st = self.status[iface.name]
        now = time.time()
        st.events.append((now, f"{action}: {reason}"))
        del st.events[:-50]
        self.event_log.append((now, iface.name, action, reason))
        self.transitions[(iface.name, action)] += 1
        log.log(LOUD.get(action, logging.INFO), "interface %s %s (%s)", iface.name, action, reason,
                extra={"INTERFACE": iface.name, "EVENT": action, "REASON": reason})  # journal fields
        self._sink(now, iface, action, reason)

    def set_online(self, name: str, online: bool, reason: str) -> None:
        st = self.status[name]
        if st.online == online:
            return
        st.online = online
        now = time.time()
        if online:
            st.online_since, st.offline_since = now, None
        else:
            st.offline_since, st.online_since = now, None
        self.event(self.cfg.interface(name), "connected" if online else "disconnected", reason)
        if not online and self.link_up(name):
            self._flap(self.cfg.interface(name), reason)  # the tracker's verdict, link up
        self._request_apply()

    def adopt_online(self, online: dict[str, bool]) -> None:
        """The online states a previous daemon left (its datapath is still in the kernel)."""
        now = time.time()
        for name, st in self.status.items():
            if name in online and st.online != online[name]:
                st.online = online[name]
                st.online_since, st.offline_since = (now, None) if st.online else (None, now)

    def ifup(self, iface: Interface, reason: str) -> None:
        st = self.status[iface.name]
        st.admin_up = True
        self.event(iface, "ifup", reason)
        tracker = self.trackers.get(iface.name)
        if tracker is None:
            self.set_online(iface.name, True, reason)
        elif st.device_present and st.carrier:
            # probe once this apply has put the WAN's routes back: a round sent before
            # it fails (issue 11 item 11); initial_state says online or earn `up` rounds
            self.resume_after_apply.append((tracker, reason, None))
        self._request_apply()

    def ifdown(self, iface: Interface, reason: str) -> None:
        st = self.status[iface.name]
        st.admin_up = False
        self.event(iface, "ifdown", reason)
        tracker = self.trackers.get(iface.name)
        if tracker is not None:
            tracker.pause(reason)
        self.set_online(iface.name, False, reason)
        self._request_apply()

    # ------------------------------------------------------------ dampening
    def _flap(self, iface: Interface, reason: str) -> None:
        """The interface went down (carrier or tracker): count it; hold it down past the limit."""
        st, p = self.status[iface.name], DampenParams.of(iface)
        st.dampening, change = dampen.record(p, st.dampening, time.time())
        if change is not None:
            self.event(iface, change.value, f"{p.threshold} flaps within {p.window:.0f} s, "
                       f"out of service for {p.holddown:.0f} s after the last ({reason})")
            self._request_apply()
        if st.held and st.hold_timer is None:
            self._hold_timer(iface.name)

    def _hold_timer(self, name: str) -> None:
        st = self.status[name]
        delay = (st.dampening.held_until or 0) - time.time()
        st.hold_timer = asyncio.get_running_loop().call_later(max(0.0, delay),
                                                               self._hold_over, name)

    def _hold_over(self, name: str) -> None:
        st = self.status.get(name)
        if st is None:
            return
        st.hold_timer = None
        released = dampen.expire(st.dampening, time.time())
        if released[1] is None:
            self._hold_timer(name)  # a flap restarted the hold-down meanwhile
            return
        healthy = self.link_up(name) and st.online
        self._release(self.cfg.interface(name), released,
                      "hold-down over, back in service" if healthy else
                      "hold-down over, not healthy: stays offline until it is")

    def _release(self, iface: Interface, released: tuple[Dampening, Change | None],
                 reason: str) -> None:
        st = self.status[iface.name]
        st.dampening = released[0]
        if st.hold_timer is not None and not st.held:
            st.hold_timer.cancel()
            st.hold_timer = None
        if released[1] is not None:
            self.event(iface, released[1].value, reason)
            self._request_apply()
