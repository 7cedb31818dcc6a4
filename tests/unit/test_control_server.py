"""The control socket under bad input: every client gets an answer, the others keep theirs.

ControlServer runs in an asyncio loop on a temporary run dir with dummy
handlers (no root, no daemon); each test throws one kind of junk at it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from mwan.daemon import control
from mwan.daemon.control import ControlError, ControlServer, bool_arg, call, str_arg


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="mwc", dir="/tmp")  # short: sun_path holds 108 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def dummy_handlers(gate: asyncio.Event | None = None) -> dict[str, control.Handler]:
    async def echo(args: dict[str, Any]) -> Any:
        return args

    async def iface(args: dict[str, Any]) -> Any:
        return {"interface": str_arg(args, "interface"), "rules": bool_arg(args, "rules", True)}

    async def slow(args: dict[str, Any]) -> Any:
        if gate is not None:
            await gate.wait()
        return "done"

    return {"echo": echo, "iface": iface, "slow": slow}


async def exchange(path: str, data: bytes) -> dict[str, Any] | None:
    """Send raw bytes, read one answer line (None if the server closed without one)."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # closed before reading it all (busy, too long): the answer may be there
        line = await reader.readline()
        return json.loads(line) if line else None
    finally:
        writer.close()


def no_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


JUNK = [
    (b"hello\n", "not JSON"),
    (b"\xff\xfe\x00\x01\x80binary junk\n", "not JSON"),
    (b"{\"cmd\": \"echo\"\n", "not JSON"),
    (b"\n", "not JSON"),
    (b"[" * 10000 + b"\n", "nested too deeply"),
    (b"{\"a\":" * 2000 + b"1" + b"}" * 2000 + b"\n", "nested too deeply"),
    (b"\"a string\"\n", "expected an object"),
    (b"[1, 2]\n", "expected an object"),
    (b"{\"cmd\": 5}\n", "'cmd' must be a string"),
    (b"{\"cmd\": [\"echo\"]}\n", "'cmd' must be a string"),
    (b"{\"cmd\": \"frobnicate\"}\n", "unknown command 'frobnicate'"),
    (b"{\"cmd\": \"\\ud800\"}\n", "unknown command"),
    (b"{\"cmd\": \"echo\", \"args\": [1, 2]}\n", "'args' must be an object, not a list"),
    (b"{\"cmd\": \"echo\", \"args\": \"wan\"}\n", "'args' must be an object, not a string"),
    (b"{\"cmd\": \"iface\", \"args\": {\"interface\": [\"wan\"]}}\n",
     "argument 'interface' must be a string, not a list"),
    (b"{\"cmd\": \"iface\", \"args\": {\"interface\": {\"x\": 1}}}\n",
     "argument 'interface' must be a string, not an object"),
    (b"{\"cmd\": \"iface\", \"args\": {}}\n", "missing argument 'interface'"),
    (b"{\"cmd\": \"iface\", \"args\": {\"interface\": \"wan\", \"rules\": \"yes\"}}\n",
     "argument 'rules' must be true or false, not a string"),
]


