"""start, stop, restart, daemon, ifup, ifdown."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
import traceback
from typing import NoReturn

from ..config.errors import ConfigError
from ..config.model import Config
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


def _checked(args: argparse.Namespace) -> Config | None:
    """The config, checked (errors and warnings printed as ``check-config`` prints them)."""
    try:
        cfg = load_config(args.config, args.network_config)
    except ConfigError as exc:
        report_config_error(exc)
        return None
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return cfg


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run in the foreground (for systemd); logs go to stderr."""
    from ..daemon.lean import no_gc_until_ready

    no_gc_until_ready()  # run_daemon turns it on again once the first apply is done
    return run_daemon(args, getattr(args, "ready_fd", None))


def run_daemon(args: argparse.Namespace, ready_fd: int | None, cfg: Config | None = None) -> int:
    """The daemon, until it stops; writes "ready" to ``ready_fd`` after the first apply.
    ``cfg``: the config already read and checked (else it reads ``args.config``)."""
    import asyncio

    from ..daemon.startclock import StartClock

    clock = StartClock()  # the start-up's phases, logged once it is ready
    from ..daemon.core import Daemon, StartFailed
    from ..daemon.lean import gc_after_start, one_malloc_arena

    clock.mark("imports done")
    one_malloc_arena()  # before the kernel thread starts (~0.5 MB less RSS)
    setup_logging(getattr(args, "verbose", False))  # the journal under systemd, else stderr
    if _running(args.run_dir):
        print(f"mwan is already running with run dir {args.run_dir}", file=sys.stderr)
        return 1
    try:
        daemon = Daemon(args.config, args.network_config, args.run_dir, cfg=cfg,
                        start_clock=clock)
    except ConfigError as exc:
        return report_config_error(exc)

    def ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")  # mwan3 start returns
            os.close(ready_fd)
        # after the first turn of the tasks the daemon just started (trackers, usage)
        asyncio.get_running_loop().call_soon(gc_after_start)

    try:
        asyncio.run(daemon.run(ready))
    except StartFailed as exc:
        logging.getLogger("mwan").error("%s; the kernel is left as it was", exc)
        return 1
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Check the config, start the daemon in the background and wait until it has applied.

    The daemon is this process, forked (not a new interpreter that imports and
    reads the config again): it keeps the modules and the checked config, so
    it gets to its first apply sooner (issue 17: under 1 s).
    """
    from ..daemon.lean import no_gc_until_ready

    no_gc_until_ready()  # the forked daemon turns it on again once ready (mwan.daemon.lean)
    try:
        cfg = _checked(args)
        if cfg is None:
            return 1
        if _running(args.run_dir):
            print("mwan is already running")
            return 0
        os.makedirs(args.run_dir, mode=0o700, exist_ok=True)
        log_path = os.path.join(args.run_dir, "daemon.log")
        read_fd, write_fd = os.pipe()  # not inherited by what the daemon runs (O_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _daemon_child(args, cfg, write_fd, log_path)
    finally:
        gc.enable()  # in the CLI only: the child never leaves _daemon_child
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        ok = pipe.readline().strip() == b"ready"
    if not ok:
        _reap(pid, 10)
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            tail = fh.readlines()[-20:]
        print("mwan failed to start:\n" + "".join(tail), file=sys.stderr)
        return 1
    print(f"mwan started (pid {pid})")
    return 0


def _daemon_child(args: argparse.Namespace, cfg: Config, ready_fd: int,
                  log_path: str) -> NoReturn:
    """In the forked child: a session of its own, stdin /dev/null, output to the log, then
    the daemon; never returns (it exits)."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        # nothing else of the caller's (a pipe it reads mwan3 start's output from would never
        # see its end), as subprocess' close_fds would
        os.closerange(3, ready_fd)
        os.closerange(ready_fd + 1, os.sysconf("SC_OPEN_MAX"))
        if sys.path and sys.path[0] in ("", os.getcwd()):
            del sys.path[0]  # what it imports later never comes from the cwd (python -P)
        code = run_daemon(args, ready_fd, cfg)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - shown in the log; the child still only exits
        traceback.print_exc()
    # out through the CLI's main and the interpreter's normal exit (as a daemon that was its
    # own interpreter did); none of cmd_start's code after the fork runs in the child
    sys.exit(code)


def _reap(pid: int, timeout: float) -> None:
    """Wait (up to ``timeout``) for the forked daemon that failed to start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.02)


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
    if _checked(args) is None:
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

