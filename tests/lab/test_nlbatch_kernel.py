"""Batched rule and route requests (kernel/nlbatch) against the real kernel, in the lab's router.

Many requests go out in one write and the kernel answers each: a route
through a gateway it cannot reach is refused (and only that one), deleting
a rule that is gone counts as done, a rule added twice is refused with
EEXIST, more requests than one write carries all go through, and what the
batches left reads back as what was asked.
"""

from __future__ import annotations

import errno
import json
import sys

import pytest

from mwan.lab import Lab

pytestmark = pytest.mark.lab

PROBE = r"""
import json, socket, sys
from mwan.kernel.nlbatch import CHUNK, NetlinkBatch
from mwan.kernel.routing import Routing, route_request, rule_request
from mwan.plan.state import IpRule, Route

dev = sys.argv[1]
r = Routing()  # no ipr handed in: changes go out in batches
out = {}
good = [Route(200, "ipv4", f"198.51.100.{i}/32", dev=dev) for i in range(1, CHUNK + 20)]
bad = Route(200, "ipv4", "203.0.113.0/24", dev=dev, gateway="192.0.2.77")  # not on-link
out["changes"] = r.apply_routes(good + [bad], [200])
out["refused"] = [x.dst for x in r.refused]
r.forget()
out["read_back"] = sorted(x.dst for x in r.owned_routes([200])) == sorted(x.dst for x in good)
rules = [IpRule(2100 + i, "ipv4", "lookup", table=200, fwmark=i << 8, fwmask=0x3F00)
         for i in range(1, 40)]
out["rule_changes"] = r.apply_rules(rules)
r.forget()
out["rules_read_back"] = r.owned_rules() == set(rules)
batch = NetlinkBatch()
answers = batch.run([("rule", "add", rule_request(rules[0])),
                     ("rule", "del", rule_request(IpRule(2999, "ipv4", "unreachable"))),
                     ("route", "del", route_request(good[0], {dev: socket.if_nametoindex(dev)}))])
out["answers"] = [None if a is None else a.code for a in answers]
out["removed"] = [r.apply_rules([]), r.apply_routes([], [200])]
print(json.dumps(out))
"""


def test_batched_requests_are_answered_one_by_one(lab: Lab) -> None:
    res = lab.exec(lab.router, sys.executable, "-c", PROBE, lab.wan_device(1), timeout=60)
    out = json.loads(res.stdout)
    assert out["refused"] == ["203.0.113.0/24"]  # only that one, of 148 in two writes
    assert out["changes"] == 147
    assert out["read_back"] and out["rules_read_back"]
    assert out["rule_changes"] == 39
    assert out["answers"] == [errno.EEXIST, errno.ENOENT, None]
    assert out["removed"] == [39, 146]
