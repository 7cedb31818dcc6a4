"""Chaos benchmark: traffic through mwan while a scripted storm hits the WANs and the router.

    sudo .venv/bin/python -m bench.chaos [--duration 300] [--seed 1] [--wans 3]
        [--out bench/results/chaos.json] [--readme]

A lab with 3 WANs (IPv4) runs mwan with a balanced policy.  A LAN client
opens 50 new connections a second and keeps 20 long TCP flows echoing every
200 ms (:mod:`mwan.lab.traffic`) while the storm (:mod:`bench.chaos_storm`,
seeded) runs: carrier flaps and cuts, upstream outages and loss bursts on
each WAN, all WANs out at once now and then, ``mwan3 restart`` with
alternating configs, ``kill -9`` of the daemon then ``mwan3 start``, ``nft
flush ruleset`` then the firewall's own tables reloaded, deletion of mwan's
ip rules, and gateway changes.  After each drift the router is polled until
mwan's objects are back (at most 5 s).  A thread pings the control socket
every 100 ms.  At the end: ``mwan3 stop`` and a count of what is left.

The report (:mod:`bench.chaos_report`) is printed as a table and written as
JSON to ``--out``; ``--readme`` also puts the table into bench/README.md.
The lab is always removed, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Self

from bench import chaos_storm as cs
from bench.chaos_kernel import RouterKernel, wait_for
from bench.chaos_report import analyze, markdown, reclassify, update_readme
from mwan.daemon.control import PID_NAME, call
from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces, wan_name

FLOW_SERVER = "198.51.100.20"  # added to inet's lo; not in the lab's tproxy set
FLOW_PORT = 9000
CONN_PORT = 80
REPAIR_LIMIT = 5.0
TRACKING = {"interval": 1, "failure_interval": 1, "recovery_interval": 1, "timeout": 1,
            "up": 3, "down": 3}


def lag() -> float:
    """How long after a fault ends its WAN may still be catching up (the `up` rounds)."""
    return TRACKING["up"] * TRACKING["interval"] + TRACKING["timeout"] + 1.0

ROOT = Path(__file__).resolve().parents[1]


def config_text(lab: Lab, variant: int) -> str:
    """Two valid configs: weights 3/2/1 and one rule, or weights 1/2/3 and two rules."""
    text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], **TRACKING)
    weights = [3, 2, 1] if variant == 0 else [1, 2, 3]
    for k in range(1, lab.isps + 1):
        text += (f"\nconfig member '{wan_name(k)}_m1'\n\toption interface '{wan_name(k)}'\n"
                 f"\toption weight '{weights[(k - 1) % 3]}'\n")
    text += "\nconfig policy 'balanced'\n" + "".join(
        f"\tlist use_member '{wan_name(k)}_m1'\n" for k in range(1, lab.isps + 1))
    if variant:
        text += (f"\nconfig rule 'to_server2'\n\toption dest_ip '{lab.server2_addr(4)}/32'\n"
                 "\toption use_policy 'balanced'\n")
    return text + "\nconfig rule 'default_rule'\n\toption dest_ip '0.0.0.0/0'\n" \
                  "\toption use_policy 'balanced'\n"


class JsonLines:
    """Reads a process's JSON-line output in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.records: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.records.append(json.loads(line))
            except ValueError:
                continue

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.thread.join(5)
        return self.records


class Sampler:
    """Control-socket ``ping`` every 100 ms and the daemon's RSS every 5 s, in a thread."""

    def __init__(self, router: MwanRouter, pid: Callable[[], int | None]) -> None:
        self.router = router
        self.pid = pid
        self.pings: list[tuple[float, float | None]] = []  # (time, latency or None)
        self.rss: list[tuple[float, float]] = []
        self.online: list[tuple[float, bool]] = []  # every 0.5 s: all WANs online?
        self.quit = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = time.monotonic()
        while not self.quit.is_set():
            t = time.time()
            start = time.perf_counter()
            try:
                call(self.router.run_dir, "ping", timeout=2)
                self.pings.append((t, time.perf_counter() - start))
            except Exception:  # noqa: BLE001 - every failure is an unanswered ping
                self.pings.append((t, None))
            if len(self.pings) % 5 == 1:
                self.online.append((time.time(), all_online(self.router)))
            if len(self.pings) % 50 == 1:
                pid = self.pid()
                mb = rss_mb(pid) if pid else None
                if mb is not None:
                    self.rss.append((t, mb))
            tick += 0.1
            self.quit.wait(max(0.0, tick - time.monotonic()))

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit.set()
        self.thread.join(5)


