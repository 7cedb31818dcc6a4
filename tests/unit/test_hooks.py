"""The hooks' pure parts (Coalescer, Tail, script_refusal), a script's environment, a lane."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from collections.abc import Callable
from pathlib import Path

from mwan.config.model import Interface
from mwan.daemon import hooks
from mwan.daemon.hooks import Coalescer, HookEvent, HookRunner, Tail, script_refusal


def ev(action: str, name: str = "wan") -> HookEvent:
    return HookEvent(action, Interface(name=name, id=1, device=f"{name}1", enabled=True,
                                       track_ip=(ipaddress.ip_address("192.0.2.1"),)))


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "mwan3.user"
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return str(path)


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- Coalescer

def test_coalescer_runs_the_first_and_keeps_only_the_latest() -> None:
    c: Coalescer[str, int] = Coalescer()
    assert c.offer("wan", 1) == 1  # idle: start now
    assert c.offer("wan", 2) is None
    assert c.offer("wan", 3) is None
    assert c.offer("wanb", 10) == 10  # another key never waits
    assert c.waiting("wan") == 3
    assert c.finish("wan") == (3, 1)  # 3 replaced 2
    assert c.busy("wan")
    assert c.finish("wan") is None
    assert not c.busy("wan")
    assert c.offer("wan", 4) == 4


def test_coalescer_storm_is_bounded() -> None:
    c: Coalescer[str, int] = Coalescer()
    started = [c.offer("wan", 0)]
    for i in range(1, 300):
        assert c.offer("wan", i) is None
    nxt = c.finish("wan")
    assert nxt == (299, 298)
    assert c.finish("wan") is None
    assert started == [0]


# ---------------------------------------------------------------- Tail

def test_tail_keeps_the_last_bytes() -> None:
    t = Tail(keep=8)
    for _ in range(1000):
        t.add(b"x" * 100)
    t.add(b"THE-END")
    assert t.total == 100 * 1000 + 7
    assert t.text() == "...xTHE-END"
    small = Tail(keep=8)
    small.add(b"ok\n")
    assert small.text() == "ok"


# ---------------------------------------------------------------- script_refusal

def st(mode: int, uid: int = 0) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


DIR = st(stat.S_IFDIR | 0o755)


def test_refusals() -> None:
    f = stat.S_IFREG
    assert script_refusal("/etc/mwan3.user", st(f | 0o755), DIR, 0) is None
    assert script_refusal("/etc/mwan3.user", st(f | 0o700), DIR, 0) is None
    assert "not executable" in (script_refusal("/etc/mwan3", st(f | 0o644), DIR, 0) or "")
    assert "not a regular file" in (script_refusal("/etc", st(stat.S_IFDIR | 0o755), DIR, 0)
                                    or "")
    assert "owned by uid 1000" in (script_refusal("/x", st(f | 0o755, 1000), DIR, 0) or "")
    assert "writable" in (script_refusal("/x", st(f | 0o775), DIR, 0) or "")
    assert "writable" in (script_refusal("/x", st(f | 0o757), DIR, 0) or "")
    assert "other than root" in (script_refusal("/tmp/x", st(f | 0o755),
                                                st(stat.S_IFDIR | 0o1777), 0) or "")
    assert "other than root" in (script_refusal("/home/u/x", st(f | 0o755),
                                                st(stat.S_IFDIR | 0o755, 1000), 0) or "")
    # a daemon run by an unprivileged user trusts its own files
    assert script_refusal("/x", st(f | 0o755, 1000), st(stat.S_IFDIR | 0o755, 1000),
                          1000) is None


def test_absent_script_is_not_an_error(tmp_path: Path) -> None:
    assert asyncio.run(hooks.run_user_script(str(tmp_path / "none"), "ifup", "wan", "w")) is None
    assert asyncio.run(hooks.run_user_script("", "ifup", "wan", "w")) is None


def test_script_sees_only_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "env"
    path = script(tmp_path, f"env > {out}\n")
    assert asyncio.run(hooks.run_user_script(path, "connected", "wan", "wan1")) == 0
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["ACTION"] == "connected" and env["INTERFACE"] == "wan" and env["DEVICE"] == "wan1"
    assert set(env) <= {"ACTION", "INTERFACE", "DEVICE", "PATH", "PWD", "SHLVL", "_"}


# ---------------------------------------------------------------- HookRunner

def test_runner_failing_job_does_not_stop_the_lane() -> None:
    async def main() -> None:
        seen: list[str] = []

        async def bad(e: HookEvent) -> None:
            seen.append(e.action)
            raise RuntimeError("boom")

        async def flush(e: HookEvent) -> None:
            pass

        r = HookRunner(bad, flush, lambda e: False)
        r.submit(ev("ifup"))
        await until(lambda: not r.busy("wan"))
        r.submit(ev("ifdown"))
        await until(lambda: not r.busy("wan"))
        assert seen == ["ifup", "ifdown"]

    asyncio.run(main())
