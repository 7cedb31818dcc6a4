"""Side effects of interface events: the user script and the conntrack flush.

The user script (``/etc/mwan3.user`` by default) runs asynchronously with
ACTION, INTERFACE and DEVICE in its environment: values never pass through a
shell, the script has a time limit, and its failure is logged, never fatal.
A slow script cannot stall failover (NethServer #1014).

``flush_conntrack`` deletes only the conntrack entries carrying that
interface's mark (a filtered netlink flush), not the whole table as mwan3's
``echo f > /proc/net/nf_conntrack`` does, so established flows of the dead
WAN re-classify at once and everything else is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger(__name__)

SCRIPT_TIMEOUT = 30.0
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


async def run_user_script(path: str, action: str, interface: str, device: str,
                          timeout: float = SCRIPT_TIMEOUT) -> int | None:
    """Run the user script once; returns its exit status (None: absent or killed)."""
    if not path or not os.path.isfile(path):
        return None
    env = {"ACTION": action, "INTERFACE": interface, "DEVICE": device, "PATH": SAFE_PATH}
    argv = [path] if os.access(path, os.X_OK) else ["/bin/sh", path]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    except OSError as exc:
        log.error("user script %s could not run for %s %s: %s", path, action, interface, exc)
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        log.error("user script %s (%s %s) killed after %.0f s", path, action, interface, timeout)
        return None
    if proc.returncode != 0:
        log.warning("user script %s (%s %s) exited %s: %s", path, action, interface,
                    proc.returncode, out.decode(errors="replace").strip()[-500:])
    return proc.returncode


def flush_conntrack_mark(mark: int, mask: int) -> int:
    """Delete conntrack entries whose ``ct mark & mask == mark`` (blocking).

    Returns how many entries matched before the flush (for the log).
    """
    from pyroute2 import NFCTSocket

    sock = NFCTSocket()
    try:
        count = sum(1 for _ in sock.dump(mark=mark, mark_mask=mask))
        sock.flush(mark=mark, mark_mask=mask)
        return count
    finally:
        sock.close()
