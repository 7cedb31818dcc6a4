"""The ``mwan3`` command: argument parsing and dispatch.

Each command lives in a small module and is registered here with its
arguments; handlers take the parsed namespace and return the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], int]

DEFAULT_CONFIG = "/etc/config/mwan3"
DEFAULT_NETWORK = "/etc/config/network"
DEFAULT_RUN_DIR = "/run/mwan3"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that keeps its arguments and subcommands in public lists:
    the shell completion and the man page are generated from them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.arguments: list[argparse.Action] = []
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.arguments.append(action)
        return action


def version() -> str:
    """mwan's version, as installed (pyproject.toml's, the one source)."""
    from importlib import metadata

    try:
        return metadata.version("mwan")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """``--version``, read from the installed metadata only when asked (importlib.metadata
    costs the daemon ~1 MB and ~15 ms at every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"mwan3 (mwan) {version()}")
        parser.exit()


def _globals(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    p.add_argument("--config", metavar="FILE",
                   default=d if suppress else os.environ.get("MWAN_CONFIG", DEFAULT_CONFIG),
                   help="the mwan3 UCI file (default %(default)s)")
    p.add_argument("--network-config", metavar="FILE",
                   default=d if suppress else DEFAULT_NETWORK,
                   help="OpenWrt network config, read for devices (default %(default)s)")
    p.add_argument("--run-dir", metavar="DIR",
                   default=d if suppress else os.environ.get("MWAN_RUN_DIR", DEFAULT_RUN_DIR),
                   help="pid file, control socket, state (default %(default)s)")


def build_parser() -> Parser:
    from . import completion, config_cmds, service_cmds

    parser = Parser(
        prog="mwan3", description="Multi-WAN load balancing and failover (mwan3 compatible).")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> Parser:
        p: Parser = sub.add_parser(name, help=help_, description=help_)
        _globals(p, suppress=True)
        p.set_defaults(handler=handler)
        parser.commands[name] = p
        return p

    config_cmds.register(add)
    add("start", service_cmds.cmd_start, "validate, apply and run the daemon in the background")
    add("stop", service_cmds.cmd_stop, "stop the daemon and remove everything it made")
    add("restart", service_cmds.cmd_restart,
        "reload the config in place (a bad config changes nothing), or start")
    p = add("daemon", service_cmds.cmd_daemon, "run the daemon in the foreground (systemd)")
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    for name, handler, text in (
        ("ifup", service_cmds.cmd_ifup, "bring an interface into service"),
        ("ifdown", service_cmds.cmd_ifdown, "take an interface out of service"),
    ):
        p = add(name, handler, text)
        p.add_argument("interface")
    from . import ha_cmds, report_cmds, use_cmd, web_cmds
    report_cmds.register(add)
    ha_cmds.register(add)
    use_cmd.register(add)
    web_cmds.register(add)
    completion.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    from ..config.errors import ConfigError

    try:
        return handler(args)
    except ConfigError as exc:  # a config a user wrote: printed here, once, without a traceback
        from .config_cmds import report_config_error

        return report_config_error(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
