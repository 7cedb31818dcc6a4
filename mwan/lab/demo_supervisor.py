"""The demo's supervisor: owns the lab while the demo runs.

``demo.py start`` starts it in the background (``python -m mwan.lab.demo
_supervise``).  It builds the lab, writes the router's config (web UI on),
starts mwan, keeps a trickle of LAN connections going, forwards the web UI
to this host's loopback, and answers the other sub-commands (cut, restore,
loss, status, stop) on a unix socket in the state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from mwan.daemon.control import exchange_line
from mwan.lab.demo_ha import ha_demo_config, handle_ha
from mwan.lab.forward import Forwarder
from mwan.lab.ha import HaLab
from mwan.lab.ha_topology import HOST as HA_HOST
from mwan.lab.ha_topology import ROUTERS
from mwan.lab.lab import Lab
from mwan.lab.netns import ns_argv
from mwan.lab.router import MwanRouter, wan_name

DEFAULT_STATE_DIR = "/run/mwan-demo"
WEB_PORT = 8086
ISPS, CLIENTS = 3, 2
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
TRICKLE_INTERVAL = 1.5
STATS_WINDOW = 30.0
PASSWORD_ENV = "MWAN_DEMO_PASSWORD"

# fast tracking so that cuts show within a few seconds
TRACKING = {"interval": 1, "failure_interval": 1, "recovery_interval": 1, "timeout": 1,
            "up": 3, "down": 3}

POLICIES = """
config member 'wan_m1_w3'
	option interface 'wan'
	option metric '1'
	option weight '3'
config member 'wanb_m1_w2'
	option interface 'wanb'
	option metric '1'
	option weight '2'
config member 'wanc_m2_w1'
	option interface 'wanc'
	option metric '2'
	option weight '1'
config member 'wan6_m1'
	option interface 'wan6'
config member 'wanb6_m1'
	option interface 'wanb6'

config policy 'balanced'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m1_w2'
	list use_member 'wanc_m2_w1'
	list use_member 'wan6_m1'
	list use_member 'wanb6_m1'
config policy 'wanc_wan'
	list use_member 'wanc_m2_w1'
	list use_member 'wan_m1_w3'

config rule 'https'
	option sticky '1'
	option dest_port '443'
	option proto 'tcp'
	option use_policy 'balanced'
config rule 'to_server2'
	option dest_ip '203.0.113.10'
	option use_policy 'wanc_wan'
config rule 'default_rule'
	option use_policy 'balanced'
"""


# -- the router's config -----------------------------------------------------

def demo_globals(lab: Lab, password_hash: str | None) -> str:
    """The globals section; with ``password_hash`` the web UI is on at the router's LAN address."""
    lines = ["config globals 'globals'", "\toption mmx_mask '0x3F00'"]
    if password_hash is not None:
        lines += ["\toption web_enabled '1'", f"\tlist web_listen '{lab.lan_gateway(4)}'",
                  f"\toption web_port '{WEB_PORT}'",
                  f"\toption web_password_hash '{password_hash}'"]
    return "\n".join(lines) + "\n"


def demo_interfaces(lab: Lab) -> str:
    """wan, wanb, wanc (IPv4) and wan6, wanb6, wanc6, each tracking two internet hosts."""
    out = []
    for k in range(1, lab.isps + 1):
        for fam in (4, 6) if lab.ipv6 else (4,):
            name = wan_name(k) + ("6" if fam == 6 else "")
            lines = [f"config interface '{name}'", "\toption enabled '1'",
                     f"\toption device '{lab.wan_device(k)}'", f"\toption family 'ipv{fam}'"]
            lines += [f"\toption {key} '{value}'" for key, value in TRACKING.items()]
            lines += [f"\tlist track_ip '{t}'" for t in lab.track_targets(fam)[:2]]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def demo_config(lab: Lab, password_hash: str | None = None) -> str:
    return demo_globals(lab, password_hash) + "\n" + demo_interfaces(lab) + POLICIES


def wan_number(name: str) -> int:
    """``wan``/``wanb``/``wanc`` or ``1``/``2``/``3`` -> 1..3."""
    names = {wan_name(k): k for k in range(1, ISPS + 1)} | {str(k): k for k in range(1, ISPS + 1)}
    try:
        return names[name.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown WAN {name!r}: use {', '.join(wan_name(k) for k in range(1, ISPS + 1))} "
            f"or 1..{ISPS}") from None


# -- the state dir -------------------------------------------------------------

