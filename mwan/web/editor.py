"""The web UI's config editor: one form per section, or the whole file as text.

A change is validated with the same model as ``mwan3 check``; errors are
shown with file, line, section and option and change nothing; a valid change
is written back atomically (comments and untouched lines kept, through
:mod:`mwan.config.edit`) and applied at once by the daemon.

Two things the web password cannot do (403, 409):

- change an option that names a program or a file the daemon (root) runs or
  reads, and the password hash itself (``web=False`` in the option tables,
  :data:`~mwan.config.model.ROOT_ONLY`: ``user_script``, ``web_cert``,
  ``web_key``, ``web_password_hash``): those change only in the file, as root;
- remove every interface without saying so (``confirm_empty``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..config.edit import EditError, Values, add_section, delete_section, set_section
from ..config.errors import ConfigError, Problem
from ..config.model import ROOT_ONLY, Config
from ..config.uci import UciSection, UciSyntaxError, parse_uci
from ..daemon.control import ControlError
from . import pages
from .auth import Session
from .lifecycle import Listen, listen_of

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


def _root_only_values(text: str, path: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for sec in parse_uci(text, path):
        if sec.type == "globals":
            for opt in sec.options:
                if opt.name in ROOT_ONLY:
                    out[opt.name] = out.get(opt.name, ()) + tuple(opt.values)
    return out


def root_only_changes(old: str, new: str, path: str) -> list[str]:
    """The root-only options that ``new`` sets differently from ``old``."""
    try:
        before, after = _root_only_values(old, path), _root_only_values(new, path)
    except UciSyntaxError:
        return []  # the validation reports it
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def interface_count(text: str, path: str) -> int:
    try:
        return sum(1 for s in parse_uci(text, path) if s.type == "interface")
    except UciSyntaxError:
        return -1


def move_note(before: Listen | None, cfg: Config) -> str:
    """What the UI says when an applied change moves or stops the UI itself."""
    after = listen_of(cfg)
    if after == before:
        return ""
    if after is None:
        return " The web UI stops in a moment (web_enabled is off)."
    scheme = "https" if after[2] else "http"
    where = ", ".join(f"{scheme}://{a if ':' not in a else f'[{a}]'}:{after[1]}/"
                      for a in after[0])
    return f" The web UI moves to {where} in a moment."


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
        with open(self.server.door.config_path, encoding="utf-8") as fh:
            return fh.read()

    async def config_page(self, request: web.Request) -> web.StreamResponse:
        return self._config_view(request, self.read_text(), [], None, "")

    def _config_view(self, request: web.Request, text: str, problems: list[Problem],
                     focus: str | None, message: str, status: int = 200,
                     form: dict[str, str] | None = None) -> web.StreamResponse:
        try:
            sections = parse_uci(text, self.server.door.config_path)
        except ValueError:
            sections = ()
        body = pages.config_body(sections, problems, focus, message, form or {},
                                 session_of(request).csrf)
        return pages.html(pages.layout("config", body, session_of(request)), status=status)

    async def try_apply(self, text: str, confirm_empty: bool = False
                        ) -> tuple[int, list[Problem]]:
        """Check what the web may change, then apply: (HTTP status, problems)."""
        path = self.server.door.config_path
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            line = text.count("\n", 0, exc.start) + 1
            return 422, [Problem(path, line, None, None, "not valid text (a lone surrogate)")]
        current = self.read_text()
        root_only = root_only_changes(current, text, path)
        if root_only:
            return 403, [Problem(path, 0, None, name, f"option {name} can only be changed from "
                                 f"the CLI or the file, as root") for name in root_only]
        if not confirm_empty and interface_count(text, path) == 0 \
                and interface_count(current, path) > 0:
            return 409, [Problem(path, 0, None, None, "this removes every interface (all "
                                 "traffic would use the main table): confirm it "
                                 "(confirm_empty) to apply")]
        try:
            await self.server.door.set_config(text)
        except ConfigError as exc:
            return 422, list(exc.problems)
        except ControlError as exc:
            return 422, [Problem(path, 0, None, None, str(exc))]
        return 200, []

    async def config_section(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        name = form.get("section", "")
        text = self.read_text()
        try:
            sec = next(s for s in parse_uci(text, self.server.door.config_path) if s.name == name)
        except StopIteration:
            raise web.HTTPBadRequest(text=f"no section {name!r}") from None
        options = changed_options(sec, form)
        try:
            candidate = set_section(text, name, options, self.server.door.config_path)
        except (EditError, ValueError) as exc:
            problem = Problem(self.server.door.config_path, 0, name, None, str(exc))
            return self._config_view(request, text, [problem], name, "", 400)
        before = listen_of(self.server.door.config)
        status, problems = await self.try_apply(candidate)
        if problems:
            return self._config_view(request, candidate, problems, name,
                                     "Not applied: the config has errors (nothing changed).",
                                     status, form)
        return self._config_view(request, self.read_text(), [], name,
                                 f"Applied: section '{name}' saved and in effect."
                                 + move_note(before, self.server.door.config))

    async def config_add(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        text = self.read_text()
        try:
            candidate = add_section(text, form.get("type", ""), form.get("name", "").strip(), {},
                                    self.server.door.config_path)
        except (EditError, ValueError) as exc:
            problem = Problem(self.server.door.config_path, 0, None, None, str(exc))
            return self._config_view(request, text, [problem], None, "", 400)
        status, problems = await self.try_apply(candidate)
        if problems:
            return self._config_view(request, text, problems, None,
                                     "Not applied: the config has errors (nothing changed).",
                                     status)
        return self._config_view(request, self.read_text(), [], form.get("name"),
                                 f"Added section '{form.get('name')}'.")

    async def config_delete(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        text = self.read_text()
        try:
            candidate = delete_section(text, form.get("section", ""),
                                       self.server.door.config_path)
        except (EditError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        status, problems = await self.try_apply(candidate)
        if problems:
            return self._config_view(request, text, problems, None,
                                     "Not applied: the config has errors (nothing changed).",
                                     status)
        return self._config_view(request, self.read_text(), [], None,
                                 f"Deleted section '{form.get('section')}'.")

    async def config_raw(self, request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        text, message, status = self.read_text(), "", 200
        problems: list[Problem] = []
        if request.method == "POST":
            form = await request.post()
            if not isinstance(form.get("text"), str):
                raise web.HTTPBadRequest(text="the form has no 'text' field: nothing changed")
            text = str(form["text"]).replace("\r\n", "\n")
            before = listen_of(self.server.door.config)
            status, problems = await self.try_apply(text, form.get("confirm_empty") == "1")
            message = "Not applied: the config has errors (nothing changed)." if problems \
                else "Applied: the config is saved and in effect." + move_note(
                    before, self.server.door.config)
        body = pages.raw_body(text, problems, message, session.csrf, confirm=status == 409)
        return pages.html(pages.layout("config", body, session), status=status)
