"""The low findings of issue 11 for the web UI and explain.

- security headers were missing on redirects and error responses;
- the Origin check ignored the scheme;
- deeply nested JSON and lone surrogates in PUT /api/config gave a 500;
- explain accepted nonsense ports and protocols (web, API and the daemon's command).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mwan.config.validate import parse_config
from mwan.report.explain import explain

from .web_fake import client, config_text, login

HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options")


def test_security_headers_on_redirects_and_errors(tmp_path: Path) -> None:
    async def main() -> list[tuple[int, list[str]]]:
        out = []
        async with client(tmp_path) as (c, _server):
            for method, path in (("GET", "/"), ("GET", "/static/nosuch.css"),
                                 ("GET", "/api/status"),
                                 ("POST", "/login")):
                r = await c.request(method, path, allow_redirects=False)
                out.append((r.status, [h for h in HEADERS if h not in r.headers]))
            r = await c.post("/login", data={"password": "correct horse battery"},
                             allow_redirects=False)
            out.append((r.status, [h for h in HEADERS if h not in r.headers]))
        return out

    got = asyncio.run(main())
    assert [s for s, _ in got] == [303, 404, 401, 401, 303], got
    assert all(not missing for _, missing in got), got


def test_origin_must_match_scheme_host_and_port(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            host = c.make_url("/").authority
            codes = []
            for origin in (f"https://{host}", f"http://{host}", "null",
                           f"http://{host.rsplit(':', 1)[0]}:1"):
                r = await c.post("/api/interfaces/wan/ifdown",
                                 headers={"X-CSRF-Token": csrf, "Origin": origin})
                codes.append(r.status)
            return codes

    https, same, null, other_port = asyncio.run(main())
    assert https == 403 and null == 403 and other_port == 403
    assert same != 403  # (the stand-in daemon has no ifdown: any answer but 403)


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  json.dumps({"text": config_text() + "# \ud800\n"}).encode()])
def test_bad_json_is_a_client_error(tmp_path: Path, body: bytes) -> None:
    async def main() -> int:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            r = await c.put("/api/config", data=body, headers={
                "X-CSRF-Token": csrf, "Content-Type": "application/json"})
            return r.status

    assert asyncio.run(main()) in (400, 422)
    assert (tmp_path / "mwan3").read_text() == config_text()


@pytest.mark.parametrize("query", ["dport=70000", "dport=0", "sport=-1", "dport=x",
                                   "proto=nonsense", "proto=icmp&dport=80", "proto=all"])
def test_explain_refuses_nonsense(tmp_path: Path, query: str) -> None:
    async def main() -> tuple[int, int]:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            r = await c.get(f"/api/explain?src=192.0.2.7&dst=198.51.100.1&{query}")
            page = await c.post("/diagnostics", data={"csrf": csrf, "do": "explain",
                                                      "src": "192.0.2.7",
                                                      "dst": "198.51.100.1",
                                                      **dict(p.split("=") for p in
                                                             query.split("&"))})
            assert 'id="diag-error"' in await page.text()
            return r.status, (await c.get("/api/explain?src=192.0.2.7&dst=198.51.100.1"
                                          "&dport=443")).status

    bad, good = asyncio.run(main())
    assert (bad, good) == (400, 200)


@pytest.mark.parametrize("proto,sport,dport", [("tcp", None, 70000), ("tcp", 0, None),
                                               ("bogus", None, None), ("icmp", None, 80),
                                               ("tcp", None, "80")])
def test_daemon_explain_refuses_nonsense(proto: str, sport: object, dport: object) -> None:
    cfg = parse_config(config_text())
    with pytest.raises(ValueError):
        explain(cfg, {}, {}, "192.0.2.7", "198.51.100.1", proto,
                sport, dport)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="family"):
        explain(cfg, {}, {}, "192.0.2.7", "2001:db8::1", "tcp")
