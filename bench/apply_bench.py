"""Apply time: mwan (one nft transaction + netlink) against mwan3's way (a process per object).

    sudo .venv/bin/python -m bench.apply_bench [--quick] [--reps 5] [--cases 60x1000]

For 2, 16 and 60 interfaces with 10, 100 and 1000 rules (synthetic configs:
one balanced policy over every interface, one failover policy per
interface, rules with varied addresses, ports, protocols, some sticky), in a
throwaway network namespace with one veth WAN per interface:

* ours, full: from nothing to the whole state (``KernelApplier.apply`` of
  ``compile_plan``), compile time shown apart;
* ours, one change: interface 1 goes offline; compile + apply of the new state;
* baseline, full: the same ruleset loaded as mwan3 loads it: its mangle
  chains (mwan3_hook, mwan3_ifaces_in, mwan3_iface_in_*, mwan3_rules,
  mwan3_policy_*, mwan3_rule_* for sticky rules), one ``iptables-restore
  --noflush`` process per chain, plus one ``ip rule add`` per rule and one
  ``ip route add`` per route (docs/architecture.md, mwan3 §2.2-2.4);
* baseline, one change: what mwan3 does on an interface's disconnect and
  ifdown: every policy chain rebuilt (one iptables-restore each), that
  interface's three ip rules deleted and its table flushed (a process each).

The floor (issue 17): the table ours' full apply made, listed by the kernel
(JSON) and loaded again by libnftables alone (``json_cmd`` of every table,
set, chain and rule as an ``add``) into an empty kernel, and its text
listing by ``nft -f``; in the same namespace, alternating with ours.

Medians of ``--reps`` runs, ratios ours / floor and ours / baseline;
targets (issue 17): full apply of 60 interfaces / 1000 rules in 120 ms and
within 1.3x the floor, one-interface change under 20 ms.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

NS_PREFIX = "mwbench-"
MASK = 0x3F00
CASES = [(2, 10), (2, 100), (2, 1000), (16, 10), (16, 100), (16, 1000), (60, 10), (60, 100),
         (60, 1000)]


# ---------------------------------------------------------------- the config

def config_text(n: int, rules: int) -> str:
    out = ["config globals 'globals'\n\toption mmx_mask '0x3F00'\n"]
    for k in range(1, n + 1):
        out.append(f"config interface 'w{k}'\n\toption enabled '1'\n\toption device 'w{k}'\n")
    for k in range(1, n + 1):
        out.append(f"config member 'w{k}_m1'\n\toption interface 'w{k}'\n"
                   f"\toption metric '1'\n\toption weight '{k % 3 + 1}'\n")
        out.append(f"config member 'w{k}_m2'\n\toption interface 'w{k}'\n\toption metric '2'\n")
    out.append("config policy 'balanced'\n" + "".join(
        f"\tlist use_member 'w{k}_m1'\n" for k in range(1, n + 1)))
    for k in range(1, n + 1):
        nxt = k % n + 1
        out.append(f"config policy 'fo{k}'\n\tlist use_member 'w{k}_m1'\n"
                   f"\tlist use_member 'w{nxt}_m2'\n")
    for i in range(rules):
        policy = "balanced" if i % 3 == 0 else f"fo{i % n + 1}"
        lines = [f"config rule 'r{i}'", f"\toption use_policy '{policy}'",
                 f"\toption dest_ip '198.{18 + i // 65536 % 2}.{i // 256 % 256}.{i % 256}/32'"]
        if i % 4 == 1:
            lines += ["\toption proto 'tcp'", f"\toption dest_port '{1000 + i},{20000 + i}'"]
        elif i % 4 == 2:
            lines += ["\toption proto 'udp'", f"\toption src_port '{1024 + i % 5000}:65535'"]
        if i % 10 == 5:
            lines += ["\toption sticky '1'", "\toption timeout '300'"]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# ---------------------------------------------------------------- inside the namespace

def run(*argv: str, input: str | None = None) -> None:
    subprocess.run(argv, input=input, text=True, check=True, capture_output=True)


def make_wans(n: int) -> None:
    """Exactly ``n`` veth WANs w1..wN, each with an address and a main default route."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    old = [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()]
    batch = [f"link del {d}" for d in old if d.startswith("w") and not d.endswith("p")]
    for k in range(1, n + 1):
        a, b = divmod(k, 250)
        batch += [f"link add w{k} type veth peer name w{k}p", f"link set w{k} up",
                  f"link set w{k}p up", f"addr add 10.{a + 1}.{b}.2/24 dev w{k}",
                  f"route add default via 10.{a + 1}.{b}.1 dev w{k} metric {k}"]
    run("ip", "-batch", "-", input="\n".join(batch) + "\n")


