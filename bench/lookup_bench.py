"""The cost of one classification step per packet: no lookup, 1000 linear rules, and maps.

    .venv/bin/python -m bench.lookup_bench [--rules 1000] [--rounds 5] [--packets 200000]

In a throwaway namespace, an nft ``output`` chain holds one of the cases
and a UDP socket sends small datagrams (to 203.0.113.99:8080, routed out of
a veth) as fast as one Python loop can; the time per packet, less the same
round's time with an empty chain, is what the case costs each packet (each
new connection, in mwan's ``rules`` chain).  Every case's elements share the
packet's address and protocol and differ by port, none matches: the worst
case for the field order of a concatenated interval map.

- ``linear``: 1000 rules ``ip daddr 203.0.113.0/24 udp dport {A, B}``;
- ``rbtree``: one interval map on the address alone (2000 /32 elements);
- ``concat, address first``: ``ip daddr . l4proto . th dport`` (pipapo), the
  order of the rule's options;
- ``concat, ports first``: the same elements, the key in the order
  :func:`mwan.plan.group.selective_first` picks (the field that leaves fewest
  elements standing first).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

NS = f"mwlookup-{os.getpid()}"
T = {"family": "inet", "table": "lookup"}
DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
DPORT = {"payload": {"protocol": "th", "field": "dport"}}
PROTO = {"meta": {"key": "l4proto"}}
NET = {"prefix": {"addr": "203.0.113.0", "len": 24}}
CASES = ["none", "linear", "rbtree", "concat, address first", "concat, ports first"]


def batch(case: str, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"add": {"table": {"family": "inet", "name": "lookup"}}},
        {"add": {"chain": {**T, "name": "a"}}},
        {"add": {"chain": {**T, "name": "out", "type": "filter", "hook": "output", "prio": 0,
                           "policy": "accept"}}}]
    ports = [(1000 + i, 20000 + i) for i in range(n)]
    to_a = {"goto": {"target": "a"}}
    if case == "linear":
        out += [{"add": {"rule": {**T, "chain": "out", "expr": [
            {"match": {"op": "==", "left": DADDR, "right": NET}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                       "right": {"set": list(p)}}}, {"counter": None}, to_a]}}} for p in ports]
    elif case != "none":
        if case == "rbtree":
            typ: Any = "ipv4_addr"
            key: Any = DADDR
            elems = [f"198.18.{k // 256}.{k % 256}" for k in range(2 * n)]
        elif case == "concat, address first":
            typ, key = ["ipv4_addr", "inet_proto", "inet_service"], {"concat": [DADDR, PROTO, DPORT]}
            elems = [{"concat": [NET, 17, p]} for pair in ports for p in pair]
        else:
            typ, key = ["inet_service", "inet_proto", "ipv4_addr"], {"concat": [DPORT, PROTO, DADDR]}
            elems = [{"concat": [p, 17, NET]} for pair in ports for p in pair]
        out += [{"add": {"set": {**T, "name": "m", "type": typ, "map": "verdict",
                                 "flags": ["interval"], "stmt": [{"counter": None}]}}},
                {"add": {"element": {**T, "name": "m", "elem": [[e, to_a] for e in elems]}}},
                {"add": {"rule": {**T, "chain": "out", "expr": [{"vmap": {"key": key,
                                                                           "data": "@m"}}]}}}]
    return out


def per_packet(count: int) -> float:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("203.0.113.99", 8080))
    t = time.perf_counter()
    for _ in range(count):
        try:
            s.send(b"x")
        except OSError:
            pass
    s.close()
    return (time.perf_counter() - t) / count * 1e6


def inside(args: argparse.Namespace) -> None:
    import nftables  # Debian's python3-nftables
    nft = nftables.Nftables()
    for cmd in ("ip link set lo up", "ip link add l0 type veth peer name l1",
                "ip link set l0 up", "ip link set l1 up", "ip addr add 10.9.0.1/24 dev l0",
                "ip neigh add 10.9.0.2 lladdr 02:00:00:00:00:01 dev l0",
                "ip route add 203.0.113.0/24 via 10.9.0.2 dev l0"):
        subprocess.run(cmd.split(), check=True)
    res: dict[str, list[float]] = {c: [] for c in CASES}
    for _ in range(args.rounds):
        for case in CASES:
            table = {"table": {"family": "inet", "name": "lookup"}}
            nft.json_cmd({"nftables": [{"add": table}, {"delete": table}]})
            rc, _out, err = nft.json_cmd({"nftables": batch(case, args.rules)})
            assert rc == 0, err
            per_packet(args.packets // 10)
            res[case].append(per_packet(args.packets))
    base = statistics.median(res["none"])
    print(f"{args.rules} rules / {2 * args.rules} elements, medians of {args.rounds} "
          f"alternating rounds of {args.packets} packets (us per packet)")
    for case in CASES:
        m = statistics.median(res[case])
        paired = statistics.median(a - b for a, b in zip(res[case], res["none"]))
        print(f"  {case:24s} {m:7.2f}   +{paired:6.2f} over none   ({m / base:5.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        inside(args)
        return
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-m", "bench.lookup_bench",
                        "--inside", "--rules", str(args.rules), "--rounds", str(args.rounds),
                        "--packets", str(args.packets)], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


if __name__ == "__main__":
    main()
