"""The web UI's config editor: one form per section, or the whole file as text.

A change is validated with the same model as ``mwan3 check``; errors are
shown with file, line, section and option and change nothing; a valid change
is written back atomically (comments and untouched lines kept, through
:mod:`mwan.config.edit`) and applied at once by the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..config.edit import EditError, Values, add_section, delete_section, set_section
from ..config.errors import ConfigError, Problem
from ..config.uci import UciSection, parse_uci
from ..daemon.control import ControlError
from . import pages
from .auth import Session

if TYPE_CHECKING:
    from .server import WebServer


def session_of(request: web.Request) -> Session:
    from .server import SESSION_KEY

    return request[SESSION_KEY]


def changed_options(sec: UciSection, form: dict[str, str]) -> dict[str, Values]:
    """The options a section form changed (untouched ones keep their lines as written).

    A list-capable option takes one value per line; one value where the file
    had an ``option`` stays an ``option``.
    """
    lists = pages.list_options(sec.type)
    out: dict[str, Values] = {}
    for key, raw in form.items():
        if not key.startswith("opt:"):
            continue
        name = key[4:]
        current = sec.get(name)
        shown = "" if current is None else (
            "\n".join(current.values) if name in lists else current.value)
        value = raw.replace("\r\n", "\n").strip()
        if value == shown.strip():
            continue
        if name not in lists:
            out[name] = value or None
            continue
        items = [v.strip() for v in value.splitlines() if v.strip()]
        if not items:
            out[name] = None
        elif len(items) == 1 and (current is None or current.kind == "option"):
            out[name] = items[0]
        else:
            out[name] = items
    return out


class ConfigEditor:
    def __init__(self, server: WebServer) -> None:
        self.server = server

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/config", self.config_page)
        r.add_post("/config/section", self.config_section)
        r.add_post("/config/add", self.config_add)
        r.add_post("/config/delete", self.config_delete)
        r.add_get("/config/raw", self.config_raw)
        r.add_post("/config/raw", self.config_raw)

    def read_text(self) -> str:
        with open(self.server.daemon.config_path, encoding="utf-8") as fh:
            return fh.read()

    async def config_page(self, request: web.Request) -> web.StreamResponse:
        return self._config_view(request, self.read_text(), [], None, "")

    def _config_view(self, request: web.Request, text: str, problems: list[Problem],
                     focus: str | None, message: str, status: int = 200,
                     form: dict[str, str] | None = None) -> web.StreamResponse:
        try:
            sections = parse_uci(text, self.server.daemon.config_path)
        except ValueError:
            sections = ()
        body = pages.config_body(sections, problems, focus, message, form or {},
                                 session_of(request).csrf)
        return pages.html(pages.layout("config", body, session_of(request)), status=status)

    async def try_apply(self, text: str) -> list[Problem]:
        try:
            await self.server.daemon.apply_config_text(text)
        except ConfigError as exc:
            return list(exc.problems)
        except ControlError as exc:
            return [Problem(self.server.daemon.config_path, 0, None, None, str(exc))]
        return []

    async def config_section(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        name = form.get("section", "")
        text = self.read_text()
        try:
            sec = next(s for s in parse_uci(text, self.server.daemon.config_path) if s.name == name)
        except StopIteration:
            raise web.HTTPBadRequest(text=f"no section {name!r}") from None
        options = changed_options(sec, form)
        try:
            candidate = set_section(text, name, options, self.server.daemon.config_path)
        except (EditError, ValueError) as exc:
            problem = Problem(self.server.daemon.config_path, 0, name, None, str(exc))
            return self._config_view(request, text, [problem], name, "", 400)
        problems = await self.try_apply(candidate)
        if problems:
            return self._config_view(request, candidate, problems, name,
                                     "Not applied: the config has errors (nothing changed).",
                                     422, form)
        return self._config_view(request, self.read_text(), [], name,
                                 f"Applied: section '{name}' saved and in effect.")

    async def config_add(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        text = self.read_text()
        try:
            candidate = add_section(text, form.get("type", ""), form.get("name", "").strip(), {},
                                    self.server.daemon.config_path)
        except (EditError, ValueError) as exc:
            problem = Problem(self.server.daemon.config_path, 0, None, None, str(exc))
            return self._config_view(request, text, [problem], None, "", 400)
        problems = await self.try_apply(candidate)
        if problems:
            return self._config_view(request, text, problems, None,
                                     "Not applied: the config has errors (nothing changed).", 422)
        return self._config_view(request, self.read_text(), [], form.get("name"),
                                 f"Added section '{form.get('name')}'.")

    async def config_delete(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        text = self.read_text()
        try:
            candidate = delete_section(text, form.get("section", ""),
                                       self.server.daemon.config_path)
        except (EditError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        problems = await self.try_apply(candidate)
        if problems:
            return self._config_view(request, text, problems, None,
                                     "Not applied: the config has errors (nothing changed).", 422)
        return self._config_view(request, self.read_text(), [], None,
                                 f"Deleted section '{form.get('section')}'.")

    async def config_raw(self, request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        text, problems, message, status = self.read_text(), [], "", 200
        if request.method == "POST":
            text = str((await request.post()).get("text", "")).replace("\r\n", "\n")
            problems = await self.try_apply(text)
            message = "Not applied: the config has errors (nothing changed)." if problems \
                else "Applied: the config is saved and in effect."
            status = 422 if problems else 200
        body = pages.raw_body(text, problems, message, session.csrf)
        return pages.html(pages.layout("config", body, session), status=status)
