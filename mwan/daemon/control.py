"""The control socket: one JSON request line in, one JSON answer line out.

The socket lives in the run dir with mode 0600 (root only).  The CLI talks
to the daemon through :func:`call`; the daemon serves it with
:class:`ControlServer`.

A request is ``{"cmd": NAME, "args": {...}}`` on one line of at most
:data:`MAX_LINE` bytes; the answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``.  Whatever a client sends (no JSON, binary
junk, an endless line, deep nesting, arguments of the wrong type, nothing at
all) it gets an error answer, never a dropped connection or a traceback in
the log, and the other clients keep being answered:

- a client has :data:`IDLE_TIMEOUT` seconds to send its line;
- a longer line is answered "request too long" and the connection closed
  (it is read in bounded chunks, never held whole);
- at most :data:`MAX_CLIENTS` connections (fewer if the fd limit is low)
  are served at once; beyond that, the one that has waited longest (over
  :data:`EVICT_AFTER` seconds) without sending a whole line is answered
  "busy" and closed to make room, or else the newcomer is; :func:`call`
  retries "busy" for a moment.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server runs on the daemon's loop; the CLI's client needs no asyncio
    import asyncio

log = logging.getLogger(__name__)

SOCKET_NAME = "mwan3.sock"
PID_NAME = "mwan3.pid"
MAX_LINE = 16 * 1024  # requests are a few hundred bytes; each client buffers at most twice this
IDLE_TIMEOUT = 10.0  # seconds to send the request line, and to take the answer
MAX_CLIENTS = 1024  # connections at once (an fd each), at most a quarter of RLIMIT_NOFILE
EVICT_AFTER = 1.0  # a client silent this long may be closed to make room (good ones take ms)
BACKLOG = 1024
BUSY_RETRY_S = 2.0  # how long call() retries a "busy" answer

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class NotRunning(Exception):
    """No daemon answers on the run dir's socket."""


class ControlError(Exception):
    """The daemon answered with an error (or a handler refuses its arguments)."""


def str_arg(args: Mapping[str, Any], name: str, default: str | None = None) -> str:
    """Argument ``name`` of a request as a string, or ControlError.

    Missing (or null) gives ``default``, or an error when there is none;
    a value of another type (a list, an object, a number) is an error.
    """
    value = args.get(name)
    if value is None:
        if default is None:
            raise ControlError(f"missing argument {name!r}")
        return default
    if not isinstance(value, str):
        raise ControlError(f"argument {name!r} must be a string, not {_json_type(value)}")
    return value


def bool_arg(args: Mapping[str, Any], name: str, default: bool) -> bool:
    """Argument ``name`` as a boolean (missing or null: ``default``), or ControlError."""
    value = args.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ControlError(f"argument {name!r} must be true or false, not {_json_type(value)}")
    return value


