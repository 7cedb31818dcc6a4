"""Netlink events (links, addresses, routes) as a stream of small values.

No polling: one rtnetlink socket subscribed to the link, address, route and
rule groups.  Each message becomes a :class:`NetEvent`; the daemon decides what to
do with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV4_RULE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    RTNLGRP_IPV6_RULE,
)

from ..plan.state import RTPROT_MWAN

log = logging.getLogger(__name__)

GROUPS = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE
          | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_RULE | (1 << (RTNLGRP_IPV6_RULE - 1)))


@dataclass(frozen=True)
class NetEvent:
    kind: str  # "link", "addr", "route", "rule"
    removed: bool = False
    table: int | None = None  # route
    ours: bool = False  # route or rule made by mwan (proto 201)


async def events() -> AsyncIterator[NetEvent]:
    """Yield events forever (until cancelled)."""
    async with AsyncIPRoute() as ipr:
        await ipr.bind(groups=GROUPS)
        while True:
            async for msg in ipr.get():
                ev = _event(msg)
                if ev is not None:
                    yield ev
            await asyncio.sleep(0)


def _event(msg: object) -> NetEvent | None:
    get = getattr(msg, "get", None)
    if get is None:
        return None
    kind = get("event") or ""
    if kind in ("RTM_NEWLINK", "RTM_DELLINK"):
        return NetEvent("link", removed=kind == "RTM_DELLINK")
    if kind in ("RTM_NEWADDR", "RTM_DELADDR"):
        return NetEvent("addr", removed=kind == "RTM_DELADDR")
    if kind in ("RTM_NEWROUTE", "RTM_DELROUTE"):
        table = get("RTA_TABLE") or msg["table"]  # type: ignore[index]
        return NetEvent("route", table=table, removed=kind == "RTM_DELROUTE",
                        ours=msg["proto"] == RTPROT_MWAN)  # type: ignore[index]
    if kind in ("RTM_NEWRULE", "RTM_DELRULE"):
        return NetEvent("rule", removed=kind == "RTM_DELRULE",
                        ours=get("FRA_PROTOCOL") == RTPROT_MWAN)
    return None
