"""start, stop, restart, daemon, ifup, ifdown."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time

from ..config.errors import ConfigError
from ..config.validate import load_config
from ..daemon.control import ControlError, NotRunning, call
from .config_cmds import report_config_error
from .logsetup import setup_logging


def _running(run_dir: str) -> bool:
    try:
        call(run_dir, "ping", timeout=2)
        return True
    except (NotRunning, ControlError, OSError):
        return False


def _validate(args: argparse.Namespace) -> bool:
    try:
        cfg = load_config(args.config, args.network_config)
    except ConfigError as exc:
        report_config_error(exc)
        return False
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return True


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run in the foreground (for systemd); logs go to stderr."""
    import asyncio

    from ..daemon.startclock import StartClock

    clock = StartClock()  # the start-up's phases, logged once it is ready
    from ..daemon.core import Daemon, StartFailed
    from ..daemon.lean import one_malloc_arena

    clock.mark("imports done")
    one_malloc_arena()  # before the kernel thread starts (~0.5 MB less RSS)
    setup_logging(getattr(args, "verbose", False))  # the journal under systemd, else stderr
    if _running(args.run_dir):
        print(f"mwan is already running with run dir {args.run_dir}", file=sys.stderr)
        return 1
    try:
        daemon = Daemon(args.config, args.network_config, args.run_dir, start_clock=clock)
    except ConfigError as exc:
        return report_config_error(exc)
    ready_fd = getattr(args, "ready_fd", None)

    def ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)

    try:
        asyncio.run(daemon.run(ready))
    except StartFailed as exc:
        logging.getLogger("mwan").error("%s; the kernel is left as it was", exc)
        return 1
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Start the daemon in the background and wait until it has applied.

    The config is checked here while the daemon starts (for the error and the
    warnings, printed as ``check-config`` prints them); the daemon checks it
    too and refuses a bad one before it touches the kernel.
    """
    if _running(args.run_dir):
        if not _validate(args):
            return 1
        print("mwan is already running")
        return 0
    os.makedirs(args.run_dir, mode=0o700, exist_ok=True)
    log_path = os.path.join(args.run_dir, "daemon.log")
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-P", "-m", "mwan.cli.main", "--config", args.config,  # -P: not cwd
            "--network-config", args.network_config, "--run-dir", args.run_dir,
            "daemon", "--ready-fd", str(write_fd)]
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, pass_fds=(write_fd,))
    os.close(write_fd)
    valid = _validate(args)
    with os.fdopen(read_fd, "rb") as pipe:
        ok = pipe.readline().strip() == b"ready"
    if not valid:  # the daemon refused it too (the same check), or is told to stop
        if ok:
            proc.terminate()
        proc.wait(timeout=15)
        return 1
    if not ok:
        proc.wait(timeout=10)
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            tail = fh.readlines()[-20:]
        print("mwan failed to start:\n" + "".join(tail), file=sys.stderr)
        return 1
    print(f"mwan started (pid {proc.pid})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the daemon; it removes every rule, route and nft object it made."""
    try:
        pid = call(args.run_dir, "ping", timeout=5)["pid"]
        call(args.run_dir, "stop", timeout=5)
    except NotRunning:
        # nothing runs: still remove whatever a dead daemon may have left
        from ..kernel import cgroups
        from ..kernel.apply import KernelApplier
        KernelApplier().remove()
        cgroups.remove_groups(args.run_dir)
        print("mwan was not running; removed anything it had left behind")
        return 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        print(f"mwan (pid {pid}) did not stop within 15 s", file=sys.stderr)
        return 1
    print("mwan stopped")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """Reload in place when running (atomic; a bad config changes nothing), else start."""
    if not _validate(args):
        print("config rejected; the running state is unchanged", file=sys.stderr)
        return 1
    if not _running(args.run_dir):
        return cmd_start(args)
    try:
        call(args.run_dir, "reload", timeout=60)
    except ControlError as exc:
        print(f"reload refused: {exc}", file=sys.stderr)
        return 1
    print("mwan reloaded")
    return 0


def _if_cmd(args: argparse.Namespace, cmd: str) -> int:
    try:
        result = call(args.run_dir, cmd, interface=args.interface)
    except NotRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ControlError as exc:
        print(f"{cmd} {args.interface}: {exc}", file=sys.stderr)
        return 1
    if result.get("waiting"):  # ifup of an interface whose device is missing or down
        print(f"interface {result['interface']}: {result['waiting']}")
        return 0
    state = "online" if result.get("online") else "offline"
    print(f"interface {result['interface']} is {state}")
    return 0


def cmd_ifup(args: argparse.Namespace) -> int:
    return _if_cmd(args, "ifup")


def cmd_ifdown(args: argparse.Namespace) -> int:
    return _if_cmd(args, "ifdown")

