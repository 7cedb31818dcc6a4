"""The two-router lab: routers A and B share the LAN and every ISP segment (issue 13).

::

    lanI ─eth0─┐                      ┌─ ra lan0 .2 ─ ra wanK .2 ─┐
               └─[sw: br-lan]─────────┴─ rb lan0 .3 ─ rb wanK .3 ─┴─[ispK: bridge rtr .1]─ inet
    ra sync0 10.254.0.1/30 ══ veth ══ rb sync0 10.254.0.2/30   (conntrackd FTFW)
    VIPs (keepalived, one sync group): LAN 192.168.1.1 (the clients' gateway), WAN K 10.100.K.254

Both routers run mwan with the same config (plus their own ``config ha``),
keepalived and conntrackd; the files of both daemons come from
:mod:`mwan.ha.gen` (``mwan3 ha-config``), their pid, lock, socket and role
files live in the lab's own directory under /run/mwan-lab (root-only
directories, as keepalived's script security wants), and they are stopped
by pid.  Each router SNATs LAN traffic to the WAN's virtual address, so a
flow keeps its public address when the other router takes over; the sync
subnet has a blackhole route (:func:`mwan.ha.gen.blackhole_route`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from mwan.config.validate import parse_config
from mwan.ha import gen
from mwan.lab import addressing, topology
from mwan.lab import ha_topology as T
from mwan.lab.ha_topology import ROUTERS, HaNames, ha_section, lan_vip
from mwan.lab.lab import Lab
from mwan.lab.netns import (
    OWNER_DIR,
    delete_namespaces,
    install_signal_handlers,
    ns_argv,
    owner_alive,
    run,
    run_parallel,
    write_owner,
)
from mwan.lab.router import MwanRouter

log = logging.getLogger(__name__)


def stop_process(proc: subprocess.Popen[Any], grace: float = 4.0) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL after ``grace`` seconds (by pid, never a name)."""
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


