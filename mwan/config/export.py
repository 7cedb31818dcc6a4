"""The validated model as plain JSON-ready data (for show-config, the API and the UI).

Each option is exported through its entry in the section's option table
(:data:`~mwan.config.model.SECTION_TABLES`): ``mmx_mask`` as hex, the
password hash as ``(set)``, addresses and ports as text.  :func:`config_schema`
is the JSON schema of that data, from the same tables.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .model import SECTION_CLASSES, SECTION_TABLES, Config
from .options import derived_fields, json_value

# the exported sections: key in the data → section type
SECTION_KEYS = {"interfaces": "interface", "members": "member", "policies": "policy",
                "rules": "rule", "notifies": "notify"}
# fields of the model that are not options: what they are in the data
_DERIVED_SCHEMA: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "description": "the section's name"},
    "id": {"type": "integer", "description": "the interface's 1-based position (its mark and "
           "table)"},
    "src_device": {"type": ["string", "null"], "description": "src_iface's Linux device"},
    "vips": {"type": "array", "items": {"type": "string"},
             "description": "virtual_address, read ('DEVICE ADDRESS/LEN')"},
}


def section_dict(obj: Any, section_type: str) -> dict[str, Any]:
    """One section's fields (options and derived values, not ``line``), in the model's order."""
    specs = {s.name: s for s in SECTION_TABLES[section_type]}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name == "line":
            continue
        v = getattr(obj, f.name)
        spec = specs.get(f.name)
        out[f.name] = spec.export(v) if spec is not None else json_value(v)
    return out


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return {
        "path": cfg.path,
        "globals": section_dict(cfg.globals, "globals"),
        **{key: [section_dict(s, stype) for s in getattr(cfg, key)]
           for key, stype in SECTION_KEYS.items()},
        "warnings": list(cfg.warnings),
        # config ha (issue 13): only when there is one, so one router's data is unchanged
        **({"ha": section_dict(cfg.ha, "ha")} if cfg.ha is not None else {}),
    }


def section_schema(section_type: str) -> dict[str, Any]:
    """The JSON schema of one exported section, from its option table."""
    specs = {s.name: s for s in SECTION_TABLES[section_type]}
    props: dict[str, Any] = {}
    for f in dataclasses.fields(SECTION_CLASSES[section_type]):
        if f.name == "line":
            continue
        spec = specs.get(f.name)
        props[f.name] = spec.schema() if spec is not None else _DERIVED_SCHEMA[f.name]
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def config_schema() -> dict[str, Any]:
    """The JSON schema of :func:`config_to_dict`'s data (``show-config --json``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mwan show-config",
        "type": "object",
        "required": ["path", "globals", *SECTION_KEYS, "warnings"],
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string"},
            "globals": section_schema("globals"),
            **{key: {"type": "array", "items": section_schema(stype)}
               for key, stype in SECTION_KEYS.items()},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "ha": section_schema("ha"),  # not required: only with config ha
        },
    }


def non_options(section_type: str) -> tuple[str, ...]:
    """The exported fields of a section type that are not options."""
    return tuple(n for n in derived_fields(SECTION_CLASSES[section_type]) if n != "line")