def clean_kernel(applier: object = None) -> None:
    from mwan.kernel.apply import KernelApplier
    (applier if isinstance(applier, KernelApplier) else KernelApplier()).remove()
    subprocess.run(["iptables", "-t", "mangle", "-F"], capture_output=True, check=False)
    subprocess.run(["iptables", "-t", "mangle", "-X"], capture_output=True, check=False)
    out = subprocess.run(["ip", "rule", "show"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        prio = int(line.split(":")[0])
        if 1000 <= prio < 4000:
            run("ip", "rule", "del", "priority", str(prio))
    for t in range(1, 64):
        subprocess.run(["ip", "route", "flush", "table", str(t)], capture_output=True,
                       check=False)


def floor_batch(listing: list[dict[str, Any]]) -> dict[str, Any]:
    """The kernel's listing of a table → the batch that loads exactly that table.

    Every object of ``list table`` (JSON) as an ``add`` command, without the
    handles the kernel gave them (a rule's handle would mean "add after this
    rule") and without the listing's metainfo.  Chains come before the sets
    and maps (a verdict map's elements jump to chains), rules last.
    """
    order = {"table": 0, "chain": 1, "rule": 3}
    objs = [o for o in listing if "metainfo" not in o]
    objs.sort(key=lambda o: order.get(next(iter(o)), 2))  # stable: listing order kept
    out = []
    for obj in objs:
        (kind, body), = obj.items()
        out.append({"add": {kind: {k: v for k, v in body.items() if k != "handle"}}})
    return {"nftables": out}


def floor(nft: Any, batches: list[dict[str, Any]], text: str,
          applier: object) -> list[float]:
    """Seconds to load each of ``batches`` (libnftables ``json_cmd``), then ``text``
    (``nft -f``), each into an empty kernel."""
    out = []
    for batch in batches:
        clean_kernel(applier)
        t0 = time.perf_counter()
        rc, _out, err = nft.json_cmd(batch)
        out.append(time.perf_counter() - t0)
        if rc != 0:
            raise RuntimeError(f"the floor's batch was refused: {err}")
    clean_kernel(applier)
    t0 = time.perf_counter()
    run("nft", "-f", "-", input=text)
    return out + [time.perf_counter() - t0]


def ours(n: int, nrules: int, reps: int) -> dict[str, float]:
    """Ours (full apply, one change) and the floor, alternating in each repetition."""
    from mwan.config.validate import parse_config
    from mwan.kernel.apply import KernelApplier
    from mwan.kernel.diff import full_batch
    from mwan.plan.compile import compile_plan, config_part
    from mwan.plan.state import IfaceRuntime

    cfg = parse_config(config_text(n, nrules), "bench")
    applier = KernelApplier()
    facts = applier.routing.facts()
    import nftables  # the floor: libnftables alone, its json_cmd as it comes
    lib = nftables.Nftables()
    lib.set_json_output(True)

    def runtime(offline: set[str]) -> dict[str, IfaceRuntime]:
        out = {}
        for k, i in enumerate(cfg.interfaces, 1):
            a, b = divmod(k, 250)
            out[i.name] = IfaceRuntime(i.name, up=True, online=i.name not in offline,
                                       gateway=f"10.{a + 1}.{b}.1",
                                       addresses=(f"10.{a + 1}.{b}.2",))
        return out

    compile_t, full_t, change_t = [], [], []
    floors: list[list[float]] = []  # per rep: listing, our batch, nft -f
    text = config_text(n, nrules)
    final: tuple[list[dict[str, Any]], str] | None = None
    for _ in range(reps):
        clean_kernel(applier)
        cfg = parse_config(text, "bench")  # a new config: compiled cold, as after a reload
        t0 = time.perf_counter()
        part = config_part(cfg)  # once per config, as the daemon does
        desired = compile_plan(cfg, runtime(set()), facts, part)
        t1 = time.perf_counter()
        applier.apply(desired)
        t2 = time.perf_counter()
        compile_t.append(t1 - t0)
        full_t.append(t2 - t1)
        if final is None:  # the table the full apply made, as the kernel lists it
            listing = applier.nft.list_table()
            assert listing is not None
            final = [floor_batch(listing), {"nftables": full_batch(desired.nft)}], \
                subprocess.run(["nft", "list", "table", "inet", "mwan"], capture_output=True,
                               text=True, check=True).stdout
            # the floor's batches are the bench's, not ours: out of the collector's way
            # (else every later collection in ours walks their ~10^5 objects)
            gc.collect()
            gc.freeze()
        t0 = time.perf_counter()
        changed = compile_plan(cfg, runtime({"w1"}), facts, part)
        applier.apply(changed)
        change_t.append(time.perf_counter() - t0)
        floors.append(floor(lib, final[0], final[1], applier))
    clean_kernel(applier)
    gc.unfreeze()
    assert final is not None
    objs = final[0][0]["nftables"]
    listing_t, batch_t, text_t = (statistics.median(f[k] for f in floors) for k in range(3))
    return {"compile": statistics.median(compile_t), "full": statistics.median(full_t),
            "change": statistics.median(change_t), "floor_listing": listing_t,
            "floor_batch": batch_t, "floor": min(listing_t, batch_t), "floor_text": text_t,
            "objects": len(objs), "rules": sum(1 for o in objs if "rule" in o["add"])}


# ---------------------------------------------------------------- mwan3's way

def mwan3_chains(n: int, nrules: int) -> tuple[dict[str, list[str]], list[str]]:
    """The mangle chains mwan3 would build (chain -> rules), and the policy chain names."""
    m = f"/{MASK:#x}"
    chains: dict[str, list[str]] = {}
    chains["mwan3_hook"] = [
        f"-m mark --mark 0x0{m} -j CONNMARK --restore-mark --nfmask {MASK:#x} --ctmask {MASK:#x}",
        f"-m mark --mark 0x0{m} -j mwan3_ifaces_in",
        f"-m mark --mark 0x0{m} -j mwan3_rules",
        f"-j CONNMARK --save-mark --nfmask {MASK:#x} --ctmask {MASK:#x}",
    ]
    chains["mwan3_ifaces_in"] = [f"-m mark --mark 0x0{m} -j mwan3_iface_in_w{k}"
                                 for k in range(1, n + 1)]
    for k in range(1, n + 1):
        chains[f"mwan3_iface_in_w{k}"] = [
            (f"-i w{k} -m mark --mark 0x0{m} -m comment --comment w{k} "
            f"-j MARK --set-xmark {k << 8:#x}{m}")]
    policies: dict[str, list[tuple[int, int]]] = {
        "balanced": [(k, k % 3 + 1) for k in range(1, n + 1)]}
    for k in range(1, n + 1):
        policies[f"fo{k}"] = [(k, 1)]
    for name, members in policies.items():
        total = sum(w for _, w in members)
        rules = [(f"-m mark --mark 0x0{m} -m comment --comment unreachable "
                 f"-j MARK --set-xmark {62 << 8:#x}{m}")]
        left = total
        for k, w in members:
            prob = w / left
            left -= w
            stat = f"-m statistic --mode random --probability {prob:.8f} " if prob < 1 else ""
            rules.insert(0, f"-m mark --mark 0x0{m} {stat}-m comment --comment \"w{k} {w} "
                            f"{total}\" -j MARK --set-xmark {k << 8:#x}{m}")
        chains[f"mwan3_policy_{name}"] = rules
    rules = []
    for i in range(nrules):
        policy = "balanced" if i % 3 == 0 else f"fo{i % n + 1}"
        proto = "tcp" if i % 4 == 1 else ("udp" if i % 4 == 2 else "all")
        dst = f"198.{18 + i // 65536 % 2}.{i // 256 % 256}.{i % 256}/32"
        match = f"-p {proto} -d {dst} "
        if i % 4 == 1:
            match += f"-m multiport --dports {1000 + i},{20000 + i} "
        elif i % 4 == 2:
            match += f"-m multiport --sports {1024 + i % 5000}:65535 "
        target = f"mwan3_policy_{policy}"
        if i % 10 == 5:
            target = f"mwan3_rule_r{i}"
            chains[target] = [
                f"-m set ! --match-set mwan3_rule_ipv4_r{i} src -j {'mwan3_policy_' + policy}"]
            chains[target] = [f"-j mwan3_policy_{policy}"]  # (sets left out: no ipset here)
        rules.append(f"{match}-m mark --mark 0x0{m} -j {target}")
    chains["mwan3_rules"] = rules
    return chains, [f"mwan3_policy_{p}" for p in policies]


def restore(chain: str, rules: list[str]) -> None:
    body = "*mangle\n" + f":{chain} - [0:0]\n-F {chain}\n" + \
        "".join(f"-A {chain} {r}\n" for r in rules) + "COMMIT\n"
    run("iptables-restore", "-w", "--noflush", input=body)


def baseline(n: int, nrules: int, reps: int) -> dict[str, float]:
    chains, policy_chains = mwan3_chains(n, nrules)
    # create every chain first (empty) so jumps resolve in any order, as mwan3 does at init
    order = [f"mwan3_iface_in_w{k}" for k in range(1, n + 1)] + policy_chains + \
        [c for c in chains if c.startswith("mwan3_rule_")] + \
        ["mwan3_ifaces_in", "mwan3_rules", "mwan3_hook"]
    full_t, change_t = [], []
    for _ in range(reps):
        clean_kernel()
        t0 = time.perf_counter()
        for c in order:
            restore(c, chains[c])
        run("iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "mwan3_hook")
        run("iptables", "-t", "mangle", "-A", "OUTPUT", "-j", "mwan3_hook")
        run("ip", "rule", "add", "pref", "2061", "fwmark", f"{61 << 8:#x}/{MASK:#x}",
            "blackhole")
        run("ip", "rule", "add", "pref", "2062", "fwmark", f"{62 << 8:#x}/{MASK:#x}",
            "unreachable")
        for k in range(1, n + 1):
            a, b = divmod(k, 250)
            run("ip", "rule", "add", "pref", str(1000 + k), "iif", f"w{k}", "lookup", str(k))
            run("ip", "rule", "add", "pref", str(2000 + k), "fwmark", f"{k << 8:#x}/{MASK:#x}",
                "lookup", str(k))
            run("ip", "rule", "add", "pref", str(3000 + k), "fwmark", f"{k << 8:#x}/{MASK:#x}",
                "unreachable")
            run("ip", "route", "add", "table", str(k), f"10.{a + 1}.{b}.0/24", "dev", f"w{k}")
            run("ip", "route", "add", "table", str(k), "default", "via", f"10.{a + 1}.{b}.1",
                "dev", f"w{k}")
        full_t.append(time.perf_counter() - t0)
        # one interface disconnects/ifdowns: every policy chain rebuilt without it,
        # its rules deleted and its table flushed
        t0 = time.perf_counter()
        for c in policy_chains:
            restore(c, [r for r in chains[c] if "--comment \"w1 " not in r])
        for prio in (1001, 2001, 3001):
            run("ip", "rule", "del", "pref", str(prio))
        run("ip", "route", "flush", "table", "1")
        change_t.append(time.perf_counter() - t0)
    clean_kernel()
    return {"full": statistics.median(full_t), "change": statistics.median(change_t)}


def inner(cases: list[tuple[int, int]], reps: int, base_reps: int) -> None:
    print(f"{'ifaces':>6} {'rules':>6} {'objs':>5} {'nft rules':>9} | {'compile':>8} "
          f"{'ours full':>9} {'floor lst':>9} {'floor bat':>9} {'ratio':>5} {'nft -f':>8} | "
          f"{'mwan3 full':>10} {'ratio':>6} | {'ours chg':>8} {'mwan3 chg':>9} {'ratio':>6} | "
          "targets", flush=True)
    for n, r in cases:
        make_wans(n)
        o = ours(n, r, reps)
        b = baseline(n, r, base_reps)
        met = ""
        if (n, r) == (60, 1000):
            met = (f"full<=120ms:{'yes' if o['full'] <= 0.12 else 'NO'} "
                   f"full<=1.3xfloor:{'yes' if o['full'] <= 1.3 * o['floor'] else 'NO'} "
                   f"chg<20ms:{'yes' if o['change'] < 0.02 else 'NO'}")
        print(f"{n:6d} {r:6d} {o['objects']:5d} {o['rules']:9d} | "
              f"{o['compile'] * 1000:6.1f}ms {o['full'] * 1000:7.1f}ms "
              f"{o['floor_listing'] * 1000:7.1f}ms {o['floor_batch'] * 1000:7.1f}ms "
              f"{o['full'] / o['floor']:5.2f} {o['floor_text'] * 1000:6.1f}ms | "
              f"{b['full'] * 1000:8.1f}ms {o['full'] / b['full']:6.3f} | "
              f"{o['change'] * 1000:6.1f}ms {b['change'] * 1000:7.1f}ms "
              f"{o['change'] / b['change']:6.3f} | {met}", flush=True)
    print("(ours: 'compile' is a cold compile of a freshly loaded config, 'ours full' the "
          "apply alone (nft, routes, ip rules); the floor is the table the full apply made, "
          "loaded by libnftables alone (json_cmd, as the binding has it) into an empty kernel: "
          "'floor lst' its JSON listing as add commands (handles left out), 'floor bat' the "
          "JSON batch that builds the same table from nothing; 'ratio' ours full / the lower "
          "floor; 'nft -f' the table's text listing loaded by the nft command; 'objs' the "
          "commands of that batch, 'nft rules' its rules; 'ours chg' is compile + apply after "
          "one interface goes offline, the config's rule chains already compiled; medians, "
          "ours and the floors alternating in each repetition)")


# ---------------------------------------------------------------- outside

def namespace() -> Iterator[str]:
    name = f"{NS_PREFIX}{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def parse_cases(text: str) -> list[tuple[int, int]]:
    """``60x1000,2x10`` → [(60, 1000), (2, 10)]."""
    out = []
    for c in text.split(","):
        n, r = c.split("x")
        out.append((int(n), int(r)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer cases and repetitions")
    ap.add_argument("--reps", type=int, default=None, help="5 (--quick: 2)")
    ap.add_argument("--base-reps", type=int, default=None, help="3 (--quick: 1)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="",
                    help="IFACESxRULES,... (e.g. 60x1000); default: all, or --quick's")
    a = ap.parse_args()
    if a.inner:
        inner(parse_cases(a.cases), a.reps, a.base_reps)
        return 0
    cases = parse_cases(a.cases) if a.cases else \
        [(2, 10), (16, 100), (60, 1000)] if a.quick else CASES
    reps = a.reps if a.reps is not None else (2 if a.quick else 5)
    base_reps = a.base_reps if a.base_reps is not None else (1 if a.quick else 3)
    for ns in namespace():
        print(f"in network namespace {ns}; {os.cpu_count()} CPUs", flush=True)
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "bench.apply_bench",
                            "--inner", "--reps", str(reps), "--base-reps", str(base_reps),
                            "--cases", ",".join(f"{n}x{r}" for n, r in cases)], check=False)
        return r.returncode
    return 1


if __name__ == "__main__":
    sys.exit(main())
