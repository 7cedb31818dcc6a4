"""``mwan3 use`` without root: the socket-mark program, mountinfo parsing, group paths."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mwan.kernel import cgroups, sockmark


def test_program_stores_the_mark_in_the_socket_and_allows_it() -> None:
    code = sockmark.program(0x3D00)
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert insns == [(0xB7, 0x02, 0, 0x3D00), (0x63, 0x21, 16, 0), (0xB7, 0x00, 0, 1),
                     (0x95, 0, 0, 0)]
    with pytest.raises(ValueError):
        sockmark.program(-1)


def test_cgroup2_mounts_from_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "25 30 0:22 / /sys rw - sysfs sysfs rw\n"
        "35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        "36 25 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
        "90 80 0:30 /some/where /mnt/with\\040space rw - cgroup2 none rw\n")
    mounts = cgroups.cgroup2_mounts(str(info))
    assert mounts == [cgroups.Mount("/sys/fs/cgroup/unified", "/"),
                      cgroups.Mount("/mnt/with space", "/some/where")]
    assert cgroups.first_mount(mounts) == mounts[0]
    assert cgroups.first_mount([]) is None
    assert cgroups.cgroup2_mounts(str(tmp_path / "missing")) == []


def test_group_paths_are_per_run_dir_and_interface() -> None:
    m = cgroups.Mount("/sys/fs/cgroup", "/")
    a = cgroups.group_for(m, "/run/a", "wan", 0x100)
    b = cgroups.group_for(m, "/run/b", "wan", 0x100)
    assert a.directory != b.directory and a.directory.endswith("/wan")
    assert a.hierarchy_path == "/" + cgroups.base_name("/run/a") + "/wan"
    nested = cgroups.group_for(cgroups.Mount("/mnt/cg", "/ns/root"), "/run/a", "wanb", 0x200)
    assert nested.hierarchy_path == "/ns/root/" + cgroups.base_name("/run/a") + "/wanb"
    assert nested.directory == "/mnt/cg/" + cgroups.base_name("/run/a") + "/wanb"
