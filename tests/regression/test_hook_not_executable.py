"""Issue 11 item 6: a non-executable user_script ran through /bin/sh (as root).

With the web password one could point user_script at the config file and put
``$(...)`` in a comment.  Now a script that is not executable, or that a user
other than root can change, is refused with a log line and never run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from mwan.daemon import hooks


def run(path: Path) -> int | None:
    return asyncio.run(hooks.run_user_script(str(path), "ifup", "wan", "wan1", timeout=10))


def test_a_non_executable_file_is_refused(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "ran"
    cfg = tmp_path / "mwan3"
    cfg.write_text(f"config globals 'globals'\n# $(touch {marker})\ntouch {marker}\n")
    os.chmod(cfg, 0o644)
    with caplog.at_level(logging.ERROR, logger="mwan.daemon.hooks"):
        assert run(cfg) is None
    assert not marker.exists()
    assert any("not executable" in r.getMessage() and "never run through /bin/sh"
               in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_a_script_others_can_write_is_refused(tmp_path: Path, mode: int,
                                              caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "mwan3.user"
    path.write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(path, mode)
    with caplog.at_level(logging.ERROR, logger="mwan.daemon.hooks"):
        assert run(path) is None
    assert not marker.exists()
    assert "writable by group or others" in caplog.text


def test_a_script_in_a_directory_others_can_write_is_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    marker = tmp_path / "ran"
    path = d / "mwan3.user"
    path.write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(path, 0o755)
    with caplog.at_level(logging.ERROR, logger="mwan.daemon.hooks"):
        assert run(path) is None
    assert not marker.exists()
    assert "a user other than root can change" in caplog.text


def test_an_executable_script_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "mwan3.user"
    path.write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(path, 0o755)
    assert run(path) == 0
    assert marker.exists()
