"""A TCP forwarder from the host into a network namespace (for the demo's web UI).

It listens in the caller's namespace (the host, on 127.0.0.1) and connects
each accepted connection to an address inside a named namespace.  The
outgoing sockets are created by one helper thread that has ``setns()``-ed
into that namespace: ``setns`` affects only the calling thread, and a socket
stays in the namespace it was created in, so asyncio can then use it from
the loop's thread like any other socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import socket
from concurrent.futures import ThreadPoolExecutor

from mwan.lab.netns import NETNS_DIR

CLONE_NEWNET = 0x40000000
BUFSIZE = 65536


def setns(name: str) -> None:
    """Move the calling thread into the named network namespace (/run/netns/NAME)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Forwarder:
    """Forward ``listen_host:listen_port`` (here) to ``target_host:target_port`` in ``netns``.

    ::

        fwd = Forwarder("mwl1a2b3c-router", "192.168.1.1", 8086, port=8086)
        await fwd.start()
        ...
        await fwd.close()
    """

    def __init__(self, netns: str, target_host: str, target_port: int,
                 port: int, host: str = "127.0.0.1", connect_timeout: float = 5.0) -> None:
        self.netns = netns
        self.target = (target_host, target_port)
        self.listen = (host, port)
        self.connect_timeout = connect_timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns",
                                        initializer=setns, initargs=(netns,))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Check the namespace can be entered, then listen (raises OSError if the port is taken)."""
        probe = await asyncio.get_running_loop().run_in_executor(self._pool, self._socket)
        probe.close()
        self._server = await asyncio.start_server(self._handle, *self.listen,
                                                  reuse_address=True)

    @property
    def port(self) -> int:
        """The port listened on (useful with ``port=0``)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def _socket(self) -> socket.socket:
        """A TCP socket in the target namespace (runs in the helper thread)."""
        family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        return sock

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        loop = asyncio.get_running_loop()
        up_writer: asyncio.StreamWriter | None = None
        try:
            sock = await loop.run_in_executor(self._pool, self._socket)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, self.target), self.connect_timeout)
            except BaseException:
                sock.close()
                raise
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, TimeoutError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(BUFSIZE):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except OSError:
            dst.close()

    async def close(self) -> None:
        """Stop listening, drop the open connections and the helper thread."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        self._pool.shutdown(wait=False, cancel_futures=True)
