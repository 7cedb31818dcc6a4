"""Side effects of interface events: the user script and the conntrack flush.

The user script (``/etc/mwan3.user`` by default) runs asynchronously with
ACTION, INTERFACE and DEVICE in its environment: values never pass through a
shell, the script has a time limit, and its failure is logged, never fatal.
A slow script cannot stall failover (NethServer #1014).

* Each run starts in its own session and process group; at the limit the
  whole group is killed (``os.killpg``), children included.  The run ends
  when the script exits: output a background child writes after that is not
  read (the pipe is closed; redirect a child's output if it keeps running).
* Only the last :data:`OUTPUT_KEEP` bytes of output are kept, for the log;
  the rest is discarded as it is read.
* A script that is not an executable regular file, or that a user other than
  root (or the daemon's own user) could change, is refused with a log line
  and never run (in particular never through ``/bin/sh``).

``flush_conntrack`` deletes only the conntrack entries carrying that
interface's mark (a filtered netlink flush), not the whole table as mwan3's
``echo f > /proc/net/nf_conntrack`` does, so established flows of the dead
WAN re-classify at once and everything else is left alone.

:class:`HookRunner` coalesces per interface: at most one script and one
flush of an interface run at a time, and at most one more of each waits --
the latest event, which replaces an older waiting one.  Flushes and scripts
are separate lanes, so a flush never waits behind a script, and interfaces
never wait for each other.  Its core, :class:`Coalescer`, is pure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..config.model import Interface

log = logging.getLogger(__name__)

SCRIPT_TIMEOUT = 30.0
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT_KEEP = 4096  # bytes of a script's output kept for the log (the last ones)
READ_CHUNK = 65536
EXIT_GRACE = 0.2  # seconds to read what is left in the pipe once the script exited

K = TypeVar("K")
T = TypeVar("T")


# ---------------------------------------------------------------- the pure core

@dataclass
class _Lane(Generic[T]):
    waiting: T | None = None
    superseded: int = 0  # events replaced by a newer one while waiting


@dataclass
class Coalescer(Generic[K, T]):
    """Per key: one item running, at most one waiting (the latest wins). Pure.

    ``offer`` returns the item when it may start now (nothing runs for its
    key), else keeps it as the one waiting, replacing an older one.
    ``finish`` is called when the running item is done; it returns the next
    item to start (the waiting one) with how many it superseded, or None
    when the key is idle again.
    """

    _lanes: dict[K, _Lane[T]] = field(default_factory=dict)

    def offer(self, key: K, item: T) -> T | None:
        lane = self._lanes.get(key)
        if lane is None:
            self._lanes[key] = _Lane()
            return item
        if lane.waiting is not None:
            lane.superseded += 1
        lane.waiting = item
        return None

    def finish(self, key: K) -> tuple[T, int] | None:
        lane = self._lanes[key]
        if lane.waiting is None:
            del self._lanes[key]
            return None
        item, dropped = lane.waiting, lane.superseded
        lane.waiting, lane.superseded = None, 0
        return item, dropped

    def busy(self, key: K) -> bool:
        return key in self._lanes

    def waiting(self, key: K) -> T | None:
        lane = self._lanes.get(key)
        return lane.waiting if lane else None


class Tail:
    """The last ``keep`` bytes of a stream; everything before is dropped as it comes."""

    def __init__(self, keep: int = OUTPUT_KEEP) -> None:
        self.keep = keep
        self.total = 0
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self._buf += data[-self.keep:]
        del self._buf[:-self.keep]

    def text(self) -> str:
        prefix = "..." if self.total > len(self._buf) else ""
        return prefix + bytes(self._buf).decode(errors="replace").strip()


def script_refusal(path: str, st: os.stat_result, dir_st: os.stat_result,
                   euid: int) -> str | None:
    """Why the script at ``path`` must not run, or None. Pure (takes the stats)."""
    trusted = {0, euid}
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if not st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return "is not executable (chmod 0755 it; it is never run through /bin/sh)"
    if st.st_uid not in trusted:
        return f"is owned by uid {st.st_uid}, not root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "is writable by group or others (chmod go-w it)"
    if dir_st.st_uid not in trusted or dir_st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is in {os.path.dirname(path) or '.'}, which a user other than root can change"
    return None


# ---------------------------------------------------------------- running a script

def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_user_script(path: str, action: str, interface: str, device: str,
                          timeout: float = SCRIPT_TIMEOUT, keep: int = OUTPUT_KEEP) -> int | None:
    """Run the user script once; its exit status (None: absent, refused or killed)."""
    try:
        real = os.path.realpath(path) if path else ""
        st = os.stat(real) if real else None
        dir_st = os.stat(os.path.dirname(real)) if st else None
    except (FileNotFoundError, NotADirectoryError):
        st = dir_st = None
    except OSError as exc:  # permission denied on the way, too many symlinks...
        log.error("user script %s: %s: not run for %s %s", path, exc, action, interface)
        return None
    if st is None or dir_st is None:
        return None  # no script: nothing to run (the default /etc/mwan3.user may not exist)
    why = script_refusal(real, st, dir_st, os.geteuid())
    if why is not None:
        log.error("user script %s %s: not run for %s %s", path, why, action, interface)
        return None
    loop = asyncio.get_running_loop()
    env = {"ACTION": action, "INTERFACE": interface, "DEVICE": device, "PATH": SAFE_PATH}
    tail = Tail(keep)
    try:
        rfd, wfd = os.pipe()
    except OSError as exc:
        log.error("user script %s could not run for %s %s: %s", path, action, interface, exc)
        return None
    eof = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(rfd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            tail.add(data)
        else:
            loop.remove_reader(rfd)
            if not eof.done():
                eof.set_result(None)

    proc: asyncio.subprocess.Process | None = None
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                real, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=wfd, stderr=wfd,
                start_new_session=True)  # its own session and process group (pgid = pid)
        except OSError as exc:
            log.error("user script %s could not run for %s %s: %s", path, action, interface,
                      exc)
            return None
        finally:
            os.close(wfd)
        os.set_blocking(rfd, False)
        loop.add_reader(rfd, readable)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            log.error("user script %s (%s %s) killed with its process group after %.0f s: %s",
                      path, action, interface, timeout, tail.text()[-500:])
            return None
        # what the script wrote before it exited; a child holding the pipe is not waited for
        await asyncio.wait([eof], timeout=EXIT_GRACE)
    finally:
        if proc is not None and proc.returncode is None:  # cancelled (daemon stopping)
            _kill_group(proc.pid)
        loop.remove_reader(rfd)
        os.close(rfd)
    if proc.returncode != 0:
        log.warning("user script %s (%s %s) exited %s: %s", path, action, interface,
                    proc.returncode, tail.text()[-500:])
    return proc.returncode


def flush_conntrack_mark(mark: int, mask: int) -> int:
    """Delete conntrack entries whose ``ct mark & mask == mark`` (blocking).

    Returns how many entries matched before the flush (for the log).
    """
    from pyroute2 import NFCTSocket

    sock = NFCTSocket()
    try:
        count = sum(1 for _ in sock.dump(mark=mark, mark_mask=mask))
        sock.flush(mark=mark, mark_mask=mask)
        return count
    finally:
        sock.close()


# ---------------------------------------------------------------- the runner

@dataclass(frozen=True)
class HookEvent:
    """One interface event as the hooks see it."""

    action: str
    iface: Interface
    reason: str = ""

    @property
    def interface(self) -> str:
        return self.iface.name


Job = Callable[[HookEvent], Awaitable[object]]


class HookRunner:
    """Run each event's flush and script, coalesced per interface (see the module doc).

    ``script(event)`` runs the user script, ``flush(event)`` waits for the
    apply and flushes; ``needs_flush(event)`` says whether the event flushes.
    """

    def __init__(self, script: Job, flush: Job,
                 needs_flush: Callable[[HookEvent], bool]) -> None:
        self._jobs = {"script": script, "flush": flush}
        self._needs_flush = needs_flush
        self._lanes: dict[str, Coalescer[str, HookEvent]] = {
            "script": Coalescer(), "flush": Coalescer()}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, event: HookEvent) -> None:
        """Queue the event's hooks (from the event loop); never blocks."""
        kinds = ("flush", "script") if self._needs_flush(event) else ("script",)
        for kind in kinds:
            first = self._lanes[kind].offer(event.interface, event)
            if first is not None:
                task = asyncio.get_running_loop().create_task(self._work(kind, first))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def busy(self, interface: str) -> bool:
        return any(c.busy(interface) for c in self._lanes.values())

    async def _work(self, kind: str, event: HookEvent) -> None:
        lanes = self._lanes[kind]
        while True:
            try:
                await self._jobs[kind](event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s for %s %s failed", kind, event.interface, event.action)
            nxt = lanes.finish(event.interface)
            if nxt is None:
                return
            event, dropped = nxt
            if dropped:
                log.info("interface %s: %d events superseded while its %s ran; "
                         "running it for the latest, %s", event.interface, dropped, kind,
                         event.action)

    async def run(self) -> None:
        """Serve until cancelled; then stop every hook (a script's process group is killed)."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
