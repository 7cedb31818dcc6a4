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
from dataclasses import dataclass
from typing import Any

from mwan.config.validate import parse_config
from mwan.ha import gen
from mwan.lab import addressing, topology
from mwan.lab.lab import Lab
from mwan.lab.netns import (
    OWNER_DIR,
    delete_namespaces,
    install_signal_handlers,
    ns_argv,
    run,
    run_parallel,
    write_owner,
)
from mwan.lab.router import MwanRouter

log = logging.getLogger(__name__)

ROUTERS = ("a", "b")
PRIORITY = {"a": 150, "b": 100}
HOST = {"a": 2, "b": 3}  # last octet of each router's own addresses
SYNC = {"a": "10.254.0.1", "b": "10.254.0.2"}
SYNC_PREFIX = 30
VRID = 61


def wan_vip(k: int) -> str:
    """WAN K's virtual address: the source address of everything the LAN sends out of it."""
    return f"10.100.{k}.254"


def lan_vip() -> str:
    return addressing.lan_router_addr(4)


@dataclass(frozen=True)
class HaNames(topology.Names):
    """A two-router lab's namespaces: ``router`` is A; ``all`` adds B and the LAN switch."""

    def router_ns(self, r: str) -> str:
        if r not in ROUTERS:
            raise IndexError(f"router {r!r} does not exist (a, b)")
        return f"{self.lab_id}-r{r}"

    @property
    def router(self) -> str:
        return self.router_ns("a")

    @property
    def switch(self) -> str:
        return f"{self.lab_id}-sw"

    @property
    def all(self) -> tuple[str, ...]:
        return (self.router_ns("a"), self.router_ns("b"), self.switch, self.inet,
                *(self.isp(k) for k in range(1, self.isps + 1)),
                *(self.client(i) for i in range(1, self.clients + 1)))


