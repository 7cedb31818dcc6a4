"""Apply a whole :class:`Desired` state, and remove everything mwan made."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..plan.state import Desired, IpRule, Route
from .diff import normal_routes
from .nft import NftApplier
from .routing import Routing, RoutingError

log = logging.getLogger(__name__)

# every table id mwan3 can use with any mask of up to 8 bits (ids 1..252)
MAX_TABLE = 252
# mwan's routes (proto 201) are its own in all of these: a table no interface
# uses any more (removed or disabled in the config) is emptied
OWN_TABLES = range(1, MAX_TABLE + 1)


@dataclass(frozen=True)
class ApplyResult:
    nft_commands: int
    rule_changes: int
    route_changes: int
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.nft_commands or self.rule_changes or self.route_changes)


class KernelApplier:
    def __init__(self, routing: Routing | None = None, nft: NftApplier | None = None) -> None:
        self.routing = routing if routing is not None else Routing()
        self.nft = nft if nft is not None else NftApplier()

    def apply(self, desired: Desired) -> ApplyResult:
        """nft first (one transaction), then rules and routes by difference.

        Routes go in before the rules that point to them would matter: the
        per-WAN unreachable fallback rule keeps marked traffic off ``main``
        while a table is being filled.  mwan's routes in tables that no
        interface of ``desired`` uses are removed.  A route that could not be
        deleted (or a failed dump) raises :class:`RoutingError` once the rules
        are applied too; the caller retries.
        """
        t0 = time.perf_counter()
        stats = self.nft.apply(desired.nft)
        try:
            routes = self.routing.apply_routes(desired.routes, OWN_TABLES)
        except RoutingError:
            self.routing.apply_rules(desired.rules)  # a route problem does not hold the rules
            raise
        rules = self.routing.apply_rules(desired.rules)
        result = ApplyResult(stats.commands, rules, routes, time.perf_counter() - t0)
        if result.changed:
            log.debug("applied: %d nft commands, %d rule and %d route changes in %.1f ms",
                      stats.commands, rules, routes, result.seconds * 1000)
        return result

    def check(self, desired: Desired) -> None:
        """Raise :class:`~mwan.kernel.nft.CheckError` if the kernel would refuse the table."""
        self.nft.check(desired.nft)

    def routing_now(self, desired: Desired) -> tuple[set[IpRule], set[Route], set[Route]]:
        """mwan's rules and routes as the kernel has them now, next to the desired
        routes in the form the kernel reports them (less those it refused last time)."""
        rules = self.routing.owned_rules()
        routes = self.routing.owned_routes(set(desired.tables) | {r.table for r in desired.routes})
        return rules, routes, normal_routes(desired.routes) - set(self.routing.refused)

    def forget(self) -> None:
        """Re-read the kernel on the next apply (someone else may have changed it)."""
        self.routing.forget()
        self.nft.forget()

    def remove(self) -> ApplyResult:
        """Remove the nft table and every rule and route marked as mwan's."""
        t0 = time.perf_counter()
        self.routing.forget()
        removed = 1 if self.nft.remove() else 0
        rules = self.routing.apply_rules(())
        try:
            routes = self.routing.apply_routes((), OWN_TABLES)
        except RoutingError as exc:  # stopping: remove what can be, say what could not
            log.warning("not every route of mwan was removed: %s", exc)
            routes = 0
        return ApplyResult(removed, rules, routes, time.perf_counter() - t0)
