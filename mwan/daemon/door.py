"""The narrow door into the daemon, for the web UI, the API and /metrics.

They see the daemon only through :class:`Door`: the config it runs, the
commands the control socket offers (``call``), a way to set a new config
(Tailscale's ``Set``), the router's addresses, and a subscription to its
events.  Nothing else of the daemon (its attributes, its private methods)
is theirs; a test hands them a stand-in that implements these few methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..config.model import Config


@dataclass(frozen=True)
class DaemonEvent:
    """Something the daemon did: an interface event, an apply, a repair."""

    kind: str  # "interface", "apply", "repair" or "ha" (this router's VRRP role changed)
    time: float
    interface: str | None = None
    action: str | None = None  # interface: ifup, connected, ...
    reason: str = ""
    seconds: float | None = None  # apply: how long it took


Listener = Callable[[DaemonEvent], None]


class Door(Protocol):
    @property
    def config(self) -> Config:
        """The config the daemon runs now (a frozen value)."""

    @property
    def config_path(self) -> str: ...

    def router_addresses(self) -> tuple[str, ...]:
        """The router's own addresses (the web UI listens on some of them)."""

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """A control-socket command (``state``, ``report``, ``events``, ``explain``,
        ``ifup``, ``ifdown``, ``use`` ...); raises ControlError."""

    async def set_config(self, text: str) -> None:
        """Validate, check against the kernel, write and apply a new config;
        raises ConfigError or ControlError and changes nothing when refused."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each event from now on; returns the unsubscribe."""
