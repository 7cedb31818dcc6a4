"""Issue 11 item 5: a hung user_script stalled every later hook and flush, for every interface.

Only the shell was killed at the limit, and its child kept stdout open, so the
hook loop kept waiting.  Now each run has its own process group, killed whole at
the limit; a child holding the pipe is not waited for; and hooks coalesce per
interface, so a flush or another interface never waits behind a script.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from mwan.daemon import hooks

from .hook_helpers import Jobs, ev, script, until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_whole_group_is_killed_at_the_limit(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    path = script(tmp_path, f"sleep 300 & echo $! > {pidfile}\nsleep 300\n")
    t0 = time.monotonic()
    rc = asyncio.run(hooks.run_user_script(path, "ifup", "wan", "wan1", timeout=0.5))
    assert rc is None
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the script's child survived the limit"


def test_a_child_holding_stdout_is_not_waited_for(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # the script exits at once; its child keeps stdout (the pipe) open for 300 s
    path = script(tmp_path, f"sleep 300 & echo $! > {pidfile}\necho done\nexit 3\n")
    t0 = time.monotonic()
    rc = asyncio.run(hooks.run_user_script(path, "ifup", "wan", "wan1", timeout=20))
    assert rc == 3
    assert time.monotonic() - t0 < 10  # not the 20 s limit, not the child's 300 s
    os.kill(int(pidfile.read_text()), 9)


def test_a_hung_script_stalls_neither_flushes_nor_other_interfaces(tmp_path: Path) -> None:
    out = tmp_path / "ran"
    path = script(tmp_path, f'echo "$ACTION $INTERFACE" >> {out}\n'
                            '[ "$INTERFACE" = wan ] && [ "$ACTION" = ifup ] && sleep 300\n'
                            'exit 0\n')
    flushed: list[str] = []

    async def run_script(e: hooks.HookEvent) -> None:
        await hooks.run_user_script(path, e.action, e.interface, e.iface.device, timeout=30)

    async def flush(e: hooks.HookEvent) -> None:
        flushed.append(f"{e.action} {e.interface}")

    async def main() -> None:
        runner = hooks.HookRunner(run_script, flush, lambda e: e.action == "disconnected")
        task = asyncio.create_task(runner.run())
        runner.submit(ev("ifup", "wan"))  # hangs for 300 s
        await until(lambda: out.exists() and "ifup wan" in out.read_text())
        runner.submit(ev("disconnected", "wan"))
        runner.submit(ev("ifup", "wanb"))
        runner.submit(ev("disconnected", "wanb"))
        await until(lambda: flushed == ["disconnected wan", "disconnected wanb"])
        await until(lambda: out.read_text().splitlines()[1:] == ["ifup wanb", "disconnected wanb"])
        assert runner.busy("wan") and not runner.busy("wanb")
        task.cancel()  # the daemon stops: the hung script's group is killed
        await asyncio.gather(task, return_exceptions=True)

    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 20


def test_a_flush_does_not_wait_for_the_running_script() -> None:
    async def main() -> None:
        j = Jobs()
        r = hooks.HookRunner(j.script, j.flush, lambda e: e.action == "disconnected")
        r.submit(ev("disconnecting"))
        await until(lambda: j.scripts == ["disconnecting wan"])
        r.submit(ev("disconnected"))
        await until(lambda: j.flushes == ["disconnected wan"])  # the script still runs
        assert j.scripts == ["disconnecting wan"]
        j.release.set()
        await until(lambda: j.scripts == ["disconnecting wan", "disconnected wan"])
        await until(lambda: not r.busy("wan"))
        await r.close()

    asyncio.run(main())
