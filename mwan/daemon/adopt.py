"""What a running daemon leaves for the next one: the interfaces' online states.

A daemon that dies (``kill -9``, a crash) leaves the kernel as it was
(fail-static: the nft table, the rules and routes keep routing).  The next
``mwan3 start`` adopts that state instead of rebuilding it: its first apply
is a difference against what the kernel holds, with no conntrack flush and
no moment without the table.  So that online WANs stay in service while
their trackers warm up, each daemon keeps ``adopt.json`` in the run dir
(a tmpfs: gone after a reboot, when there is nothing to adopt) with every
interface's online state, rewritten atomically when one changes.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("mwan")

STATE_NAME = "adopt.json"


def save(run_dir: str, online: Mapping[str, bool]) -> None:
    path = os.path.join(run_dir, STATE_NAME)
    fd, tmp = tempfile.mkstemp(prefix=".adopt.", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "online": dict(online)}, fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load(run_dir: str) -> dict[str, bool] | None:
    """The online states a previous daemon left (None: none, or unreadable)."""
    path = os.path.join(run_dir, STATE_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            data: Any = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    online = data.get("online") if isinstance(data, dict) else None
    if not isinstance(online, dict):
        return None
    return {str(k): bool(v) for k, v in online.items()}


def remove(run_dir: str) -> None:
    try:
        os.unlink(os.path.join(run_dir, STATE_NAME))
    except FileNotFoundError:
        pass
