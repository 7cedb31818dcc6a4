"""``mwan3 use IFACE CMD [ARGS...]``: run CMD with every socket it opens leaving by IFACE.

The daemon keeps one cgroup per interface whose sockets' new connections
take that interface's mark, past the user rules (:mod:`mwan.kernel.cgroups`).
This command asks the daemon for the group, moves itself into it and execs
CMD, so CMD's exit status is ours and nothing about CMD changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .report_cmds import ask


def cmd_use(args: argparse.Namespace) -> int:
    from ..kernel import cgroups  # this command's (ctypes, the cgroup tree)

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: mwan3 use IFACE CMD [ARGS...]", file=sys.stderr)
        return 2
    info = ask(args, "use", interface=args.interface)
    if info is None:
        return 1
    if not info.get("online", True):
        print(f"warning: interface {info['interface']} is offline; its traffic may not get through",
              file=sys.stderr)
    try:
        cgroups.enter(str(info["cgroup"]))
    except cgroups.CgroupError as exc:
        print(f"mwan3 use: {exc}", file=sys.stderr)
        return 1
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"mwan3 use: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - exec does not return


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("use", cmd_use, "run a command whose connections all leave by one interface")
    p.add_argument("interface")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARGS...]")