def rss_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` in MB, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Storm:
    """Runs the storm's actions against one lab and router; each returns a :class:`Done`."""

    def __init__(self, lab: Lab, router: MwanRouter, firewall: str) -> None:
        self.lab = lab
        self.router = router
        self.kernel = RouterKernel(lab)
        self.firewall = firewall
        self.variant = 0
        self.lease = {k: 0 for k in range(1, lab.isps + 1)}  # 0: .2 via .1, 1: .3 via .254
        self.quit = threading.Event()

    def daemon_pid(self) -> int | None:
        try:
            with open(os.path.join(self.router.run_dir, PID_NAME)) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def lane(self, actions: Iterable[cs.Action], t0: float, out: list[cs.Done]) -> None:
        """Run ``actions`` at their times (t0 + t, wall clock); append what happened to ``out``."""
        for a in actions:
            if self.quit.wait(max(0.0, t0 + a.t - time.time())):
                return
            start = time.time()
            try:
                out.append(self.do(a, start))
            except Exception as e:  # noqa: BLE001 - one failed action must not end the storm
                out.append(cs.Done(a, start, time.time(), ok=False, detail=str(e)[:300]))

    def do(self, a: cs.Action, start: float) -> cs.Done:
        lab, k = self.lab, a.wan
        simple: dict[str, Callable[[], None]] = {
            cs.CARRIER_DOWN: lambda: lab.cut_carrier(k),
            cs.CARRIER_UP: lambda: lab.restore_carrier(k),
            cs.OUTAGE: lambda: lab.outage(k), cs.OUTAGE_END: lambda: lab.end_outage(k),
            cs.LOSS: lambda: lab.set_loss(k, a.value), cs.LOSS_END: lambda: lab.clear_loss(k),
        }
        if a.kind in simple:
            simple[a.kind]()
            return cs.Done(a, start, time.time())
        handler = {cs.RESTART: self.restart, cs.NFT_FLUSH: self.nft_flush,
                   cs.RULES_DEL: self.rules_del, cs.KILL9: self.kill9,
                   cs.GATEWAY: self.gateway}[a.kind]
        return handler(a, start)

    def restart(self, a: cs.Action, start: float) -> cs.Done:
        self.variant ^= 1
        self.router.write_config(config_text(self.lab, self.variant))
        res = self.router.cli("restart", check=False, timeout=30)
        return cs.Done(a, start, time.time(), ok=res.returncode == 0,
                       detail=f"config {self.variant}" + (
                           "" if res.returncode == 0 else f": {res.stderr.strip()[:200]}"))

    def _repair(self, a: cs.Action, start: float, t: float, back: Callable[[], bool],
                detail: str = "") -> cs.Done:
        end = time.time()
        took = wait_for(back, REPAIR_LIMIT, since=t)
        return cs.Done(a, start, end, ok=True, repair_s=took, detail=detail)

    def nft_flush(self, a: cs.Action, start: float) -> cs.Done:
        before = self.kernel.mwan_chains() or set()
        t = time.time()
        self.lab.exec(self.lab.router, "nft", "flush", "ruleset", timeout=10)
        self.lab.exec(self.lab.router, "nft", "-f", "-", input=self.firewall, timeout=10)

        def back() -> bool:
            chains = self.kernel.mwan_chains()
            return chains is not None and before <= chains
        done = self._repair(a, start, t, back)
        firewall_ok = self.kernel.tables() >= self.kernel.firewall_tables
        return cs.Done(a, done.start, done.end, ok=firewall_ok, repair_s=done.repair_s,
                       detail=f"{len(before)} chains" + ("" if firewall_ok else
                                                        "; the firewall's tables are gone"))

    def rules_del(self, a: cs.Action, start: float) -> cs.Done:
        before = self.kernel.mwan_rules()
        t = time.time()
        self.kernel.delete_rules(before)
        return self._repair(a, start, t, lambda: before <= self.kernel.mwan_rules(),
                            f"{len(before)} rules")

    def kill9(self, a: cs.Action, start: float) -> cs.Done:
        pid = self.daemon_pid()
        if pid is None:
            return cs.Done(a, start, time.time(), ok=False, detail="no pid file")
        rules = self.kernel.mwan_rules()
        os.kill(pid, signal.SIGKILL)
        gaps: list[float] = []
        watching = threading.Event()

        def watch() -> None:  # the table and rules stay, through the crash and the start
            while not watching.wait(0.02):
                if self.kernel.mwan_chains() is None or self.kernel.mwan_rules() != rules:
                    gaps.append(time.time())
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            wait_for(lambda: rss_mb(pid) is None, 5)
            t = time.time()
            res = self.router.cli("start", check=False, timeout=30)
            took = time.time() - t
            time.sleep(0.5)
        finally:
            watching.set()
            watcher.join(5)
        dups = self.kernel.mwan_rule_count() - len(self.kernel.mwan_rules())
        kept = not gaps and not dups
        return cs.Done(a, start, time.time(), ok=res.returncode == 0, repair_s=took,
                       detail=("kept" if kept else "NOT kept") + " table and rules through kill "
                       "and start" + (f" (missing or changed {len(gaps)}× in 20 ms polls)"
                                      if gaps else "")
                       + (f"; {dups} duplicate rules" if dups else "")
                       + ("" if res.returncode == 0 else f"; start: {res.stderr.strip()[:200]}"))

    def gateway(self, a: cs.Action, start: float) -> cs.Done:
        k = a.wan
        old, new = self.lease[k], self.lease[k] ^ 1
        self.lease[k] = new
        old_addr, new_addr = lease_addr(self.lab, k, old), lease_addr(self.lab, k, new)
        gw = lease_gateway(self.lab, k, new)
        dev = self.lab.wan_device(k)
        t = time.time()
        self.kernel.change_lease(dev, old_addr, new_addr, gw, metric=10 * k)
        return self._repair(a, start, t, lambda: self.kernel.wan_gateways(dev) == {gw},
                            f"{dev} {old_addr} -> {new_addr} via {gw}")

    def clear_faults(self) -> None:
        for k in range(1, self.lab.isps + 1):
            self.lab.restore_carrier(k)
            self.lab.end_outage(k)
            self.lab.clear_loss(k)


def lease_addr(lab: Lab, k: int, lease: int) -> str:
    return lab.wan_addr(k) if lease == 0 else lab.wan_addr(k).rsplit(".", 1)[0] + ".3"


def lease_gateway(lab: Lab, k: int, lease: int) -> str:
    return lab.gateway(k) if lease == 0 else lab.gateway(k).rsplit(".", 1)[0] + ".254"


def all_online(router: MwanRouter) -> bool:
    try:
        ifaces = call(router.run_dir, "state", timeout=2)["interfaces"]
    except Exception:  # noqa: BLE001 - not answering is not online
        return False
    return all(i["online"] for i in ifaces.values())


def daemon_counts(router: MwanRouter) -> dict[str, Any]:
    """What the (last started) daemon counted: applies, repairs, a failing apply."""
    try:
        st = call(router.run_dir, "state", timeout=5)
    except Exception as e:  # noqa: BLE001 - the report says what went wrong
        return {"error": str(e)}
    rep = st.get("repairs") or {}
    return {"uptime_s": round(float(st.get("uptime_s", 0)), 1), "applies": st.get("applies"),
            "repairs_total": rep.get("total"), "repairs_by_kind": rep.get("by_kind"),
            "backing_off_s": rep.get("backing_off_s"), "apply_error": st.get("apply_error")}


def prepare(lab: Lab) -> str:
    """Extra lab pieces: a second gateway per ISP; the firewall (the flow server's address
    comes with its echo, Lab.flow_echo)."""
    for k in range(1, lab.isps + 1):
        lab.ip(lab.isp_ns(k), "addr", "add", f"{lease_gateway(lab, k, 1)}/24", "dev", "rtr")
    return lab.exec(lab.router, "nft", "list", "ruleset", timeout=10).stdout


def start_python(lab: Lab, ns: str, *args: str) -> subprocess.Popen[str]:
    return lab.popen(ns, lab.python("mwan.lab.traffic", *args), stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True, bufsize=1)


def run_storm(lab: Lab, router: MwanRouter, firewall: str, actions: tuple[cs.Action, ...],
              args: argparse.Namespace) -> dict[str, Any]:
    """Traffic, storm and sampler from now for ``args.duration`` s; the raw records."""
    storm = Storm(lab, router, firewall)
    lab.flow_echo(FLOW_SERVER, FLOW_PORT, duration=args.duration + 120)
    pid0 = storm.daemon_pid()
    rss_start = rss_mb(pid0) if pid0 else None
    dur = str(args.duration)
    client = lab.client_ns(1)
    rate = JsonLines(start_python(lab, client, "rate", "--dst", lab.server_addr(4), "--port",
                                  str(CONN_PORT), "--rate", str(args.rate), "--duration", dur))
    flows = JsonLines(start_python(lab, client, "flows", "--dst", FLOW_SERVER, "--port",
                                   str(FLOW_PORT), "--count", str(args.flows), "--stall",
                                   str(args.stall), "--duration", dur))
    t0 = time.time() + 1.0
    done: dict[str, list[cs.Done]] = {"wan": [], "router": []}
    lanes = [threading.Thread(target=storm.lane, daemon=True,
                              args=([a for a in actions if a.lane == lane], t0, done[lane]))
             for lane in done]
    with Sampler(router, storm.daemon_pid) as sampler:
        try:
            for th in lanes:
                th.start()
            for th in lanes:
                th.join(args.duration + 120)
        finally:
            storm.quit.set()
            storm.clear_faults()
        conns = rate.wait(args.duration + 60)
        flow_records = flows.wait(args.duration + 60)
        t_end = time.time()
        last_fault = max((d.end for d in done["wan"]), default=t_end)
        recovered = wait_for(lambda: all_online(router), 30, since=t_end)
        recovered = (None if recovered is None else
                     next((t - last_fault for t, up in sampler.online if t >= last_fault and up),
                          recovered + t_end - last_fault))
        pid1 = storm.daemon_pid()
        rss_end = rss_mb(pid1) if pid1 else None
        own = daemon_counts(router)
    state = storm.kernel.mwan_chains() is not None, len(storm.kernel.mwan_rules())
    stop = router.cli("stop", check=False, timeout=60)
    return {
        "t0": t0, "done": done["wan"] + done["router"], "conns": conns, "flows": flow_records,
        "pings": sampler.pings, "rss": sampler.rss, "rss_start": rss_start, "rss_end": rss_end,
        "pids": sorted({p for p in (pid0, pid1) if p}), "recovered_s": recovered,
        "recovery_target_s": (TRACKING["up"] + 1) * TRACKING["interval"],
        "before_stop": {"table": state[0], "rules": state[1]},
        "stop_ok": stop.returncode == 0, "leftovers": storm.kernel.leftovers(), "daemon": own,
        "log_tail": router.log()[-30000:],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the lab, run mwan and the storm, analyze; the lab is removed whatever happens."""
    actions = (cs.smoke_storm(args.wans) if args.storm == "smoke"
               else cs.storm(args.duration, args.wans, args.seed))
    lab = Lab(isps=args.wans, clients=1, ipv6=False)
    try:
        lab.build()
        firewall = prepare(lab)
        with MwanRouter(lab, config_text(lab, 0)) as router:
            res = router.cli("start", check=False, timeout=60)
            if res.returncode != 0:
                raise RuntimeError(f"mwan3 start failed: {res.stderr.strip()}\n{router.log()}")
            if wait_for(lambda: all_online(router), 30) is None:
                raise RuntimeError("the WANs did not come online within 30 s")
            raw = run_storm(lab, router, firewall, actions, args)
    finally:
        lab.close()
    raw["lab"] = {"id": lab.id, "namespaces": list(lab.namespaces),
                  "removed": not any(os.path.exists(f"/run/netns/{n}") for n in lab.namespaces)}
    return analyze(raw, vars(args), actions, lag())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of storm")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wans", type=int, default=3, choices=(2, 3))
    ap.add_argument("--rate", type=float, default=50.0, help="new connections per second")
    ap.add_argument("--flows", type=int, default=20, help="long-lived TCP flows")
    ap.add_argument("--stall", type=float, default=5.0,
                    help="a flow whose echo is this late (s) counts as broken")
    ap.add_argument("--storm", choices=("full", "smoke"), default="full",
                    help="smoke: one of each action in ~18 s (for the smoke test)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos.json"))
    ap.add_argument("--readme", action="store_true",
                    help="also write the table into bench/README.md's chaos section")
    ap.add_argument("--from-json", metavar="PATH",
                    help="no run: classify a saved report's broken flows again, print its table")
    ap.add_argument("--interval", type=float, metavar="SECONDS",
                    help="track every SECONDS (also the failure/recovery interval and the "
                    "probe timeout), e.g. 0.2; default 1")
    args = ap.parse_args(argv)
    if args.interval:
        for k in ("interval", "failure_interval", "recovery_interval", "timeout"):
            TRACKING[k] = args.interval
    if args.from_json:
        report = reclassify(json.loads(Path(args.from_json).read_text()), lag())
        return emit(report, args)
    if os.geteuid() != 0:
        print("the chaos benchmark needs root (network namespaces)", file=sys.stderr)
        return 1
    print(f"chaos: {args.duration:g} s storm, seed {args.seed}, {args.wans} WANs ...", flush=True)
    return emit(run(args), args)


def emit(report: dict[str, Any], args: argparse.Namespace) -> int:
    """Write the JSON, print the table, and put it into bench/README.md with --readme."""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    print(table)
    print(f"(JSON: {args.out})")
    if args.readme:
        update_readme(ROOT / "bench" / "README.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
