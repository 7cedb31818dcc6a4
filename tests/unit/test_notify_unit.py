"""Notifications (issue 15): config notify, the signed body, the bounded queue, retries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from mwan.config.errors import ConfigError
from mwan.config.model import Config
from mwan.config.validate import parse_config
from mwan.daemon.door import DaemonEvent
from mwan.notify import message as M
from mwan.notify import service as S

NOTIFY = """
config interface 'wan'
	option enabled '1'

config notify 'hook'
	option url 'http://192.0.2.10:8080/hook'
	list header 'Authorization: Bearer t0ken'
	option secret 's3cret'
	list event 'disconnected'
	list event 'datacap_warn'
	option retries '2'
"""


def cfg(text: str = NOTIFY) -> Config:
    return parse_config(text, "f")


def test_notify_section_is_read() -> None:
    n = cfg().notifies[0]
    assert (n.name, n.url, n.header, n.secret, n.event, n.retries, n.timeout) == (
        "hook", "http://192.0.2.10:8080/hook", ("Authorization: Bearer t0ken",), "s3cret",
        ("disconnected", "datacap_warn"), 2, 5)
    assert n.wants("disconnected") and not n.wants("connected")
    assert cfg(NOTIFY.replace("\tlist event 'disconnected'\n\tlist event 'datacap_warn'\n",
                              "")).notifies[0].wants("connected")  # no filter: everything


@pytest.mark.parametrize("bad, where", [
    ("option url 'ftp://192.0.2.10/'", ("f:6: section 'hook' option 'url': 'ftp://192.0.2.10/' "
     "is not an http:// or https:// URL with a host")),
    ("option url 'http:///nohost'", "f:6: section 'hook' option 'url'"),
    ("list header 'no colon'", ("f:7: section 'hook' option 'header': 'no colon' is not a "
     "header 'Name: value'")),
    ("list header 'X-Mwan-Signature: forged'", ("f:7: section 'hook' option 'header': header "
     "X-Mwan-Signature is written by mwan itself")),
    ("list event 'disconected'", ("f:9: section 'hook' option 'event': 'disconected' is not one "
     "of")),
])
def test_bad_notify_options_name_file_and_line(bad: str, where: str) -> None:
    name = bad.split()[1]
    lines = NOTIFY.splitlines()
    k = next(i for i, ln in enumerate(lines) if f" {name} " in ln)
    lines[k] = "\t" + bad
    with pytest.raises(ConfigError) as exc:
        cfg("\n".join(lines) + "\n")
    assert where in str(exc.value)


def test_a_notify_section_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="f:2: section 'hook' option 'url': missing"):
        cfg("\nconfig notify 'hook'\n\toption secret 'x'\n")


def test_body_is_json_with_text_and_a_verifiable_signature() -> None:
    ev = M.Event("wan", "disconnected", "3 of 3 rounds failed", 1700000000.5)
    state = {"status": "offline", "online": False, "targets": [
        {"ip": "192.0.2.1", "latency_ms": 12.4, "loss_pct": 100.0, "up": False}]}
    data = M.body("r1", ev, state)
    doc = json.loads(data)
    assert doc["router"] == "r1" and doc["interface"] == "wan" and doc["event"] == "disconnected"
    assert doc["reason"] == "3 of 3 rounds failed" and doc["time"] == 1700000000.5
    assert doc["time_iso"] == "2023-11-14T22:13:20+00:00"
    assert doc["targets"][0]["loss_pct"] == 100.0 and doc["status"] == "offline"
    assert doc["text"] == "[r1] wan disconnected: 3 of 3 rounds failed (latency 12 ms, loss 100%)"
    n = cfg().notifies[0]
    hdrs = M.headers(n, data)
    assert hdrs["Authorization"] == "Bearer t0ken"
    assert hdrs["Content-Type"] == "application/json"
    assert M.verify("s3cret", data, hdrs[M.SIGNATURE_HEADER])
    assert not M.verify("s3cret", data + b" ", hdrs[M.SIGNATURE_HEADER])
    assert not M.verify("other", data, hdrs[M.SIGNATURE_HEADER])
    unsigned = cfg(NOTIFY.replace("\toption secret 's3cret'\n", "")).notifies[0]
    assert M.SIGNATURE_HEADER not in M.headers(unsigned, data)


def test_backoff_doubles_and_is_bounded() -> None:
    assert [M.backoff(a) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert M.backoff(20) == M.MAX_BACKOFF


class FakeDoor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.listeners: list[Callable[[DaemonEvent], None]] = []

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        return {"interfaces": {"wan": {"status": "offline", "online": False, "targets": []}}}

    def subscribe(self, listener: Callable[[DaemonEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def publish(self, action: str, kind: str = "interface") -> None:
        for f in list(self.listeners):
            f(DaemonEvent(kind, 1.0, "wan", action, "why"))


def test_a_storm_drops_the_oldest_and_counts_them() -> None:
    async def main() -> None:
        door = FakeDoor(cfg())
        svc = S.NotifyService(door, queue_limit=4)  # type: ignore[arg-type]
        posted: list[bytes] = []
        gate = asyncio.Event()

        async def post(n: Any, data: bytes, hdrs: dict[str, str]) -> str | None:
            await gate.wait()  # the receiver is slow
            posted.append(data)
            return None
        svc._post = post  # type: ignore[method-assign]
        svc.sync(door.config)
        await asyncio.sleep(0)
        for _ in range(50):
            door.publish("disconnected")
        door.publish("connected")  # filtered out
        door.publish("apply", kind="apply")  # not an interface event
        t = svc.targets["hook"]
        assert len(t.queue) <= 4 and t.counts.dropped >= 45
        gate.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not t.queue:
                break
        await asyncio.sleep(0.05)
        snap = svc.snapshot()["hook"]
        assert snap["sent"] == len(posted) == 50 - snap["dropped"]
        assert all(json.loads(p)["event"] == "disconnected" for p in posted)
        await svc.close()
        assert not door.listeners
    asyncio.run(main())


def test_retries_with_backoff_then_counts_and_logs_once(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    async def main() -> None:
        door = FakeDoor(cfg())
        slept: list[float] = []

        async def sleep(s: float) -> None:
            slept.append(s)
        svc = S.NotifyService(door, sleep=sleep)  # type: ignore[arg-type]
        attempts: list[int] = []

        async def post(n: Any, data: bytes, hdrs: dict[str, str]) -> str | None:
            attempts.append(1)
            return "connection refused"
        svc._post = post  # type: ignore[method-assign]
        svc.sync(door.config)
        door.publish("disconnected")
        door.publish("disconnected")
        for _ in range(50):
            await asyncio.sleep(0.01)
        snap = svc.snapshot()["hook"]
        assert len(attempts) == 2 * 3  # retries '2': three attempts each
        assert slept == [1.0, 2.0, 1.0, 2.0]
        assert snap["failed"] == 2 and snap["attempts_failed"] == 6 and snap["sent"] == 0
        assert snap["last_error"] == "connection refused"
        await svc.close()

    with caplog.at_level(logging.WARNING, logger="mwan.notify"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines  # rate-limited: one line a minute
    assert "not delivered to 192.0.2.10:8080 after 3 attempts: connection refused" in lines[0]
    assert "t0ken" not in lines[0] and "/hook" not in lines[0]


def test_a_config_change_follows_the_sections() -> None:
    async def main() -> None:
        door = FakeDoor(cfg())
        svc = S.NotifyService(door)  # type: ignore[arg-type]
        svc.sync(door.config)
        first = svc.targets["hook"]
        svc.sync(cfg())  # the same section: kept
        assert svc.targets["hook"] is first
        svc.sync(cfg(NOTIFY.replace("retries '2'", "retries '3'")))
        assert svc.targets["hook"] is not first and svc.targets["hook"].notify.retries == 3
        svc.sync(cfg("config interface 'wan'\n"))
        assert not svc.targets
        await svc.close()
    asyncio.run(main())


def test_the_web_form_shows_notify_sections_without_their_secret() -> None:
    from mwan.config.uci import parse_uci
    from mwan.web import pages

    body = pages.config_body(parse_uci(NOTIFY, "f"), [], None, "", {}, "csrf")
    form = body[body.index("<h2>Notifications</h2>"):]
    assert 'name="opt:url" value="http://192.0.2.10:8080/hook"' in form
    assert "s3cret" not in body and 'value="(set)" disabled' in form


def test_ha_role_changes_are_sent(tmp_path: Any) -> None:
    """A VRRP role change (DaemonEvent kind "ha") is queued like an interface event."""
    async def main() -> None:
        door = FakeDoor(cfg(NOTIFY.replace("\tlist event 'datacap_warn'\n",
                                           "\tlist event 'ha_master'\n")))
        svc = S.NotifyService(door)  # type: ignore[arg-type]
        gate = asyncio.Event()

        async def post(n: Any, data: bytes, hdrs: dict[str, str]) -> str | None:
            await gate.wait()
            return None
        svc._post = post  # type: ignore[method-assign]
        svc.sync(door.config)
        await asyncio.sleep(0)
        for f in list(door.listeners):
            f(DaemonEvent("ha", 1.0, action="ha_master", reason="VRRP role BACKUP -> MASTER"))
            f(DaemonEvent("ha", 2.0, action="ha_backup", reason="filtered out"))
        queued = list(svc.targets["hook"].queue)
        assert [(e.interface, e.event) for e in queued] == [("ha", "ha_master")]
        gate.set()
        await svc.close()

    asyncio.run(main())


def test_read_role(tmp_path: Any) -> None:
    import os

    from mwan.ha.status import Paths, read_role

    text = ("config interface 'wan'\n\toption enabled '1'\n\toption device 'eth1'\n"
            "config ha 'ha'\n\toption router_id 'ra'\n\toption sync_device 'sync0'\n"
            "\toption sync_address '172.31.0.1'\n\toption peer '172.31.0.2'\n"
            f"\tlist virtual_address 'eth1 192.0.2.1/24'\n\toption run_dir '{tmp_path}'\n")
    ha = parse_config(text, "f").ha
    assert ha is not None
    assert read_role(ha) == "STOPPED"  # no keepalived pid
    paths = Paths.of(ha)
    with open(paths.keepalived_pid, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    assert read_role(ha) == "UNKNOWN"
    with open(paths.role_file, "w") as fh:
        fh.write("MASTER 1764570000\n")
    assert read_role(ha) == "MASTER"
