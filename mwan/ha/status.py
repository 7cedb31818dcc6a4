"""This router's HA state, read from keepalived, conntrackd and the kernel (never guessed).

- the VRRP role: the notify hook's role file (``run_dir/role``, written by
  keepalived's sync-group hook), and whether keepalived's pid is alive;
- the sync: ``conntrackd -s`` (its caches and the UDP counters on the sync
  link), the sync device's state and the kernel's neighbour entry of the
  peer (conntrackd talks to it every second, so FAILED means unreachable).

:func:`parse_stats` and :func:`sync_state` are pure; :func:`read_status`
runs the readers (a few ms; call it off the event loop).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from mwan.config.model import Ha

from .gen import CONNTRACKD, Paths

ROLES = ("MASTER", "BACKUP", "FAULT", "STOPPED", "UNKNOWN")
SYNC_STATES = ("ok", "link-down", "peer-unreachable", "conntrackd-down")
UNREACHABLE_NEIGH = ("FAILED", "INCOMPLETE")


@dataclass(frozen=True)
class SyncStats:
    """What ``conntrackd -s`` counts."""

    internal: int  # this router's flows (its kernel table, as conntrackd follows it)
    external: int  # the peer's flows, ready to commit on takeover
    sent: int  # packets sent on the sync link
    received: int
    send_errors: int
    receive_errors: int
    lost: int  # sync messages lost (sequence gaps)


@dataclass(frozen=True)
class HaStatus:
    role: str  # one of ROLES
    last_role: str | None  # the hook's last word (also when keepalived is stopped)
    role_since: float | None
    keepalived: bool
    sync: str  # one of SYNC_STATES
    sync_device: str
    link: str  # the sync device's operstate ("missing": no such device)
    peer: str
    peer_neighbour: str | None  # the kernel's neighbour state of the peer
    stats: SyncStats | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else 0


def parse_stats(text: str) -> SyncStats | None:
    """``conntrackd -s`` output → counters (None when it is not that output)."""
    parts = text.split("cache external:")
    if len(parts) != 2 or "cache internal:" not in parts[0]:
        return None
    active = r"current active connections:\s+(\d+)"
    udp = text.split("UDP traffic", 1)[1] if "UDP traffic" in text else ""
    return SyncStats(
        internal=_number(active, parts[0]), external=_number(active, parts[1]),
        sent=_number(r"(\d+) Pckts sent", udp), received=_number(r"(\d+) Pckts recv", udp),
        send_errors=_number(r"(\d+) Error send", udp),
        receive_errors=_number(r"(\d+) Error recv", udp),
        lost=_number(r"(\d+) Lost msgs", text))


def parse_role(text: str) -> tuple[str | None, float | None]:
    """The role file (``MASTER 1764570000``) → (role, since)."""
    words = text.split()
    if not words or words[0] not in ROLES:
        return None, None
    try:
        since = float(words[1]) if len(words) > 1 else None
    except ValueError:
        since = None
    return words[0], since


def sync_state(conntrackd_ok: bool, link: str, neighbour: str | None) -> str:
    """What the sync is: the link first, then conntrackd, then the peer."""
    if link not in ("up", "unknown"):
        return "link-down"
    if not conntrackd_ok:
        return "conntrackd-down"
    if neighbour in UNREACHABLE_NEIGH:
        return "peer-unreachable"
    return "ok"


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _pid_alive(path: str) -> bool:
    try:
        with open(path, encoding="ascii") as fh:
            pid = int(fh.read().split()[0])
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def _link(device: str) -> str:
    out = _run(["ip", "-j", "link", "show", "dev", device])
    try:
        data = json.loads(out) if out else []
    except ValueError:
        data = []
    if not data:
        return "missing"
    state = str(data[0].get("operstate", "UNKNOWN")).lower()
    if "UP" not in data[0].get("flags", []):
        return "down"
    return state


def _neighbour(peer: str, device: str) -> str | None:
    out = _run(["ip", "-j", "neigh", "show", "to", peer, "dev", device])
    try:
        data = json.loads(out) if out else []
    except ValueError:
        data = []
    states = data[0].get("state", []) if data else []
    return str(states[0]) if states else None


def read_role(ha: Ha) -> str:
    """This router's VRRP role as the hook last wrote it (STOPPED: keepalived is not running).

    Cheap (a small file and a pid): the daemon polls it to send role changes as events.
    """
    paths = Paths.of(ha)
    try:
        with open(paths.role_file, encoding="utf-8") as fh:
            last, _since = parse_role(fh.read())
    except OSError:
        last = None
    return (last or "UNKNOWN") if _pid_alive(paths.keepalived_pid) else "STOPPED"


def read_status(ha: Ha, conntrackd: str = CONNTRACKD) -> HaStatus:
    """Ask keepalived's files, conntrackd and the kernel; see the module docstring."""
    paths = Paths.of(ha)
    try:
        with open(paths.role_file, encoding="utf-8") as fh:
            last, since = parse_role(fh.read())
    except OSError:
        last, since = None, None
    alive = _pid_alive(paths.keepalived_pid)
    role = (last or "UNKNOWN") if alive else "STOPPED"
    out = _run([conntrackd, "-C", paths.conntrackd_conf, "-s"])
    stats = parse_stats(out) if out is not None else None
    link = _link(ha.sync_device)
    neighbour = _neighbour(str(ha.peer), ha.sync_device) if link != "missing" else None
    return HaStatus(role=role, last_role=last, role_since=since, keepalived=alive,
                    sync=sync_state(stats is not None, link, neighbour),
                    sync_device=ha.sync_device, link=link, peer=str(ha.peer),
                    peer_neighbour=neighbour, stats=stats)
