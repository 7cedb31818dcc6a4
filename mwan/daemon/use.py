"""The daemon's side of ``mwan3 use``: one cgroup per interface, kept in step with the config."""

from __future__ import annotations

import logging
from typing import Any

from ..kernel import cgroups
from .control import ControlError

log = logging.getLogger("mwan")


class UseGroups:
    """Made on the kernel thread; made again only when the (interface, mark) pairs change."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.groups: dict[str, cgroups.UseGroup] = {}
        self.error: str | None = None
        self._made_for: tuple[tuple[str, int], ...] | None = None

    def sync(self, marks: dict[str, int]) -> None:
        key = tuple(sorted(marks.items()))
        if key == self._made_for:
            return
        self._made_for = key
        try:
            self.groups, self.error = cgroups.make_groups(self.run_dir, marks), None
        except (cgroups.CgroupError, OSError) as exc:
            self.groups, self.error = {}, str(exc)
            log.warning("'mwan3 use' is unavailable: %s", exc)

    def remove(self) -> None:
        if self._made_for is not None:
            cgroups.remove_groups(self.run_dir)
            self.groups, self._made_for = {}, None

    def answer(self, iface: str, device: str, family: str, mark: int, online: bool
               ) -> dict[str, Any]:
        """What ``mwan3 use IFACE`` needs to join the interface's group."""
        group = self.groups.get(iface)
        if group is None:
            raise ControlError(f"'mwan3 use' is unavailable: {self.error or 'no cgroup yet'}")
        return {"interface": iface, "device": device, "cgroup": group.hierarchy_path,
                "mark": hex(mark), "family": family, "online": online}
