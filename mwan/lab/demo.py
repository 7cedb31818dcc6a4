"""The demo: a lab with three ISPs, mwan in its router, LAN traffic and the web UI.

    sudo ./scripts/demo.sh                  # = start
    sudo ./scripts/demo.sh status           # is it running, its URL, `mwan3 status`
    sudo ./scripts/demo.sh cut wanb         # ISP 2 stops forwarding (carrier stays up)
    sudo ./scripts/demo.sh cut wanb --carrier   # ... or takes the link down
    sudo ./scripts/demo.sh restore wanb     # undo both
    sudo ./scripts/demo.sh loss wanb 30     # 30 % random loss at ISP 2 (0 removes it)
    sudo ./scripts/demo.sh mwan3 interfaces # any mwan3 command, run in the router
    sudo ./scripts/demo.sh stop             # remove everything
    sudo ./scripts/demo.sh start --ha       # two routers, keepalived + conntrackd
    sudo ./scripts/demo.sh fail-router a    # router a dies; b takes over with the flows
    sudo ./scripts/demo.sh restore-router a # a returns as backup

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
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mwan.lab.demo_supervisor import (
    DEFAULT_STATE_DIR,
    PASSWORD_ENV,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    WEB_PORT,
    StateDir,
    mwan3_argv,
    request,
    supervise,
    wan_number,
)
from mwan.lab.lab import Lab
from mwan.lab.netns import delete_namespaces, netns_names, remove_owner


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
    if args.ha:
        argv.append("--ha")
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
  ./scripts/demo.sh mwan3 status       # = ip netns exec {state['router']} mwan3 ... status{HA_TRY if state.get("ha") else ""}
  ./scripts/demo.sh stop               # remove everything""")
    return 0


HA_TRY = """
  ./scripts/demo.sh fail-router a      # router a dies (every link down): b takes over
  ./scripts/demo.sh restore-router a   # a returns as backup (no preemption)"""


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
        if state.get("ha_dir"):
            shutil.rmtree(str(state["ha_dir"]), ignore_errors=True)
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


def cmd_fail_router(args: argparse.Namespace) -> int:
    return _ask(args, "fail-router", router=args.router, how=args.how)


def cmd_restore_router(args: argparse.Namespace) -> int:
    return _ask(args, "restore-router", router=args.router)


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
    if state.get("ha"):
        with contextlib.suppress(OSError, ValueError):
            print(request(sd, "ha", timeout=10).get("message", ""))
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

COMMANDS = ("start", "stop", "status", "cut", "restore", "loss", "mwan3", "fail-router",
            "restore-router", "_supervise")


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
    p.add_argument("--ha", action="store_true", help="two routers a and b with keepalived and "
                   "conntrackd (the web UI and `mwan3` are router a's)")
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
    p = add("fail-router", cmd_fail_router, "--ha demos: kill router a or b (every link down, "
            "or --how keepalived: SIGTERM to its keepalived)")
    p.add_argument("router", choices=("a", "b"))
    p.add_argument("--how", choices=("links", "keepalived"), default="links")
    p = add("restore-router", cmd_restore_router, "--ha demos: bring router a or b back")
    p.add_argument("router", choices=("a", "b"))
    p = add("mwan3", cmd_mwan3, "run an mwan3 command in the router, e.g. `mwan3 interfaces`")
    p.add_argument("args", nargs=argparse.REMAINDER, help="mwan3's arguments")
    p = add("_supervise", supervise, None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--lock-fd", type=int, default=None)
    p.add_argument("--no-web", action="store_true")
    p.add_argument("--ha", action="store_true")
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
