"""The daemon: one asyncio loop that keeps the kernel in step with the world.

Inputs are events: netlink (links, addresses, routes), the tracker's
verdicts, and commands on the control socket.  Each one changes the
interface states; then the planner computes the new desired state and the
applier sends the kernel the difference.  Kernel work runs in one worker
thread (pyroute2's and libnftables' synchronous APIs), one apply at a time,
and a burst of events coalesces into one apply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..config.edit import write_atomic
from ..config.errors import ConfigError
from ..config.marks import MarkSpace
from ..config.model import Config, InitialState, Interface
from ..config.validate import load_config, parse_config, read_network_devices
from ..kernel.apply import ApplyResult, KernelApplier
from ..kernel.nft import CheckError
from ..kernel.nftmon import NftMonitor, own_thread_id
from ..plan.compile import ConfigPart, compile_plan, config_part
from ..plan.state import TABLE_NAME, Desired, IfaceRuntime, KernelFacts
from ..track import dampen
from ..track.dampen import Change, Dampening, DampenParams
from ..track.machine import Step
from ..track.tracker import Tracker
from . import adopt, hooks, netlink, report
from .configcheck import candidate_desired, refusal_message
from .control import PID_NAME, ControlError, ControlServer, str_arg
from .drift import Drift, nft_drift, routing_drift
from .ifstate import IfaceStatus, addresses_for, gateway_for
from .repair import ApplyHealth, Repairs
from .sdnotify import Notifier
from .use import UseGroups

log = logging.getLogger("mwan")
LOUD = {"dampened": logging.WARNING, "undampened": logging.WARNING}  # flap hold-downs
T = TypeVar("T")


class StartFailed(Exception):
    """The daemon could not start; the kernel was left as it was."""


def write_pid(run_dir: str) -> None:
    with open(os.path.join(run_dir, PID_NAME), "w") as fh:
        fh.write(f"{os.getpid()}\n")


class Daemon:
    def __init__(self, config_path: str, network_path: str, run_dir: str) -> None:
        self.config_path = config_path
        self.network_path = network_path
        self.run_dir = run_dir
        self.cfg: Config = load_config(config_path, network_path)
        self.status: dict[str, IfaceStatus] = {}
        self.facts = KernelFacts()
        self.links: dict[str, dict[str, Any]] = {}
        self.desired: Desired | None = None
        self.last_apply: ApplyResult | None = None
        self.started = time.time()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mwan-kernel")
        self._applier: KernelApplier | None = None
        self._dirty = asyncio.Event()
        self._applied = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._listeners: list[Callable[[str, str, str], None]] = []
        self.trackers: dict[str, Tracker] = {}
        # trackers to resume once the WAN's routes are back: (tracker, reason, online)
        self._resume_after_apply: list[tuple[Tracker, str, bool | None]] = []
        self._hooks = hooks.HookRunner(self._hook_script, self._hook_flush,
                                       lambda ev: ev.action in ev.iface.flush_conntrack)
        self._part: tuple[Config, ConfigPart] | None = None  # the config-only part of the plan
        # the transitions of every interface, newest last (web UI log, metrics)
        self.event_log: deque[tuple[float, str, str, str]] = deque(maxlen=1000)
        self.transitions: Counter[tuple[str, str]] = Counter()
        self.apply_listeners: list[Callable[[ApplyResult], None]] = []
        self.web: Any = None
        self._web_failed: tuple[tuple[str, ...], str] | None = None  # (addresses then, why)
        self._config_lock = asyncio.Lock()
        self.repairs = Repairs()  # drift found in mwan's kernel objects, and its repairs
        self._repair_timer: asyncio.TimerHandle | None = None
        self._nftmon: NftMonitor | None = None
        self.apply_failing = ApplyHealth()
        self._saved_online: dict[str, bool] | None = None
        self.notify = Notifier()
        self.use = UseGroups(run_dir)
        self.control = ControlServer(run_dir, {
            "ping": self._cmd_ping,
            "ifup": self._cmd_ifup,
            "ifdown": self._cmd_ifdown,
            "reload": self._cmd_reload,
            "stop": self._cmd_stop,
            "use": self._cmd_use,
        })
        # state, report, explain: read-only, in their own module
        self.control.handlers.update(report.handlers(self))
        self._sync_status()

    # ------------------------------------------------------------ kernel thread
    async def kernel(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _k_applier(self) -> KernelApplier:
        if self._applier is None:
            self._applier = KernelApplier()
        return self._applier

    def _k_refresh(self) -> tuple[KernelFacts, dict[str, dict[str, Any]]]:
        a = self._k_applier()
        self._k_use_groups()
        return a.routing.facts(self.cfg.globals.rt_table_lookup), a.routing.links()

    def _k_use_groups(self) -> None:
        self.use.sync({i.name: self.mark_of(i) for i in self.cfg.enabled_interfaces})

    def _k_apply(self, desired: Desired) -> ApplyResult:
        return self._k_applier().apply(desired)

    def _k_remove(self) -> ApplyResult:
        return self._k_applier().remove()

    # ------------------------------------------------------------ state
    def _sync_status(self) -> None:
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

    def runtime(self) -> dict[str, IfaceRuntime]:
        out = {}
        for iface in self.cfg.enabled_interfaces:
            st = self.status[iface.name]
            up = st.admin_up and st.device_present and st.carrier
            out[iface.name] = IfaceRuntime(
                name=iface.name, up=up, online=up and st.online and not st.held,
                gateway=gateway_for(iface, self.facts) if up else None,
                addresses=addresses_for(iface, self.facts),
            )
        return out

    def _update_links(self, links: dict[str, dict[str, Any]]) -> None:
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
                self._event(iface, "ifup" if carrier else "ifdown", reason)
                if not carrier:
                    self._flap(iface, reason)
                tracker = self.trackers.get(iface.name)
                if tracker is None:
                    continue
                if carrier and st.admin_up:
                    # once the WAN's routes are back (after this apply), earn 'up' good rounds
                    self._resume_after_apply.append((tracker, reason, False))
                elif not carrier:
                    tracker.pause(reason)

    # ------------------------------------------------------------ tracking
    def mark_of(self, iface: Interface) -> int:
        return MarkSpace(self.cfg.globals.mmx_mask).mark(iface.id)

    def source_of(self, iface: Interface) -> str | None:
        addrs = addresses_for(iface, self.facts)
        return addrs[0] if addrs else None

    def _sync_trackers(self) -> list[Tracker]:
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

    def _start_trackers(self, trackers: list[Tracker]) -> None:
        for tr in trackers:
            st = self.status[tr.iface.name]
            up = st.admin_up and st.device_present and st.carrier
            tr.start(up, online=st.online)

    def _on_track_step(self, tracker: Tracker, step: Step, reason: str) -> None:
        name = tracker.iface.name
        for ev in step.events:
            if ev == "connected":
                self.set_online(name, True, reason)
            elif ev == "disconnected":
                self.set_online(name, False, reason)
            else:
                self._event(tracker.iface, ev, reason)
        if step.verdicts and not step.events:
            log.debug("interface %s %s score %d: %s", name, step.state.status.value,
                      step.state.score, reason)

    def _event(self, iface: Interface, action: str, reason: str) -> None:
        st = self.status[iface.name]
        now = time.time()
        st.events.append((now, f"{action}: {reason}"))
        del st.events[:-50]
        self.event_log.append((now, iface.name, action, reason))
        self.transitions[(iface.name, action)] += 1
        log.log(LOUD.get(action, logging.INFO), "interface %s %s (%s)", iface.name, action, reason)
        for listener in self._listeners:
            listener(action, iface.name, iface.device)
        self._hooks.submit(hooks.HookEvent(action, iface, reason))

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
        self._event(self.cfg.interface(name), "connected" if online else "disconnected", reason)
        if not online and st.admin_up and st.device_present and st.carrier:
            self._flap(self.cfg.interface(name), reason)  # the tracker's verdict, link up
        self.request_apply()

    def _flap(self, iface: Interface, reason: str) -> None:
        """The interface went down (carrier or tracker): count it; hold it down past the limit."""
        st, p = self.status[iface.name], DampenParams.of(iface)
        st.dampening, change = dampen.record(p, st.dampening, time.time())
        if change is not None:
            self._event(iface, change.value, f"{p.threshold} flaps within {p.window:.0f} s, "
                        f"out of service for {p.holddown:.0f} s after the last ({reason})")
            self.request_apply()
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
        healthy = st.admin_up and st.device_present and st.carrier and st.online
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
            self._event(iface, released[1].value, reason)
            self.request_apply()

    def request_apply(self) -> None:
        self._applied.clear()
        self._dirty.set()

    # ------------------------------------------------------------ loops
    async def _apply_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._apply_once()
                self.apply_failing.ok()
            except Exception as exc:  # noqa: BLE001 - any failure is shown and retried
                retry = self.apply_failing.failed(exc, time.time())
                asyncio.get_running_loop().call_later(retry, self.request_apply)
            if not self._dirty.is_set():
                self._applied.set()

    async def _apply_once(self) -> None:
        facts, links = await self.kernel(self._k_refresh)
        self.facts = facts
        self._update_links(links)
        if self._part is None or self._part[0] is not self.cfg:
            self._part = (self.cfg, config_part(self.cfg))
        desired = compile_plan(self.cfg, self.runtime(), self.facts, self._part[1])
        repairs = self._due_repairs()
        if repairs:
            await self.kernel(lambda: self._k_applier().forget())
        self.last_apply = await self.kernel(self._k_apply, desired)
        self.desired = desired
        self._save_online()
        if repairs:
            self.event_log.extend(self.repairs.done(repairs, time.time(), desired))
        await self._verify(desired)
        for listener in self.apply_listeners:
            listener(self.last_apply)
        await self._retry_web()
        resume, self._resume_after_apply = self._resume_after_apply, []
        for tracker, reason, resume_online in resume:
            if self.trackers.get(tracker.iface.name) is tracker:
                tracker.resume(reason, online=resume_online)
        if self.last_apply.changed:
            log.debug("apply took %.1f ms", self.last_apply.seconds * 1000)

    # ------------------------------------------------------------ drift repair
    def _due_repairs(self) -> list[tuple[float, Drift]]:
        """The drift to repair in this apply (none while repairs back off)."""
        delay = self.repairs.due(time.time())
        if delay:
            if self._repair_timer is None:
                def fire() -> None:
                    self._repair_timer = None
                    self.request_apply()
                self._repair_timer = asyncio.get_running_loop().call_later(delay, fire)
            return []
        return self.repairs.take()

    async def _verify(self, desired: Desired) -> None:
        """Look for drift the notifications could not show: after a deletion of one of
        mwan's rules or routes, and after nftables notifications were lost."""
        now = time.time()
        if self.repairs.verify_routing:
            self.repairs.verify_routing = False
            rules, routes, want = await self.kernel(lambda: self._k_applier().routing_now(desired))
            d = routing_drift(desired.rules, want, rules, routes)
            if d is not None:
                self.repairs.found(d, now)
                self.request_apply()
        if self.repairs.verify_nft:
            self.repairs.verify_nft = False
            missing = await self.kernel(lambda: self._k_applier().nft.shape_drift(desired.nft))
            if missing:
                self.repairs.found(Drift(("nft_table",) if "table" in missing[0] else
                                         ("nft_chain",), "; ".join(missing[:5])), now)
                self.request_apply()

    def _on_nft_events(self) -> None:
        """nftables notifications: a batch someone else committed to mwan's table is drift."""
        assert self._nftmon is not None
        try:
            batches, lost = self._nftmon.read()
        except OSError as exc:
            log.warning("reading nftables notifications failed: %s", exc)
            return
        now = time.time()
        for b in batches:
            if self.repairs.ours(b):
                continue
            d = nft_drift(b, self.desired)
            if d is not None:
                self.repairs.found(d, now)
                self.request_apply()
        if lost:
            self.repairs.verify_nft = True
            self.request_apply()

    async def _start_nft_monitor(self) -> None:
        try:
            self._nftmon = NftMonitor(TABLE_NAME)
        except OSError as exc:
            log.error("cannot watch nftables for changes (%s): mwan's table is not repaired "
                      "if someone deletes it", exc)
            return
        self.repairs.own_ids.add(await self.kernel(own_thread_id))
        asyncio.get_running_loop().add_reader(self._nftmon.fileno(), self._on_nft_events)

    async def _hook_loop(self) -> None:
        """The hooks' lifetime (they coalesce per interface, see hooks.HookRunner)."""
        await self._hooks.run()  # cancelled at shutdown: running scripts are killed

    async def _hook_flush(self, ev: hooks.HookEvent) -> None:
        """After the apply for the event: delete the interface's conntrack entries."""
        try:
            await self.wait_applied()
        except TimeoutError:
            pass
        mark = self.mark_of(ev.iface)
        n = await self.kernel(hooks.flush_conntrack_mark, mark, self.cfg.globals.mmx_mask)
        log.info("interface %s %s: flushed %d conntrack entries with mark 0x%x",
                 ev.iface.name, ev.action, n, mark)

    async def _hook_script(self, ev: hooks.HookEvent) -> None:
        await hooks.run_user_script(self.cfg.globals.user_script, ev.action, ev.iface.name,
                                    ev.iface.device)

    async def _netlink_loop(self) -> None:
        async for ev in netlink.events():
            if ev.kind in ("route", "rule") and ev.ours:
                # mwan's own (its applies, or someone deleting one): look after the next apply
                if ev.removed:
                    self.repairs.verify_routing = True
                    self.request_apply()
                continue
            if ev.kind == "rule":
                continue
            if ev.kind == "route" and self.desired is not None and \
                    ev.table in self.desired.tables:
                # someone else's route in a WAN table may have replaced one of mwan's
                self.repairs.verify_routing = True
                self.request_apply()
                continue
            if ev.kind == "route" and ev.table not in (254, None) and \
                    ev.table not in self.cfg.globals.rt_table_lookup:
                continue
            self.request_apply()

    async def wait_applied(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._applied.wait(), timeout)

    # ------------------------------------------------------------ commands
    async def _cmd_ping(self, args: dict[str, Any]) -> Any:
        return {"pid": os.getpid(), "config": self.config_path}

    def _iface_arg(self, args: dict[str, Any]) -> Interface:
        name = str_arg(args, "interface")
        try:
            iface = self.cfg.interface(name)
        except KeyError:
            raise ControlError(f"unknown interface {name!r}") from None
        if not iface.enabled:
            raise ControlError(f"interface {name} is not enabled in {self.config_path}")
        return iface

    async def _cmd_ifup(self, args: dict[str, Any]) -> Any:
        iface = self._iface_arg(args)
        st = self.status[iface.name]
        st.admin_up = True
        self._event(iface, "ifup", "mwan3 ifup")
        tracker = self.trackers.get(iface.name)
        if tracker is None:
            self.set_online(iface.name, True, "mwan3 ifup")
        elif st.device_present and st.carrier:
            # probe once this apply has put the WAN's routes back: a round sent before
            # it fails (issue 11 item 11); initial_state says online or earn `up` rounds
            self._resume_after_apply.append((tracker, "mwan3 ifup", None))
        self.request_apply()
        await self.wait_applied()
        answer: dict[str, Any] = {"interface": iface.name,
                                  "online": st.online and st.device_present and st.carrier}
        if not st.device_present:
            answer["waiting"] = (f"device {iface.device} does not exist; "
                                 "it comes online when it appears")
        elif not st.carrier:
            answer["waiting"] = (f"device {iface.device} is down or has no carrier; "
                                 "it comes online when its link is up")
        return answer

    async def _cmd_ifdown(self, args: dict[str, Any]) -> Any:
        iface = self._iface_arg(args)
        st = self.status[iface.name]
        st.admin_up = False
        self._event(iface, "ifdown", "mwan3 ifdown")
        tracker = self.trackers.get(iface.name)
        if tracker is not None:
            tracker.pause("mwan3 ifdown")
        self.set_online(iface.name, False, "mwan3 ifdown")
        self.request_apply()
        await self.wait_applied()
        return {"interface": iface.name, "online": False}

    async def _cmd_reload(self, args: dict[str, Any]) -> Any:
        async with self._config_lock:
            try:
                cfg = load_config(self.config_path, self.network_path)
            except ConfigError as exc:
                raise ControlError(str(exc)) from None
            await self._check_config(cfg)
            await self._adopt_config(cfg)
        return {"reloaded": self.config_path}

    async def _check_config(self, cfg: Config) -> None:
        """Raise ControlError, changing nothing, when the kernel would refuse ``cfg``."""
        desired = candidate_desired(cfg, self.status, self.links, self.facts)
        try:
            await self.kernel(lambda: self._k_applier().check(desired))
        except CheckError as exc:
            raise ControlError(refusal_message(cfg, self.config_path, exc)
                               + "\nthe running config is kept") from None

    async def _adopt_config(self, cfg: Config) -> None:
        """Switch to ``cfg``; if the kernel still refuses its first apply, switch back."""
        old = self.cfg
        self.cfg = cfg
        self._sync_status()
        self._start_trackers(self._sync_trackers())
        asked = time.time()
        self.request_apply()
        await self.wait_applied(30)
        failing = self.apply_failing
        if failing.since is not None and failing.since >= asked:
            reason = failing.reason
            self.cfg = old
            self._sync_status()
            self._start_trackers(self._sync_trackers())
            self.request_apply()
            await self.wait_applied(30)
            raise ControlError(f"{self.config_path}: the kernel refused the new config: "
                               f"{reason}\nthe running config is kept")
        await self._sync_web(old)

    async def apply_config_text(self, text: str) -> None:
        """Validate ``text`` as the config, check it against the kernel, then write it
        (atomically) and apply it.

        Raises ConfigError or ControlError and changes nothing (not even the
        file) when it is not valid or the kernel would refuse it.
        """
        async with self._config_lock:
            cfg = parse_config(text, self.config_path, read_network_devices(self.network_path))
            await self._check_config(cfg)
            with open(self.config_path, encoding="utf-8") as fh:  # noqa: ASYNC230 - tiny file
                previous = fh.read()
            write_atomic(self.config_path, text)
            try:
                await self._adopt_config(cfg)
            except ControlError:
                write_atomic(self.config_path, previous)
                raise

    async def _sync_web(self, old: Config | None) -> None:
        """Start, move or stop the web UI when its options change (mwan.web.lifecycle)."""
        if self.web is None:
            from ..web.lifecycle import WebLifecycle
            self.web = WebLifecycle(self)
        await self.web.sync(old)

    async def _retry_web(self) -> None:
        """The web UI could not listen (its address was not there yet): retry on a change."""
        if self.web is not None:
            await self.web.retry()

    async def _cmd_use(self, args: dict[str, Any]) -> Any:
        iface = self._iface_arg(args)
        return self.use.answer(iface.name, iface.device, iface.family, self.mark_of(iface),
                               self.status[iface.name].online)

    async def _cmd_stop(self, args: dict[str, Any]) -> Any:
        self._stop.set()
        return {"stopping": os.getpid()}

    # ------------------------------------------------------------ lifecycle
    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Apply, serve until told to stop, then remove everything.

        Raises :class:`StartFailed` when the first apply fails; the kernel is
        then left as it was (a previous daemon's datapath keeps routing).
        """
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reload_safe()))
        await self._start_nft_monitor()
        await self._adopt()
        self._tasks.append(asyncio.create_task(self._apply_loop()))
        self.request_apply()
        await self.wait_applied(30)
        if self.apply_failing.since is not None:
            reason = self.apply_failing.reason or "unknown"
            await self._abandon()
            raise StartFailed(f"the first apply failed: {reason}")
        self._tasks.append(asyncio.create_task(self._netlink_loop()))
        self._tasks.append(asyncio.create_task(self._hook_loop()))
        self._start_trackers(self._sync_trackers())
        await self.control.start()
        await self._sync_web(None)
        write_pid(self.run_dir)
        log.info("mwan started: %d interfaces, %d policies, %d rules",
                 len(self.cfg.enabled_interfaces), len(self.cfg.policies), len(self.cfg.rules))
        self.notify.ready(f"{len(self.cfg.enabled_interfaces)} interfaces")
        interval = self.notify.watchdog_interval()
        if interval is not None:
            self._tasks.append(asyncio.create_task(self.notify.feed_watchdog(interval)))
        if ready:
            ready()
        try:
            await self._stop.wait()
        finally:
            self.notify.stopping()
            await self.shutdown()

    async def _adopt(self) -> None:
        """A previous daemon's datapath is in the kernel: keep its online WANs in service."""
        exists = await self.kernel(lambda: self._k_applier().nft.listing("table") is not None)
        online = adopt.load(self.run_dir)
        if not exists:
            return
        if online is None:
            log.info("adopting the nft table inet mwan found in the kernel")
            return
        now = time.time()
        for name, st in self.status.items():
            if name in online and st.online != online[name]:
                st.online = online[name]
                st.online_since, st.offline_since = (now, None) if st.online else (None, now)
        log.info("adopting the datapath a previous mwan left: %s", ", ".join(
            f"{n} {'online' if st.online else 'offline'}" for n, st in self.status.items()))

    def _save_online(self) -> None:
        online = {n: rt.online for n, rt in self.runtime().items()}
        if online != self._saved_online:
            try:
                adopt.save(self.run_dir, online)
                self._saved_online = online
            except OSError as exc:
                log.warning("cannot save interface states in %s: %s", self.run_dir, exc)

    async def _abandon(self) -> None:
        """Stop without touching the kernel (the first apply failed)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._close_nft_monitor()
        self._executor.shutdown(wait=True)

    def _close_nft_monitor(self) -> None:
        if self._nftmon is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._nftmon.fileno())
            except (RuntimeError, ValueError):
                pass
            self._nftmon.close()
            self._nftmon = None

    async def _reload_safe(self) -> None:
        try:
            await self._cmd_reload({})
        except ControlError as exc:
            log.error("reload refused, keeping the running config:\n%s", exc)

    async def shutdown(self) -> None:
        await asyncio.gather(*(tr.close() for tr in self.trackers.values()),
                             return_exceptions=True)
        self.trackers.clear()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._close_nft_monitor()  # what stop removes is not drift
        if self.web is not None:
            await self.web.close()
            self.web = None
        await self.control.close()
        try:
            await self.kernel(self._k_remove)
            await self.kernel(self.use.remove)
        finally:
            self._executor.shutdown(wait=True)
            try:
                os.unlink(os.path.join(self.run_dir, PID_NAME))
            except FileNotFoundError:
                pass
            adopt.remove(self.run_dir)
        log.info("mwan stopped; its rules, routes and nft table are removed")
