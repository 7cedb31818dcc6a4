"""New-connection rate LAN -> internet through the router, without mwan and with 10/100/1000 rules.

    sudo .venv/bin/python -m bench.cps_bench [--reps 5] [--seconds 5] [--quick]
        [--cases direct,none,10,100,1000,1000@old --tree old=/tmp/old-tree]

(``--tree old=DIR``: cases ``N@old`` run mwan from the source tree DIR, e.g.
``git archive <commit> | tar -x -C DIR``, alternating with the others.)

One lab (router, two ISPs, two LAN clients, the internet; prefix ``mwcps``).
A server on 203.0.113.99:8080 in the internet namespace accepts and closes
(:mod:`mwan.lab.cps`, ``SO_REUSEPORT``); client processes in the LAN
namespaces keep a fixed number of non-blocking connects in flight and close
each connection with an RST once its handshake completes (no TIME_WAIT), so
every connection is new to the router's conntrack.  Cases, alternating in
every round:

* ``direct``: the same clients and server over a direct veth from each LAN
  namespace to the internet namespace, no router in the path: the ceiling
  of the load generator itself on this machine;
* ``none``: the router without mwan (its masquerade and forwarding only: no
  ``inet mwan`` table, no mwan ip rules; checked);
* ``mwan N``: ``mwan3 start`` with N rules; the first N-1 never match the
  benchmark's traffic (other destinations and ports, shapes as in
  ``bench/apply_bench.py``: plain dest_ip, tcp dest_port lists, udp
  src_port ranges, every tenth sticky), the last one does and sends it out
  of WAN 2 (checked: without mwan it leaves by WAN 1), so every new
  connection walks the whole list.

Prints the median conn/s per case, its ratio to ``none`` (of the medians,
and "paired": the median over rounds of each round's ratio, steadier on a
shared machine; target for 1000 rules: >= 0.90), the CPU the whole machine
was busy during the runs (/proc/stat, both CPUs), the CPU per connection
(host-wide, and of the client and server processes alone) and what the
client, server and mwan daemon processes used.
Raw output goes to ``bench/results/cps.txt`` (``--output``).

Namespace sysctls set (only inside the lab's namespaces): in the LAN
namespaces ``net.ipv4.ip_local_port_range=1024 65535``; in the router
``net.netfilter.nf_conntrack_tcp_timeout_close=1`` (the RST-closed entries
leave the table after 1 s instead of 10 s; ``nf_conntrack_max`` is not
writable outside the initial namespace, so the table is kept small this
way instead); in the internet namespace ``net.ipv4.tcp_max_syn_backlog=8192``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mwan.lab import Lab
from mwan.lab.cps import Tally, parse_tally
from mwan.lab.netns import pids_in_netns
from mwan.lab.router import MwanRouter, lab_interfaces

SERVER = "203.0.113.99"  # outside the lab's transparent echo proxy
PORT = 8080
PREFIX = "mwcps"
CASES = ("direct", "none", "10", "100", "1000")
QUICK_CASES = ("direct", "none", "1000")
TARGET = 0.90
SETTLE = 2.0  # seconds between mwan3 start and a run: the daemon's start-up work is done


# ---------------------------------------------------------------- the config

POLICIES = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config policy 'wanb_only'
	list use_member 'wanb_m1'
"""


