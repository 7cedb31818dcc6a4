"""The chaos benchmark's report: raw records in, a JSON-ready summary and a table out. Pure.

Each failed connection and each broken flow is classified against the
faults the storm really switched on (:class:`bench.chaos_storm.Classifier`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import chaos_storm as cs
from mwan.lab.addressing import wan_of

README_BEGIN = "<!-- chaos:begin -->"
README_END = "<!-- chaos:end -->"
REPAIR_NAMES = {cs.NFT_FLUSH: "nft table after `nft flush ruleset` + firewall reload",
                cs.RULES_DEL: "ip rules after `ip rule del`",
                cs.GATEWAY: "WAN table's default route after a gateway change"}


def _connections(conns: Sequence[dict[str, Any]], cl: cs.Classifier, wans: int, t0: float
                 ) -> dict[str, Any]:
    failed = [c for c in conns if c.get("err")]
    why = [cl.connection(float(c["t"]), float(c["dt"])) for c in failed]
    near = [a for c, w in zip(failed, why, strict=True) if w == "none"
            for a in (cl.actions_near(float(c["t"]), float(c["t"]) + float(c["dt"])) or ["-"])]
    all_cut = why.count("all_wans_cut")
    return {
        "attempted": len(conns), "failed": len(failed),
        "failed_all_wans_cut": all_cut,
        "unexplained": len(failed) - all_cut,
        "unexplained_wan_faulted_or_tracker_lag": sum(1 for w in why
                                                      if w not in ("all_wans_cut", "none")),
        "unexplained_by_fault": cs.count_by(w for w in why if w not in ("all_wans_cut", "none")),
        "unexplained_no_fault": why.count("none"),
        "no_fault_failures_near_action": cs.count_by(near),
        "errors": cs.count_by(str(c["err"]) for c in failed),
        "by_wan": cs.count_by(str(wan_of(str(c["seen"]), wans)) for c in conns if c.get("seen")),
        "failed_per_second": {s: n for s, n in sorted(Counter(
            int(float(c["t"]) - t0) for c in failed).items())},
    }


def _flows(records: Sequence[dict[str, Any]], cl: cs.Classifier, wans: int, t0: float
           ) -> dict[str, Any]:
    breaks = []
    for r in (r for r in records if r["kind"] == "broken"):
        wan = wan_of(str(r["seen"]), wans) if r.get("seen") else None
        cause = cl.flow(wan, float(r["last_ok"]), float(r["t"]), str(r["reason"]))
        breaks.append({"flow": r["flow"], "gen": r["gen"], "wan": wan,
                       "t": round(float(r["t"]) - t0, 3),
                       "stalled_s": round(float(r["t"]) - float(r["last_ok"]), 3),
                       "reason": r["reason"], "cause": cause,
                       "near": cl.actions_near(float(r["last_ok"]), float(r["t"]))})
    ends = [r for r in records if r["kind"] == "end"]
    return {
        "opened": sum(1 for r in records if r["kind"] == "open"),
        "open_failed": sum(1 for r in records if r["kind"] == "open_failed"),
        "broken": len(breaks),
        "broken_by_cause": cs.count_by(b["cause"] for b in breaks),
        "broken_on_wan_that_died": sum(1 for b in breaks if cs.Classifier.died(b["cause"])),
        "broken_unexplained": sum(1 for b in breaks if not cs.Classifier.died(b["cause"])),
        "alive_at_end": len(ends),
        "max_gap_s_alive_at_end": max((float(r["max_gap"]) for r in ends), default=None),
        "breaks": breaks,
    }


def _repairs(done: Sequence[cs.Done]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in cs.REPAIRED:
        ds = [d for d in done if d.action.kind == kind]
        times = [d.repair_s for d in ds if d.repair_s is not None]
        out[kind] = {"count": len(ds), "not_repaired": sum(1 for d in ds if d.repair_s is None),
                     "failed": [d.detail for d in ds if not d.ok],
                     "ms": {k: (None if v is None else round(v * 1000, 1) if k != "n" else v)
                            for k, v in cs.spread(times).items()}}
    return out


def _daemon_down(done: Sequence[cs.Done]) -> list[tuple[float, float]]:
    return [(d.start, d.end) for d in done if d.action.kind == cs.KILL9]


def _control(pings: Sequence[tuple[float, float | None]], down: Sequence[tuple[float, float]]
             ) -> dict[str, Any]:
    def inside(t: float) -> bool:
        return any(s - 0.1 <= t <= e for s, e in down)
    lat = [x * 1000 for t, x in pings if x is not None]
    return {"samples": len(pings), "answered": len(lat),
            "unanswered_while_running": sum(1 for t, x in pings if x is None and not inside(t)),
            "unanswered_while_killed": sum(1 for t, x in pings if x is None and inside(t)),
            "p50_ms": _r(cs.percentile(lat, 50)), "p99_ms": _r(cs.percentile(lat, 99)),
            "max_ms": _r(max(lat, default=None))}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def analyze(raw: dict[str, Any], params: dict[str, Any], actions: Sequence[cs.Action],
            lag: float) -> dict[str, Any]:
    """The report (JSON-ready) from :func:`bench.chaos.run_storm`'s raw records."""
    done: list[cs.Done] = raw["done"]
    wans = int(params["wans"])
    cl = cs.Classifier.of(done, wans, lag)
    kills = [d for d in done if d.action.kind == cs.KILL9]
    restarts = [d for d in done if d.action.kind == cs.RESTART]
    t0 = float(raw["t0"])
    return {
        "t0": t0,
        "params": {k: v for k, v in params.items() if k not in ("out", "readme")},
        "lab": raw.get("lab"),
        "actions_planned": cs.count_by(a.kind for a in actions),
        "actions_failed": [{"t": round(d.start - t0, 2), "kind": d.action.kind,
                            "detail": d.detail} for d in done if not d.ok],
        "all_wans_cut_s": round(sum(e - s for s, e in cl.blackouts), 2),
        "connections": _connections(raw["conns"], cl, wans, t0),
        "flows": _flows(raw["flows"], cl, wans, t0),
        "repairs": _repairs(done),
        "kill9": {"count": len(kills), "start_ok": sum(1 for d in kills if d.ok),
                  "kept_table_and_rules": sum(1 for d in kills if d.detail.startswith("kept")),
                  "start_s": cs.spread([d.repair_s for d in kills if d.repair_s is not None]),
                  "details": [d.detail for d in kills]},
        "restarts": {"count": len(restarts), "ok": sum(1 for d in restarts if d.ok),
                     "s": cs.spread([d.end - d.start for d in restarts])},
        "control": _control(raw["pings"], _daemon_down(done)),
        "rss_mb": {"start": _r(raw["rss_start"], 1), "end": _r(raw["rss_end"], 1),
                   "max": _r(max((m for _, m in raw["rss"]), default=None), 1),
                   "daemons": 1 + sum(1 for d in kills if d.ok)},
        "recovered_after_storm_s": _r(raw["recovered_s"]),
        "recovery_target_s": raw.get("recovery_target_s"),
        "daemon_counts": raw.get("daemon"),
        "before_stop": raw["before_stop"], "stop_ok": raw["stop_ok"],
        "leftovers": raw["leftovers"],
        "timeline": [{"t": round(d.start - t0, 2), "kind": d.action.kind, "wan": d.action.wan,
                      "took_s": round(d.end - d.start, 3), "repair_s": _r(d.repair_s, 4),
                      "ok": d.ok, "detail": d.detail} for d in sorted(done, key=lambda d: d.start)],
        "log_tail": raw.get("log_tail", ""),
    }


