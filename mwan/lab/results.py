"""What lab measurements return: frozen values and the parsers that build them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mwan.lab.addressing import wan_of


@dataclass(frozen=True)
class ClientResult:
    """Outcome of :meth:`Lab.connect_many`.

    ``seen`` counts replies per source address as the server saw it;
    ``wans`` the same mapped to WAN indexes (addresses that are no WAN's
    are only in ``seen``); ``errors`` counts failures by kind (``timeout``,
    ``refused`` and ``unreachable`` always present).
    """

    count: int
    ok: int
    seen: dict[str, int]
    wans: dict[int, int]
    ports: dict[int, int]
    errors: dict[str, int]
    elapsed: float

    @property
    def failed(self) -> int:
        """Connections that got no answer."""
        return self.count - self.ok

    def share(self, k: int) -> float:
        """Fraction of all attempted connections that went out WAN ``k``."""
        return self.wans.get(k, 0) / self.count if self.count else 0.0

    @property
    def only_wan(self) -> int | None:
        """The WAN every answered connection used, or None (none answered, or several WANs)."""
        if self.ok == 0 or len(self.wans) != 1 or sum(self.wans.values()) != self.ok:
            return None
        return next(iter(self.wans))


def parse_client_output(text: str, isps: int) -> ClientResult:
    """Build a :class:`ClientResult` from ``python -m mwan.lab.client`` JSON output."""
    raw = json.loads(text)
    seen = {str(k): int(v) for k, v in raw["seen"].items()}
    wans: dict[int, int] = {}
    for addr, n in seen.items():
        k = wan_of(addr, isps)
        if k is not None:
            wans[k] = wans.get(k, 0) + n
    return ClientResult(
        count=int(raw["count"]),
        ok=int(raw["ok"]),
        seen=seen,
        wans=dict(sorted(wans.items())),
        ports={int(k): int(v) for k, v in raw["ports"].items()},
        errors={str(k): int(v) for k, v in raw["errors"].items()},
        elapsed=float(raw["elapsed"]),
    )


@dataclass(frozen=True)
class PingResult:
    """Outcome of :meth:`Lab.ping`: packets sent and answered, and ping's complaint if any."""

    transmitted: int
    received: int
    error: str = ""

    @property
    def loss(self) -> float:
        """Fraction lost (1.0 when nothing could be sent)."""
        if self.transmitted == 0:
            return 1.0
        return 1 - self.received / self.transmitted

    @property
    def ok(self) -> bool:
        """At least one reply."""
        return self.received > 0


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def parse_ping(stdout: str, stderr: str = "") -> PingResult:
    """Read iputils ping's summary line; no summary means nothing was sent."""
    m = _PING_SUMMARY.search(stdout)
    if not m:
        return PingResult(0, 0, (stderr or stdout).strip())
    return PingResult(int(m.group(1)), int(m.group(2)), stderr.strip())


@dataclass(frozen=True)
class IspCounters:
    """Packets an ISP dropped: BCP38 (wrong source), outage, and random loss."""

    bcp38: int
    outage: int
    loss: int


def parse_isp_counters(nft_json: str) -> IspCounters:
    """Read the named counters from ``nft -j list counters table inet lab``."""
    packets = {}
    for item in json.loads(nft_json)["nftables"]:
        counter = item.get("counter")
        if counter:
            packets[counter["name"]] = int(counter["packets"])
    return IspCounters(
        bcp38=packets.get("bcp38_drops", 0),
        outage=packets.get("outage_drops", 0),
        loss=packets.get("loss_drops", 0),
    )
