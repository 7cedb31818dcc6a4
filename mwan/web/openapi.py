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


def _port(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 65535}}


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
                              _q("proto", "string"), _port("sport"), _port("dport")]),
        "/api/config": {
            **_get("the config file's text and the validated model"),
            "put": {
                "summary": "validate and apply a new config file (atomic; errors change nothing)",
                "description": "Options that name a program or a file the daemon runs or reads "
                               "(user_script, web_cert, web_key) and web_password_hash can "
                               "only be changed in the file, as root: a change to them is "
                               "refused (403). A config without any interface is applied only "
                               "with confirm_empty (409 otherwise).",
                "parameters": [{"name": "X-CSRF-Token", "in": "header", "required": True,
                                "schema": {"type": "string"}},
                               {"name": "confirm_empty", "in": "query", "required": False,
                                "description": "1: yes, remove every interface",
                                "schema": {"type": "string", "enum": ["0", "1"]}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"],
                    "properties": {"text": {"type": "string"},
                                   "confirm_empty": {
                                       "type": "boolean",
                                       "description": "true: yes, remove every interface"}}}}}},
                "responses": {
                    "200": {"description": "applied"},
                    "400": {"description": "the body is not JSON or has no string 'text'",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/Error"}}}},
                    "422": {"description": "not applied: errors with file, line, option",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/ConfigErrors"}}}},
                    "401": {"$ref": "#/components/responses/LoginRequired"},
                    "403": {"description": "missing or wrong CSRF token, or a change to an "
                                           "option only root may change (named in 'errors')",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/ConfigErrors"}}}},
                    "409": {"description": "the config has no interface left: not applied "
                                           "without confirm_empty",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/ConfigErrors"}}}}},
            },
        },
        "/api/interfaces/{name}/ifup": _ACTION,
        "/api/interfaces/{name}/ifdown": _ACTION,
        "/metrics": {"get": {"summary": "Prometheus metrics (session or HTTP Basic auth)",
                             "responses": {"200": {"description": "text exposition format"},
                                           "401": {"description": "login required"},
                                           "429": {"description": "too many password "
                                                                  "attempts from this client "
                                                                  "(see Retry-After)"},
                                           "503": {"description": "too many password checks "
                                                                  "waiting (see Retry-After)"}}}},
    },
    "components": {
        "responses": {"LoginRequired": {"description": "no session: log in first"}},
        "schemas": {
            **SCHEMAS,
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "ConfigErrors": {"type": "object", "properties": {
                "applied": {"type": "boolean"}, "error": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "line": {"type": "integer"},
                    "section": {"type": ["string", "null"]},
                    "option": {"type": ["string", "null"]},
                    "message": {"type": "string"}, "text": {"type": "string"}}}}}},
        },
    },
}