def reclassify(rep: dict[str, Any], lag: float) -> dict[str, Any]:
    """``rep`` (a saved report) with its broken flows classified again by the current rules."""
    t0 = float(rep["t0"])
    done = [cs.Done(cs.Action(e["t"], e["kind"], e["wan"]), t0 + e["t"], t0 + e["t"] + e["took_s"],
                    e["ok"], e["repair_s"], e["detail"]) for e in rep["timeline"]]
    cl = cs.Classifier.of(done, int(rep["params"]["wans"]), lag)
    isps = int(rep["params"]["wans"])
    records = [{"kind": "broken", "flow": b["flow"], "gen": b["gen"], "t": t0 + b["t"],
                "last_ok": t0 + b["t"] - b["stalled_s"], "reason": b["reason"],
                "seen": None if b["wan"] is None else f"10.100.{b['wan']}.2"}
               for b in rep["flows"]["breaks"]]
    flows = _flows(records, cl, isps, t0)
    keep = ("opened", "open_failed", "alive_at_end", "max_gap_s_alive_at_end")
    return {**rep, "flows": {**flows, **{k: rep["flows"][k] for k in keep}}}


# -- the table ------------------------------------------------------------------------------

def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def _repair_row(kind: str, r: dict[str, Any]) -> tuple[str, str, str]:
    ms, n = r["ms"], r["count"]
    name = f"time to repair: {REPAIR_NAMES[kind]}"
    if n == 0:
        return name, "not exercised", ""
    parts = []
    if ms["n"]:
        parts.append(f"median {ms['median']:.0f} ms, max {ms['max']:.0f} ms ({ms['n']} repaired)")
    if r["not_repaired"]:
        parts.append(f"**not repaired within 5 s: {r['not_repaired']} of {n}**")
    ok = not r["not_repaired"] and ms["n"] > 0 and ms["median"] < 200 and ms["max"] <= 1000
    return name, "; ".join(parts), _verdict(ok) + " (median < 200 ms, max ≤ 1 s)"


