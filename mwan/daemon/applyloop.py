"""The apply loop: one apply at a time in the kernel thread, bursts coalesced.

Kernel work runs in one worker thread (pyroute2's and libnftables'
synchronous APIs).  Each pass reads the kernel's facts, asks the daemon for
the desired state, repairs drift (what others did to mwan's objects, seen on
nftables and rtnetlink notifications) and applies the difference.  A pass
that fails is shown (:class:`~mwan.daemon.repair.ApplyHealth`) and retried
with back-off; the kernel keeps the last state that applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..kernel.apply import ApplyResult, KernelApplier
from ..kernel.nftmon import NftMonitor, Own, own_netfilter_ports, own_thread_id
from ..plan.state import TABLE_NAME, Desired, KernelFacts
from .drift import Drift, nft_drift, routing_drift
from .repair import ApplyHealth, Repairs

log = logging.getLogger("mwan")
T = TypeVar("T")

Links = dict[str, dict[str, Any]]
Refresh = Callable[[KernelApplier], tuple[KernelFacts, Links]]  # in the kernel thread
Plan = Callable[[KernelFacts, Links], Desired]  # on the loop
Applied = Callable[[ApplyResult, Desired, list[tuple[float, str, str, str]]], Awaitable[None]]


class ApplyLoop:
    def __init__(self, refresh: Refresh, plan: Plan, applied: Applied) -> None:
        self._refresh = refresh
        self._plan = plan
        self._applied_cb = applied
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mwan-kernel")
        self._applier: KernelApplier | None = None
        self._dirty = asyncio.Event()
        self._applied = asyncio.Event()
        self.desired: Desired | None = None
        self.last: ApplyResult | None = None
        self.health = ApplyHealth()
        self.repairs = Repairs()  # drift found in mwan's kernel objects, and its repairs
        self._repair_timer: asyncio.TimerHandle | None = None
        self._nftmon: NftMonitor | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ the kernel thread
    async def kernel(self, fn: Callable[[KernelApplier], T]) -> T:
        """Run ``fn(applier)`` in the kernel thread (where the applier lives)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: fn(self.applier()))

    def applier(self) -> KernelApplier:
        """The kernel applier; only from the kernel thread."""
        if self._applier is None:
            self._applier = KernelApplier()
        return self._applier

    # ------------------------------------------------------------ requests
    def request(self) -> None:
        self._applied.clear()
        self._dirty.set()

    def verify_routing(self) -> None:
        """One of mwan's rules or routes may be gone: look after the next apply."""
        self.repairs.verify_routing = True
        self.request()

    async def wait(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._applied.wait(), timeout)

    # ------------------------------------------------------------ the loop
    async def start(self) -> None:
        await self._start_nft_monitor()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._once()
                self.health.ok()
            except Exception as exc:  # noqa: BLE001 - any failure is shown and retried
                retry = self.health.failed(exc, time.time())
                asyncio.get_running_loop().call_later(retry, self.request)
            if not self._dirty.is_set():
                self._applied.set()

    async def _once(self) -> None:
        facts, links = await self.kernel(self._refresh)
        desired = self._plan(facts, links)
        repairs = self._due_repairs()
        if repairs:
            await self.kernel(lambda a: a.forget())
        self.last = await self.kernel(lambda a: a.apply(desired))
        self.desired = desired
        entries = self.repairs.done(repairs, time.time(), desired) if repairs else []
        await self._verify(desired)
        await self._applied_cb(self.last, desired, entries)
        if self.last.changed:
            log.debug("apply took %.1f ms", self.last.seconds * 1000)

    async def stop(self, remove: bool) -> None:
        """Stop the loop; ``remove`` takes mwan's table, rules and routes out of the kernel."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._close_nft_monitor()  # what stop removes is not drift
        try:
            if remove:
                await self.kernel(lambda a: a.remove())
        finally:
            self._executor.shutdown(wait=True)

    async def in_kernel_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in the kernel thread (for work that needs no applier)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # ------------------------------------------------------------ drift repair
    def _due_repairs(self) -> list[tuple[float, Drift]]:
        """The drift to repair in this apply (none while repairs back off)."""
        delay = self.repairs.due(time.time())
        if delay:
            if self._repair_timer is None:
                def fire() -> None:
                    self._repair_timer = None
                    self.request()
                self._repair_timer = asyncio.get_running_loop().call_later(delay, fire)
            return []
        return self.repairs.take()

    async def _verify(self, desired: Desired) -> None:
        """Look for drift the notifications could not show: after a deletion of one of
        mwan's rules or routes, and after nftables notifications were lost."""
        now = time.time()
        if self.repairs.verify_routing:
            self.repairs.verify_routing = False
            rules, routes, want = await self.kernel(lambda a: a.routing_now(desired))
            d = routing_drift(desired.rules, want, rules, routes)
            if d is not None:
                self.repairs.found(d, now)
                self.request()
        if self.repairs.verify_nft:
            self.repairs.verify_nft = False
            missing = await self.kernel(lambda a: a.nft.shape_drift(desired.nft))
            if missing:
                self.repairs.found(Drift(("nft_table",) if "table" in missing[0] else
                                         ("nft_chain",), "; ".join(missing[:5])), now)
                self.request()

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
                self.request()
        if lost:
            self.repairs.verify_nft = True
            self.request()

    async def _start_nft_monitor(self) -> None:
        own = Own(self.repairs.own_ids)  # mwan's own batches are skipped unparsed
        try:
            self._nftmon = NftMonitor(TABLE_NAME, own=own)
        except OSError as exc:
            log.error("cannot watch nftables for changes (%s): mwan's table is not repaired "
                      "if someone deletes it", exc)
            return
        self.repairs.own_ids.add(await self.in_kernel_thread(own_thread_id))
        # libnftables' socket has its port once it sent a command (the daemon's adopt check
        # lists the table first); else the port is learned from the first apply's NEWGEN
        own.ports |= own_netfilter_ports(exclude=self._nftmon.port)
        asyncio.get_running_loop().add_reader(self._nftmon.fileno(), self._on_nft_events)

    def _close_nft_monitor(self) -> None:
        if self._nftmon is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._nftmon.fileno())
            except (RuntimeError, ValueError):
                pass
            self._nftmon.close()
            self._nftmon = None
