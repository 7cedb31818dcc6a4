"""WANs that get their address by DHCP, in the lab: no netifd, as on a Debian router.

ISP ``k`` serves one lease with dnsmasq on its router link; the router's
``wanK`` runs busybox's udhcpc, whose event script is this module
(:func:`client_event`): ``deconfig`` removes the WAN's IPv4 addresses,
``bound``/``renew`` set the leased address and main's default route through
the leased gateway, at the WAN's metric, as ifupdown's DHCP does.  Each event
is appended as a JSON line (time, event, address, gateway) to a log, so a test
or bench can tell when the kernel changed.

:meth:`DhcpWan.change_lease` makes the ISP hand out another address and
gateway; :meth:`DhcpWan.renew` has the client renew at once (SIGUSR1): the
authoritative server refuses the old address (NAK), the client starts over
and binds the new one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mwan.lab.lab import Lab

LEASE_SECONDS = 120  # dnsmasq's minimum
EVENTS_ENV = "MWAN_LAB_DHCP_EVENTS"
METRIC_ENV = "MWAN_LAB_DHCP_METRIC"


@dataclass(frozen=True)
class Lease:
    address: str  # the client's, without prefix length
    gateway: str
    prefix: int = 24


def dnsmasq_argv(dev: str, lease: Lease, lease_file: str, pid_file: str) -> list[str]:
    """dnsmasq as a DHCP server only (no DNS), for exactly ``lease.address`` on ``dev``."""
    mask = str(ipaddress.ip_network(f"0.0.0.0/{lease.prefix}").netmask)
    return ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--no-resolv", "--no-hosts", f"--interface={dev}", "--bind-interfaces",
            "--except-interface=lo", "--dhcp-authoritative", "--user=root",
            f"--dhcp-range={lease.address},{lease.address},{mask},{LEASE_SECONDS}",
            f"--dhcp-option=option:router,{lease.gateway}",
            f"--dhcp-leasefile={lease_file}", f"--pid-file={pid_file}", "--log-facility=-"]


def udhcpc_argv(dev: str, script: str) -> list[str]:
    """busybox udhcpc in the foreground, retrying every second, running ``script``."""
    return ["udhcpc", "-f", "-i", dev, "-s", script, "-t", "0", "-T", "1", "-A", "1"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _prefix(env: Mapping[str, str]) -> int:
    if env.get("mask", "").isdigit():
        return int(env["mask"])
    return ipaddress.ip_network(f"0.0.0.0/{env.get('subnet', '255.255.255.0')}").prefixlen


def client_event(event: str, env: Mapping[str, str]) -> int:
    """udhcpc's script: ``event`` is deconfig, bound, renew, nak or leasefail."""
    dev = env["interface"]
    metric = env.get(METRIC_ENV, "0")
    record: dict[str, Any] = {"time": time.time(), "event": event}
    if event == "deconfig":
        _ip("-4", "addr", "flush", "dev", dev)
        _ip("link", "set", dev, "up")
    elif event in ("bound", "renew"):
        address, gateway = env["ip"], env.get("router", "").split()[0]
        wanted = f"{address}/{_prefix(env)}"
        listing = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", dev],
                                 capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            have = line.split()[3]
            if have != wanted:
                _ip("-4", "addr", "del", have, "dev", dev)
        _ip("-4", "addr", "replace", wanted, "dev", dev)
        _ip("-4", "route", "replace", "default", "via", gateway, "dev", dev, "metric", metric)
        record.update(address=address, gateway=gateway)
    log = env.get(EVENTS_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    return 0


class DhcpWan:
    """WAN ``k`` of a built lab, switched from its static address to DHCP."""

    def __init__(self, lab: Lab, k: int, workdir: str, metric: int | None = None) -> None:
        self.lab, self.k, self.dir = lab, k, workdir
        self.dev = lab.wan_device(k)
        self.metric = 10 * k if metric is None else metric
        self.events_path = os.path.join(workdir, f"dhcp-wan{k}.jsonl")
        self.server: subprocess.Popen[Any] | None = None
        self.client: subprocess.Popen[Any] | None = None
        self.lease: Lease | None = None

    def serve(self, lease: Lease) -> None:
        """(Re)start ISP k's DHCP server handing out ``lease`` (adding its gateway address)."""
        ns = self.lab.isp_ns(self.k)
        if self.server is not None:
            self.server.terminate()
            self.server.wait(5)
        have = self.lab.exec(ns, "ip", "-4", "-o", "addr", "show", "dev", "rtr").stdout
        if f" {lease.gateway}/" not in have:
            self.lab.exec(ns, "ip", "addr", "add", f"{lease.gateway}/{lease.prefix}", "dev", "rtr")
        lease_file = os.path.join(self.dir, f"dnsmasq-wan{self.k}.leases")
        if os.path.exists(lease_file):
            os.unlink(lease_file)  # forget the old lease: the new range is all it knows
        self.server = self.lab.popen(
            ns, dnsmasq_argv("rtr", lease, lease_file,
                             os.path.join(self.dir, f"dnsmasq-wan{self.k}.pid")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.lease = lease

    def start_client(self, timeout: float = 20.0) -> dict[str, Any]:
        """Drop the static address and route, run udhcpc; the first ``bound`` event."""
        router = self.lab.router
        self.lab.exec(router, "ip", "-4", "route", "flush", "default", "dev", self.dev)
        self.lab.exec(router, "ip", "-4", "addr", "flush", "dev", self.dev)
        script = os.path.join(self.dir, f"udhcpc-wan{self.k}.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(f"#!{sys.executable}\nimport os, sys\nfrom mwan.lab.dhcp import client_event\n"
                     "sys.exit(client_event(sys.argv[1], os.environ))\n")
        os.chmod(script, 0o755)
        env = {**os.environ, EVENTS_ENV: self.events_path, METRIC_ENV: str(self.metric)}
        self.client = self.lab.popen(router, udhcpc_argv(self.dev, script), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.wait_bound(0, timeout)

    def events(self) -> list[dict[str, Any]]:
        try:
            with open(self.events_path, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
        except FileNotFoundError:
            return []

    def wait_bound(self, after: int, timeout: float = 20.0,
                   address: str | None = None) -> dict[str, Any]:
        """The first bound/renew event past the first ``after`` events (with ``address``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events()[after:]:
                if ev["event"] in ("bound", "renew") and address in (None, ev.get("address")):
                    return ev
            time.sleep(0.05)
        raise TimeoutError(f"wan{self.k}: no DHCP lease {address or ''} within {timeout} s: "
                           f"{self.events()}")

    def change_lease(self, lease: Lease, timeout: float = 20.0) -> dict[str, Any]:
        """Serve ``lease`` instead, make the client renew; its ``bound`` event."""
        before = len(self.events())
        self.serve(lease)
        self.renew()
        return self.wait_bound(before, timeout, address=lease.address)

    def renew(self) -> None:
        assert self.client is not None
        os.kill(self.client.pid, signal.SIGUSR1)  # `ip netns exec` exec()s udhcpc: same pid


def main() -> int:
    """``python -m mwan.lab.dhcp EVENT``: the udhcpc script, for running by hand."""
    return client_event(sys.argv[1], os.environ)


if __name__ == "__main__":
    sys.exit(main())
