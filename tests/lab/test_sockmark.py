"""The socket-mark cgroup program on the real kernel (root; no namespace needed)."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from mwan.kernel import cgroups

pytestmark = pytest.mark.lab


def _mark_in(directory: str) -> int:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            with open(os.path.join(directory, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            os.write(w, str(s.getsockopt(socket.SOL_SOCKET, socket.SO_MARK)).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as fh:
        return int(fh.read() or -1)


def test_sockets_of_the_group_get_the_mark_and_a_new_mark_replaces_it() -> None:
    mount = cgroups.first_mount(cgroups.cgroup2_mounts())
    if mount is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup2 mount")
    run_dir = f"/tmp/mwtest-{uuid.uuid4().hex[:8]}"
    try:
        groups = cgroups.make_groups(run_dir, {"wan": 0x100})
        assert _mark_in(groups["wan"].directory) == 0x100
        groups = cgroups.make_groups(run_dir, {"wan": 0x3C00, "wanb": 0x200})
        assert _mark_in(groups["wan"].directory) == 0x3C00
        assert _mark_in(groups["wanb"].directory) == 0x200
        assert socket.socket().getsockopt(socket.SOL_SOCKET, socket.SO_MARK) == 0
        cgroups.make_groups(run_dir, {"wanb": 0x200})  # wan gone: its group goes
        assert not os.path.exists(groups["wan"].directory)
    finally:
        cgroups.remove_groups(run_dir)
    assert not os.path.exists(os.path.dirname(groups["wan"].directory))
