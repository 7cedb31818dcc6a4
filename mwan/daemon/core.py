"""The daemon: one asyncio loop that keeps the kernel in step with the world.

Inputs are events: netlink (links, addresses, routes, rules), the
trackers' verdicts, nftables notifications, and commands on the control
socket.  Each one changes the interface states (:mod:`.interfaces`); then
the apply loop (:mod:`.applyloop`) plans the new desired state and sends
the kernel the difference.  Optional services (the web UI) see the daemon
only through its narrow door (:mod:`.door`), which :class:`Daemon`
implements.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..config.edit import write_atomic
from ..config.errors import ConfigError
from ..config.model import Config, Interface
from ..config.validate import load_config, parse_config, read_network_devices
from ..kernel.apply import ApplyResult, KernelApplier
from ..kernel.nft import CheckError
from ..plan.compile import ConfigPart, compile_plan, config_part
from ..plan.names import MAIN_TABLE
from ..plan.state import Desired, IfaceRuntime, KernelFacts
from ..track.tracker import Tracker
from . import adopt, hooks, netlink, queries
from .applyloop import ApplyLoop, Links
from .configcheck import candidate_desired, refusal_message
from .control import PID_NAME, ControlError, ControlServer, int_arg, str_arg
from .door import DaemonEvent, Listener
from .failback import Failback
from .ifstate import IfaceStatus
from .interfaces import Interfaces
from .sdnotify import Notifier
from .startclock import StartClock
from .usage import CapEvent, UsageMeter, usage_rules
from .use import UseGroups

log = logging.getLogger("mwan")
T = TypeVar("T")


class StartFailed(Exception):
    """The daemon could not start; the kernel was left as it was."""


def write_pid(run_dir: str) -> None:
    with open(os.path.join(run_dir, PID_NAME), "w") as fh:
        fh.write(f"{os.getpid()}\n")


class Daemon:
    """The daemon's parts, its commands and its lifetime; implements :class:`.door.Door`.

    ``cfg`` hands it a config (else it reads ``config_path``), as VyOS's
    ``get_config(config=None)`` lets a test do.
    """

    def __init__(self, config_path: str, network_path: str, run_dir: str,
                 cfg: Config | None = None, start_clock: StartClock | None = None) -> None:
        self.start_clock = start_clock if start_clock is not None else StartClock()
        self._config_path = config_path
        self.network_path = network_path
        self.run_dir = run_dir
        self.started = time.time()
        self.loop = ApplyLoop(self._k_refresh, self._plan, self._after_apply)
        self.ifaces = Interfaces(cfg if cfg is not None else load_config(config_path,
                                                                         network_path),
                                 self.loop.request, self._on_iface_event)
        self._hooks = hooks.HookRunner(self._hook_script, self._hook_flush,
                                       lambda ev: ev.action in ev.iface.flush_conntrack)
        self._part: tuple[Config, ConfigPart] | None = None  # the config-only part of the plan
        self._subscribers: list[Listener] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._config_lock = asyncio.Lock()
        self._saved_online: dict[str, bool] | None = None
        self.web: Any = None  # mwan.web.lifecycle.WebLifecycle, once the UI was enabled
        self.webhooks: Any = None  # mwan.notify.service.NotifyService, once a notify section
        self.failback = Failback()  # failback 'move' policies (issue 15)
        self.usage = UsageMeter(self.cfg, self._k_usage, self._on_cap_event, self.loop.request,
                                lambda: self.trackers)
        self.notify = Notifier()
        self.use = UseGroups(run_dir)
        self.control = ControlServer(run_dir, {
            "ping": self._cmd_ping,
            "ifup": self._cmd_ifup,
            "ifdown": self._cmd_ifdown,
            "reload": self._cmd_reload,
            "stop": self._cmd_stop,
            "use": self._cmd_use,
            "events": self._cmd_events,
        })
        # state, report, explain: the read-only queries, in their own module
        self.control.handlers.update(queries.handlers(self))
        self.start_clock.mark("config parsed")

    # ------------------------------------------------------------ the door
    @property
    def config(self) -> Config:
        return self.ifaces.cfg

    @property
    def config_path(self) -> str:
        return self._config_path

    def router_addresses(self) -> tuple[str, ...]:
        return tuple(a.address for a in self.ifaces.facts.addresses)

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        handler = self.control.handlers.get(cmd)
        if handler is None:
            raise ControlError(f"unknown command {cmd!r}")
        return await handler(args or {})

    async def set_config(self, text: str) -> None:
        """Validate ``text`` as the config, check it against the kernel, then write it
        (atomically) and apply it.

        Raises ConfigError or ControlError and changes nothing (not even the
        file) when it is not valid or the kernel would refuse it.
        """
        async with self._config_lock:
            cfg = parse_config(text, self.config_path, read_network_devices(self.network_path))
            await self.check_config(cfg)
            with open(self.config_path, encoding="utf-8") as fh:  # noqa: ASYNC230 - tiny file
                previous = fh.read()
            write_atomic(self.config_path, text)
            try:
                await self._adopt_config(cfg)
            except ControlError:
                write_atomic(self.config_path, previous)
                raise

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._subscribers.append(listener)

        def unsubscribe() -> None:
            if listener in self._subscribers:
                self._subscribers.remove(listener)
        return unsubscribe

    def _publish(self, ev: DaemonEvent) -> None:
        for listener in list(self._subscribers):
            try:
                listener(ev)
            except Exception:  # a subscriber's bug must not stop the daemon
                log.exception("event subscriber failed on %s", ev)

    # ------------------------------------------------------------ for daemon/queries
    @property
    def cfg(self) -> Config:
        return self.ifaces.cfg

    @property
    def status(self) -> dict[str, IfaceStatus]:
        return self.ifaces.status

    @property
    def trackers(self) -> dict[str, Tracker]:
        return self.ifaces.trackers

    @property
    def facts(self) -> KernelFacts:
        return self.ifaces.facts

    def runtime(self) -> dict[str, IfaceRuntime]:
        return self.usage.mark_standby(self.ifaces.runtime())

    def mark_of(self, iface: Interface) -> int:
        return self.ifaces.mark_of(iface)

    def source_of(self, iface: Interface) -> str | None:
        return self.ifaces.source_of(iface)

    async def kernel(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in the kernel thread."""
        return await self.loop.in_kernel_thread(fn)

    def applier(self) -> KernelApplier:
        """The kernel applier (only from the kernel thread, through :meth:`kernel`)."""
        return self.loop.applier()

    # ------------------------------------------------------------ the apply loop's side
    def _k_refresh(self, applier: KernelApplier) -> tuple[KernelFacts, Links]:
        self.use.sync({i.name: self.mark_of(i) for i in self.cfg.enabled_interfaces})
        links = applier.routing.links()
        return applier.routing.facts(self.cfg.globals.rt_table_lookup, links), links

    def _plan(self, facts: KernelFacts, links: Links) -> Desired:
        self.ifaces.update(facts, links)
        if self._part is None or self._part[0] is not self.cfg:
            self._part = (self.cfg, config_part(self.cfg))
        return compile_plan(self.cfg, self.runtime(), facts, self._part[1])

    async def _after_apply(self, result: ApplyResult, desired: Desired,
                           repairs: list[tuple[float, str, str, str]]) -> None:
        self._save_online()
        now = time.time()
        for entry in repairs:
            self.ifaces.event_log.append(entry)
            self._publish(DaemonEvent("repair", entry[0], reason=entry[3]))
        self._publish(DaemonEvent("apply", now, seconds=result.seconds))
        await self.failback.after_apply(self.cfg, self.runtime(),
                                        lambda n: self.mark_of(self.cfg.interface(n)), self.kernel)
        if self.web is not None:
            await self.web.retry()
        self.ifaces.resume_trackers()

    def _on_iface_event(self, now: float, iface: Interface, action: str, reason: str) -> None:
        self._publish(DaemonEvent("interface", now, iface.name, action, reason))
        self._hooks.submit(hooks.HookEvent(action, iface, reason))

    async def wait_applied(self, timeout: float = 10.0) -> None:
        await self.loop.wait(timeout)

    # ------------------------------------------------------------ hooks
    async def _hook_flush(self, ev: hooks.HookEvent) -> None:
        """After the apply for the event: delete the interface's conntrack entries."""
        try:
            await self.wait_applied()
        except TimeoutError:
            pass
        mark = self.mark_of(ev.iface)
        mask = self.cfg.globals.mmx_mask
        n = await self.kernel(lambda: hooks.flush_conntrack_mark(mark, mask))
        log.info("interface %s %s: flushed %d conntrack entries with mark 0x%x",
                 ev.iface.name, ev.action, n, mark)

    async def _hook_script(self, ev: hooks.HookEvent) -> None:
        await hooks.run_user_script(self.cfg.globals.user_script, ev.action, ev.iface.name,
                                    ev.iface.device)

    # ------------------------------------------------------------ netlink
    async def _netlink_loop(self) -> None:
        async for ev in netlink.events():
            if ev.kind in ("route", "rule") and ev.ours:
                # mwan's own (its applies, or someone deleting one): look after the next apply
                if ev.removed:
                    self.loop.verify_routing()
                continue
            if ev.kind == "rule":
                continue
            desired = self.loop.desired
            if ev.kind == "route" and desired is not None and ev.table in desired.tables:
                # someone else's route in a WAN table may have replaced one of mwan's
                self.loop.verify_routing()
                continue
            if ev.kind == "route" and ev.table not in (MAIN_TABLE, None) and \
                    ev.table not in self.cfg.globals.rt_table_lookup:
                continue
            self.loop.request()

    # ------------------------------------------------------------ HA
    async def _watch_ha_role(self, every: float = 1.0) -> None:
        """With config ha: each change of this router's VRRP role is an event (log, web UI
        log, webhooks); the role is read from keepalived's hook (mwan.ha.status)."""
        from ..ha.status import read_role

        last: str | None = None
        while True:
            ha = self.cfg.ha
            role = read_role(ha) if ha is not None else None
            if role is not None and last is not None and role != last:
                now = time.time()
                action, reason = f"ha_{role.lower()}", f"VRRP role {last} -> {role}"
                log.warning("this router's HA role: %s", reason)
                self.ifaces.event_log.append((now, "-", action, reason))
                self._publish(DaemonEvent("ha", now, action=action, reason=reason))
            last = role
            await asyncio.sleep(every)

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
        self.ifaces.ifup(iface, "mwan3 ifup")
        await self.wait_applied()
        st = self.status[iface.name]
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
        self.ifaces.ifdown(iface, "mwan3 ifdown")
        await self.wait_applied()
        return {"interface": iface.name, "online": False}

    async def _cmd_events(self, args: dict[str, Any]) -> Any:
        """The newest interface events and repairs, newest first."""
        limit = int_arg(args, "limit", 200)
        recent = list(self.ifaces.event_log)[-limit:] if limit > 0 else []
        return [{"time": t, "interface": i, "action": a, "reason": r}
                for t, i, a, r in reversed(recent)]

    async def _cmd_reload(self, args: dict[str, Any]) -> Any:
        async with self._config_lock:
            try:
                cfg = load_config(self.config_path, self.network_path)
            except ConfigError as exc:
                raise ControlError(str(exc)) from None
            await self.check_config(cfg)
            await self._adopt_config(cfg)
        return {"reloaded": self.config_path}

    async def check_config(self, cfg: Config) -> None:
        """Raise ControlError, changing nothing, when the kernel would refuse ``cfg``."""
        desired = candidate_desired(cfg, self.status, self.ifaces.links, self.facts)
        try:
            await self.loop.kernel(lambda a: a.check(desired))
        except CheckError as exc:
            raise ControlError(refusal_message(cfg, self.config_path, exc)
                               + "\nthe running config is kept") from None

    async def _adopt_config(self, cfg: Config) -> None:
        """Switch to ``cfg``; if the kernel still refuses its first apply, switch back."""
        old = self.cfg
        self.ifaces.switch(cfg)
        asked = time.time()
        self.loop.request()
        await self.wait_applied(30)
        failing = self.loop.health
        if failing.since is not None and failing.since >= asked:
            reason = failing.reason
            self.ifaces.switch(old)
            self.loop.request()
            await self.wait_applied(30)
            raise ControlError(f"{self.config_path}: the kernel refused the new config: "
                               f"{reason}\nthe running config is kept")
        await self._sync_web()
        self.usage.switch(self.cfg)
        await self._sync_notify()

    async def _cmd_use(self, args: dict[str, Any]) -> Any:
        iface = self._iface_arg(args)
        return self.use.answer(iface.name, iface.device, iface.family, self.mark_of(iface),
                               self.status[iface.name].online)

    async def _cmd_stop(self, args: dict[str, Any]) -> Any:
        self._stop.set()
        return {"stopping": os.getpid()}

    # ------------------------------------------------------------ optional services
    async def _sync_web(self) -> None:
        """Start, move or stop the web UI when its options change (mwan.web.lifecycle).

        aiohttp and prometheus-client are imported only once the UI is enabled.
        """
        if self.web is None:
            if not self.cfg.globals.web_enabled:
                return
            from ..web.lifecycle import WebLifecycle
            self.web = WebLifecycle(self)
        await self.web.sync()

    async def _sync_notify(self) -> None:
        """Start or follow the webhooks (mwan.notify) when the config has notify sections."""
        if self.webhooks is None:
            if not self.cfg.notifies:
                return
            from ..notify.service import NotifyService
            self.webhooks = NotifyService(self)
        self.webhooks.sync(self.cfg)

    async def _k_usage(self) -> list[dict[str, Any]]:
        return await self.kernel(lambda: usage_rules(self.applier().nft, self.cfg))

    def _on_cap_event(self, ev: CapEvent) -> None:
        self.ifaces.event(self.cfg.interface(ev.interface), ev.action, ev.reason)

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
        await self._sync_notify()  # before the first apply: its ifup events are sent too
        await self._adopt()
        await self.loop.start()
        self.loop.request()
        await self.wait_applied(30)
        if self.loop.health.since is not None:
            reason = self.loop.health.reason or "unknown"
            await self.loop.stop(remove=False)
            if self.webhooks is not None:
                await self.webhooks.close()
            raise StartFailed(f"the first apply failed: {reason}")
        self.start_clock.mark("first apply done")
        self._tasks.append(asyncio.create_task(self._netlink_loop()))
        self._tasks.append(asyncio.create_task(self._hooks.run()))  # cancelled at shutdown
        self._tasks.append(asyncio.create_task(self._watch_ha_role()))
        self.ifaces.start_trackers(self.ifaces.sync_trackers())
        await self.control.start()
        await self._sync_web()
        self.usage.announce()  # the caps, in the log before mwan3 start returns
        self._tasks.append(asyncio.create_task(self.usage.run()))
        write_pid(self.run_dir)
        log.info("mwan started: %d interfaces, %d policies, %d rules",
                 len(self.cfg.enabled_interfaces), len(self.cfg.policies), len(self.cfg.rules))
        self.notify.ready(f"{len(self.cfg.enabled_interfaces)} interfaces")
        interval = self.notify.watchdog_interval()
        if interval is not None:
            self._tasks.append(asyncio.create_task(self.notify.feed_watchdog(interval)))
        if ready:
            ready()
        self.start_clock.mark("ready")
        log.info("%s", self.start_clock.line())
        try:
            await self._stop.wait()
        finally:
            self.notify.stopping()
            await self.shutdown()

    async def _adopt(self) -> None:
        """A previous daemon's datapath is in the kernel: keep its online WANs in service."""
        exists = await self.loop.kernel(lambda a: a.nft.table_exists())
        online = adopt.load(self.run_dir)
        if not exists:
            return
        if online is None:
            log.info("adopting the nft table inet mwan found in the kernel")
            return
        self.ifaces.adopt_online(online)
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

    async def _reload_safe(self) -> None:
        try:
            await self._cmd_reload({})
        except ControlError as exc:
            log.error("reload refused, keeping the running config:\n%s", exc)

    async def shutdown(self) -> None:
        await self.ifaces.close_trackers()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.web is not None:
            await self.web.close()
            self.web = None
        await self.usage.stop()  # the last counts, then the file (issue 15)
        if self.webhooks is not None:
            await self.webhooks.close()
            self.webhooks = None
        await self.control.close()
        try:
            await self.loop.stop(remove=True)
        finally:
            self.use.remove()
            try:
                os.unlink(os.path.join(self.run_dir, PID_NAME))
            except FileNotFoundError:
                pass
            adopt.remove(self.run_dir)
        log.info("mwan stopped; its rules, routes and nft table are removed")