def rules_text(n: int) -> str:
    """``n`` rules; only the last matches tcp to SERVER:PORT and sends it out of WAN 2.

    Without mwan (and for traffic no rule matches) the router's main table
    sends it out of WAN 1, so the WAN the traffic leaves by shows that the
    last rule matched, whatever form the compiled rules take.
    """
    policies = ("balanced", "wan_wanb", "wanb_only")
    out = []
    for i in range(n - 1):
        lines = [f"config rule 'r{i}'", f"\toption use_policy '{policies[i % 3]}'"]
        if i % 4 == 1:
            # the server's own network, other ports: the address matches, the port does not
            lines += ["\toption dest_ip '203.0.113.0/24'", "\toption proto 'tcp'",
                      f"\toption dest_port '{1000 + i},{20000 + i}'"]
        else:
            lines.append(f"\toption dest_ip '198.{18 + i // 65536 % 2}.{i // 256 % 256}."
                         f"{i % 256}/32'")
            if i % 4 == 2:
                lines += ["\toption proto 'udp'", f"\toption src_port '{1024 + i % 5000}:65535'"]
        if i % 10 == 5:
            lines += ["\toption sticky '1'", "\toption timeout '300'"]
        out.append("\n".join(lines) + "\n")
    out.append(f"config rule 'last'\n\toption use_policy 'wanb_only'\n"
               f"\toption dest_ip '{SERVER}/32'\n\toption proto 'tcp'\n"
               f"\toption dest_port '{PORT}'\n")
    return "".join(out)


def config(lab: Lab, n: int) -> str:
    return lab_interfaces(lab, ipv6=False) + POLICIES + rules_text(n)


class TreeRouter(MwanRouter):
    """mwan run from another source tree (e.g. an older commit unpacked with git archive).

    The CLI runs with that tree as its working directory and on PYTHONPATH; the
    daemon it starts (``python -P``, PYTHONPATH inherited) imports it from there too.
    """

    def __init__(self, lab: Lab, config_text: str, tree: str) -> None:
        super().__init__(lab, config_text)
        self.tree = tree

    def argv(self, *args: str) -> list[str]:
        return ["env", "-C", self.tree, f"PYTHONPATH={self.tree}", *super().argv(*args)]


def case_rules(case: str) -> int:
    """The rule count of a mwan case: "1000" or "1000@tree"."""
    return int(case.split("@")[0])


# ---------------------------------------------------------------- measuring

@dataclass(frozen=True)
class Run:
    """One timed run of one case."""

    round: int
    case: str
    conns: int
    errors: dict[str, int]
    seconds: float
    cpu: dict[str, float]  # host-wide fraction of all CPUs: busy, user, system, softirq, steal
    cpus: int
    client_cpu: float  # CPUs the client processes used (their own CPU time / seconds)
    client_user: float  # of which in user space
    server_cpu: float  # CPUs the server processes used
    server_user: float
    router_cpu: float  # CPUs the processes in the router namespace used (the mwan daemon)
    softirqd_cpu: float  # CPUs the ksoftirqd threads used (softirq work deferred to them)

    @property
    def rate(self) -> float:
        return self.conns / self.seconds

    @property
    def cpu_busy(self) -> float:
        return self.cpu["busy"]

    @property
    def cpu_us_per_conn(self) -> float:
        """Host CPU time per connection (includes whatever else the machine ran)."""
        return self.cpu_busy * self.cpus * self.seconds * 1e6 / max(1, self.conns)

    @property
    def own_us_per_conn(self) -> float:
        """CPU time of the client and server processes (softirq work in their context
        included: the packets' whole path, mostly) and of ksoftirqd per connection: less
        disturbed by other load on the machine than the host figure."""
        own = self.client_cpu + self.server_cpu + self.softirqd_cpu
        return own * self.seconds * 1e6 / max(1, self.conns)


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)

    def of(self, case: str) -> list[Run]:
        return [r for r in self.runs if r.case == case]

    def median(self, case: str, key: Callable[[Run], float]) -> float:
        return statistics.median(key(r) for r in self.of(case))

    def paired(self, case: str, base: str = "none") -> float | None:
        """Median over rounds of the case's rate / the base's rate in the same round."""
        bases = {r.round: r.rate for r in self.of(base)}
        ratios = [r.rate / bases[r.round] for r in self.of(case) if bases.get(r.round)]
        return statistics.median(ratios) if ratios else None


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times() -> dict[str, int]:
    """Jiffies of all CPUs by kind, host-wide (/proc/stat), with "busy" and "total"."""
    with open("/proc/stat", encoding="ascii") as fh:
        f = dict(zip(STAT_FIELDS, (int(x) for x in fh.readline().split()[1:]), strict=False))
    f["total"] = sum(f[k] for k in STAT_FIELDS)  # guest time is already in user
    f["busy"] = f["total"] - f["idle"] - f["iowait"]
    return f


