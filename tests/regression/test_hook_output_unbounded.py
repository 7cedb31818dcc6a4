"""Issue 11 item 9: a script's output was kept in memory without bound (400 MB -> 879 MB RSS).

Now only the last few KB are kept, for the log; the rest is discarded as it is read.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from pathlib import Path

import pytest

from mwan.daemon import hooks

from .hook_helpers import script


def test_50_mb_of_output_is_not_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 50 MB of 'x' lines, then a last line the log must show; exit 1 so it is logged
    path = script(tmp_path, "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 52428800\n"
                            "echo THE-LAST-LINE\nexit 1\n")
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, logger="mwan.daemon.hooks"):
            rc = asyncio.run(hooks.run_user_script(path, "ifup", "wan", "wan1", timeout=60))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rc == 1
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.0f} MB held for 50 MB of output"
    line = next(r.getMessage() for r in caplog.records if "exited 1" in r.getMessage())
    assert line.endswith("THE-LAST-LINE") and len(line) < 1000, line[-200:]
