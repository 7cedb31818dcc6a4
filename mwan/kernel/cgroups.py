"""cgroup v2 groups behind ``mwan3 use IFACE CMD``.

The daemon makes one cgroup per interface under a directory of its own
(``mwan-<hash of the run dir>``, so several routers on one machine keep
apart) and attaches to each a program that marks every new socket with the
interface's mark (:mod:`mwan.kernel.sockmark`).  ``mwan3 use`` moves itself
into the group and execs the command: every socket the command and its
children open then leaves by the interface, with no change to them.

Any cgroup2 mount will do.  ``ip netns exec`` remounts ``/sys`` in a private
mount namespace without the cgroup mounts; there (and only in a mount
namespace not known to be init's) :func:`ensure_mounted` mounts cgroup2 at
``/sys/fs/cgroup``: it is the same hierarchy, so every namespace sees the
same groups.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from dataclasses import dataclass

from . import sockmark

log = logging.getLogger("mwan.cgroups")

MOUNT_POINT = "/sys/fs/cgroup"


class CgroupError(Exception):
    pass


@dataclass(frozen=True)
class Mount:
    point: str  # where it is mounted
    root: str  # which cgroup of the hierarchy the mount shows at its top


@dataclass(frozen=True)
class UseGroup:
    """One interface's group."""

    iface: str
    directory: str  # absolute path in this mount namespace
    hierarchy_path: str  # path from the hierarchy's root, e.g. "/mwan-1a2b3c4d/wan"
    mark: int


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
            .replace("\\134", "\\")


def cgroup2_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    out = []
    try:
        with open(mountinfo) as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
                    out.append(Mount(_unescape(fields[4]), _unescape(fields[3])))
    except OSError:
        pass
    return out


def first_mount(mounts: list[Mount]) -> Mount | None:
    """The cgroup2 mount to use: the one showing the most of the hierarchy, then the shortest."""
    if not mounts:
        return None
    return min(mounts, key=lambda m: (m.root.count("/") if m.root != "/" else 0, len(m.point)))


def _private_mount_ns() -> bool:
    """True unless we know we share init's mount namespace (unknown counts as private:
    /proc/1 may be out of reach in a container, and an empty /sys/fs/cgroup there is
    the ``ip netns exec`` case)."""
    try:
        return os.readlink("/proc/self/ns/mnt") != os.readlink("/proc/1/ns/mnt")
    except OSError:
        return True


def ensure_mounted() -> Mount:
    """A cgroup2 mount; mounted at /sys/fs/cgroup if there is none and we may (module doc)."""
    m = first_mount(cgroup2_mounts())
    if m is not None:
        return m
    if not _private_mount_ns():
        raise CgroupError("no cgroup2 file system is mounted; 'mwan3 use' needs one "
                          f"(mount -t cgroup2 none {MOUNT_POINT})")
    if not os.path.isdir(MOUNT_POINT) or os.listdir(MOUNT_POINT):
        raise CgroupError(f"no cgroup2 file system is mounted and {MOUNT_POINT} is not an "
                          "empty directory to mount one on")
    proc = subprocess.run(["mount", "-t", "cgroup2", "none", MOUNT_POINT],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CgroupError(f"cannot mount cgroup2 at {MOUNT_POINT}: {proc.stderr.strip()}")
    log.info("mounted cgroup2 at %s in this mount namespace", MOUNT_POINT)
    m = first_mount(cgroup2_mounts())
    if m is None:
        raise CgroupError(f"mounted cgroup2 at {MOUNT_POINT} but cannot see it")
    return m


def base_name(run_dir: str) -> str:
    digest = hashlib.sha1(os.path.abspath(run_dir).encode()).hexdigest()[:8]
    return f"mwan-{digest}"


def group_for(mount: Mount, run_dir: str, iface: str, mark: int) -> UseGroup:
    rel = f"{base_name(run_dir)}/{iface}"
    root = mount.root.strip("/")
    hierarchy = "/" + "/".join(p for p in (root, rel) if p)
    return UseGroup(iface, os.path.join(mount.point, rel), hierarchy, mark)


def make_groups(run_dir: str, marks: dict[str, int]) -> dict[str, UseGroup]:
    """One group per interface whose sockets get its mark; groups of interfaces gone go."""
    mount = ensure_mounted()
    base = os.path.join(mount.point, base_name(run_dir))
    os.makedirs(base, exist_ok=True)
    out = {}
    for name, mark in marks.items():
        g = group_for(mount, run_dir, name, mark)
        os.makedirs(g.directory, exist_ok=True)
        try:
            sockmark.attach(g.directory, mark)
        except OSError as exc:
            raise CgroupError(str(exc)) from None
        out[name] = g
    _remove_subgroups(base, mount.point, keep=set(out))
    return out


def _remove_subgroups(base: str, root: str, keep: set[str] | frozenset[str] = frozenset()
                      ) -> None:
    for entry in os.listdir(base):
        path = os.path.join(base, entry)
        if os.path.isdir(path) and entry not in keep:
            _remove_group(path, root)


def _remove_group(path: str, root: str) -> None:
    """Move any process left in a group to the root group, then remove the group."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as fh:
            pids = fh.read().split()
        for pid in pids:
            try:
                with open(os.path.join(root, "cgroup.procs"), "w") as out:
                    out.write(pid)
            except OSError:
                pass
        os.rmdir(path)
    except OSError as exc:
        log.warning("could not remove cgroup %s: %s", path, exc)


def remove_groups(run_dir: str) -> None:
    try:
        m = ensure_mounted()
    except CgroupError:
        return
    base = os.path.join(m.point, base_name(run_dir))
    if not os.path.isdir(base):
        return
    _remove_subgroups(base, m.point)
    _remove_group(base, m.point)


def enter(hierarchy_path: str) -> None:
    """Move this process into the group at ``hierarchy_path`` (as the daemon reported it)."""
    mount = ensure_mounted()
    root = mount.root.rstrip("/")
    if root and not (hierarchy_path == root or hierarchy_path.startswith(root + "/")):
        raise CgroupError(f"cgroup {hierarchy_path} is outside this cgroup namespace")
    directory = os.path.join(mount.point, hierarchy_path[len(root):].lstrip("/"))
    try:
        with open(os.path.join(directory, "cgroup.procs"), "w") as fh:
            fh.write(str(os.getpid()))
    except OSError as exc:
        raise CgroupError(f"cannot join cgroup {directory}: {exc.strerror}") from None