def int_arg(args: Mapping[str, Any], name: str, default: int) -> int:
    """Argument ``name`` as an integer (missing or null: ``default``), or ControlError."""
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"argument {name!r} must be an integer, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"),
                       (float, "a number"), (list, "a list"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def socket_path(run_dir: str) -> str:
    return os.path.join(run_dir, SOCKET_NAME)


def exchange_line(s: socket.socket, message: dict[str, Any]) -> bytes:
    """Send one JSON line on a connected socket and read one line back (b"" if none)."""
    try:
        s.sendall(json.dumps(message).encode() + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed before reading (busy): its answer may be waiting all the same
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def call(run_dir: str, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
    """Send one command to the daemon and return its result (blocking).

    A "busy" answer (the daemon is serving :data:`MAX_CLIENTS` others) is
    retried for up to :data:`BUSY_RETRY_S` seconds.
    """
    deadline = time.monotonic() + min(BUSY_RETRY_S, timeout)
    pause = 0.02
    while True:
        answer = _call_once(run_dir, cmd, timeout, args)
        if not answer.get("busy") or time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "unknown error"))
    return answer.get("result")


def _call_once(run_dir: str, cmd: str, timeout: float, args: dict[str, Any]) -> dict[str, Any]:
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
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlError("the daemon sent an answer that is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError("the daemon sent an answer that is not a JSON object")
    return answer


def default_max_clients() -> int:
    """:data:`MAX_CLIENTS`, or a quarter of the fd limit if that is less (probes need fds too)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CLIENTS
    return max(16, min(MAX_CLIENTS, soft // 4))


class _Refused(Exception):
    """A request that gets an error answer without reaching a handler."""


def _error(message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": message, **extra}


class ControlServer:
    """Serves the control socket: one request per connection, bounded in size, time and number."""

    def __init__(self, run_dir: str, handlers: dict[str, Handler], *,
                 idle_timeout: float = IDLE_TIMEOUT, max_clients: int | None = None,
                 evict_after: float = EVICT_AFTER) -> None:
        self.path = socket_path(run_dir)
        self.handlers = handlers
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients if max_clients is not None else default_max_clients()
        self.evict_after = evict_after
        self._server: asyncio.AbstractServer | None = None
        self._clients = 0
        # connections whose request line is not complete yet -> since when, oldest first
        self._waiting: dict[asyncio.StreamWriter, float] = {}
        self._evicted: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        import asyncio

        old = os.umask(0o177)
        try:
            # a burst of clients waits in the kernel's queue instead of being refused
            self._server = await asyncio.start_unix_server(self._serve, path=self.path,
                                                           limit=MAX_LINE, backlog=BACKLOG)
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
        self._clients += 1
        try:
            if self._clients > self.max_clients and not self._evict_oldest_waiting():
                await self._send(writer, _error(f"busy: {self.max_clients} control clients "
                                                "are being served, try again", busy=True))
                return
            self._waiting[writer] = time.monotonic()
            try:
                line = await self._read_request(reader)
            finally:
                self._waiting.pop(writer, None)
            if writer in self._evicted or not line:
                return  # answered "busy" already, or the client left without a word
            answer = await self._answer(line)
            await self._send(writer, answer)
        except _Refused as exc:
            await self._send(writer, _error(str(exc)))
        except (ConnectionError, OSError, TimeoutError):
            pass  # the client went away or does not read its answer
        finally:
            self._clients -= 1
            self._evicted.discard(writer)
            writer.close()

    def _evict_oldest_waiting(self) -> bool:
        """Make room: answer "busy" to the connection that has waited longest for its line."""
        old = next(iter(self._waiting), None)
        if old is None or time.monotonic() - self._waiting[old] < self.evict_after:
            return False
        del self._waiting[old]
        self._evicted.add(old)
        if not old.is_closing():
            old.write(json.dumps(_error("busy: closed to make room for another client, "
                                        "try again", busy=True)).encode() + b"\n")
        old.close()
        return True

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes:
        """The request line, read in bounded chunks; b"" if the client closed without one."""
        import asyncio

        try:
            async with asyncio.timeout(self.idle_timeout):
                return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # EOF: take what came without a newline
        except asyncio.LimitOverrunError:
            raise _Refused(f"request too long (the limit is {MAX_LINE} bytes)") from None
        except TimeoutError:
            raise _Refused(f"no request within {self.idle_timeout:g} s") from None

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            cmd, args = self._parse(line)
        except _Refused as exc:
            log.debug("control: %s", exc)
            return _error(str(exc))
        try:
            return {"ok": True, "result": await self.handlers[cmd](args)}
        except ControlError as exc:
            return _error(str(exc))
        except Exception as exc:  # keep serving; log the bug
            log.exception("control command %s failed", cmd)
            return _error(f"internal error: {exc}")

    def _parse(self, line: bytes) -> tuple[str, dict[str, Any]]:
        """``(cmd, args)`` of a request line, or _Refused saying what is wrong with it."""
        try:
            req = json.loads(line)
        except RecursionError:
            raise _Refused("bad request: JSON nested too deeply") from None
        except ValueError as exc:  # also UnicodeDecodeError: binary junk
            raise _Refused(f"bad request: not JSON ({exc})") from None
        if not isinstance(req, dict):
            raise _Refused('bad request: expected an object like {"cmd": "state", "args": {}}')
        cmd = req.get("cmd")
        if not isinstance(cmd, str):
            raise _Refused("bad request: 'cmd' must be a string")
        if cmd not in self.handlers:
            raise _Refused(f"unknown command {cmd[:64]!r}")
        args = req.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise _Refused(f"bad request: 'args' must be an object, not {_json_type(args)}")
        return cmd, args

    async def _send(self, writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        import asyncio

        if writer.is_closing():
            return
        try:
            data = json.dumps(answer, default=str).encode()
        except (ValueError, RecursionError) as exc:  # a handler returned something odd
            log.error("control: cannot encode an answer: %s", exc)
            data = json.dumps(_error(f"internal error: cannot encode the answer: {exc}")).encode()
        writer.write(data + b"\n")
        async with asyncio.timeout(self.idle_timeout):
            await writer.drain()
