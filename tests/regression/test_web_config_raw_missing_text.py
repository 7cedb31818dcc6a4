"""POST /config/raw without a ``text`` field emptied the config (issue 11, item 10).

An empty text validated as "0 interfaces" and all routing went.  A missing
field is now a 400; an edit that removes every interface needs an explicit
confirmation (the raw editor's checkbox, ``confirm_empty`` in the API).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .web_fake import client, config_text, login

NO_INTERFACES = "config globals 'globals'\n\toption web_enabled '1'\n"


def test_missing_text_is_a_400_and_changes_nothing(tmp_path: Path) -> None:
    async def main() -> int:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            return (await c.post("/config/raw", data={"csrf": csrf})).status

    assert asyncio.run(main()) == 400
    assert (tmp_path / "mwan3").read_text() == config_text()


def test_removing_every_interface_needs_confirmation(tmp_path: Path) -> None:
    # keep the root-only options as they are: the password hash
    text = config_text().split("config interface")[0]
    assert "interface" not in text.replace("web_", "")

    async def main() -> tuple[int, str, int, int, int]:
        async with client(tmp_path) as (c, _server):
            csrf = await login(c)
            r = await c.post("/config/raw", data={"csrf": csrf, "text": text})
            ui, page = r.status, await r.text()
            h = {"X-CSRF-Token": csrf}
            api = (await c.put("/api/config", json={"text": text}, headers=h)).status
            unchanged = (tmp_path / "mwan3").read_text() == config_text()
            ok = (await c.put("/api/config?confirm_empty=1", json={"text": text},
                              headers=h)).status
            return ui, page, api, int(unchanged), ok

    ui, page, api, unchanged, ok = asyncio.run(main())
    assert ui == 409 and 'name="confirm_empty"' in page
    assert api == 409 and unchanged
    assert ok == 200 and (tmp_path / "mwan3").read_text() == text
