"""The JSON API's OpenAPI 3 description, served at /api/openapi.json.

The report objects are those of ``mwan3 ... --json`` (docs/cli-json.md).
Every endpoint needs a session (POST /login with the password sets the
``mwan_session`` cookie); PUT and POST also need the header ``X-CSRF-Token``
with the session's token (shown in every page's forms).
"""

from __future__ import annotations

from typing import Any

from ..report.schema import SCHEMAS


def _get(summary: str, ref: str | None = None, params: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{ref}"} if ref else {
        "type": "object"}
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "401": {"$ref": "#/components/responses/LoginRequired"}}}
    if params:
        op["parameters"] = params
        op["responses"]["400"] = {"description": "a bad parameter", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {"get": op}


def _q(name: str, type_: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": type_}}


_ACTION = {
    "post": {
        "summary": "bring an interface into (ifup) or out of (ifdown) service",
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "X-CSRF-Token", "in": "header", "required": True,
             "schema": {"type": "string"}}],
        "responses": {"200": {"description": "done", "content": {"application/json": {
            "schema": {"type": "object"}}}},
            "400": {"description": "unknown or disabled interface"},
            "401": {"$ref": "#/components/responses/LoginRequired"},
            "403": {"description": "missing or wrong CSRF token"}},
    }
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "mwan API", "version": "1",
             "description": "Multi-WAN state and control; the same data as `mwan3 ... --json`."},
    "paths": {
        "/api/status": _get("everything `mwan3 status --json` shows", "status"),
        "/api/interfaces": _get("each interface's state, tracking and history", "interfaces"),
        "/api/policies": _get("per family, each policy's online members and shares",
                              "policies"),
        "/api/connected": _get("the connected (bypass) networks per family", "connected"),
        "/api/rules": _get("the user rules with packet and byte counters", "rules"),
        "/api/events": _get("recent interface transitions, newest first", None,
                            [_q("limit", "integer")]),
        "/api/explain": _get("which rule, policy and WAN a new connection would take now",
                             "explain",
                             [_q("src", "string", True), _q("dst", "string", True),
                              _q("proto", "string"), _q("sport", "integer"),
                              _q("dport", "integer")]),
        "/api/config": {
            **_get("the config file's text and the validated model"),
            "put": {
                "summary": "validate and apply a new config file (atomic; errors change nothing)",
                "parameters": [{"name": "X-CSRF-Token", "in": "header", "required": True,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"],
                    "properties": {"text": {"type": "string"}}}}}},
                "responses": {
                    "200": {"description": "applied"},
                    "422": {"description": "not applied: errors with file, line, option",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/ConfigErrors"}}}},
                    "401": {"$ref": "#/components/responses/LoginRequired"},
                    "403": {"description": "missing or wrong CSRF token"}},
            },
        },
        "/api/interfaces/{name}/ifup": _ACTION,
        "/api/interfaces/{name}/ifdown": _ACTION,
        "/metrics": {"get": {"summary": "Prometheus metrics (session or HTTP Basic auth)",
                             "responses": {"200": {"description": "text exposition format"},
                                           "401": {"description": "login required"}}}},
    },
    "components": {
        "responses": {"LoginRequired": {"description": "no session: log in first"}},
        "schemas": {
            **SCHEMAS,
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "ConfigErrors": {"type": "object", "properties": {
                "applied": {"type": "boolean"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "line": {"type": "integer"},
                    "section": {"type": ["string", "null"]},
                    "option": {"type": ["string", "null"]},
                    "message": {"type": "string"}, "text": {"type": "string"}}}}}},
        },
    },
}
