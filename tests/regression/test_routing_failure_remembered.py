"""Regression (issue 12 item 5): a failed netlink call was remembered as done.

- A route deletion that failed for another reason than "already gone"
  (EBUSY, ENOBUFS) was logged at debug and remembered as done: the stale
  route stayed in the WAN table, and no later apply looked again.
- After ``forget()``, a failed route dump was taken for "mwan has no routes
  there" and remembered: a route no longer wanted was never deleted.

Both now raise (the daemon retries), remember nothing, and the next apply
converges.  No root: the kernel is the in-memory fake of tests/fakes.
"""

from __future__ import annotations

import errno
import socket

import pytest
from fakes.kernel import FakeIPRoute, Faults, Link
from pyroute2.netlink.exceptions import NetlinkError

from mwan.kernel.routing import Routing, RoutingError
from mwan.plan.state import Route

OLD = Route(1, "ipv4", "default", dev="eth1", gateway="192.0.2.1")
NEW = Route(1, "ipv4", "default", dev="eth1", gateway="192.0.2.254", metric=5)
ONLINK = Route(1, "ipv4", "192.0.2.0/24", dev="eth1", scope=253)


def kernel() -> tuple[FakeIPRoute, Faults, Routing]:
    ipr = FakeIPRoute(links=[Link(1, "lo"), Link(2, "eth1")])
    faults = Faults(ipr)
    return ipr, faults, Routing(faults)


def test_failed_route_delete_is_retried() -> None:
    ipr, faults, routing = kernel()
    routing.apply_routes([OLD, ONLINK], [1])
    faults.fail("route", NetlinkError(errno.EBUSY, "Device or resource busy"),
                when=lambda cmd, **kw: cmd == "del")
    with pytest.raises(RoutingError, match="cannot delete route default from table 1"):
        routing.apply_routes([NEW, ONLINK], [1])
    routing.apply_routes([NEW, ONLINK], [1])
    assert ipr.mwan_routes() == {NEW, ONLINK}


def test_failed_route_dump_is_not_taken_for_no_routes() -> None:
    ipr, faults, routing = kernel()
    routing.apply_routes([OLD, ONLINK], [1])
    routing.forget()
    faults.fail("get_routes", NetlinkError(errno.EBUSY, "Device or resource busy"),
                when=lambda family, **kw: family == socket.AF_INET)
    with pytest.raises(RoutingError, match="cannot read mwan's routes"):
        routing.apply_routes([ONLINK], [1])
    routing.apply_routes([ONLINK], [1])
    assert ipr.mwan_routes() == {ONLINK}
