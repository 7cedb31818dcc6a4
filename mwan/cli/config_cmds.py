"""check, show-config."""

from __future__ import annotations

import argparse
import json
import sys

from ..config.errors import ConfigError
from ..config.export import config_to_dict
from ..config.validate import load_config


def cmd_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.network_config)
    except ConfigError as exc:
        for p in exc.problems:
            print(str(p), file=sys.stderr)
        n = len(exc.problems)
        print(f"{n} error{'s' if n != 1 else ''} in {args.config}", file=sys.stderr)
        return 1
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    enabled = len(cfg.enabled_interfaces)
    print(f"OK: {args.config}: {len(cfg.interfaces)} interfaces ({enabled} enabled), "
          f"{len(cfg.members)} members, {len(cfg.policies)} policies, {len(cfg.rules)} rules")
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.network_config)
    except ConfigError as exc:
        for p in exc.problems:
            print(str(p), file=sys.stderr)
        return 1
    data = config_to_dict(cfg)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    g = data["globals"]
    print("config globals 'globals'")
    for k, v in g.items():
        _print_option(k, v)
    for kind in ("interfaces", "members", "policies", "rules"):
        for sec in data[kind]:
            print(f"\nconfig {kind[:-1] if kind != 'policies' else 'policy'} '{sec['name']}'")
            for k, v in sec.items():
                if k != "name":
                    _print_option(k, v)
    return 0


def _print_option(key: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for v in value:
            print(f"\tlist {key} '{v}'")
    elif isinstance(value, bool):
        print(f"\toption {key} '{int(value)}'")
    else:
        print(f"\toption {key} '{value}'")
