"""The daemon's view of each interface, and what it reads off the kernel facts for one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..config.model import Interface
from ..plan.names import MAIN_TABLE
from ..plan.state import KernelFacts
from ..track.dampen import Dampening


@dataclass
class IfaceStatus:
    """The daemon's mutable view of one interface."""

    name: str
    admin_up: bool = True  # False after `mwan3 ifdown`
    online: bool = False  # tracker verdict (or initial_state)
    carrier: bool = False
    device_present: bool = False
    online_since: float | None = None
    offline_since: float | None = None
    up_since: float | None = None
    events: list[tuple[float, str]] = field(default_factory=list)
    dampening: Dampening = field(default_factory=Dampening)  # flap_threshold's hold-down
    hold_timer: asyncio.TimerHandle | None = None  # ends the hold-down

    @property
    def held(self) -> bool:
        """Held down for flapping: out of service until the hold-down timer releases it."""
        return self.dampening.held


def gateway_for(iface: Interface, facts: KernelFacts) -> str | None:
    """``option gateway``, else main's lowest-metric default route through the device."""
    if iface.gateway is not None:
        return str(iface.gateway)
    best: tuple[int, str] | None = None
    for r in facts.routes:
        if r.table == MAIN_TABLE and r.is_default and r.dev == iface.device and r.family == iface.family \
                and r.gateway is not None:
            metric = r.metric or 0
            if best is None or metric < best[0]:
                best = (metric, r.gateway)
    return best[1] if best else None


def addresses_for(iface: Interface, facts: KernelFacts) -> tuple[str, ...]:
    out = []
    for a in facts.addresses:
        if a.dev != iface.device or a.family != iface.family:
            continue
        if a.family == "ipv6" and a.address.lower().startswith("fe80"):
            continue
        out.append(a.address)
    return tuple(out)
