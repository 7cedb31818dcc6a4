"""Running things in network namespaces, and removing namespaces again.

Everything here shells out to ``ip``/``nft`` with argument lists (never a
shell string).  A lab's namespaces are named ``<prefix><6 hex>-<role>``;
the owning process records itself in ``/run/mwan-lab/<lab id>.pid`` so that
:func:`cleanup_stale` can tell a crashed lab's leftovers from a live lab
in another process.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_DIR = Path("/run/mwan-lab")
NETNS_DIR = Path("/run/netns")
DEFAULT_PREFIX = "mwl"


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    """The argument list that runs ``argv`` inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 30,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion, text mode; raise :class:`LabError` if check and rc != 0."""
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(
        list(argv),
        check=False,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def run_parallel(jobs: Sequence[tuple[Sequence[str], str | None]], timeout: float = 30) -> None:
    """Start every ``(argv, stdin text)`` job at once, wait for all, raise on the first failure."""
    procs = [
        (
            argv,
            text,
            subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for argv, text in jobs
    ]
    failures = []
    for argv, text, proc in procs:
        out, err = proc.communicate(text, timeout=timeout)
        if proc.returncode != 0:
            failures.append(f"{' '.join(argv)} exited {proc.returncode}: {(err or out).strip()}")
    if failures:
        raise LabError("; ".join(failures))


def netns_names() -> list[str]:
    """Names of all named network namespaces (those under /run/netns)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def pids_in_netns(names: Iterable[str]) -> list[int]:
    """PIDs of processes whose network namespace is one of the named ones."""
    inodes = set()
    for name in names:
        try:
            st = os.stat(NETNS_DIR / name)
        except OSError:
            continue
        inodes.add((st.st_dev, st.st_ino))
    if not inodes:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            pids.append(int(entry))
    return pids


def kill_pids(pids: Iterable[int], grace: float = 1.0) -> None:
    """SIGTERM the pids, wait up to ``grace`` seconds, then SIGKILL what is left."""
    alive = set(pids)
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _exists(pid)}
        if alive:
            time.sleep(0.02)
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def delete_namespaces(names: Iterable[str]) -> None:
    """Kill processes inside the named namespaces, then delete them (missing ones are ignored)."""
    existing = [n for n in names if (NETNS_DIR / n).exists()]
    if not existing:
        return
    kill_pids(pids_in_netns(existing))
    script = "".join(f"netns del {n}\n" for n in existing)
    run(["ip", "-force", "-batch", "-"], input=script, check=False)


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), to tell reused pids apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def write_owner(lab_id: str) -> None:
    """Record this process as the owner of ``lab_id``."""
    OWNER_DIR.mkdir(parents=True, exist_ok=True)
    (OWNER_DIR / f"{lab_id}.pid").write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")


def remove_owner(lab_id: str) -> None:
    """Forget the owner record of ``lab_id``."""
    try:
        (OWNER_DIR / f"{lab_id}.pid").unlink()
    except FileNotFoundError:
        pass


def owner_alive(lab_id: str) -> bool:
    """True when the process that built ``lab_id`` still runs."""
    try:
        pid_s, start = (OWNER_DIR / f"{lab_id}.pid").read_text().split()
    except (OSError, ValueError):
        return False
    return _start_time(int(pid_s)) == start


def lab_ids(prefix: str = DEFAULT_PREFIX) -> dict[str, list[str]]:
    """Existing labs with this prefix: lab id -> its namespace names."""
    pattern = re.compile(rf"^({re.escape(prefix)}[0-9a-f]{{6}})-[a-z0-9]+$")
    labs: dict[str, list[str]] = {}
    for name in netns_names():
        m = pattern.match(name)
        if m:
            labs.setdefault(m.group(1), []).append(name)
    return labs


def cleanup_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete the namespaces of labs whose owning process is gone; return their names.

    Labs owned by a live process (another test run, a running demo) are
    left alone.  Safe to call at the start of every test session.
    """
    removed: list[str] = []
    for lab_id, names in lab_ids(prefix).items():
        if owner_alive(lab_id):
            continue
        log.info("removing stale lab %s: %s", lab_id, " ".join(names))
        delete_namespaces(names)
        remove_owner(lab_id)
        removed.extend(names)
    if OWNER_DIR.is_dir():
        live = set(lab_ids(prefix))
        for f in OWNER_DIR.glob(f"{prefix}*.pid"):
            if f.stem not in live and not owner_alive(f.stem):
                f.unlink(missing_ok=True)
    return removed


def probe() -> tuple[bool, str]:
    """Whether this process can build labs: (ok, reason when not)."""
    if os.geteuid() != 0:
        return False, "lab needs root (euid 0) to create network namespaces"
    name = f"{DEFAULT_PREFIX}probe{os.getpid()}"
    script = (
        f"netns add {name}\n"
        f"link add pa netns {name} type veth peer name pb netns {name}\n"
        f"link add pbr netns {name} type bridge\n"
    )
    try:
        proc = run(["ip", "-batch", "-"], input=script, check=False, timeout=10)
        if proc.returncode != 0:
            return False, f"cannot create a network namespace with veths: {proc.stderr.strip()}"
        nft = run(ns_argv(name, ["nft", "list", "tables"]), check=False, timeout=10)
        if nft.returncode != 0:
            return False, f"nft does not work in a namespace: {nft.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"cannot run ip/nft: {e}"
    finally:
        run(["ip", "netns", "del", name], check=False, timeout=10)
    return True, ""


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so context managers and atexit clean up.

    Only where the signal still has its default action and only from the
    main thread (Python allows handlers nowhere else).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _raise_exit)
