"""The web password gave root: user_script could be pointed at any file (issue 11, item 6).

From the config editor, user_script set to the config file itself (run
through /bin/sh) ran a ``$(...)`` in a comment as uid 0.  Options that name a
program or a file the daemon runs or reads (user_script, web_cert, web_key)
and the password hash can now only be changed in the file, as root: the web
UI and the API refuse them with 403, naming the option, and change nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from .web_fake import client, config_text, login

EVIL = "\toption user_script '/etc/config/mwan3'\n"


@pytest.mark.parametrize("extra", [EVIL, ("\toption web_cert '/etc/shadow'\n"
                                           "\toption web_key '/etc/shadow'\n")])
def test_api_refuses_root_only_options(tmp_path: Path, extra: str) -> None:
    async def main() -> tuple[int, dict[str, Any]]:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            r = await c.put("/api/config", json={"text": config_text(extra=extra)},
                            headers={"X-CSRF-Token": csrf})
            return r.status, await r.json()

    before = config_text()
    status, body = asyncio.run(main())
    assert status == 403, body
    name = "user_script" if "user_script" in extra else "web_cert"
    assert name in body["error"] and "as root" in body["error"], body
    assert (tmp_path / "mwan3").read_text() == before


def test_section_form_and_raw_editor_refuse_user_script(tmp_path: Path) -> None:
    async def main() -> tuple[int, str, int, str, int]:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            r = await c.post("/config/section", data={
                "csrf": csrf, "section": "globals", "opt:user_script": "/tmp/evil"})
            form_status, form_page = r.status, await r.text()
            r = await c.post("/config/raw", data={"csrf": csrf,
                                                  "text": config_text(extra=EVIL)})
            raw_status, raw_page = r.status, await r.text()
            # the same file, hash and all, is fine: only changes are refused
            r = await c.post("/config/raw", data={"csrf": csrf, "text": config_text() +
                                                  "# a comment\n"})
            return form_status, form_page, raw_status, raw_page, r.status

    form_status, form_page, raw_status, raw_page, same = asyncio.run(main())
    assert form_status == 403 and "user_script can only be changed" in form_page
    assert raw_status == 403 and "user_script can only be changed" in raw_page
    assert same == 200
    assert "/tmp/evil" not in (tmp_path / "mwan3").read_text()
