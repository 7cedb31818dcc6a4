"""Issue 10 item 3 (hooks): a storm of events queued one script run (and flush) per event.

Hooks now coalesce per interface: one script per interface at a time, at most one
more waiting (the latest event, whose ACTION is always delivered), and flushes in
their own lane.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mwan.daemon.hooks import HookRunner

from .hook_helpers import Jobs, ev, script, until


def test_300_events_for_one_interface_run_at_most_two_scripts() -> None:
    async def main() -> None:
        j = Jobs()
        r = HookRunner(j.script, j.flush, lambda e: e.action == "disconnected")
        actions = ["disconnected", "connected"] * 150
        for a in actions:
            r.submit(ev(a))
        r.submit(ev("ifdown", "wanb"))
        await until(lambda: len(j.scripts) == 2)  # wan's first, wanb's
        j.release.set()
        await until(lambda: not r.busy("wan") and not r.busy("wanb"))
        wan = [s for s in j.scripts if s.endswith(" wan")]
        assert wan == ["disconnected wan", "connected wan"]  # the first, then the last
        assert "ifdown wanb" in j.scripts
        assert j.max_running == 1
        assert len(j.flushes) <= 2 and j.flushes[0] == "disconnected wan"
        await r.close()

    asyncio.run(main())


def test_storm_with_a_real_script_delivers_the_last_action(tmp_path: Path) -> None:
    out = tmp_path / "ran"
    path = script(tmp_path, f'echo "$ACTION" >> {out}\nsleep 0.2\n')

    async def main() -> None:
        from mwan.daemon import hooks

        async def run(e: hooks.HookEvent) -> None:
            await hooks.run_user_script(path, e.action, e.interface, e.iface.device)

        async def flush(e: hooks.HookEvent) -> None:
            pass

        r = HookRunner(run, flush, lambda e: False)
        for i in range(300):
            r.submit(ev("connected" if i % 2 else "disconnected"))
            if i % 50 == 0:
                await asyncio.sleep(0.05)
        await until(lambda: not r.busy("wan"), 30)
        lines = out.read_text().splitlines()
        assert lines[-1] == "connected"
        assert len(lines) <= 14, lines  # a few per burst, not 300
        await r.close()

    asyncio.run(main())