def cpu_share(t0: dict[str, int], t1: dict[str, int]) -> dict[str, float]:
    total = max(1, t1["total"] - t0["total"])
    return {k: (t1[k] - t0[k]) / total
            for k in ("busy", "user", "system", "softirq", "steal")}


def process_cpu(pids: Sequence[int]) -> tuple[float, float]:
    """CPU seconds (user + system, user) the processes used so far."""
    ticks = user = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(f[11]) + int(f[12])
        user += int(f[11])
    hz = os.sysconf("SC_CLK_TCK")
    return ticks / hz, user / hz


def softirq_threads() -> list[int]:
    """The pids of the ksoftirqd kernel threads."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", encoding="ascii") as fh:
                    if fh.read().startswith("ksoftirqd/"):
                        out.append(int(entry))
            except OSError:
                continue
    return out


def with_children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [pid, *(int(x) for x in fh.read().split())]
    except OSError:
        return [pid]


def cpu_count() -> int:
    with open("/proc/stat", encoding="ascii") as fh:
        return sum(1 for ln in fh if re.match(r"cpu\d", ln))


@dataclass(frozen=True)
class Load:
    """Who connects where: (namespace, destination) per client process."""

    clients: tuple[tuple[str, str], ...]
    concurrency: int


def measure(lab: Lab, rnd: int, case: str, load: Load, seconds: float,
            server: Sequence[int]) -> Run:
    start_at = time.time() + 1.0  # every client has started python by then
    procs = [lab.popen(ns, Lab.python("mwan.lab.cps", "client", f"--dst={dst}",
                                      f"--port={PORT}", f"--seconds={seconds}",
                                      f"--start-at={start_at}",
                                      f"--concurrency={load.concurrency}"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for ns, dst in load.clients]
    router, softirqd = pids_in_netns([lab.router]), softirq_threads()
    time.sleep(max(0.0, start_at - time.time()))
    t0, s0, r0, k0 = (cpu_times(), process_cpu(server), process_cpu(router),
                      process_cpu(softirqd))
    time.sleep(seconds)
    t1, s1, r1, k1 = (cpu_times(), process_cpu(server), process_cpu(router),
                      process_cpu(softirqd))
    tallies: list[Tally] = []
    for p in procs:
        out, err = p.communicate(timeout=seconds + 30)
        if p.returncode != 0 or not out.strip():
            raise RuntimeError(f"client failed ({p.returncode}): {err.strip()}")
        tallies.append(parse_tally(out.strip().splitlines()[-1]))
    errors: dict[str, int] = {}
    for t in tallies:
        for k, v in t.errors.items():
            errors[k] = errors.get(k, 0) + v
    span = statistics.median(t.seconds for t in tallies)
    return Run(rnd, case, sum(t.ok for t in tallies), errors, span, cpu_share(t0, t1),
               cpu_count(), sum(t.cpu for t in tallies) / span,
               sum(t.user for t in tallies) / span, (s1[0] - s0[0]) / seconds,
               (s1[1] - s0[1]) / seconds, (r1[0] - r0[0]) / seconds,
               (k1[0] - k0[0]) / seconds)


# ---------------------------------------------------------------- the lab

def prepare(lab: Lab, server_procs: int) -> list[int]:
    """Server address and process, direct veths, the namespace sysctls; the server's pids."""
    lab.ip(lab.inet, "addr", "add", f"{SERVER}/32", "dev", "lo")
    lab.exec(lab.inet, "sysctl", "-q", "-w", "net.ipv4.tcp_max_syn_backlog=8192")
    lab.exec(lab.router, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_close=1")
    for i in range(1, lab.clients + 1):
        ns = lab.client_ns(i)
        lab.exec(ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535")
        lab.ip(ns, "link", "add", "direct", "type", "veth", "peer", "name", f"direct{i}",
               "netns", lab.inet)
        lab.ip(ns, "addr", "add", f"10.250.{i}.1/24", "dev", "direct")
        lab.ip(ns, "link", "set", "direct", "up")
        lab.ip(lab.inet, "addr", "add", f"10.250.{i}.2/24", "dev", f"direct{i}")
        lab.ip(lab.inet, "link", "set", f"direct{i}", "up")
    proc = lab.popen(lab.inet, Lab.python("mwan.lab.cps", "server", f"--port={PORT}",
                                          f"--procs={server_procs}"),
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise RuntimeError("the cps server did not start")
    return with_children(proc.pid)


def mwan_absent(lab: Lab) -> str:
    """'' when the router has no mwan table and no mwan ip rules, else what is left."""
    tables = lab.exec(lab.router, "nft", "list", "tables").stdout
    rules = lab.exec(lab.router, "ip", "rule", "show").stdout
    left = [ln for ln in rules.splitlines() if "proto 201" in ln]
    if "inet mwan" in tables:
        left.append("table inet mwan")
    return "; ".join(left)


def tx_packets(lab: Lab) -> dict[str, int]:
    """Packets the router has sent out of each WAN device."""
    out = {}
    for k in range(1, lab.isps + 1):
        dev = lab.wan_device(k)
        d = json.loads(lab.exec(lab.router, "ip", "-s", "-j", "link", "show", dev).stdout)
        out[dev] = int(d[0]["stats64"]["tx"]["packets"])
    return out


def table_lines(lab: Lab) -> tuple[int, int]:
    """Lines of the router's table inet mwan, and the nft rules in its chain rules."""
    table = lab.exec(lab.router, "nft", "list", "table", "inet", "mwan").stdout
    chain = json.loads(lab.exec(lab.router, "nft", "-j", "list", "chain", "inet", "mwan",
                                "rules").stdout)
    return len(table.splitlines()), sum(1 for o in chain["nftables"] if "rule" in o)


# ---------------------------------------------------------------- the report

def table(res: Results, cases: Sequence[str]) -> list[str]:
    none = res.median("none", lambda r: r.rate) if res.of("none") else 0.0
    none_us = res.median("none", lambda r: r.cpu_us_per_conn) if res.of("none") else 0.0
    none_own = res.median("none", lambda r: r.own_us_per_conn) if res.of("none") else 0.0
    lines = [(f"{'case':>16} {'runs':>4} {'conn/s':>8} {'ratio':>6} {'paired':>6} {'min':>7} "
              f"{'max':>7} | "
              f"{'busy':>5} {'softirq':>7} {'us/conn':>7} {'vs none':>7} | {'own us':>6} "
              f"{'vs none':>7} | {'client':>9} {'server':>9} {'ksirq':>5} {'mwan':>4} | errors")]
    for c in dict.fromkeys(cases):
        runs = res.of(c)
        if not runs:
            continue

        def med(key: Callable[[Run], float], c: str = c) -> float:
            return res.median(c, key)

        rate, us = med(lambda r: r.rate), med(lambda r: r.cpu_us_per_conn)
        errs: dict[str, int] = {}
        for r in runs:
            for k, v in r.errors.items():
                errs[k] = errs.get(k, 0) + v
        name = c if c in ("direct", "none") else f"mwan {c}"
        ratio = f"{rate / none:6.3f}" if none else "     -"
        pr = res.paired(c)
        paired = f"{pr:6.3f}" if pr is not None else "     -"
        own = med(lambda r: r.own_us_per_conn)
        mwan = c not in ("direct", "none") and none
        extra = f"{us - none_us:+7.1f}" if mwan else " " * 7
        extra_own = f"{own - none_own:+7.1f}" if mwan else " " * 7
        lines.append(f"{name:>16} {len(runs):4d} {rate:8.0f} {ratio} {paired} "
                     f"{min(r.rate for r in runs):7.0f} {max(r.rate for r in runs):7.0f} | "
                     f"{med(lambda r: r.cpu_busy):5.0%} {med(lambda r: r.cpu['softirq']):7.0%} "
                     f"{us:7.1f} {extra} | {own:6.1f} {extra_own} | "
                     f"{med(lambda r: r.client_user):4.2f}/"
                     f"{med(lambda r: r.client_cpu):4.2f} {med(lambda r: r.server_user):4.2f}/"
                     f"{med(lambda r: r.server_cpu):4.2f} {med(lambda r: r.softirqd_cpu):5.2f} "
                     f"{med(lambda r: r.router_cpu):4.2f} | "
                     f"{errs or ''}")
    lines.append("(ratio: median conn/s / median none; paired: median over rounds of conn/s / "
                 "the same round's none; busy, softirq: host-wide share of all CPUs; us/conn: "
                 "host CPU time per connection, 'vs none' its excess over none; own us: the same "
                 "from the CPU time of the client and server processes (softirq in their "
                 "context included) and ksoftirqd; client, server: CPUs their processes used, in user space / in all; "
                 "ksirq: CPUs ksoftirqd used; mwan: CPUs the processes in the router namespace "
                 "used, the daemon)")
    return lines


def cpu_text(r: Run) -> str:
    u = r.cpu
    return (f"busy {u['busy']:4.0%} (user {u['user']:3.0%} sys {u['system']:3.0%} "
            f"softirq {u['softirq']:3.0%} steal {u['steal']:3.0%}), client "
            f"{r.client_user:.2f}/{r.client_cpu:.2f} CPU, server "
            f"{r.server_user:.2f}/{r.server_cpu:.2f} CPU (user/all), ksoftirqd "
            f"{r.softirqd_cpu:.2f} CPU, mwan {r.router_cpu:.2f} CPU")


def verdict(res: Results) -> list[str]:
    out = []
    for c in dict.fromkeys(r.case for r in res.runs):
        pr = res.paired(c)
        if c in ("direct", "none") or case_rules(c) != 1000 or pr is None:
            continue
        r = res.median(c, lambda x: x.rate) / res.median("none", lambda x: x.rate)
        label = "mwan 1000 rules" + (f" ({c.partition('@')[2]})" if "@" in c else "")
        out.append(f"{label} / none: {pr:.3f} paired, {r:.3f} of the medians "
                   f"(target >= {TARGET:.2f}: {'met' if pr >= TARGET else 'NOT met'})")
    if res.of("direct") and res.of("none"):
        d = res.median("direct", lambda x: x.rate)
        n = res.median("none", lambda x: x.rate)
        cu = res.median("none", lambda x: x.client_user)
        su = res.median("none", lambda x: x.server_user)
        out.append(
            f"what limits the rate: the same clients and server over a direct veth (no router) "
            f"reach {d:.0f} conn/s = {d / n:.2f} x the routed rate without mwan. In the routed "
            f"runs the client processes spend {cu:.2f} CPU and the server {su:.2f} CPU in user "
            f"space (their own work) of {cpu_count()} CPUs, which are 100% busy: the rest is "
            "kernel work, most of it the packets' path through the router, the ISP and the "
            "server's stack, which runs in softirq in the sending process's context (this "
            "kernel has no IRQ time accounting, so it shows as those processes' system time). "
            "The routed rate is bound by the machine's CPU, shared by everything; the client "
            "and server are not the bottleneck. Because their cost is in every case's "
            "denominator, 'vs none' (extra CPU per connection) is the cleaner measure of "
            "what mwan's rules cost each new connection; 'own us' less disturbed by the "
            "machine's other users.")
    return out


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, help="rounds over every case (default 5, quick 1)")
    ap.add_argument("--seconds", type=float, help="length of each run (default 5, quick 2)")
    ap.add_argument("--quick", action="store_true", help="direct, none and 1000 rules only")
    ap.add_argument("--cases", help=f"comma-separated, from {','.join(CASES)}")
    ap.add_argument("--clients", type=int, default=2, help="LAN namespaces")
    ap.add_argument("--procs", type=int, default=1, help="client processes per LAN namespace")
    ap.add_argument("--concurrency", type=int, default=32, help="connects in flight per process")
    ap.add_argument("--server-procs", type=int, default=2)
    ap.add_argument("--output", default="bench/results/cps.txt")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="cases N@NAME run mwan from the source tree DIR (e.g. git archive of "
                         "an older commit), alternating with the others")
    a = ap.parse_args(argv)
    trees = dict(t.split("=", 1) for t in a.tree)
    reps = a.reps if a.reps is not None else (1 if a.quick else 5)
    seconds = a.seconds if a.seconds is not None else (2.0 if a.quick else 5.0)
    cases = tuple(a.cases.split(",")) if a.cases else (QUICK_CASES if a.quick else CASES)
    log: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        log.append(line)

    say(f"cps_bench: {reps} rounds of {', '.join(cases)}; {seconds:g} s each; "
        f"{a.clients} LAN namespaces x {a.procs} client processes x {a.concurrency} in "
        f"flight; server {a.server_procs} processes; {cpu_count()} CPUs; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
        + "".join(f"; {k} = mwan from {v}" for k, v in trees.items()))
    res = Results()
    with Lab(isps=2, clients=a.clients, ipv6=False, echo=False, prefix=PREFIX) as lab:
        server = prepare(lab, a.server_procs)
        routed = Load(tuple((lab.client_ns(i), SERVER) for i in range(1, a.clients + 1)
                            for _ in range(a.procs)), a.concurrency)
        direct = Load(tuple((lab.client_ns(i), f"10.250.{i}.2")
                            for i in range(1, a.clients + 1) for _ in range(a.procs)),
                      a.concurrency)
        configs = {c: config(lab, case_rules(c)) for c in cases if c not in ("direct", "none")}
        for rnd in range(1, reps + 1):
            for c in cases:
                if c in ("direct", "none"):
                    left = mwan_absent(lab)
                    if left:
                        raise RuntimeError(f"mwan left state behind: {left}")
                    run = measure(lab, rnd, c, direct if c == "direct" else routed, seconds,
                                  server)
                    note = ""
                else:
                    tree = c.partition("@")[2]
                    router = (TreeRouter(lab, configs[c], trees[tree]) if tree
                              else MwanRouter(lab, configs[c]))
                    with router as r:
                        r.start()
                        time.sleep(SETTLE)
                        lines = table_lines(lab)
                        tx0 = tx_packets(lab)
                        run = measure(lab, rnd, c, routed, seconds, server)
                        tx1 = tx_packets(lab)
                    wan1, wan2 = (tx1[d] - tx0[d] for d in ("wan1", "wan2"))
                    if wan2 < 3 * run.conns or wan1 > run.conns // 100:
                        raise RuntimeError(f"case {c}: the last rule did not match every "
                                           f"connection: {run.conns} connections, packets out "
                                           f"of wan1 {wan1}, wan2 {wan2}")
                    note = (f" (table inet mwan: {lines[0]} lines, {lines[1]} nft rules in chain "
                            f"rules; out of "
                            f"wan2 as the last rule "
                            f"says: {wan2} packets, wan1 {wan1})")
                res.runs.append(run)
                say(f"  round {rnd} {c:>12}: {run.rate:8.0f} conn/s, CPU {cpu_text(run)}, "
                    f"{run.cpu_us_per_conn:6.1f} us/conn (own {run.own_us_per_conn:5.1f})"
                    f"{', errors ' + str(run.errors) if run.errors else ''}{note}")
                time.sleep(1.5)  # conntrack's CLOSE entries of this run expire (timeout 1 s)
    say()
    say(f"medians of {reps} alternating rounds, {seconds:g} s each "
        "(ratio = conn/s / none; CPU host-wide):")
    for line in table(res, cases) + verdict(res):
        say(line)
    if a.output:
        with open(a.output, "w", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(['python -m bench.cps_bench', *(argv or sys.argv[1:])])}\n")
            fh.write("\n".join(log) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
