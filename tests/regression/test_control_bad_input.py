"""Regression (issue 10, item 4): junk on the control socket got no answer, or a traceback.

Before the fix: a line over the reader's limit raised ValueError out of the
connection handler (no answer, "Task exception was never retrieved"), deep
JSON nesting raised RecursionError the same way, ``args`` that is not an
object reached the handler and came back as "internal error" with a
traceback in the log, and a client that never spoke held its connection
forever.
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

from mwan.daemon.control import ControlServer


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="mwr", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _echo(args: dict[str, Any]) -> Any:
    return {"keys": sorted(args)}


def _exchange(path: str, data: bytes) -> dict[str, Any] | None:
    """A blocking client, as the CLI is: send everything it can, then read the answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading (too long) and closed
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            buf += got
        return json.loads(buf) if buf else None
    finally:
        s.close()


def _ask(run_dir: str, data: bytes, **kw: Any) -> dict[str, Any] | None:
    async def main() -> dict[str, Any] | None:
        server = ControlServer(run_dir, {"echo": _echo}, **kw)
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, _exchange, server.path, data)
        finally:
            await server.close()

    return asyncio.run(main())


@pytest.mark.parametrize("data,fragment", [
    (b"x" * (2 << 20) + b"\n", "request too long"),
    (b"[" * 100000 + b"\n", ""),  # too long or too deep: either way an answer
    (b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b'{"cmd": "echo", "args": [1, 2]}\n', "'args' must be an object"),
    (b'{"cmd": "echo", "args": "wan"}\n', "'args' must be an object"),
])
def test_control_junk_gets_an_error_answer(run_dir: str, data: bytes, fragment: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = _ask(run_dir, data)
    assert answer is not None, "the connection was dropped without an answer"
    assert answer["ok"] is False and fragment in answer["error"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_control_silent_client_times_out_with_an_answer(run_dir: str) -> None:
    answer = _ask(run_dir, b"", idle_timeout=0.3)
    assert answer is not None and answer["ok"] is False
    assert "no request within" in answer["error"]
