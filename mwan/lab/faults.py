"""Faults an ISP can have, switched on and off at run time (mixed into :class:`Lab`).

* carrier loss: ISP K takes its end of the router link down; the router's
  wanK shows NO-CARRIER.
* outage: carrier stays up, ISP K stops forwarding (both directions); the
  ISP's own address on the router link still answers.
* loss: ISP K drops N % of what it forwards from the router.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mwan.lab import topology
from mwan.lab.results import IspCounters, parse_isp_counters

if TYPE_CHECKING:
    from mwan.lab.topology import Names


class Faults:
    """Fault switches; expects ``names``, ``ip``, ``nft`` and ``exec`` from :class:`Lab`."""

    if TYPE_CHECKING:
        names: Names

        def ip(
            self, ns: str, *args: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]: ...

        def nft(
            self, ns: str, script: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]: ...

        def exec(
            self,
            ns: str,
            *argv: str,
            check: bool = True,
            timeout: float = 30,
            input: str | None = None,
            env: Mapping[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]: ...

    def cut_carrier(self, k: int) -> None:
        """ISP ``k`` takes its side of the router link down: wanK loses carrier."""
        self.ip(self.names.isp(k), "link", "set", "rtr", "down")

    def restore_carrier(self, k: int) -> None:
        """Bring ISP ``k``'s side of the router link back up."""
        self.ip(self.names.isp(k), "link", "set", "rtr", "up")

    def carrier(self, k: int) -> bool:
        """Whether the router's wanK has carrier (LOWER_UP)."""
        out = self.ip(self.names.router, "-j", "link", "show", "dev", f"wan{k}").stdout
        return "LOWER_UP" in json.loads(out)[0].get("flags", [])

    def outage(self, k: int) -> None:
        """ISP ``k`` stops forwarding anything (carrier stays up)."""
        self.nft(self.names.isp(k), topology.outage_nft(True))

    def end_outage(self, k: int) -> None:
        """ISP ``k`` forwards again."""
        self.nft(self.names.isp(k), topology.outage_nft(False))

    def set_loss(self, k: int, percent: float) -> None:
        """ISP ``k`` drops ``percent`` % of the packets it forwards from the router."""
        self.nft(self.names.isp(k), topology.loss_nft(percent))

    def clear_loss(self, k: int) -> None:
        """ISP ``k`` stops dropping packets at random."""
        self.set_loss(k, 0)

    def isp_counters(self, k: int) -> IspCounters:
        """Packets ISP ``k`` has dropped so far, by reason."""
        out = self.exec(
            self.names.isp(k), "nft", "-j", "list", "counters", "table", "inet", topology.ISP_TABLE
        ).stdout
        return parse_isp_counters(out)
