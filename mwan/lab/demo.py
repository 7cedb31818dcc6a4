"""The demo: a lab with three ISPs, mwan in its router, LAN traffic and the web UI.

    sudo ./scripts/demo.sh                  # = start
    sudo ./scripts/demo.sh status           # is it running, its URL, `mwan3 status`
    sudo ./scripts/demo.sh cut wanb         # ISP 2 stops forwarding (carrier stays up)
    sudo ./scripts/demo.sh cut wanb --carrier   # ... or takes the link down
    sudo ./scripts/demo.sh restore wanb     # undo both
    sudo ./scripts/demo.sh loss wanb 30     # 30 % random loss at ISP 2 (0 removes it)
    sudo ./scripts/demo.sh mwan3 interfaces # any mwan3 command, run in the router
    sudo ./scripts/demo.sh stop             # remove everything

``start`` detaches a supervisor process that builds the lab (router, three
ISPs, two LAN clients, an "internet"), writes the router's mwan3 config (a
balanced and a failover policy, a sticky https rule, the web UI on the
router's LAN address, port 8086, with a random password unless --password),
runs ``mwan3 start`` in the router, keeps a trickle of new connections going
from the LAN clients to the internet server (ports 80 and 443), and forwards
127.0.0.1:8086 on this host to the web UI in the router.  ``start`` prints
the URL and the password once all that is up, and returns; the lab lives
until ``stop``.

WANs are named as in mwan3 (wan, wanb, wanc) or by number (1, 2, 3).  The
state (lab id, namespaces, paths, password, supervisor pid) is kept in
--state-dir (default /run/mwan-demo) with the supervisor's log and its
control socket; the other sub-commands ask the supervisor through that
socket.  With ``mwan3``, put --state-dir before ``mwan3``.
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
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from mwan.lab.forward import Forwarder
from mwan.lab.lab import Lab
from mwan.lab.netns import delete_namespaces, netns_names, ns_argv, remove_owner
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
        s.sendall(json.dumps({"cmd": cmd, **kw}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
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
            fwd = Forwarder(self.lab.router, self.lab.lan_gateway(4), WEB_PORT, port=self.port)
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
    lab = Lab(isps=ISPS, clients=CLIENTS)
    sd.router_dir.mkdir(parents=True, exist_ok=True)
    router = MwanRouter(lab, workdir=str(sd.router_dir))
    state: dict[str, Any] = {
        "lab": lab.id, "namespaces": list(lab.namespaces), "router": lab.router,
        "router_dir": router.dir, "config": router.config, "run_dir": router.run_dir,
        "password": None if args.no_web else password, "port": args.port,
        "url": None if args.port is None else f"http://127.0.0.1:{args.port}/",
        "web": f"http://{lab.lan_gateway(4)}:{WEB_PORT}/",
        "supervisor_pid": os.getpid(), "ready": False,
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

def cmd_start(args: argparse.Namespace) -> int:
    ok, why = Lab.available()
    if not ok:
        print(f"cannot build the lab here: {why}", file=sys.stderr)
        return 1
    sd = StateDir(args.state_dir)
    lock_fd = sd.lock()
    if lock_fd is None:
        other = sd.read() or {}
        print(f"the demo already runs (lab {other.get('lab', '?')}, supervisor pid "
              f"{other.get('supervisor_pid', '?')}, state dir {sd.path}).\n"
              f"Stop it first: ./scripts/demo.sh stop", file=sys.stderr)
        return 1
    if sd.read() is not None:
        print("removing what a demo whose supervisor died left behind", file=sys.stderr)
        cleanup(sd, keep_lock=True)
    password = args.password or secrets.token_urlsafe(9)
    argv = [sys.executable, "-m", "mwan.lab.demo", "_supervise", "--state-dir", str(sd.path),
            "--lock-fd", str(lock_fd)]
    if not args.no_forward:
        argv += ["--port", str(args.port)]
    if args.no_web:
        argv.append("--no-web")
    with open(sd.log_file, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=(lock_fd,),
                                env={**os.environ, PASSWORD_ENV: password})
    os.close(lock_fd)
    print(f"starting the demo (log: {sd.log_file}) ...", flush=True)
    deadline = time.monotonic() + READY_TIMEOUT
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = sd.read()
        if state and state.get("ready"):
            break
        time.sleep(0.2)
    if not (state and state.get("ready")) or proc.poll() is not None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        print("the demo did not start:\n" + _tail(sd.log_file), file=sys.stderr)
        cleanup(sd)
        return 1
    print(f"\nlab {state['lab']} is up: router {state['router']}, mwan running in it")
    if state.get("url"):
        print(f"web UI: {state['url']}  (forwarded to {state['web']} in the router)")
    elif not args.no_web:
        print(f"web UI: {state['web']} inside the router namespace (not forwarded)")
    if state.get("password"):
        print(f"password: {state['password']}")
    print(f"""
