"""The validated model as plain JSON-ready data (for show-config, the API and the UI)."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from typing import Any

from .model import Config, PortRange


def _value(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                      ipaddress.IPv4Network, ipaddress.IPv6Network, PortRange)):
        return str(v)
    if isinstance(v, tuple):
        return [_value(x) for x in v]
    return v


def _section(obj: Any, hex_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        if f.name == "line":
            continue
        v = getattr(obj, f.name)
        out[f.name] = f"{v:#x}" if f.name in hex_fields else _value(v)
    return out


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return {
        "path": cfg.path,
        "globals": {**_section(cfg.globals, ("mmx_mask",)),
                    "web_password_hash": "(set)" if cfg.globals.web_password_hash else None},
        "interfaces": [_section(i) for i in cfg.interfaces],
        "members": [_section(m) for m in cfg.members],
        "policies": [_section(p) for p in cfg.policies],
        "rules": [_section(r) for r in cfg.rules],
        "warnings": list(cfg.warnings),
    }