@pytest.mark.parametrize("data,fragment", JUNK, ids=[repr(d[:24]) for d, _ in JUNK])
def test_junk_gets_an_error_answer_and_no_traceback(run_dir: str, data: bytes, fragment: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> dict[str, Any] | None:
        server = ControlServer(run_dir, dummy_handlers())
        await server.start()
        try:
            answer = await exchange(server.path, data)
            # the server still answers a well-behaved client afterwards
            ok = await exchange(server.path, b'{"cmd": "echo", "args": {"x": 1}}\n')
            assert ok == {"ok": True, "result": {"x": 1}}
            return answer
        finally:
            await server.close()

    caplog.set_level(logging.DEBUG)
    answer = asyncio.run(main())
    assert answer is not None and answer["ok"] is False
    assert fragment in answer["error"]
    assert no_warnings(caplog) == []


def test_a_request_without_newline_before_eof_is_answered(run_dir: str) -> None:
    async def main() -> Any:
        server = ControlServer(run_dir, dummy_handlers())
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(server.path)
            writer.write(b'{"cmd": "echo", "args": {"a": "b"}}')
            writer.write_eof()
            line = await reader.readline()
            writer.close()
            return json.loads(line)
        finally:
            await server.close()

    assert asyncio.run(main()) == {"ok": True, "result": {"a": "b"}}


def test_a_100_mb_line_gets_request_too_long_while_others_are_served(
        run_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    def flood(path: str) -> bytes:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(path)
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(100):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: expected
        buf = b""
        try:
            while not buf.endswith(b"\n"):
                got = s.recv(65536)
                if not got:
                    break
                buf += got
        except ConnectionResetError:
            pass
        s.close()
        return buf

    async def main() -> bytes:
        server = ControlServer(run_dir, dummy_handlers())
        await server.start()
        try:
            big = asyncio.get_running_loop().run_in_executor(None, flood, server.path)
            for _ in range(5):
                ok = await exchange(server.path, b'{"cmd": "echo"}\n')
                assert ok == {"ok": True, "result": {}}
            return await big
        finally:
            await server.close()

    caplog.set_level(logging.DEBUG)
    answer = json.loads(asyncio.run(main()))
    assert answer["ok"] is False and "request too long" in answer["error"]
    assert no_warnings(caplog) == []


def test_silent_clients_time_out_with_an_answer_and_do_not_block_others(run_dir: str) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        server = ControlServer(run_dir, dummy_handlers(), idle_timeout=0.5)
        await server.start()
        try:
            silent = [await asyncio.open_unix_connection(server.path) for _ in range(50)]
            # a slow talker: half a request, then nothing
            silent[0][1].write(b'{"cmd": "ec')
            good = [await exchange(server.path, b'{"cmd": "echo"}\n') for _ in range(3)]
            answers = []
            for reader, writer in silent:
                line = await asyncio.wait_for(reader.readline(), 10)
                answers.append(json.loads(line))
                writer.close()
            return good, answers
        finally:
            await server.close()

    good, answers = asyncio.run(main())
    assert good == [{"ok": True, "result": {}}] * 3
    assert len(answers) == 50
    assert all(a["ok"] is False and "no request within 0.5 s" in a["error"] for a in answers)


async def thousand_clients(run_dir: str, max_clients: int) -> list[dict[str, Any] | None]:
    async def client(path: str, i: int) -> dict[str, Any] | None:
        return await exchange(path, json.dumps({"cmd": "echo", "args": {"i": i}}).encode() + b"\n")

    server = ControlServer(run_dir, dummy_handlers(), max_clients=max_clients)
    await server.start()
    try:
        return list(await asyncio.gather(*(client(server.path, i) for i in range(1000))))
    finally:
        await server.close()


def test_a_thousand_concurrent_clients_are_all_served(run_dir: str) -> None:
    answers = asyncio.run(thousand_clients(run_dir, 1024))
    assert sorted(a["result"]["i"] for a in answers if a is not None and a["ok"]) == \
        list(range(1000))


def test_over_the_bound_clients_get_busy_answers_not_dropped_connections(
        run_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = asyncio.run(thousand_clients(run_dir, 64))
    assert None not in answers  # no connection closed without an answer
    ok = [a for a in answers if a is not None and a["ok"]]
    busy = [a for a in answers if a is not None and not a["ok"]]
    assert ok  # some were served, the rest told to retry
    assert all(a.get("busy") and "busy" in a["error"] for a in busy)
    assert sorted(a["result"]["i"] for a in ok) == sorted({a["result"]["i"] for a in ok})
    assert no_warnings(caplog) == []


def test_idle_clients_filling_every_slot_do_not_lock_out_a_good_client(run_dir: str) -> None:
    async def main() -> tuple[Any, list[Any]]:
        server = ControlServer(run_dir, dummy_handlers(), max_clients=10, idle_timeout=30,
                               evict_after=0.2)
        await server.start()
        try:
            idle = [await asyncio.open_unix_connection(server.path) for _ in range(10)]
            await asyncio.sleep(0.3)
            good = await asyncio.wait_for(exchange(server.path, b'{"cmd": "echo"}\n'), 5)
            # the one that waited longest was told so and closed
            line = await asyncio.wait_for(idle[0][0].readline(), 5)
            for _, w in idle:
                w.close()
            return good, [json.loads(line)]
        finally:
            await server.close()

    good, evicted = asyncio.run(main())
    assert good == {"ok": True, "result": {}}
    assert evicted[0]["ok"] is False and evicted[0]["busy"] is True


def test_call_retries_a_busy_daemon(run_dir: str) -> None:
    async def main() -> Any:
        gate = asyncio.Event()
        server = ControlServer(run_dir, dummy_handlers(gate), max_clients=1)
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            slow = asyncio.ensure_future(exchange(server.path, b'{"cmd": "slow"}\n'))
            await asyncio.sleep(0.1)  # the only slot now runs a handler, nothing to evict
            later = loop.run_in_executor(None, lambda: call(run_dir, "echo", timeout=5, a=1))
            await asyncio.sleep(0.3)
            gate.set()
            return await slow, await later
        finally:
            await server.close()

    slow, later = asyncio.run(main())
    assert slow == {"ok": True, "result": "done"}
    assert later == {"a": 1}


def test_handler_errors_are_answers(run_dir: str) -> None:
    async def refuse(args: dict[str, Any]) -> Any:
        raise ControlError("unknown interface 'x'")

    async def main() -> Any:
        server = ControlServer(run_dir, {"refuse": refuse})
        await server.start()
        try:
            return await exchange(server.path, b'{"cmd": "refuse", "args": null}\n')
        finally:
            await server.close()

    assert asyncio.run(main()) == {"ok": False, "error": "unknown interface 'x'"}


def test_str_arg_and_bool_arg() -> None:
    assert str_arg({"interface": "wan"}, "interface") == "wan"
    assert str_arg({}, "proto", "tcp") == "tcp"
    assert str_arg({"proto": None}, "proto", "tcp") == "tcp"
    for bad, kind in (([1], "a list"), (5, "a number"), (True, "a boolean"), ({}, "an object")):
        with pytest.raises(ControlError, match=f"must be a string, not {kind}"):
            str_arg({"interface": bad}, "interface")
    with pytest.raises(ControlError, match="missing argument 'src'"):
        str_arg({}, "src")
    assert bool_arg({}, "rules", True) is True
    assert bool_arg({"rules": False}, "rules", True) is False
    with pytest.raises(ControlError, match="true or false, not a number"):
        bool_arg({"rules": 0}, "rules", True)