class StateDir:
    """--state-dir: state.json, the lock held by the supervisor, its log and control socket."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.state_file = self.path / "state.json"
        self.lock_file = self.path / "lock"
        self.log_file = self.path / "supervisor.log"
        self.socket = self.path / "control.sock"
        self.router_dir = self.path / "router"

    def read(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return None

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)
        os.replace(tmp, self.state_file)

    def lock(self) -> int | None:
        """Take the demo's lock (fd), or None when a live supervisor (or start) holds it."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def running(self) -> bool:
        """Whether a supervisor holds the lock."""
        if not self.lock_file.exists():
            return False
        fd = self.lock()
        if fd is None:
            return True
        os.close(fd)
        return False


def request(sd: StateDir, cmd: str, timeout: float = 60, **kw: Any) -> dict[str, Any]:
    """Send one JSON request to the supervisor and return its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sd.socket))
        buf = exchange_line(s, {"cmd": cmd, **kw})
    return dict(json.loads(buf or b'{"ok": false, "error": "no answer"}'))


def mwan3_argv(state: dict[str, Any], *args: str) -> list[str]:
    """The argv that runs ``mwan3 ARGS`` in the demo's router (as MwanRouter.argv does)."""
    return ns_argv(state["router"], Lab.python(
        "mwan.cli.main", "--config", state["config"], "--network-config",
        os.path.join(state["router_dir"], "no-network-config"), "--run-dir", state["run_dir"],
        *args))


# -- the supervisor ------------------------------------------------------------

class Supervisor:
    """Owns the lab and mwan in its router; serves the control socket until told to stop."""

    def __init__(self, sd: StateDir, lab: Lab, router: MwanRouter, state: dict[str, Any],
                 port: int | None) -> None:
        self.sd = sd
        self.lab = lab
        self.router = router
        self.state = state
        self.port = port
        self.stop = asyncio.Event()
        self.quit = threading.Event()
        self.lock = threading.Lock()
        self.rounds: deque[tuple[float, dict[int, int], int]] = deque()

    def trickle(self) -> None:
        """A few new connections per client and port every TRICKLE_INTERVAL seconds."""
        lab = self.lab
        while not self.quit.wait(TRICKLE_INTERVAL):
            wans: dict[int, int] = {}
            failed = 0
            for i in range(1, lab.clients + 1):
                for port, count in ((80, 3), (443, 2)):
                    if self.quit.is_set():
                        return
                    try:
                        r = lab.connect_many(lab.client_ns(i), lab.server_addr(4), port,
                                             count=count, timeout=1)
                    except Exception:  # noqa: BLE001 - keep trickling whatever happens
                        failed += count
                        continue
                    for k, n in r.wans.items():
                        wans[k] = wans.get(k, 0) + n
                    failed += count - r.ok
            now = time.monotonic()
            with self.lock:
                self.rounds.append((now, wans, failed))
                while self.rounds and self.rounds[0][0] < now - STATS_WINDOW:
                    self.rounds.popleft()

    def traffic(self) -> dict[str, Any]:
        with self.lock:
            wans: dict[str, int] = {}
            failed = 0
            for _, w, f in self.rounds:
                for k, n in w.items():
                    wans[wan_name(k)] = wans.get(wan_name(k), 0) + n
                failed += f
        return {"window": STATS_WINDOW, "wans": wans, "failed": failed}

    def handle_request(self, req: dict[str, Any]) -> str:
        """Run one request (in a worker thread); return a message or raise."""
        cmd = req.get("cmd")
        lab = self.lab
        if cmd == "ping":
            return "pong"
        if cmd in ("fail-router", "restore-router", "ha"):
            return handle_ha(self.lab, req)
        k = int(req.get("wan", 0))
        if not 1 <= k <= lab.isps:
            raise ValueError(f"no WAN {k}")
        name = wan_name(k)
        if cmd == "cut":
            if req.get("carrier"):
                lab.cut_carrier(k)
                return f"{name}: ISP {k} took its end of the link down (carrier lost)"
            lab.outage(k)
            return f"{name}: ISP {k} stopped forwarding (upstream outage, carrier up)"
        if cmd == "restore":
            lab.restore_carrier(k)
            lab.end_outage(k)
            return f"{name}: link up and ISP {k} forwarding again"
        if cmd == "loss":
            pct = float(req.get("percent", 0))
            lab.set_loss(k, pct)
            return f"{name}: {pct:g} % random loss at ISP {k}" if pct else f"{name}: no loss"
        raise ValueError(f"unknown request {cmd!r}")

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        try:
            req = json.loads(await reader.readline())
            if req.get("cmd") == "stop":
                answer: dict[str, Any] = {"ok": True, "message": "stopping"}
                self.stop.set()
            elif req.get("cmd") == "traffic":
                answer = {"ok": True, "traffic": self.traffic()}
            else:
                msg = await asyncio.to_thread(self.handle_request, req)
                answer = {"ok": True, "message": msg}
        except Exception as e:  # noqa: BLE001 - report any failure to the client
            answer = {"ok": False, "error": str(e)}
        with contextlib.suppress(OSError):
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            writer.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop.set)
        fwd = None
        if self.port is not None:
            web_addr = (f"192.168.1.{HA_HOST['a']}" if isinstance(self.lab, HaLab)
                        else self.lab.lan_gateway(4))
            fwd = Forwarder(self.lab.router, web_addr, WEB_PORT, port=self.port)
            await fwd.start()
        with contextlib.suppress(FileNotFoundError):
            self.sd.socket.unlink()
        server = await asyncio.start_unix_server(self.serve_client, path=str(self.sd.socket))
        os.chmod(self.sd.socket, 0o600)
        trickler = threading.Thread(target=self.trickle, name="trickle", daemon=True)
        trickler.start()
        try:
            for _ in range(50):  # the daemon answers
                res = await asyncio.to_thread(self.router.cli, "status", check=False)
                if res.returncode == 0:
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"mwan3 status fails: {res.stderr.strip()}")
            self.state["ready"] = True
            self.sd.write(self.state)
            print("ready", flush=True)
            await self.stop.wait()
            print("stopping", flush=True)
        finally:
            self.quit.set()
            server.close()
            if fwd is not None:
                await fwd.close()
            await asyncio.to_thread(trickler.join, 30)


