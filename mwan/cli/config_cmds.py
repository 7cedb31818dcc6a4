"""check, show-config; and the one place a ConfigError is printed (:func:`report_config_error`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..config.edit import Values, section_lines
from ..config.errors import ConfigError
from ..config.model import SECTION_TABLES
from ..config.validate import load_config


def report_config_error(exc: ConfigError, path: str | None = None) -> int:
    """Print every problem (FILE:LINE: ...) to stderr, with a count for ``path``; exit status 1."""
    for p in exc.problems:
        print(str(p), file=sys.stderr)
    if path is not None:
        n = len(exc.problems)
        print(f"{n} error{'s' if n != 1 else ''} in {path}", file=sys.stderr)
    return 1


def register(add: Callable[[str, Callable[[argparse.Namespace], int], str],
                           argparse.ArgumentParser]) -> None:
    add("check", cmd_check, "validate the config and print a summary")
    p = add("show-config", cmd_show_config,
            "print the validated config with every default filled in")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.add_argument("--schema", action="store_true",
                   help="print the JSON schema of --json's output instead")


def cmd_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.network_config)
    except ConfigError as exc:
        return report_config_error(exc, args.config)
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    enabled = len(cfg.enabled_interfaces)
    print(f"OK: {args.config}: {len(cfg.interfaces)} interfaces ({enabled} enabled), "
          f"{len(cfg.members)} members, {len(cfg.policies)} policies, {len(cfg.rules)} rules")
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    from ..config.export import SECTION_KEYS, config_schema, config_to_dict  # this command's

    if getattr(args, "schema", False):
        print(json.dumps(config_schema(), indent=2))
        return 0
    data = config_to_dict(load_config(args.config, args.network_config))  # errors: main prints
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    blocks = [section_lines("globals", "globals", uci_options("globals", data["globals"]))]
    for key, stype in SECTION_KEYS.items():
        blocks += [section_lines(stype, sec["name"], uci_options(stype, sec))
                   for sec in data[key]]
    if data.get("ha"):  # config ha (issue 13)
        blocks.append(section_lines("ha", data["ha"]["name"], uci_options("ha", data["ha"])))
    print("\n\n".join("\n".join(b) for b in blocks))
    return 0


def uci_options(section_type: str, exported: dict[str, Any]) -> dict[str, Values]:
    """A section's exported options as UCI values: exactly the table's options, set ones."""
    out: dict[str, Values] = {}
    for spec in SECTION_TABLES[section_type]:
        value = exported[spec.name]
        if value is None:
            continue
        if spec.is_list:
            out[spec.name] = [str(v) for v in value]
        else:
            out[spec.name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out
