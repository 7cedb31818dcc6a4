"""The control socket: one JSON request line in, one JSON answer line out.

The socket lives in the run dir with mode 0600 (root only).  The CLI talks
to the daemon through :func:`call`; the daemon serves it with
:class:`ControlServer`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "mwan3.sock"
PID_NAME = "mwan3.pid"
MAX_LINE = 1 << 20

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class NotRunning(Exception):
    """No daemon answers on the run dir's socket."""


class ControlError(Exception):
    """The daemon answered with an error."""


def socket_path(run_dir: str) -> str:
    return os.path.join(run_dir, SOCKET_NAME)


def exchange_line(s: socket.socket, message: dict[str, Any]) -> bytes:
    """Send one JSON line on a connected socket and read one line back (b"" if none)."""
    s.sendall(json.dumps(message).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def call(run_dir: str, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
    """Send one command to the daemon and return its result (blocking)."""
    path = socket_path(run_dir)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise NotRunning(f"mwan is not running (no control socket at {path})") from None
        except ConnectionRefusedError:
            raise NotRunning(f"mwan is not running (stale control socket at {path})") from None
        except PermissionError:
            raise ControlError(f"permission denied on {path}: run this as root") from None
        buf = exchange_line(s, {"cmd": cmd, "args": args})
    finally:
        s.close()
    if not buf:
        raise ControlError("the daemon closed the connection without an answer")
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "unknown error"))
    return answer.get("result")


class ControlServer:
    def __init__(self, run_dir: str, handlers: dict[str, Handler]) -> None:
        self.path = socket_path(run_dir)
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path,
                                                           limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            try:
                req = json.loads(line)
                handler = self.handlers[req["cmd"]]
            except (ValueError, KeyError, TypeError):
                answer: dict[str, Any] = {"ok": False, "error": "bad request"}
            else:
                try:
                    answer = {"ok": True, "result": await handler(req.get("args") or {})}
                except ControlError as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:  # keep serving; log the bug
                    log.exception("control command %s failed", req.get("cmd"))
                    answer = {"ok": False, "error": f"internal error: {exc}"}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