Try:
  ./scripts/demo.sh status             # the demo and `mwan3 status`
  ./scripts/demo.sh cut wanb           # ISP 2 stops forwarding; wanb goes offline
  ./scripts/demo.sh cut wanb --carrier # ... or loses carrier
  ./scripts/demo.sh restore wanb
  ./scripts/demo.sh loss wanb 30       # 30 % loss (loss wanb 0 removes it)
  ./scripts/demo.sh mwan3 status       # = ip netns exec {state['router']} mwan3 ... status
  ./scripts/demo.sh stop               # remove everything""")
    return 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cleanup(sd: StateDir, keep_lock: bool = False) -> list[str]:
    """Remove a dead demo's leftovers from its state file; return namespaces still there."""
    state = sd.read()
    left: list[str] = []
    if state:
        names = [str(n) for n in state.get("namespaces", [])]
        if state.get("router") in netns_names():
            subprocess.run(mwan3_argv(state, "stop"), capture_output=True, timeout=60,
                           check=False, stdin=subprocess.DEVNULL)
        delete_namespaces(names)
        remove_owner(str(state.get("lab", "")))
        left = [n for n in names if n in netns_names()]
    if keep_lock:
        for f in sd.path.iterdir():
            if f != sd.lock_file:
                if f.is_dir():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    f.unlink(missing_ok=True)
    else:
        shutil.rmtree(sd.path, ignore_errors=True)
    return left


