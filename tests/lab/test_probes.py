"""Probes on real links: run inside the lab's router namespace, one Python process per batch.

Each batch runs its probes concurrently in one asyncio loop (see ``RUNNER``),
so a test sees what the tracker would: every probe bound to its WAN device,
source address and mark.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from typing import Any

import pytest

from mwan.lab import Lab
from mwan.track.probes import ProbeSpec, TargetResult

pytestmark = [pytest.mark.lab,
              pytest.mark.parametrize("lab", [{"clients": 0}], indirect=True)]

FAIL_TIMEOUT = 1.0  # seconds a probe that should fail waits
METHODS = ["ping", "nping-icmp", "arping", "nping-arp", "httping", "nping-tcp", "nping-udp"]
ARP = ("arping", "nping-arp")

# Runs the probes given on stdin at once; reports results, elapsed time, and the most
# threads and child processes seen meanwhile (the probes must need neither).
RUNNER = """
import asyncio, dataclasses, json, os, sys, time
from mwan.track.probes import ProbeSpec, probe

def children():
    return sum(len(open(f"/proc/self/task/{t}/children").read().split())
               for t in os.listdir("/proc/self/task"))

async def main(jobs):
    seen = {"threads": 0, "children": 0}
    async def watch():
        while True:
            seen["threads"] = max(seen["threads"], len(os.listdir("/proc/self/task")))
            seen["children"] = max(seen["children"], children())
            await asyncio.sleep(0.01)
    watcher = asyncio.ensure_future(watch())
    t0 = time.monotonic()
    results = await asyncio.gather(*(probe(ProbeSpec(**s), t) for s, t in jobs))
    took = time.monotonic() - t0
    watcher.cancel()
    return {"took": took, **seen, "results": [dataclasses.asdict(r) for r in results]}