def supervise(args: argparse.Namespace) -> int:
    """The supervisor process (``_supervise``): build, run until stopped, remove everything."""
    sd = StateDir(args.state_dir)
    lock_fd = args.lock_fd if args.lock_fd is not None else sd.lock()
    if lock_fd is None:
        print("another demo holds the lock", file=sys.stderr)
        return 1
    password = os.environ.pop(PASSWORD_ENV, None) or secrets.token_urlsafe(9)
    lab: Lab = HaLab(isps=ISPS, clients=CLIENTS) if args.ha else Lab(isps=ISPS, clients=CLIENTS)
    sd.router_dir.mkdir(parents=True, exist_ok=True)
    router = MwanRouter(lab, workdir=str(sd.router_dir))
    state: dict[str, Any] = {
        "lab": lab.id, "namespaces": list(lab.namespaces), "router": lab.router,
        "router_dir": router.dir, "config": router.config, "run_dir": router.run_dir,
        "password": None if args.no_web else password, "port": args.port,
        "url": None if args.port is None else f"http://127.0.0.1:{args.port}/",
        "web": f"http://{lab.lan_gateway(4)}:{WEB_PORT}/",
        "supervisor_pid": os.getpid(), "ready": False, "ha": bool(args.ha),
    }
    sd.write(state)
    rc = 1
    try:
        print(f"building lab {lab.id}", flush=True)
        lab.build()
        pw_hash = None
        if not args.no_web:
            from mwan.web.auth import hash_password
            pw_hash = hash_password(password)
        if isinstance(lab, HaLab):  # two routers: mwan, conntrackd, keepalived in each
            lab.start(ha_demo_config(lab, demo_globals(lab, pw_hash), demo_interfaces(lab),
                                     POLICIES))
            router = lab.routers["a"]
            state.update(router_dir=router.dir, config=router.config, run_dir=router.run_dir,
                         web=f"http://192.168.1.{HA_HOST['a']}:{WEB_PORT}/",
                         routers={r: lab.ns_of(r) for r in ROUTERS}, ha_dir=lab.ha_dir)
            sd.write(state)
        else:
            router.write_config(demo_config(lab, pw_hash))
            res = router.cli("start", check=False)
            print(f"$ mwan3 start\n{res.stdout}{res.stderr}", end="", flush=True)
            if res.returncode != 0:
                print(router.log(), flush=True)
                return 1
        asyncio.run(Supervisor(sd, lab, router, state, args.port).run())
        rc = 0
    except (OSError, RuntimeError) as e:  # LabError is a RuntimeError
        print(f"supervisor failed: {e}", flush=True)
    except Exception:  # noqa: BLE001 - into the log, then clean up
        traceback.print_exc()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        if router.running():
            router.stop(check=False)
        lab.close()
        for f in (sd.socket, sd.state_file):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        shutil.rmtree(sd.router_dir, ignore_errors=True)
        print(f"lab {lab.id} removed", flush=True)
    return rc


# -- the sub-commands ----------------------------------------------------------