def _wait_unlocked(sd: StateDir, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sd.running():
            return True
        time.sleep(0.2)
    return False


def cmd_stop(args: argparse.Namespace) -> int:
    sd = StateDir(args.state_dir)
    if not sd.path.exists():
        print("no demo is running")
        return 0
    state = sd.read() or {}
    if sd.running():
        try:
            request(sd, "stop", timeout=10)
        except (OSError, ValueError) as e:
            print(f"supervisor does not answer ({e}); sending SIGTERM", file=sys.stderr)
            if state.get("supervisor_pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(state["supervisor_pid"]), signal.SIGTERM)
        if not _wait_unlocked(sd, STOP_TIMEOUT) and state.get("supervisor_pid"):
            print("supervisor does not stop; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(state["supervisor_pid"]), signal.SIGKILL)
            _wait_unlocked(sd, 10)
    left = cleanup(sd)
    if left:
        print(f"could not remove: {' '.join(left)}", file=sys.stderr)
        return 1
    print(f"demo stopped; lab {state['lab']} removed" if state.get("lab") else "demo stopped")
    return 0


def _running_state(sd: StateDir) -> dict[str, Any] | None:
    state = sd.read()
    if not sd.running() or not state:
        print(f"no demo is running (state dir {sd.path}); start it with ./scripts/demo.sh start",
              file=sys.stderr)
        return None
    return state


def _ask(args: argparse.Namespace, cmd: str, **kw: Any) -> int:
    sd = StateDir(args.state_dir)
    if _running_state(sd) is None:
        return 1
    answer = request(sd, cmd, **kw)
    if not answer.get("ok"):
        print(f"failed: {answer.get('error')}", file=sys.stderr)
        return 1
    print(answer.get("message", ""))
    return 0


def cmd_cut(args: argparse.Namespace) -> int:
    return _ask(args, "cut", wan=args.wan, carrier=args.carrier)


def cmd_restore(args: argparse.Namespace) -> int:
    return _ask(args, "restore", wan=args.wan)


def cmd_loss(args: argparse.Namespace) -> int:
    if not 0 <= args.percent <= 100:
        print("PCT must be 0..100", file=sys.stderr)
        return 2
    return _ask(args, "loss", wan=args.wan, percent=args.percent)


def cmd_status(args: argparse.Namespace) -> int:
    sd = StateDir(args.state_dir)
    state = _running_state(sd)
    if state is None:
        return 1
    print(f"demo running: lab {state['lab']}, supervisor pid {state['supervisor_pid']}, "
          f"router namespace {state['router']}")
    if state.get("url"):
        print(f"web UI: {state['url']}  password: {state.get('password') or '(web off)'}")
    with contextlib.suppress(OSError, ValueError):
        t = request(sd, "traffic", timeout=10).get("traffic") or {}
        shares = "  ".join(f"{w}: {n}" for w, n in sorted(t.get("wans", {}).items()))
        print(f"LAN connections in the last {t.get('window', 0):g} s: {shares or '-'}  "
              f"failed: {t.get('failed', 0)}")
    print()
    sys.stdout.flush()
    return subprocess.run(mwan3_argv(state, "status"), check=False,
                          stdin=subprocess.DEVNULL).returncode


def cmd_mwan3(args: argparse.Namespace) -> int:
    state = _running_state(StateDir(args.state_dir))
    if state is None:
        return 1
    sys.stdout.flush()
    return subprocess.run(mwan3_argv(state, *args.args), check=False).returncode


# -- arguments -----------------------------------------------------------------

COMMANDS = ("start", "stop", "status", "cut", "restore", "loss", "mwan3", "_supervise")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                    help="where the demo keeps its state (default %(default)s)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Any, help_: str | None) -> argparse.ArgumentParser:
        kw: dict[str, Any] = {"help": help_, "description": help_} if help_ else {}
        p = sub.add_parser(name, **kw)
        p.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.set_defaults(handler=handler)
        return p

    p = add("start", cmd_start, "build the lab, start mwan and the supervisor (the default)")
    p.add_argument("--port", type=int, default=WEB_PORT,
                   help="host port forwarded to the web UI on 127.0.0.1 (default %(default)s)")
    p.add_argument("--no-forward", action="store_true", help="do not forward a host port")
    p.add_argument("--password", help="the web UI's password (default: a random one)")
    p.add_argument("--no-web", action="store_true", help="leave the web UI off in the config")
    add("stop", cmd_stop, "stop mwan, remove the lab and the state dir")
    add("status", cmd_status, "whether the demo runs, its URL, traffic and `mwan3 status`")
    p = add("cut", cmd_cut, "an ISP stops forwarding (upstream outage, carrier stays up)")
    p.add_argument("wan", type=wan_number, help="wan, wanb, wanc or 1, 2, 3")
    p.add_argument("--carrier", action="store_true",
                   help="take the link down instead (the router loses carrier)")
    p = add("restore", cmd_restore, "undo cut (outage and carrier loss)")
    p.add_argument("wan", type=wan_number, help="wan, wanb, wanc or 1, 2, 3")
    p = add("loss", cmd_loss, "random packet loss at an ISP")
    p.add_argument("wan", type=wan_number, help="wan, wanb, wanc or 1, 2, 3")
    p.add_argument("percent", type=float, metavar="PCT", help="0..100 (0 removes the loss)")
    p = add("mwan3", cmd_mwan3, "run an mwan3 command in the router, e.g. `mwan3 interfaces`")
    p.add_argument("args", nargs=argparse.REMAINDER, help="mwan3's arguments")
    p = add("_supervise", supervise, None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--lock-fd", type=int, default=None)
    p.add_argument("--no-web", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in COMMANDS for a in argv) and not {"-h", "--help"} & set(argv):
        argv.insert(0, "start")
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces)", file=sys.stderr)
        return 1
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
