"""The daemon's cost of reading its own nftables notifications, and that foreign ones are seen.

    sudo .venv/bin/python -m bench.nftmon_bench [--reps 5] [--cases 16x1000,60x1000]

In a throwaway network namespace, per case (interfaces x rules, the config of
``bench.apply_bench``): a full apply from nothing, with two monitors
subscribed to the nftables group at once, reading the same notifications:

* parse all (the baseline: the daemon's reader before this change, kept
  here as :func:`parse_all`): ``recv(1 MB)`` per datagram, every message's
  header and name attributes parsed, batches assembled, then mwan's own
  batch recognised by its NEWGEN;
* skip own: ``NftMonitor`` as the daemon runs it, knowing the port id of
  its libnftables socket (seeded from /proc, as the daemon does), skipping
  each message of that port after its header.

Each monitor's ``read()`` is timed after the apply (the messages wait in
the socket), so the time is the receive and the parsing, as on the daemon's
loop.  Then a foreign batch (``nft add rule`` into one of mwan's chains, and
``nft delete table``) must come out of the skipping monitor as a batch.
Prints medians, ratios and the message counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from bench.apply_bench import clean_kernel, config_text, make_wans, namespace
from mwan.kernel.nftmon import Batch, NftMonitor, Own, own_netfilter_ports, own_thread_id, parse

DEFAULT_CASES = "2x10,16x1000,60x1000"


def parse_all(mon: NftMonitor) -> list[Batch]:
    """The daemon's reader before issue 17: every message parsed, own batches included."""
    batches: list[Batch] = []
    while True:
        try:
            buf = mon.sock.recv(1 << 20)
        except BlockingIOError:
            break
        for ev in parse(buf):
            b = mon.batcher.feed(ev)
            if b is not None:
                batches.append(b)
    return batches


def inner(cases: list[tuple[int, int]], reps: int) -> None:
    from mwan.config.validate import parse_config
    from mwan.kernel.apply import KernelApplier
    from mwan.plan.compile import compile_plan, config_part
    from mwan.plan.state import TABLE_NAME, IfaceRuntime

    print(f"{'ifaces':>6} {'rules':>6} | {'messages':>8} {'datagrams':>9} | {'parse all':>9} "
          f"{'skip own':>9} {'ratio':>6} | foreign batches seen", flush=True)
    for n, nrules in cases:
        make_wans(n)
        cfg = parse_config(config_text(n, nrules), "bench")
        applier = KernelApplier()
        facts = applier.routing.facts()
        runtime = {}
        for k, i in enumerate(cfg.interfaces, 1):
            a, b = divmod(k, 250)
            runtime[i.name] = IfaceRuntime(i.name, up=True, online=True,
                                           gateway=f"10.{a + 1}.{b}.1",
                                           addresses=(f"10.{a + 1}.{b}.2",))
        desired = compile_plan(cfg, runtime, facts, config_part(cfg))
        clean_kernel(applier)  # also makes libnftables' socket send (and get its port)
        base_t, skip_t, msgs, dgrams = [], [], 0, 0
        own = Own({os.getpid(), own_thread_id()})
        for rep in range(reps):
            clean_kernel(applier)
            every = NftMonitor(TABLE_NAME)  # read by parse_all
            counter = NftMonitor(TABLE_NAME)  # raw datagrams, for the counts
            skipping = NftMonitor(TABLE_NAME, own=own)
            own.ports |= own_netfilter_ports(exclude=skipping.port) - {every.port, counter.port}
            applier.forget()
            applier.apply(desired)
            for first in ((True, False) if rep % 2 else (False, True)):  # alternate the order
                t0 = time.perf_counter()
                if first:
                    found_all = parse_all(every)
                    base_t.append(time.perf_counter() - t0)
                else:
                    found_skip, lost = skipping.read()
                    skip_t.append(time.perf_counter() - t0)
            assert len(found_all) == 1 and found_all[0].pid in own.pids, found_all
            assert not found_skip and not lost, (found_skip, lost)
            msgs, dgrams = 0, 0
            while True:
                try:
                    buf = counter.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                dgrams += 1
                msgs += sum(1 for _ in parse(buf))
            for m in (every, counter, skipping):
                m.close()
        # foreign batches, with the port known: still seen, parsed as before
        skipping = NftMonitor(TABLE_NAME, own=own)
        chain = desired.nft.chains[0].name
        subprocess.run(["nft", "add", "rule", "inet", TABLE_NAME, chain, "counter"], check=True)
        subprocess.run(["nft", "delete", "table", "inet", TABLE_NAME], check=True)
        found, lost = skipping.read()
        skipping.close()
        seen = [f"{b.proc}: {len(b.events)} events" for b in found]
        ok = len(found) == 2 and not lost and any(e.kind == "rule" for e in found[0].events) \
            and any(e.kind == "table" and e.deleted for e in found[1].events)
        base, skip = statistics.median(base_t), statistics.median(skip_t)
        print(f"{n:6d} {nrules:6d} | {msgs:8d} {dgrams:9d} | {base * 1000:7.2f}ms "
              f"{skip * 1000:7.2f}ms {skip / base:6.3f} | {'ok' if ok else 'NOT ok'} "
              f"({'; '.join(seen)}); max parse all {max(base_t) * 1000:.2f} ms, "
              f"skip own {max(skip_t) * 1000:.2f} ms", flush=True)
        clean_kernel(applier)
    print(f"(medians of {reps}; both monitors read the same notifications of the same apply)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="e.g. 16x1000,60x1000")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cases = [(int(c.split("x")[0]), int(c.split("x")[1])) for c in a.cases.split(",")]
    if a.inner:
        inner(cases, a.reps)
        return 0
    for ns in namespace():
        print(f"in network namespace {ns}; {os.cpu_count()} CPUs", flush=True)
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "bench.nftmon_bench",
                            "--inner", "--reps", str(a.reps), "--cases", a.cases], check=False)
        return r.returncode
    return 1


if __name__ == "__main__":
    sys.exit(main())
