"""The network-namespace lab: a router with N WANs through N ISPs to one "internet".

::

    lanI --eth0--[br-lan]-- router --wanK--rtr-- ispK --upstream--ispK-- inet
                                                                        (server, track targets)

Use it as a context manager; it is torn down on exit, on an exception, at
interpreter exit and on SIGTERM/SIGHUP::

    with Lab(isps=2, clients=1) as lab:
        r = lab.connect_many(lab.client_ns(1), lab.server_addr(4), 443, count=100)
        assert r.wans == {1: 100}
"""

from __future__ import annotations

import atexit
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

from mwan.lab import addressing, topology
from mwan.lab.faults import Faults
from mwan.lab.netns import (
    DEFAULT_PREFIX,
    LabError,
    delete_namespaces,
    install_signal_handlers,
    lab_ids,
    ns_argv,
    probe,
    remove_owner,
    run,
    run_parallel,
    write_owner,
)
from mwan.lab.results import ClientResult, PingResult, parse_client_output, parse_ping

READY_TIMEOUT = 10.0


class Lab(Faults):
    """One lab instance; see the module docstring for the topology and :mod:`addressing`."""

    def __init__(
        self,
        isps: int = 2,
        clients: int = 1,
        ipv6: bool = True,
        echo: bool = True,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if not 1 <= isps <= 250:
            raise ValueError(f"isps must be 1..250, not {isps}")
        if not 0 <= clients <= 200:
            raise ValueError(f"clients must be 0..200, not {clients}")
        self.isps = isps
        self.clients = clients
        self.ipv6 = ipv6
        self.echo = echo
        self.prefix = prefix
        self.names = topology.Names(self._fresh_id(prefix), isps, clients)
        self.build_seconds: float | None = None
        self._procs: list[subprocess.Popen[Any]] = []
        self._built = False
        self._closed = False

    @staticmethod
    def available() -> tuple[bool, str]:
        """(True, "") when labs can be built here, else (False, why not)."""
        return probe()

    @staticmethod
    def _fresh_id(prefix: str) -> str:
        taken = set(lab_ids(prefix))
        while True:
            lab_id = f"{prefix}{secrets.token_hex(3)}"
            if lab_id not in taken:
                return lab_id

    # -- lifecycle -----------------------------------------------------------

    def build(self) -> Self:
        """Create the namespaces, links, addresses, routes, nft tables and the echo server."""
        if self._built:
            return self
        if self._closed:
            raise LabError("this lab was closed; make a new one")
        start = time.monotonic()
        install_signal_handlers()
        atexit.register(self.close)
        write_owner(self.id)
        self._built = True
        n = self.names
        try:
            run(["ip", "-batch", "-"], input=topology.host_batch(n))
            run_parallel(
                [
                    (ns_argv(ns, ["sysctl", "-q", "-e", "-w", *topology.sysctls(n, ns)]), None)
                    for ns in n.all
                ]
            )
            echo = self._start_echo() if self.echo else None
            run_parallel(self._config_jobs())
            if echo is not None:
                self._wait_ready(echo)
        except BaseException:
            self.close()
            raise
        self.build_seconds = time.monotonic() - start
        return self

    def _config_jobs(self) -> list[tuple[Sequence[str], str | None]]:
        n = self.names
        jobs: list[tuple[Sequence[str], str | None]] = [
            (["ip", "-n", n.router, "-batch", "-"], topology.router_batch(n, self.ipv6)),
            (["ip", "-n", n.inet, "-batch", "-"], topology.inet_batch(n, self.ipv6)),
            (ns_argv(n.router, ["nft", "-f", "-"]), topology.router_nft(self.ipv6)),
            (ns_argv(n.inet, ["nft", "-f", "-"]), topology.inet_nft(self.ipv6)),
        ]
        for k in range(1, self.isps + 1):
            jobs.append((["ip", "-n", n.isp(k), "-batch", "-"], topology.isp_batch(k, self.ipv6)))
            jobs.append((ns_argv(n.isp(k), ["nft", "-f", "-"]), topology.isp_nft(k)))
        for i in range(1, self.clients + 1):
            jobs.append(
                (["ip", "-n", n.client(i), "-batch", "-"], topology.client_batch(i, self.ipv6))
            )
        return jobs

    def close(self) -> None:
        """Kill every process started here and delete every namespace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for proc in self._procs:
            self._stop(proc)
        if self._built:
            delete_namespaces(self.names.all)
            remove_owner(self.id)

    @staticmethod
    def _stop(proc: subprocess.Popen[Any], grace: float = 1.0) -> None:
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Self:
        return self.build()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- names ---------------------------------------------------------------

    @property
    def id(self) -> str:
        """The lab's unique prefix, e.g. ``mwl3fa9c1``."""
        return self.names.lab_id

    @property
    def router(self) -> str:
        return self.names.router

    @property
    def inet(self) -> str:
        return self.names.inet

    def isp_ns(self, k: int) -> str:
        return self.names.isp(k)

    def client_ns(self, i: int) -> str:
        return self.names.client(i)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return self.names.all

    # -- addresses -----------------------------------------------------------

    def wan_device(self, k: int) -> str:
        """The router's device for WAN ``k``."""
        self.names.isp(k)
        return f"wan{k}"

    def wan_addr(self, k: int, family: int = 4) -> str:
        return addressing.wan_addr(k, family)

    def gateway(self, k: int, family: int = 4) -> str:
        return addressing.wan_gateway(k, family)

    def client_addr(self, i: int, family: int = 4) -> str:
        return addressing.lan_client_addr(i, family)

    def lan_gateway(self, family: int = 4) -> str:
        return addressing.lan_router_addr(family)

    def server_addr(self, family: int = 4) -> str:
        return addressing.server_addr(family)

    def server2_addr(self, family: int = 4) -> str:
        return addressing.server2_addr(family)

    def track_targets(self, family: int = 4) -> list[str]:
        return addressing.track_targets(family)

    def wan_of(self, addr: str) -> int | None:
        """The WAN whose address ``addr`` is (as the server reports it), else None."""
        return addressing.wan_of(addr, self.isps)

    # -- running things ------------------------------------------------------

    def exec(
        self,
        ns: str,
        *argv: str,
        check: bool = True,
        timeout: float = 30,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``ns`` to completion (text mode; ``env`` adds to the environment)."""
        return run(ns_argv(ns, argv), input=input, timeout=timeout, check=check, env=env)

    def popen(self, ns: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``ns`` in the background, in its own process group.

        Keyword arguments go to :class:`subprocess.Popen` (stdin defaults to
        /dev/null). The process is killed when the lab closes.
        """
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw["start_new_session"] = True
        proc: subprocess.Popen[Any] = subprocess.Popen(ns_argv(ns, argv), **kw)
        self._procs.append(proc)
        return proc

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n ns ARGS...``."""
        return run(["ip", "-n", ns, *args], check=check)

    def nft(self, ns: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Load an nft script (``nft -f -``) in ``ns``."""
        return self.exec(ns, "nft", "-f", "-", input=script, check=check)

    @staticmethod
    def python(module: str, *args: str) -> list[str]:
        """argv that runs ``python -m module`` with this interpreter (the venv's)."""
        return [sys.executable, "-m", module, *args]

    def serve(
        self, ns: str, ports: Sequence[int], family: int | None = None
    ) -> subprocess.Popen[Any]:
        """Run a plain echo server (TCP and UDP) on ``ports`` in ``ns``; return once it listens."""
        args = [f"--port={p}" for p in ports]
        if family is not None:
            args.append(f"--family={family}")
        proc = self._start_python(ns, "mwan.lab.echo", args)
        self._wait_ready(proc)
        return proc

    def flow_echo(self, addr: str, port: int, duration: float | None = None
                  ) -> subprocess.Popen[str]:
        """The far end of long TCP flows (``mwan.lab.traffic echo``) on ``addr:port`` in the
        internet namespace, ``addr`` on its loopback; returns once it listens."""
        self.ip(self.inet, "addr", "replace", f"{addr}/32", "dev", "lo")
        args = ["echo", "--bind", addr, "--port", str(port)]
        if duration is not None:
            args += ["--duration", f"{duration:g}"]
        proc = self.popen(self.inet, self.python("mwan.lab.traffic", *args),
                          stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        if not ready or proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise RuntimeError(f"the flow echo server on {addr}:{port} did not start")
        return proc

    def _start_echo(self) -> subprocess.Popen[Any]:
        return self._start_python(
            self.inet, "mwan.lab.echo", [f"--transparent={topology.ECHO_PORT}"]
        )

    def _start_python(self, ns: str, module: str, args: list[str]) -> subprocess.Popen[Any]:
        return self.popen(
            ns, self.python(module, *args), stdout=subprocess.PIPE, stderr=tempfile.TemporaryFile()
        )

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[Any], timeout: float = READY_TIMEOUT) -> None:
        """Wait for the ``ready`` line; raise with the process's stderr if it never comes."""
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b""
        if line.strip() == b"ready":
            return
        proc.kill()
        proc.wait()
        err = b""
        if hasattr(proc.stderr, "seek"):
            proc.stderr.seek(0)  # type: ignore[union-attr]
            err = proc.stderr.read()  # type: ignore[union-attr]
        args = proc.args if isinstance(proc.args, (list, tuple)) else [proc.args]
        cmd = " ".join(str(a) for a in args)
        raise LabError(f"{cmd} did not start: {err.decode().strip()}")

    # -- measuring -----------------------------------------------------------

    def connect_many(
        self,
        ns: str,
        dst: str,
        port: int,
        count: int = 1,
        proto: str = "tcp",
        family: int | None = None,
        sport: int | None = None,
        src: str | None = None,
        timeout: float = 2.0,
        concurrency: int = 16,
    ) -> ClientResult:
        """Open ``count`` new connections from ``ns`` and count which WAN the server saw each on."""
        args = [
            f"--dst={dst}",
            f"--port={port}",
            f"--count={count}",
            f"--proto={proto}",
            f"--timeout={timeout}",
            f"--concurrency={concurrency}",
            f"--family={family or addressing.family_of(dst)}",
        ]
        if sport is not None:
            args.append(f"--sport={sport}")
        if src is not None:
            args.append(f"--src={src}")
        workers = 1 if sport is not None else max(1, min(concurrency, count))
        limit = 30 + timeout * (count / workers + 1)
        proc = self.exec(ns, *self.python("mwan.lab.client", *args), timeout=limit)
        return parse_client_output(proc.stdout, self.isps)

    def which_wan(self, ns: str, dst: str, port: int, **kw: Any) -> int | None:
        """The WAN one new connection from ``ns`` leaves by (None if it fails or is not NATed)."""
        return self.connect_many(ns, dst, port, count=1, **kw).only_wan

    def ping(
        self,
        ns: str,
        dst: str,
        count: int = 1,
        interval: float = 0.2,
        wait: float = 1.0,
        iface: str | None = None,
        src: str | None = None,
    ) -> PingResult:
        """``ping`` from ``ns``; ``iface``/``src`` bind it to a device/source (``-I``)."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait)]
        if iface is not None or src is not None:
            argv += ["-I", iface or src or ""]
        argv.append(dst)
        proc = self.exec(ns, *argv, check=False, timeout=30 + count * interval + wait)
        return parse_ping(proc.stdout, proc.stderr)
