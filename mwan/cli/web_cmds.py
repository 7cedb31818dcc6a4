"""``mwan3 web-password``: set the web UI's password (its scrypt hash goes into the config)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..config.edit import Values, add_section, set_section, write_atomic
from ..config.errors import ConfigError
from ..config.uci import UciSyntaxError, parse_uci
from ..config.validate import parse_config
from ..daemon.control import ControlError, NotRunning, call
from .config_cmds import report_config_error

MIN_LENGTH = 8


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass  # here: the daemon builds this parser too and never asks

    first = getpass.getpass("New web UI password: ")
    if getpass.getpass("Again: ") != first:
        print("the two passwords differ; nothing changed", file=sys.stderr)
        return None
    return first


def cmd_web_password(args: argparse.Namespace) -> int:
    password = _read_password(args.stdin)
    if password is None:
        return 1
    if len(password) < MIN_LENGTH:
        print(f"the password needs at least {MIN_LENGTH} characters; nothing changed",
              file=sys.stderr)
        return 1
    try:
        with open(args.config, encoding="utf-8") as fh:
            text = fh.read()
        sections = parse_uci(text, args.config)
    except (OSError, UciSyntaxError) as exc:
        print(f"cannot edit {args.config}: {exc}", file=sys.stderr)
        return 1
    from ..web.auth import hash_password  # here: hashlib's scrypt, only for this command

    options: dict[str, Values] = {"web_password_hash": hash_password(password)}
    if args.enable:
        options["web_enabled"] = "1"
    if args.listen:
        options["web_listen"] = list(args.listen)
    if args.port is not None:
        options["web_port"] = str(args.port)
    glob = next((s for s in sections if s.type == "globals"), None)
    if glob is None:
        text = add_section(text, "globals", "globals", options, args.config)
    else:
        text = set_section(text, glob.name, options, args.config)
    try:
        parse_config(text, args.config)
    except ConfigError as exc:
        report_config_error(exc)
        print("nothing changed", file=sys.stderr)
        return 1
    write_atomic(args.config, text)  # 0600: the file now holds a password hash
    print(f"web UI password set in {args.config} (readable by its owner only)")
    try:
        call(args.run_dir, "reload")
        print("mwan reloaded: the new password is in effect")
    except NotRunning:
        pass
    except (ControlError, PermissionError) as exc:
        print(f"mwan did not reload: {exc}", file=sys.stderr)
        return 1
    return 0


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("web-password", cmd_web_password,
            "set the web UI's password (stored as a scrypt hash in the config)")
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--enable", action="store_true", help="also turn the web UI on")
    p.add_argument("--listen", action="append", metavar="ADDR",
                   help="address to listen on (repeatable; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8086)")