def ha_section(r: str, isps: int, advert_int: float, run_dir: str, conf_dir: str,
               preempt: bool = False) -> str:
    """Router ``r``'s ``config ha`` (the rest of the mwan config is the same on both)."""
    peer = SYNC["b" if r == "a" else "a"]
    vips = [f"lan0 {lan_vip()}/24"] + [f"wan{k} {wan_vip(k)}/24" for k in range(1, isps + 1)]
    lines = ["config ha 'ha'", f"\toption router_id 'r{r}'", f"\toption priority '{PRIORITY[r]}'",
             f"\toption advert_int '{advert_int:g}'", f"\toption preempt '{int(preempt)}'",
             f"\toption vrid '{VRID}'", "\toption sync_device 'sync0'",
             f"\toption sync_address '{SYNC[r]}'", f"\toption sync_prefix '{SYNC_PREFIX}'",
             f"\toption peer '{peer}'", f"\toption run_dir '{run_dir}'",
             f"\toption conf_dir '{conf_dir}'"]
    lines += [f"\tlist virtual_address '{v}'" for v in vips]
    return "\n".join(lines) + "\n"


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
        try:
            os.makedirs(self.ha_dir, mode=0o755, exist_ok=True)
            os.chmod(self.ha_dir, 0o755)  # keepalived runs the hook only from root-only dirs
            run(["ip", "-batch", "-"], input=self._host_batch())
            run_parallel([(ns_argv(ns, ["sysctl", "-q", "-e", "-w", *self._sysctls(ns)]), None)
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

    def _host_batch(self) -> str:
        n = self.ha_names
        lines = [f"netns add {ns}" for ns in n.all]
        lines.append(f"link add br-lan netns {n.switch} type bridge")
        for r in ROUTERS:
            ns = n.router_ns(r)
            lines.append(f"link add lan0 netns {ns} type veth peer name r{r} netns {n.switch}")
            for k in range(1, n.isps + 1):
                lines.append(f"link add wan{k} netns {ns} type veth peer name r{r} "
                             f"netns {n.isp(k)}")
        lines.append(f"link add sync0 netns {n.router_ns('a')} type veth peer name sync0 "
                     f"netns {n.router_ns('b')}")
        for k in range(1, n.isps + 1):
            lines.append(f"link add rtr netns {n.isp(k)} type bridge")
            lines.append(f"link add upstream netns {n.isp(k)} type veth peer name isp{k} "
                         f"netns {n.inet}")
        for i in range(1, n.clients + 1):
            lines.append(f"link add lan{i} netns {n.switch} type veth peer name eth0 "
                         f"netns {n.client(i)}")
        return "\n".join(lines) + "\n"

    def _sysctls(self, ns: str) -> list[str]:
        n = self.ha_names
        nobr = ["net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0"]
        if ns in (n.router_ns("a"), n.router_ns("b")):
            devs = ["all", "default", "lan0", "sync0", *(f"wan{k}" for k in range(1, n.isps + 1))]
            # the peer's neighbour entry turns FAILED within seconds, not a minute, when the
            # peer stops answering (mwan.ha.status reads it as "peer unreachable")
            neigh = ["net.ipv4.neigh.sync0.base_reachable_time_ms=2000",
                     "net.ipv4.neigh.sync0.delay_first_probe_time=1"]
            return ["net.ipv4.ip_forward=1", *(f"net.ipv4.conf.{d}.rp_filter=0" for d in devs),
                    *neigh]
        if ns == n.switch:
            return nobr
        if ns in {n.isp(k) for k in range(1, n.isps + 1)}:
            return ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0", *nobr]
        return topology.sysctls(n, ns)

    def _router_batch(self, r: str) -> str:
        h = HOST[r]
        lines = ["link set lo up", "link set lan0 up", f"addr add 192.168.1.{h}/24 dev lan0",
                 "link set sync0 up", f"addr add {SYNC[r]}/{SYNC_PREFIX} dev sync0",
                 f"route add blackhole 10.254.0.0/{SYNC_PREFIX} metric 1000"]
        for k in range(1, self.isps + 1):
            lines += [f"link set wan{k} up", f"addr add 10.100.{k}.{h}/24 dev wan{k}"]
        for k in range(1, self.isps + 1):
            lines.append(f"route add 0.0.0.0/0 via {addressing.wan_gateway(k)} dev wan{k} "
                         f"metric {10 * k}")
        return "\n".join(lines) + "\n"

    def _router_nft(self) -> str:
        """SNAT LAN traffic to each WAN's virtual address (the router's own keeps its own)."""
        rules = "".join(f'    oifname "wan{k}" ip saddr 192.168.1.0/24 snat ip to {wan_vip(k)}\n'
                        for k in range(1, self.isps + 1))
        return (f"table ip {topology.ROUTER_NAT_TABLE} {{\n  chain postrouting {{\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                f"{rules}  }}\n}}\n")

    def _isp_batch(self, k: int) -> str:
        # a fixed MAC: a bridge otherwise takes its lowest port's, and would change it (the
        # ISP's gateway MAC!) when a router's port goes away with its namespace
        lines = ["link set lo up", f"link set rtr address 02:00:00:00:{k:02x}:01",
                 "link set rtr up", "link set upstream up",
                 f"addr add {addressing.wan_gateway(k)}/24 dev rtr",
                 f"addr add {addressing.upstream_addr(k)}/24 dev upstream",
                 f"route add 0.0.0.0/0 via {addressing.inet_addr(k)}"]
        for r in ROUTERS:
            lines += [f"link set r{r} master rtr", f"link set r{r} up"]
        return "\n".join(lines) + "\n"

    def _switch_batch(self) -> str:
        lines = ["link set lo up", "link set br-lan up"]
        ports = [f"r{r}" for r in ROUTERS] + [f"lan{i}" for i in range(1, self.clients + 1)]
        for p in ports:
            lines += [f"link set {p} master br-lan", f"link set {p} up"]
        return "\n".join(lines) + "\n"

    def _client_batch(self, i: int) -> str:
        return (f"link set lo up\nlink set eth0 up\n"
                f"addr add {addressing.lan_client_addr(i)}/24 dev eth0\n"
                f"route add 0.0.0.0/0 via {lan_vip()}\n")

    def _config_jobs(self) -> list[tuple[Sequence[str], str | None]]:
        n = self.ha_names
        jobs: list[tuple[Sequence[str], str | None]] = [
            (["ip", "-n", n.switch, "-batch", "-"], self._switch_batch()),
            (["ip", "-n", n.inet, "-batch", "-"], topology.inet_batch(n, False)),
            (ns_argv(n.inet, ["nft", "-f", "-"]), topology.inet_nft(False)),
        ]
        for r in ROUTERS:
            jobs.append((["ip", "-n", n.router_ns(r), "-batch", "-"], self._router_batch(r)))
            jobs.append((ns_argv(n.router_ns(r), ["nft", "-f", "-"]), self._router_nft()))
        for k in range(1, self.isps + 1):
            jobs.append((["ip", "-n", n.isp(k), "-batch", "-"], self._isp_batch(k)))
            jobs.append((ns_argv(n.isp(k), ["nft", "-f", "-"]), topology.isp_nft(k)))
        for i in range(1, self.clients + 1):
            jobs.append((["ip", "-n", n.client(i), "-batch", "-"], self._client_batch(i)))
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