print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
"""


def run_batch(lab: Lab, jobs: list[tuple[ProbeSpec, str]]) -> dict[str, Any]:
    """Run ``jobs`` concurrently in the router namespace; results as TargetResults."""
    payload = json.dumps([[asdict(s), t] for s, t in jobs])
    out = json.loads(lab.exec(lab.router, sys.executable, "-c", RUNNER, input=payload).stdout)
    out["results"] = [TargetResult(**{**r, "rtts_ms": tuple(r["rtts_ms"])})
                      for r in out["results"]]
    return out


def run(lab: Lab, *jobs: tuple[ProbeSpec, str]) -> list[TargetResult]:
    results: list[TargetResult] = run_batch(lab, list(jobs))["results"]
    return results


def via(lab: Lab, k: int, method: str = "ping", family: int = 4, **kw: Any) -> ProbeSpec:
    """A spec that probes through WAN ``k`` with its own source address, like the tracker."""
    kw.setdefault("source", lab.wan_addr(k, family))
    kw.setdefault("timeout", FAIL_TIMEOUT)
    return ProbeSpec(method=method, family=f"ipv{family}", device=lab.wan_device(k),
                     mark=kw.pop("mark", 0), **kw)


def target(lab: Lab, k: int, method: str, family: int = 4) -> str:
    """ARP reaches only the link (ISP k's gateway); everything else probes a track target.

    inet answers TCP and UDP on any port of its hosts (tproxy to the echo server, which
    also speaks HTTP), so the default ports 80 and 53 answer.
    """
    return lab.gateway(k, family) if method in ARP else lab.track_targets(family)[0]


def assert_answered(r: TargetResult, count: int = 1) -> None:
    assert r.ok and r.received == count and r.error is None, r
    assert len(r.rtts_ms) == count and all(0 < t < 1000 for t in r.rtts_ms), r
    assert r.loss_pct == 0.0 and r.latency_ms is not None


def assert_lost(r: TargetResult) -> None:
    assert not r.ok and r.received == 0 and r.error, r
    assert r.loss_pct == 100.0 and r.latency_ms is None


# -- every method, through each WAN ----------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_method_answers_via_each_wan_and_only_that_wan_fails(lab: Lab, method: str) -> None:
    r1, r2 = run(lab, *((via(lab, k, method, count=2), target(lab, k, method)) for k in (1, 2)))
    assert_answered(r1, 2)
    assert_answered(r2, 2)

    if method in ARP:  # ISP 1's side of the link goes down: ARP on wan1 goes unanswered
        lab.cut_carrier(1)
    else:  # ISP 1 stops forwarding; the probe must not leak out through wan2
        lab.outage(1)
    r1, r2 = run(lab, *((via(lab, k, method), target(lab, k, method)) for k in (1, 2)))
    assert_lost(r1)
    assert_answered(r2)


@pytest.mark.parametrize("method", ARP)
def test_arp_reaches_only_the_link(lab: Lab, method: str) -> None:
    """ISP 2's gateway is not on wan1's link: no answer via wan1, even without a source."""
    other, own = run(lab, (via(lab, 1, method), lab.gateway(2)),
                     (via(lab, 1, method, source=None), lab.gateway(1)))
    assert_lost(other)
    assert other.error == "timeout"
    assert_answered(own)  # without a source: the device's own address
    (v6,) = run(lab, (via(lab, 1, method, family=6), lab.gateway(1, 6)))
    assert v6.error == "arping is IPv4 only" and not v6.ok


@pytest.mark.parametrize("method", ["ping", "nping-icmp", "httping", "nping-tcp", "nping-udp"])
def test_ipv6_via_each_wan(lab: Lab, method: str) -> None:
    jobs = [(via(lab, k, method, family=6, count=2), target(lab, k, method, 6)) for k in (1, 2)]
    for r in run(lab, *jobs):
        assert_answered(r, 2)
    lab.outage(2)
    r1, r2 = run(lab, *jobs)
    assert_answered(r1, 2)
    assert_lost(r2)


def test_source_address_is_bound(lab: Lab) -> None:
    """The router drops wan1's address leaving wan2 (before its masquerade could fix it)."""
    lab.nft(lab.router, "table inet probesrc {\n  chain output {\n"
            "    type filter hook output priority filter; policy accept;\n"
            f'    oifname "wan2" ip saddr {lab.wan_addr(1)} drop\n'
            f'    oifname "wan2" ip6 saddr {lab.wan_addr(1, 6)} drop\n'
            "  }\n}\n")
    methods = ("ping", "httping", "nping-tcp", "nping-udp")
    jobs = [(via(lab, 2, m, family=f, source=lab.wan_addr(k, f)), target(lab, 2, m, f))
            for f in (4, 6) for m in methods for k in (1, 2)]
    for (spec, _), r in zip(jobs, run(lab, *jobs), strict=True):
        if spec.source in (lab.wan_addr(1), lab.wan_addr(1, 6)):
            assert_lost(r)
        else:
            assert_answered(r)


def test_mark_is_set(lab: Lab) -> None:
    """The router drops packets with mark 0x3f00 on output; unmarked probes still pass."""
    lab.nft(lab.router, "table inet probemark {\n  chain output {\n"
            "    type filter hook output priority filter; policy accept;\n"
            "    meta mark 0x3f00 drop\n  }\n}\n")
    methods = ("ping", "httping", "nping-tcp", "nping-udp")
    marked = run(lab, *((via(lab, 1, m, mark=0x3F00), target(lab, 1, m)) for m in methods))
    plain = run(lab, *((via(lab, 1, m, mark=0x100), target(lab, 1, m)) for m in methods))
    for r in marked:
        assert_lost(r)
    for r in plain:
        assert_answered(r)


# -- ping options and loss -------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_max_ttl(lab: Lab, family: int) -> None:
    """The track target is 2 hops away (ISP, inet): TTL 1 dies at the ISP, which says so."""
    far = lab.track_targets(family)[0]
    spec = via(lab, 1, family=family, timeout=3.0)
    out = run_batch(lab, [(replace(spec, max_ttl=1), far), (replace(spec, max_ttl=1),
                          lab.gateway(1, family)), (replace(spec, max_ttl=2), far),
                          (spec, far)])
    one, gw, two, sixty = out["results"]
    assert_lost(one)
    assert one.error == ("ttl exceeded" if family == 4 else "hop limit exceeded")
    assert out["took"] < 2.0  # the ICMP error ended the wait, not the 3 s timeout
    for r in (gw, two, sixty):
        assert_answered(r)


@pytest.mark.parametrize("family", [4, 6])
def test_size(lab: Lab, family: int) -> None:
    """ISP 1 drops packets over 1000 bytes: payloads of 56 and 900 pass, 1200 does not."""
    lab.nft(lab.isp_ns(1), "table inet probesize {\n  chain forward {\n"
            "    type filter hook forward priority filter - 1; policy accept;\n"
            '    iifname "rtr" meta length > 1000 drop\n  }\n}\n')
    far = lab.track_targets(family)[0]
    small, medium, big = run(lab, *((via(lab, 1, family=family, size=n), far)
                                    for n in (56, 900, 1200)))
    assert_answered(small)
    assert_answered(medium)
    assert_lost(big)


@pytest.mark.parametrize("method", ["ping", "nping-udp"])
def test_loss(lab: Lab, method: str) -> None:
    """ISP 1 drops 40 % of what the router sends: about 8 of 20 probes are lost, ISP 2 none."""
    lab.set_loss(1, 40)
    r1, r2 = run(lab, *((via(lab, k, method, count=20), target(lab, k, method)) for k in (1, 2)))
    assert 10.0 <= r1.loss_pct <= 75.0, r1  # binomial(20, 0.4): outside this is < 1e-3
    assert r1.ok and r1.sent == 20 and len(r1.rtts_ms) == r1.received
    assert_answered(r2, 20)


# -- scale ------------------------------------------------------------------------------


def test_64_concurrent_probes_take_one_timeout(lab: Lab) -> None:
    """64 probes at once, half to a dead WAN: done in about one timeout, no thread, no process."""
    timeout = 2.0
    lab.outage(1)
    methods = ["ping", "httping", "nping-tcp", "nping-udp"]
    jobs = []
    for i in range(64):
        k, m = 1 + i % 2, methods[(i // 2) % 4]
        t = lab.track_targets()[(i // 8) % 4]
        jobs.append((via(lab, k, m, timeout=timeout, mark=0x3F00), t))
    out = run_batch(lab, jobs)
    assert out["took"] < timeout + 1.0, out["took"]
    assert out["threads"] == 1 and out["children"] == 0
    for (spec, _), r in zip(jobs, out["results"], strict=True):
        if spec.device == "wan2":
            assert_answered(r)
        else:
            assert_lost(r)
            assert r.error == "timeout"
