"""interfaces, policies, connected, rules, status [--watch], explain (each with --json)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from ..daemon.control import ControlError, NotRunning, call
from ..report import text

Add = Callable[..., argparse.ArgumentParser]


def ask(args: argparse.Namespace, cmd: str, **kw: Any) -> Any:
    """The daemon's answer to one command, or None after saying on stderr why there is none."""
    try:
        return call(args.run_dir, cmd, **kw)
    except NotRunning as exc:
        print(f"{exc}; start it with 'mwan3 start'", file=sys.stderr)
    except PermissionError:
        print(f"not allowed to talk to mwan in {args.run_dir} (root only)", file=sys.stderr)
    except ControlError as exc:
        print(str(exc), file=sys.stderr)
    return None


def kernel_report(args: argparse.Namespace) -> dict[str, Any] | None:
    """``connected`` and ``rules`` read straight from mwan's nft table (no daemon needed)."""
    from ..config.errors import ConfigError
    from ..config.validate import load_config
    from ..kernel.nft import NftApplier, rules_with_counters, set_networks
    from ..report.data import rule_counters

    nft = NftApplier()
    if nft.list_table() is None:
        print("mwan is not running and has no table in the kernel (nft table inet mwan); "
              "start it with 'mwan3 start'", file=sys.stderr)
        return None
    connected = {fam: [n for kind in ("connected", "custom")
                       for n in set_networks(nft, f"{kind}_{sfx}") or []]
                 for fam, sfx in (("ipv4", "v4"), ("ipv6", "v6"))}
    try:
        cfg = load_config(args.config, args.network_config)
    except ConfigError as exc:
        print(f"cannot name the rules: {exc}", file=sys.stderr)
        return None
    return {"connected": connected, "rules": rule_counters(cfg, *rules_with_counters(nft, "rules"))}


def _show(args: argparse.Namespace, render: Callable[[dict[str, Any]], str],
          pick: Callable[[dict[str, Any]], Any], kernel_only: bool = False) -> int:
    if kernel_only:
        try:
            report = call(args.run_dir, "report")
        except (NotRunning, PermissionError, ControlError):
            report = kernel_report(args)
    else:
        report = ask(args, "report")
    if report is None:
        return 1
    if args.json:
        print(json.dumps(pick(report), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render(report))
    return 0


def cmd_interfaces(args: argparse.Namespace) -> int:
    return _show(args, lambda r: text.interfaces(r, time.time()),
                 lambda r: {"interfaces": r["interfaces"]})


def cmd_policies(args: argparse.Namespace) -> int:
    return _show(args, text.policies, lambda r: {"policies": r["policies"]})


def cmd_connected(args: argparse.Namespace) -> int:
    return _show(args, text.connected, lambda r: {"connected": r["connected"]},
                 kernel_only=True)


def cmd_rules(args: argparse.Namespace) -> int:
    return _show(args, text.rules, lambda r: {"rules": r["rules"]}, kernel_only=True)


def cmd_status(args: argparse.Namespace) -> int:
    if not args.watch:
        return _show(args, lambda r: text.status(r, time.time()), lambda r: r)
    try:
        while True:
            report = ask(args, "report")
            if report is None:
                return 1
            out = json.dumps(report, sort_keys=True) if args.json \
                else text.status(report, time.time())
            sys.stdout.write("\x1b[H\x1b[2J" + out + "\n")
            sys.stdout.flush()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0


def cmd_explain(args: argparse.Namespace) -> int:
    res = ask(args, "explain", src=args.src, dst=args.dst, proto=args.proto,
               sport=args.sport, dport=args.dport)
    if res is None:
        return 1
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        sys.stdout.write(text.explain(res))
    return 0


def register(add: Add) -> None:
    for name, handler, help_ in (
        ("interfaces", cmd_interfaces, "each interface's state, uptime and tracking"),
        ("policies", cmd_policies, "each policy's active members and shares, per family"),
        ("connected", cmd_connected, "the directly connected networks (bypass), per family"),
        ("rules", cmd_rules, "the user rules with packet and byte counters"),
        ("status", cmd_status, "all of the above, with per-target latency and loss"),
    ):
        p = add(name, handler, help_)
        p.add_argument("--json", action="store_true", help="as JSON (docs/cli-json.md)")
        if name == "status":
            p.add_argument("--watch", action="store_true", help="redraw every second")
    p = add("explain", cmd_explain, "which rule, policy and WAN a new connection would take now")
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--sport", type=int)
    p.add_argument("--dport", type=int)
    p.add_argument("--proto", default="tcp")
    p.add_argument("--json", action="store_true")