def rows(rep: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, result, target) for every line of the table."""
    c, f, k, ctl, rss, left = (rep["connections"], rep["flows"], rep["kill9"], rep["control"],
                               rep["rss_mb"], rep["leftovers"])
    near = ", ".join(f"{a} {n}" for a, n in c["no_fault_failures_near_action"].items())
    faults = ", ".join(f"{a} {n}" for a, n in c["unexplained_by_fault"].items()) or "-"
    out = [
        ("new connections attempted / failed", f"{c['attempted']} / {c['failed']}", ""),
        ("… failed while every WAN was cut by the script", str(c["failed_all_wans_cut"]),
         f"allowed ({rep['all_wans_cut_s']:.0f} s with every WAN cut)"),
        ("… unexplained failures (not every WAN cut)",
         f"{c['unexplained']}: {c['unexplained_wan_faulted_or_tracker_lag']} while a WAN was "
         f"faulted or its tracker catching up ({faults}), {c['unexplained_no_fault']} with no "
         "WAN fault" + (f" (near: {near})" if near else ""),
         _verdict(c["unexplained"] == 0) + " (0)"),
        ("long flows broken", f"{f['broken']} of {f['opened']} opened"
         + (" (" + ", ".join(f"{a} {n}" for a, n in f["broken_by_cause"].items()) + ")"
            if f["broken"] else ""), ""),
        ("… broken on a WAN that did not die", str(f["broken_unexplained"]),
         _verdict(f["broken_unexplained"] == 0) + " (0)"),
        ("longest echo gap of a flow alive at the end", "-" if f["max_gap_s_alive_at_end"] is None
         else f"{f['max_gap_s_alive_at_end']:.2f} s ({f['alive_at_end']} flows)", ""),
    ]
    out += [_repair_row(kind, rep["repairs"][kind]) for kind in cs.REPAIRED]
    rs = rep["restarts"]
    kill = (f"{k['count']}×: start ok {k['start_ok']}, table and rules there all along (20 ms "
            f"polls, no duplicates) {k['kept_table_and_rules']}, start median "
            f"{_s(k['start_s']['median'])}")
    restart = (f"{rs['count']}×: ok {rs['ok']}, median {_s(rs['s']['median'])}, "
               f"max {_s(rs['s']['max'])}")
    control = (f"p50 {ctl['p50_ms']} ms, p99 {ctl['p99_ms']} ms, max {ctl['max_ms']} ms; "
               f"{ctl['unanswered_while_running']} unanswered while the daemon ran "
               f"({ctl['samples']} samples)")
    control_ok = (ctl["p99_ms"] is not None and ctl["p99_ms"] < 100
                  and ctl["unanswered_while_running"] == 0)
    memory = (f"{rss['start']} / {rss['end']} MB (max {rss['max']} MB; {rss['daemons']} daemon "
              "processes, one more per `kill -9`)")
    back = rep["recovered_after_storm_s"]
    dc = rep.get("daemon_counts") or {}
    own = (f"error: {dc['error']}" if "error" in dc else
           f"{dc.get('applies')} applies, repairs {dc.get('repairs_total')} "
           f"({', '.join(f'{a} {n}' for a, n in (dc.get('repairs_by_kind') or {}).items()) or '-'})"
           f" in its {dc.get('uptime_s')} s; repairs backing off: {dc.get('backing_off_s')} s; "
           f"failing apply: {dc.get('apply_error') or 'none'}")
    left_s = f"nft tables {left['nft_tables']}, ip rules {left['ip_rules']}, routes {left['routes']}"
    out += [
        ("`kill -9` then `mwan3 start`", kill,
         _verdict(k["start_ok"] == k["kept_table_and_rules"] == k["count"])),
        ("`mwan3 restart`, alternating configs", restart, _verdict(rs["ok"] == rs["count"])),
        ("control socket `ping` every 100 ms", control, _verdict(control_ok) + " (p99 < 100 ms)"),
        ("daemon RSS start / end", memory, ""),
        ("the last daemon's own count", own, ""),
        ("all WANs online again after the storm's last fault",
         "not within 30 s" if back is None else f"after {back} s (state asked every 0.5 s)",
         _verdict(back is not None and back <= (rep.get("recovery_target_s") or 0))
         + f" (≤ {rep.get('recovery_target_s')} s: `up` rounds + one)"),
        ("left after `mwan3 stop`", left_s,
         _verdict(rep["stop_ok"] and not any(left.values())) + " (0)"),
    ]
    if rep["actions_failed"]:
        out.append(("storm actions that failed", "; ".join(
            f"{a['t']} s {a['kind']}: {a['detail']}" for a in rep["actions_failed"][:5]), ""))
    return out


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def markdown(rep: dict[str, Any]) -> str:
    """The report as a markdown table with a one-line heading."""
    p = rep["params"]
    plan = ", ".join(f"{k} {n}" for k, n in rep["actions_planned"].items())
    head = (f"chaos: {p['duration']:g} s, seed {p['seed']}, {p['wans']} WANs, {p['rate']:g} new "
            f"connections/s, {p['flows']} long flows (broken: no echo for {p['stall']:g} s); "
            f"storm: {plan}")
    lines = [head, "", "| | result | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(rep)]
    return "\n".join(lines) + "\n"


def update_readme(path: Path, table: str) -> None:
    """Put ``table`` between the chaos markers of bench/README.md (appended when missing)."""
    text = path.read_text()
    block = f"{README_BEGIN}\n{table}{README_END}"
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        text = head + block + rest.split(README_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n### Chaos (`bench.chaos`)\n\n" + block + "\n"
    path.write_text(text)
