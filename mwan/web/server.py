"""The web UI, JSON API and /metrics, served by aiohttp in the daemon's own loop.

Off unless ``option web_enabled '1'``; it listens on ``web_listen``
(default 127.0.0.1) port ``web_port`` (8086), over TLS when ``web_cert`` and
``web_key`` are given.  Nothing but the login page and the static files
answers without a session: pages redirect to /login, the API answers 401,
/metrics also takes HTTP Basic auth with the same password (for Prometheus).
Every request that changes something (any POST) must carry the session's
CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) and, when the
browser sends one, an Origin matching the Host.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from yarl import URL

from ..config.export import config_to_dict
from ..daemon.control import ControlError
from . import auth, conn, diagnostics, guard, metrics, openapi, pages
from .editor import ConfigEditor

if TYPE_CHECKING:
    from ..daemon.door import Door

log = logging.getLogger("mwan.web")

COOKIE = "mwan_session"
STATIC = os.path.join(os.path.dirname(__file__), "static")
PUBLIC = ("/login", "/static/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_KEY = web.RequestKey("session", auth.Session)
FORMS = conn.FORMS
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Origin null
    "Cache-Control": "no-store",
}
# set while a request is handled: done once its handler returned (see WebLifecycle)
CURRENT_REQUEST: contextvars.ContextVar[asyncio.Future[None] | None] = contextvars.ContextVar(
    "mwan_web_request", default=None)


class WebServer:
    def __init__(self, door: Door) -> None:
        self.door = door  # all this server sees of the daemon
        self.sessions = auth.Sessions()
        self.metrics = metrics.Metrics(door)
        self._runner: web.AppRunner | None = None
        self._servers: list[asyncio.Server] = []
        self.guard = guard.PasswordGuard()
        self.gate = conn.Gate()
        self.editor = ConfigEditor(self)
        self.app = self._build()

    # ------------------------------------------------------------ lifecycle
    @property
    def tls(self) -> bool:
        return self.door.config.globals.web_cert is not None

    async def start(self) -> None:
        g = self.door.config.globals
        ctx = None
        if g.web_cert and g.web_key:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(g.web_cert, g.web_key)
        self._runner = web.AppRunner(self.app, access_log=None,
                                     shutdown_timeout=conn.SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        try:
            self._servers = await conn.listen(self._runner, self.gate, tuple(g.web_listen),
                                              g.web_port, ctx)
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.metrics.attach()
        log.info("web UI on %s port %d%s", ", ".join(g.web_listen), g.web_port,
                 " (TLS)" if ctx else "")

    async def close(self) -> None:
        """Stop listening; requests in progress get ``conn.SHUTDOWN_TIMEOUT`` seconds."""
        self.metrics.detach()
        for srv in self._servers:
            srv.close()
        self._servers = []
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self.app = self._build()  # an application serves once: a new one for the next start

    # ------------------------------------------------------------ app
    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._auth, self._current],
                              client_max_size=1 << 20)
        r = app.router
        r.add_get("/login", self.login_form)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_static("/static/", STATIC, show_index=False)
        for path, page in (("/", "overview"), ("/rules", "rules"), ("/connected", "connected"),
                           ("/log", "log")):
            r.add_get(path, self._page(page))
            r.add_get(f"/fragment/{page}", self._fragment(page))
        r.add_get("/diagnostics", self.diagnostics)
        r.add_post("/diagnostics", self.diagnostics)
        self.editor.routes(r)
        r.add_post("/interfaces/{name}/{action:ifup|ifdown}", self.iface_action)
        # JSON API
        r.add_get("/api/openapi.json", self.api_openapi)
        for name in ("status", "interfaces", "policies", "connected", "rules"):
            r.add_get(f"/api/{name}", self._api_report(name))
        r.add_get("/api/events", self.api_events)
        r.add_get("/api/explain", self.api_explain)
        r.add_get("/api/config", self.api_config)
        r.add_put("/api/config", self.api_config_put)
        r.add_post("/api/interfaces/{name}/{action:ifup|ifdown}", self.api_iface_action)
        r.add_get("/metrics", self.metrics_handler)
        return app

    # ------------------------------------------------------------ middleware
    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The security headers on every answer: pages, redirects, errors."""
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            _secure(exc.headers)
            raise
        except Exception:
            log.exception("web UI: %s %s failed", request.method, request.path)
            resp = web.json_response({"error": "internal error"}, status=500)
        _secure(resp.headers)
        return resp

    @web.middleware
    async def _current(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``CURRENT_REQUEST`` while the handler runs (see WebLifecycle)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        token = CURRENT_REQUEST.set(done)
        try:
            return await handler(request)
        finally:
            CURRENT_REQUEST.reset(token)
            done.set_result(None)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/login" or path.startswith("/static/"):
            if request.method == "POST":
                refused = await conn.read_body(request, conn.LOGIN_BODY_MAX)
                if refused:
                    return refused
            return await handler(request)
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            verdict = await self._basic(request) if path == "/metrics" else None
            if verdict is not None and verdict.ok:
                return await handler(request)
            if verdict is not None and verdict.status != 401:
                return web.json_response({"error": "too many password attempts; wait"},
                                         status=verdict.status,
                                         headers={"Retry-After": str(verdict.retry_after)})
            if path.startswith("/api/") or path == "/metrics":
                headers = {"WWW-Authenticate": 'Basic realm="mwan"'} if path == "/metrics" \
                    else {}
                return web.json_response({"error": "login required"}, status=401,
                                         headers=headers)
            if request.method != "GET":
                return web.json_response({"error": "login required"}, status=401)
            raise web.HTTPSeeOther("/login")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if not self._same_origin(request):
                return web.json_response({"error": "cross-origin request refused"}, status=403)
            refused = await conn.read_body(request)  # with a session only
            if refused:
                return refused
            given = request.headers.get("X-CSRF-Token")
            if given is None and request.content_type in FORMS:
                given = str((await request.post()).get("csrf", ""))
            if not auth.csrf_ok(session, given):
                return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
        request[SESSION_KEY] = session
        return await handler(request)

    def _same_origin(self, request: web.Request) -> bool:
        """No Origin, or one with this request's scheme, host and port."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            o, us = URL(origin), URL.build(scheme=request.scheme, authority=request.host)
            return bool(o.host) and (o.scheme, o.host, o.port) == (us.scheme, us.host, us.port)
        except ValueError:
            return False

    async def _basic(self, request: web.Request) -> guard.Verdict:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return guard.Verdict(False)
        try:
            _user, _, pw = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return guard.Verdict(False)
        return await self.guard.check_basic(request.remote, header, pw,
                                            self.door.config.globals.web_password_hash)

    def _cookie(self, resp: web.StreamResponse, token: str) -> None:
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=self.tls, max_age=int(auth.SESSION_TTL))

    # ------------------------------------------------------------ login
    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return pages.html(pages.login_page(""))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        verdict = await self.guard.check(request.remote, str(form.get("password", "")),
                                         self.door.config.globals.web_password_hash)
        if not verdict.ok:
            if verdict.status == 401:
                return pages.html(pages.login_page("Wrong password."), status=401)
            resp = pages.html(pages.login_page(
                f"Too many attempts; try again in {verdict.retry_after} s."),
                status=verdict.status)
            resp.headers["Retry-After"] = str(verdict.retry_after)
            return resp
        session = self.sessions.new()
        resp = web.HTTPSeeOther("/")
        self._cookie(resp, session.token)
        raise resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(COOKIE))
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    # ------------------------------------------------------------ data
    async def report(self, rules: bool = True) -> dict[str, Any]:
        """The ``status`` report; without the nft rule counters when a page does not show them."""
        rep: dict[str, Any] = await self.door.call("report", {"rules": rules})
        return rep

    async def events(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest interface events and repairs, newest first."""
        events: list[dict[str, Any]] = await self.door.call("events", {"limit": limit})
        return events

    # ------------------------------------------------------------ pages
    def _page(self, name: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            body = await self._render(name, request[SESSION_KEY])
            return pages.html(pages.layout(name, body, request[SESSION_KEY], live=name))
        return handler

    def _fragment(self, name: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return pages.html(await self._render(name, request[SESSION_KEY]))
        return handler

    async def _render(self, name: str, session: auth.Session) -> str:
        if name == "log":
            return pages.log_body(await self.events())
        rep = await self.report(rules=name == "rules")
        if name == "overview":
            return pages.overview_body(rep, await self.events(20), time.time(), session.csrf)
        if name == "rules":
            return pages.rules_body(rep)
        return pages.connected_body(rep)

    async def iface_action(self, request: web.Request) -> web.StreamResponse:
        await self._iface_action(request)
        raise web.HTTPSeeOther("/")

    async def _iface_action(self, request: web.Request) -> Any:
        name, action = request.match_info["name"], request.match_info["action"]
        try:
            return await self.door.call(action, {"interface": name})
        except ControlError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    async def diagnostics(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        explain_res: dict[str, Any] | None = None
        ping_res: dict[str, Any] | None = None
        error = ""
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: str(v) for k, v in (await request.post()).items()}
            try:
                if form.get("do") == "ping":
                    ping_res = await self.ping(form.get("interface", ""), form.get("target", ""),
                                               int(form.get("count") or 3))
                else:
                    explain_res = await self.explain(form)
            except (ValueError, KeyError, ControlError) as exc:
                error = str(exc)
        ifaces = [i.name for i in self.door.config.enabled_interfaces]
        body = pages.diagnostics_body(ifaces, form, explain_res, ping_res, error, session.csrf)
        return pages.html(pages.layout("diagnostics", body, session))

    async def explain(self, q: dict[str, str]) -> dict[str, Any]:
        res: dict[str, Any] = await self.door.call("explain", diagnostics.explain_args(q))
        return res

    async def ping(self, name: str, target: str, count: int) -> dict[str, Any]:
        return await diagnostics.ping_through(self.door, name, target, count)

    # ------------------------------------------------------------ API
    async def api_openapi(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(openapi.SPEC)

    def _api_report(self, name: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            rep = await self.report()
            return web.json_response(rep if name == "status" else {name: rep[name]},
                                     dumps=_dumps)
        return handler

    async def api_events(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = max(0, min(int(request.query.get("limit", 200)), 1000))
        except ValueError:
            return web.json_response({"error": "limit must be a whole number"}, status=400)
        return web.json_response({"events": await self.events(limit)})

    async def api_explain(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(await self.explain(dict(request.query)))
        except (ValueError, KeyError, ControlError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def api_config(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"path": self.door.config_path,
                                  "text": self.editor.read_text(),
                                  "config": config_to_dict(self.door.config)}, dumps=_dumps)

    async def api_config_put(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.text())
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return web.json_response({"error": 'expected {"text": "..."}'}, status=400)
        confirm = body.get("confirm_empty", False) is True or \
            request.query.get("confirm_empty") in ("1", "true")
        status, problems = await self.editor.try_apply(body["text"], confirm_empty=confirm)
        if problems:
            return web.json_response({"applied": False, "errors": [
                {"path": p.path, "line": p.line, "section": p.section, "option": p.option,
                 "message": p.message, "text": str(p)} for p in problems],
                "error": "; ".join(p.message for p in problems)}, status=status)
        return web.json_response({"applied": True})

    async def api_iface_action(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response(await self._iface_action(request))
        except web.HTTPBadRequest as exc:
            return web.json_response({"error": exc.text}, status=400)

    async def metrics_handler(self, request: web.Request) -> web.StreamResponse:
        body, content_type = await self.metrics.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp


def _secure(headers: MutableMapping[str, str]) -> None:
    for k, v in SECURITY_HEADERS.items():
        headers.setdefault(k, v)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