class HaRouter(MwanRouter):
    """mwan in router ``r`` of an :class:`HaLab`, with its keepalived and conntrackd."""

    def __init__(self, lab: HaLab, r: str, workdir: str) -> None:
        self.r = r
        self.ns = lab.ha_names.router_ns(r)
        os.makedirs(workdir, mode=0o755, exist_ok=True)
        super().__init__(lab, "", workdir)
        self.conf_dir = os.path.join(workdir, "conf")
        self.ha_run = os.path.join(workdir, "ha")
        for d in (self.conf_dir, self.ha_run):
            os.makedirs(d, mode=0o755, exist_ok=True)
        self.keepalived: subprocess.Popen[Any] | None = None
        self.conntrackd: subprocess.Popen[Any] | None = None

    def cli(self, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        return self.lab.exec(self.ns, *self.argv(*args), check=check, timeout=timeout)

    def ha_config(self) -> None:
        """Write keepalived.conf, conntrackd.conf and notify.sh with ``mwan3 ha-config``."""
        self.cli("ha-config", "--dir", self.conf_dir)

    def paths(self) -> gen.Paths:
        return gen.Paths(self.ha_run, self.conf_dir)

    def start_ha(self) -> None:
        """conntrackd, then keepalived (both in the foreground, killed by pid)."""
        p = self.paths()
        for name in ("conntrackd.lock", "conntrackd.ctl", "role"):
            try:
                os.unlink(p.run(name))
            except FileNotFoundError:
                pass
        self.conntrackd = self.spawn(p.conntrackd_argv(), "conntrackd.out")
        deadline = time.monotonic() + 10
        while not os.path.exists(p.conntrackd_socket):
            if self.conntrackd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"conntrackd in {self.ns} did not start: "
                                   f"{self.file('conntrackd.out')} {self.file('conntrackd.log')}")
            time.sleep(0.05)
        self.keepalived = self.spawn(p.keepalived_argv(), "keepalived.out")

    def spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[Any]:
        """Start ``argv`` in this router (killed with the lab), its output in ``log_name``."""
        with open(os.path.join(self.ha_run, log_name), "ab") as log:
            return self.lab.popen(self.ns, argv, stdout=log, stderr=log)

    def file(self, name: str) -> str:
        try:
            with open(os.path.join(self.ha_run, name), encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def role(self) -> str:
        """The role the notify hook recorded last ("" before the first)."""
        words = self.file("role").split()
        return words[0] if words else ""

    def peer_flows(self, dport: int) -> int:
        """Established TCP flows to ``dport`` in conntrackd's external cache (the peer's)."""
        out = self.lab.exec(self.ns, *gen.Paths(self.ha_run, self.conf_dir).conntrackd_argv(),
                            "-e", check=False).stdout
        return sum(1 for line in out.splitlines()
                   if line.startswith("tcp") and "ESTABLISHED" in line
                   and f" dport={dport} " in line)

    def term_keepalived(self) -> None:
        """SIGTERM keepalived (it drops its VIPs at once, sends priority 0; exit comes later)."""
        if self.keepalived is not None and self.keepalived.poll() is None:
            os.kill(self.keepalived.pid, signal.SIGTERM)

    def stop_ha(self) -> None:
        for proc in (self.keepalived, self.conntrackd):
            if proc is not None:
                stop_process(proc, grace=4.0)
        self.keepalived = self.conntrackd = None

    def status(self) -> dict[str, Any]:
        out = self.cli("status", "--json", check=False).stdout
        data: dict[str, Any] = json.loads(out) if out.strip().startswith("{") else {}
        return data


class HaLab(Lab):
    """Two routers with VRRP and conntrack sync; see the module docstring."""

    def __init__(self, isps: int = 2, clients: int = 1, advert_int: float = 0.2,
                 **kw: Any) -> None:
        super().__init__(isps=isps, clients=clients, ipv6=False, **kw)
        self.ha_names = HaNames(self.names.lab_id, isps, clients)
        self.names = self.ha_names
        self.advert_int = advert_int
        self.ha_dir = str(OWNER_DIR / f"{self.id}.ha")
        self.routers: dict[str, HaRouter] = {}

    def ns_of(self, r: str) -> str:
        return self.ha_names.router_ns(r)

    def build(self) -> HaLab:
        """As :meth:`Lab.build`, with this topology; then each router's directory."""
        if self._built:
            return self
        start = time.monotonic()
        install_signal_handlers()
        atexit.register(self.close)
        write_owner(self.id)
        self._built = True
        n = self.ha_names
        for stale in OWNER_DIR.glob(f"{self.prefix}*.ha"):  # of labs whose owner died
            if stale.is_dir() and stale.stem != self.id and not owner_alive(stale.stem):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            os.makedirs(self.ha_dir, mode=0o755, exist_ok=True)
            os.chmod(self.ha_dir, 0o755)  # keepalived runs the hook only from root-only dirs
            run(["ip", "-batch", "-"], input=T.host_batch(n))
            run_parallel([(ns_argv(ns, ["sysctl", "-q", "-e", "-w", *T.sysctls(n, ns)]), None)
                          for ns in n.all])
            echo = self._start_echo() if self.echo else None
            run_parallel(self._config_jobs())
            if echo is not None:
                self._wait_ready(echo)
            for r in ROUTERS:
                self.routers[r] = HaRouter(self, r, os.path.join(self.ha_dir, r))
        except BaseException:
            self.close()
            raise
        self.build_seconds = time.monotonic() - start
        return self

    def _config_jobs(self) -> list[tuple[Sequence[str], str | None]]:
        n = self.ha_names
        jobs: list[tuple[Sequence[str], str | None]] = [
            (["ip", "-n", n.switch, "-batch", "-"], T.switch_batch(n)),
            (["ip", "-n", n.inet, "-batch", "-"], topology.inet_batch(n, False)),
            (ns_argv(n.inet, ["nft", "-f", "-"]), topology.inet_nft(False)),
        ]
        for r in ROUTERS:
            jobs.append((["ip", "-n", n.router_ns(r), "-batch", "-"], T.router_batch(n, r)))
            jobs.append((ns_argv(n.router_ns(r), ["nft", "-f", "-"]), T.router_nft(n)))
        for k in range(1, self.isps + 1):
            jobs.append((["ip", "-n", n.isp(k), "-batch", "-"], T.isp_batch(k)))
            jobs.append((ns_argv(n.isp(k), ["nft", "-f", "-"]), topology.isp_nft(k)))
        for i in range(1, self.clients + 1):
            jobs.append((["ip", "-n", n.client(i), "-batch", "-"], T.client_batch(i)))
        return jobs

    # -- running the pair ------------------------------------------------------

    def start(self, mwan_config: str, preempt: bool = False) -> None:
        """Same mwan config on both (+ each one's config ha), then conntrackd and keepalived.

        A starts first (both start as BACKUP: with nopreempt the first up becomes master).
        """
        for r, router in self.routers.items():
            router.write_config(mwan_config + "\n" + ha_section(
                r, self.isps, self.advert_int, router.ha_run, router.conf_dir, preempt))
            parse_config(mwan_config)  # the shared part is valid on its own
            router.ha_config()
        for router in self.routers.values():
            router.cli("start")
        for r in ROUTERS:
            self.routers[r].start_ha()
            if r == "a":
                self.wait_role("a", "MASTER", timeout=15)

    def wait_role(self, r: str, role: str, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.routers[r].role() == role:
                return True
            time.sleep(0.05)
        return False

    def master(self) -> str | None:
        """The router whose LAN device holds the LAN VIP now (from the kernel), else None."""
        for r in ROUTERS:
            if not os.path.exists(f"/run/netns/{self.ns_of(r)}"):
                continue
            out = self.exec(self.ns_of(r), "ip", "-4", "-o", "addr", "show", "dev", "lan0",
                            check=False).stdout
            if f" {lan_vip()}/" in out:
                return r
        return None

    def fail_router(self, r: str, how: str = "links") -> None:
        """Kill router ``r``: its links down, keepalived SIGTERM, or its namespace deleted."""
        ns = self.ns_of(r)
        if how == "links":
            devs = ["lan0", "sync0", *(f"wan{k}" for k in range(1, self.isps + 1))]
            self.exec(ns, "ip", "-batch", "-", input="".join(f"link set {d} down\n"
                                                            for d in devs))
        elif how == "keepalived":
            self.routers[r].term_keepalived()
        elif how == "netns":
            delete_namespaces([ns])
        else:
            raise ValueError(f"how must be links, keepalived or netns, not {how!r}")

    def restore_router(self, r: str) -> None:
        """Undo :meth:`fail_router` ``links`` or ``keepalived`` (a deleted namespace stays gone)."""
        ns = self.ns_of(r)
        devs = ["lan0", "sync0", *(f"wan{k}" for k in range(1, self.isps + 1))]
        self.exec(ns, "ip", "-batch", "-", input="".join(f"link set {d} up\n" for d in devs))
        # the kernel dropped the routes via the devices with them (netifd re-adds them)
        self.exec(ns, "ip", "-batch", "-", input="".join(
            f"route replace 0.0.0.0/0 via {addressing.wan_gateway(k)} dev wan{k} "
            f"metric {10 * k}\n" for k in range(1, self.isps + 1)))
        router = self.routers[r]
        if router.keepalived is None or router.keepalived.poll() is not None:
            if router.keepalived is not None:
                stop_process(router.keepalived, grace=4.0)
            router.keepalived = router.spawn(router.paths().keepalived_argv(), "keepalived.out")

    def close(self) -> None:
        for router in self.routers.values():
            try:
                router.stop_ha()
            except Exception as exc:  # noqa: BLE001 - closing must go on
                log.warning("stopping keepalived/conntrackd of %s: %s", router.ns, exc)
            if os.path.exists(f"/run/netns/{router.ns}"):
                router.close()
        super().close()
        shutil.rmtree(self.ha_dir, ignore_errors=True)
