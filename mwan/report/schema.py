"""JSON Schemas of the ``--json`` reports (docs/cli-json.md), also used by the OpenAPI spec.

The tests validate real output against these, so the documented schema and
the program cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from ..config.values import FAMILIES
from ..daemon.drift import KINDS

NUM = {"type": "number"}
NUM_OR_NULL = {"type": ["number", "null"]}
INT_OR_NULL = {"type": ["integer", "null"]}
STR = {"type": "string"}
STR_OR_NULL = {"type": ["string", "null"]}
BOOL = {"type": "boolean"}
STRS = {"type": "array", "items": STR}


def _obj(props: dict[str, Any], required: list[str] | None = None,
         extra: bool = True) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": extra}


# a quality window (issue 14): probes sent/answered, average latency, jitter (stddev), loss
WINDOW = _obj({"sent": {"type": "integer"}, "received": {"type": "integer"},
               "latency_ms": NUM_OR_NULL, "jitter_ms": NUM_OR_NULL, "loss_pct": NUM_OR_NULL})
QUALITY = _obj({**WINDOW["properties"], "window_s": NUM,
                "level": {"enum": ["ok", "degraded", "down"]}, "reason": STR_OR_NULL})

TARGET = _obj({
    "ip": STR, "status": {"enum": ["up", "down", "skipped", "unknown"]},
    "latency_ms": NUM_OR_NULL, "loss_pct": NUM_OR_NULL, "error": STR_OR_NULL,
    "sent": {"type": "integer"}, "lost": {"type": "integer"},
    "window": {"oneOf": [{"type": "null"}, WINDOW]},
}, required=["ip", "status", "latency_ms", "loss_pct"])

# per-WAN usage (issue 15): totals kept across restarts, the data-cap period's bytes
INT = {"type": "integer"}
USAGE = _obj({
    "rx_bytes": INT, "tx_bytes": INT, "rx_packets": INT, "tx_packets": INT,
    "period_bytes": INT, "period_start": NUM_OR_NULL, "data_cap": INT_OR_NULL,
    "data_cap_period": STR_OR_NULL, "data_cap_action": {"enum": ["warn", "standby", None]},
    "cap_used_pct": NUM_OR_NULL, "last_traffic": NUM_OR_NULL,
})

INTERFACE = _obj({
    "device": STR, "family": {"enum": list(FAMILIES)},
    "status": {"enum": ["online", "offline", "connecting", "disconnecting", "disabled"]},
    "online": BOOL, "up": BOOL, "admin_up": BOOL, "carrier": BOOL,
    "online_since": NUM_OR_NULL, "offline_since": NUM_OR_NULL, "up_since": NUM_OR_NULL,
    "gateway": STR_OR_NULL, "addresses": STRS,
    "tracking": {"enum": ["active", "paused", "disabled"]},
    "score": INT_OR_NULL, "lost": INT_OR_NULL, "turn": INT_OR_NULL, "last_test": NUM_OR_NULL,
    "targets": {"type": "array", "items": TARGET},
    "probes_sent": {"type": "integer"}, "probes_lost": {"type": "integer"},
    # flap dampening: the end of the hold-down (null: not held), flaps within flap_window
    "held_until": NUM_OR_NULL, "flaps": {"type": "integer"},
    # the interface's mark (within mmx_mask), and its events counted by action since start
    "mark": {"type": "integer"},
    "transitions": {"type": "object", "additionalProperties": {"type": "integer"}},
    # [time, "event: reason"]
    "events": {"type": "array", "items": {"type": "array", "items": {
        "type": ["number", "string"]}, "minItems": 2, "maxItems": 2}},
    # [time, mean latency ms or null, mean loss % or null, status, window jitter ms or null]
    "history": {"type": "array", "items": {"type": "array", "items": {
        "type": ["number", "string", "null"]}, "minItems": 4, "maxItems": 5}},
    # tracked interfaces only: the interface's quality window and level, passive suspicions
    "quality": QUALITY, "degraded": BOOL, "suspicions": {"type": "integer"},
    "usage": USAGE, "standby": BOOL,  # issue 15: usage and data cap; over a standby cap
}, required=["usage", "standby", "device", "family", "status", "online", "up", "admin_up", "carrier",
             "online_since", "offline_since", "up_since", "gateway", "addresses", "tracking",
             "score", "lost", "turn", "last_test", "targets", "probes_sent", "probes_lost",
             "held_until", "flaps", "mark", "transitions", "events", "history"])

LAST_RESORT = {"enum": ["unreachable", "blackhole", "default"]}
POLICY = _obj({
    "members": {"type": "array", "items": _obj({
        "interface": STR, "member": STR, "metric": {"type": "integer"},
        "weight": {"type": "integer"}, "percent": NUM})},
    "last_resort": LAST_RESORT,
    "active": {"enum": ["members", "unreachable", "blackhole", "default"]},
    "notes": STRS,  # quality-aware choice: why members were chosen or skipped
}, required=["members", "last_resort", "active"])
PER_FAMILY_POLICIES = _obj({f: {"type": "object", "additionalProperties": POLICY}
                            for f in FAMILIES})
CONNECTED = _obj({f: STRS for f in FAMILIES})
RULE = _obj({
    "rule": STR, "family": {"enum": list(FAMILIES)}, "policy": STR, "sticky": BOOL,
    "proto": STR, "src_ip": STRS, "dest_ip": STRS, "src_port": STRS, "dest_port": STRS,
    "ipset": STR_OR_NULL, "packets": {"type": "integer"}, "bytes": {"type": "integer"},
})
INTERFACES = {"type": "object", "additionalProperties": INTERFACE}
# a failing apply (null: the last one worked): since when, why, retried in how long
APPLY_ERROR = {"oneOf": [{"type": "null"}, _obj({
    "since": NUM, "reason": STR, "attempts": {"type": "integer"}, "retry_in_s": NUM})]}
# drift that someone else made to mwan's kernel objects, and its repairs
REPAIR_KINDS = list(KINDS)
REPAIRS = _obj({
    "total": {"type": "integer"},
    "by_kind": {"type": "object", "propertyNames": {"enum": REPAIR_KINDS},
                "additionalProperties": {"type": "integer"}},
    "recent": {"type": "array", "items": _obj({
        "time": NUM, "kinds": {"type": "array", "items": {"enum": REPAIR_KINDS}},
        "what": STR, "who": STR_OR_NULL, "ms": NUM})},
    "backing_off_s": NUM,
})
RULES = {"type": "array", "items": RULE}
# webhook deliveries per notify section (issue 15)
NOTIFY = {"type": "object", "additionalProperties": _obj({
    "sent": INT, "failed": INT, "attempts_failed": INT, "dropped": INT, "queued": INT,
    "last_error": STR_OR_NULL})}

# config ha only (issue 13): this router's VRRP role and the conntrack sync (mwan.ha.status)
HA = _obj({
    "role": {"enum": ["MASTER", "BACKUP", "FAULT", "STOPPED", "UNKNOWN"]},
    "last_role": STR_OR_NULL, "role_since": NUM_OR_NULL, "keepalived": BOOL,
    "sync": {"enum": ["ok", "link-down", "peer-unreachable", "conntrackd-down"]},
    "sync_device": STR, "link": STR, "peer": STR, "peer_neighbour": STR_OR_NULL,
    "stats": {"oneOf": [{"type": "null"}, _obj({k: INT for k in (
        "internal", "external", "sent", "received", "send_errors", "receive_errors",
        "lost")})]},
})


def _optional(schema: dict[str, Any], **props: Any) -> dict[str, Any]:
    """``schema`` with more properties that may be absent (``ha``: only with config ha)."""
    return {**schema, "properties": {**schema["properties"], **props}}


SCHEMAS: dict[str, dict[str, Any]] = {
    "interfaces": _obj({"interfaces": INTERFACES}),
    "policies": _obj({"policies": PER_FAMILY_POLICIES}),
    "connected": _obj({"connected": CONNECTED}),
    "rules": _obj({"rules": RULES}),
    "status": _optional(_obj({"interfaces": INTERFACES, "policies": PER_FAMILY_POLICIES,
                    "connected": CONNECTED, "rules": RULES, "uptime_s": NUM,
                    "last_apply_ms": NUM_OR_NULL, "applies": {"type": "integer"},
                    "apply_error": APPLY_ERROR, "apply_failures": {"type": "integer"},
                    "repairs": REPAIRS, "notify": NOTIFY}), ha=HA),
    "explain": _obj({
        "connection": STR, "family": {"enum": list(FAMILIES)}, "steps": STRS,
        "rule": STR_OR_NULL, "policy": STR_OR_NULL,
        "members": {"type": "array", "items": _obj({"interface": STR, "percent": NUM})},
        "wan": STR_OR_NULL, "verdict": STR}),
}
