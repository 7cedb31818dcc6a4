"""Cold start: from ``mwan3 start`` to the daemon's first apply, phase by phase.

    sudo .venv/bin/python -m bench.startup_bench [--reps 7] [--cases 2x10,16x1000]

In a throwaway network namespace with one veth WAN per interface (the
configs of ``bench.apply_bench``: N interfaces, a balanced policy, one
failover policy per interface, R rules, some sticky), nothing of mwan's in
the kernel: ``mwan3 start`` is run and timed until it returns, then
``mwan3 stop``.  The daemon logs when its phases ended
(:mod:`mwan.daemon.startclock`), counted from its process start:

* cli: from ``mwan3 start`` until the daemon process starts (the CLI's own
  interpreter start-up, imports and config check, then the fork);
* imports: daemon process start until ``mwan.daemon.core`` is imported (with
  a daemon that is a new interpreter, as before issue 17, its start-up too);
* config: reading and checking the config, building the daemon;
* first apply: the adopt check, the netlink and nftables monitors, the
  first plan and apply (nft batch, routes, rules);
* ready: trackers, control socket, pid file, until it tells ``start``;
* start returns: ``mwan3 start`` exits.

``--before DIR`` also times, alternating with this tree's, a start of mwan
from another source tree (e.g. ``git archive`` of an older commit), whose
daemon may not log its phases (then only its process start and its "mwan
started" line are known).  Each repetition also runs, alternating with it
and in the same namespace,
the baselines ``python -P -c pass`` and ``python -P -c 'import
mwan.daemon.core'`` (the venv's interpreter, as the daemon runs).  Prints
medians and maxima; target: ``mwan3 start`` to the first apply under 1 s.

Modules are byte-compiled, as an installed mwan has them (the Debian
package compiles them in its postinst; a source tree's first run writes
them): the uncounted first start writes the bytecode to a cache of its own
(``PYTHONPYCACHEPREFIX``), whatever ``PYTHONDONTWRITEBYTECODE`` says.
``--no-bytecode`` measures starts that compile every module from source.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.apply_bench import clean_kernel, config_text, make_wans, namespace
from mwan.daemon.startclock import parse_line

DEFAULT_CASES = "2x10,16x1000"
PHASES = ("imports done", "config parsed", "first apply done", "ready")
COLUMNS = ("cli", "imports", "config", "first apply", "ready", "start returns",
           "daemon to ready", "to first apply", "start total")


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.time()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.time() - t0


def start_once(workdir: str, env: dict[str, str]) -> dict[str, float]:
    """One cold ``mwan3 start`` (then ``stop``); the phases in seconds."""
    run_dir = os.path.join(workdir, "run")
    cli = [sys.executable, "-P", "-m", "mwan.cli.main", "--config",
           os.path.join(workdir, "mwan3"), "--network-config",
           os.path.join(workdir, "no-network"), "--run-dir", run_dir]
    log_path = os.path.join(run_dir, "daemon.log")
    if os.path.exists(log_path):
        os.unlink(log_path)
    t0 = time.time()
    subprocess.run([*cli, "start"], check=True, capture_output=True, env=env)
    t_end = time.time()
    parsed = None
    deadline = time.monotonic() + 2
    while parsed is None and time.monotonic() < deadline:  # written just after "ready"
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            parsed = next((p for p in map(parse_line, fh) if p is not None), None)
        if parsed is None:
            time.sleep(0.02)
    if parsed is None:  # a daemon from before the start-up line: only its start and "ready"
        parsed = older_daemon_phases(run_dir, log_path)
    subprocess.run([*cli, "stop"], check=True, capture_output=True, env=env)
    started, at = parsed
    marks = [started - t0] + [started - t0 + at[p] for p in PHASES]
    out = {name: b - a for name, a, b in zip(COLUMNS, [0.0, *marks], marks, strict=False)}
    out["start returns"] = t_end - (started + at["ready"])
    out["daemon to ready"] = at["ready"]
    out["to first apply"] = started + at["first apply done"] - t0
    out["start total"] = t_end - t0
    return out


def older_daemon_phases(run_dir: str, log_path: str) -> tuple[float, dict[str, float]]:
    """For a daemon that does not log its start-up line (to measure the code before it):
    its process start from /proc, "ready" from its "mwan started" line (ms resolution)."""
    with open(os.path.join(run_dir, "mwan3.pid"), encoding="ascii") as fh:
        pid = int(fh.read())
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    started = time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME)
                             - ticks / os.sysconf("SC_CLK_TCK"))
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        line = next(ln for ln in fh if "mwan started:" in ln)
    stamp, ms = line[:23].split(",")
    ready = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
    nan = float("nan")
    return started, {"imports done": nan, "config parsed": nan, "first apply done": nan,
                     "ready": ready - started}


def summary(label: str, rows: list[dict[str, float]]) -> None:
    print(f"  {label}: {len(rows)} cold starts (seconds; median / max)")
    for col in COLUMNS:
        vals = [r[col] for r in rows if r[col] == r[col]]  # NaN: not logged (older daemon)
        if vals:
            print(f"    {col:<16} {statistics.median(vals):7.3f} / {max(vals):7.3f}")
        else:
            print(f"    {col:<16}     n/a (that daemon does not log its phases)")


def python_env(workdir: str, bytecode: bool) -> dict[str, str]:
    """The environment every timed interpreter gets: with ``bytecode``, compiled modules
    are written (to a cache under ``workdir``, not the source tree) by the uncounted
    first start and read by the rest, as an installed mwan has them (the Debian
    package byte-compiles in its postinst); without, every start compiles its sources."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def inner(cases: list[tuple[int, int]], reps: int, before: str | None,
          bytecode: bool = True) -> None:
    py = [sys.executable, "-P"]
    print("modules: " + ("byte-compiled (as installed)" if bytecode
                         else "compiled from source at every start (--no-bytecode)"))
    for n, nrules in cases:
        make_wans(n)
        clean_kernel()
        workdir = tempfile.mkdtemp(prefix="mwan-startup-")
        base = python_env(workdir, bytecode)
        env = {**base, "MWAN_STATE_DIR": os.path.join(workdir, "state")}
        old_env = {**env, "PYTHONPATH": before} if before else env
        try:
            with open(os.path.join(workdir, "mwan3"), "w", encoding="utf-8") as fh:
                fh.write(config_text(n, nrules))
            rows, old_rows, base_pass, base_import = [], [], [], []
            start_once(workdir, env)  # warm the page cache (and the bytecode), not counted
            if before:
                start_once(workdir, old_env)
            for _ in range(reps):  # alternating: baseline, ours, (before), baseline
                base_pass.append(timed([*py, "-c", "pass"], base))
                rows.append(start_once(workdir, env))
                if before:
                    old_rows.append(start_once(workdir, old_env))
                base_import.append(timed([*py, "-c", "import mwan.daemon.core"], base))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"\n{n} interfaces, {nrules} rules")
        summary("this tree", rows)
        if before:
            summary(f"before ({before})", old_rows)
        mp, mi = statistics.median(base_pass), statistics.median(base_import)
        first = statistics.median(r["to first apply"] for r in rows)
        print(f"  baseline python -P -c pass                       {mp:7.3f} / "
              f"{max(base_pass):7.3f}")
        print(f"  baseline python -P -c 'import mwan.daemon.core'  {mi:7.3f} / "
              f"{max(base_import):7.3f}")
        if before:
            ours_t = statistics.median(r["start total"] for r in rows)
            old_t = statistics.median(r["start total"] for r in old_rows)
            print(f"  start total, this tree / before: {ours_t / old_t:.2f}")
        print(f"  ratio to first apply / (2 x import baseline): {first / (2 * mi):.2f}; "
              f"target to first apply < 1 s: {'met' if first < 1 else 'NOT met'} "
              f"(max {max(r['to first apply'] for r in rows):.3f} s)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="e.g. 2x10,16x1000")
    ap.add_argument("--before", metavar="DIR",
                    help="also time, alternating, mwan from this source tree (PYTHONPATH)")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="compile the modules from source at every start (no .pyc)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cases = [(int(c.split("x")[0]), int(c.split("x")[1])) for c in a.cases.split(",")]
    if a.inner:
        inner(cases, a.reps, a.before, not a.no_bytecode)
        return 0
    for ns in namespace():
        print(f"in network namespace {ns}; {os.cpu_count()} CPUs; {sys.executable}", flush=True)
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m",
                            "bench.startup_bench", "--inner", "--reps", str(a.reps),
                            "--cases", a.cases, *(["--before", a.before] if a.before else []),
                            *(["--no-bytecode"] if a.no_bytecode else [])],
                           check=False)
        return r.returncode
    return 1


if __name__ == "__main__":
    sys.exit(main())
