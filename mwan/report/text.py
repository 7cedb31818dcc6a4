"""mwan3's human layouts, from the report dict. Pure."""

from __future__ import annotations

import time
from typing import Any

from ..config.values import FAMILIES


def hms(seconds: float | None) -> str:
    """mwan3's ``00h:00m:54s``."""
    s = int(max(0, seconds or 0))
    return f"{s // 3600:02d}h:{s % 3600 // 60:02d}m:{s % 60:02d}s"


def clock(t: float) -> str:
    """A time of day, local time: ``14:03:27``."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def interfaces(report: dict[str, Any], now: float) -> str:
    lines = ["Interface status:"]
    for name, st in report["interfaces"].items():
        tracking = st.get("tracking", "disabled")
        if not st.get("up") and tracking == "paused":
            tracking = "paused"
        status = st.get("status") or ("online" if st.get("online") else "offline")
        if st.get("held_until") is not None:
            lines.append(f" interface {name} is held down (flapping) until "
                         f"{clock(st['held_until'])} ({hms(st['held_until'] - now)} left)"
                         f" and tracking is {tracking}")
        elif st.get("online"):
            q = st.get("quality") or {}
            degraded = f" (degraded: {q.get('reason')})" if st.get("degraded") else ""
            lines.append(f" interface {name} is online{degraded}"
                         f" {hms(now - (st.get('online_since') or now))}"
                         f", uptime {hms(now - (st.get('up_since') or now))}"
                         f" and tracking is {tracking}")
        else:
            lines.append(f" interface {name} is {status} and tracking is {tracking}")
    return "\n".join(lines) + "\n"


def targets(report: dict[str, Any]) -> str:
    lines = ["Tracking (last test per target):"]
    for name, st in report["interfaces"].items():
        if not st.get("targets"):
            lines.append(f" {name}: no track_ip")
            continue
        lines.append(f" {name}: score {st.get('score')}, {st.get('probes_sent', 0)} probes sent, "
                     f"{st.get('probes_lost', 0)} lost")
        for t in st["targets"]:
            lat = "-" if t.get("latency_ms") is None else f"{t['latency_ms']:.1f} ms"
            loss = "-" if t.get("loss_pct") is None else f"{t['loss_pct']:.0f}%"
            lines.append(f"  {t['ip']:<40} {t['status']:<8} latency {lat:>10}  loss {loss:>4}")
            w = t.get("window")
            if w and w.get("sent"):
                lines.append(f"  {'':<40} window   latency {_ms(w['latency_ms']):>10}  loss "
                             f"{w['loss_pct']:>3.0f}%  jitter {_ms(w['jitter_ms'])}")
        q = st.get("quality")
        if q and q.get("sent"):
            lines.append(f"  quality over {q['window_s']:g} s: latency {_ms(q['latency_ms'])}, "
                         f"jitter {_ms(q['jitter_ms'])}, loss {q['loss_pct']:.0f}%"
                         f" ({q['level']}{': ' + q['reason'] if q.get('reason') else ''})")
    return "\n".join(lines) + "\n"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def policies(report: dict[str, Any]) -> str:
    lines = []
    for fam, per in report["policies"].items():
        lines.append(f"Current {fam} policies:")
        for name, p in per.items():
            lines.append(f"{name}:")
            if p["members"]:
                lines += [f" {m['interface']} ({m['percent']:.0f}%)" for m in p["members"]]
            else:
                lines.append(f" {p['last_resort']}")
            lines += [f" ({note})" for note in p.get("notes") or ()]
        lines.append("")
    return "\n".join(lines)


def connected(report: dict[str, Any]) -> str:
    lines = []
    for fam, nets in report["connected"].items():
        lines.append(f"Directly connected {fam} networks:")
        lines += nets
        lines.append("")
    return "\n".join(lines)


def rules(report: dict[str, Any]) -> str:
    lines = []
    for fam in FAMILIES:
        lines.append(f"Active {fam} user rules:")
        for r in report["rules"]:
            if r["family"] != fam:
                continue
            marker = "S" if r["sticky"] else "-"
            match = []
            if r["proto"] != "all":
                match.append(str(r["proto"]))
            match += [f"src {','.join(r['src_ip'])}"] if r["src_ip"] else []
            match += [f"dst {','.join(r['dest_ip'])}"] if r["dest_ip"] else []
            match += [f"sports {','.join(r['src_port'])}"] if r["src_port"] else []
            match += [f"dports {','.join(r['dest_port'])}"] if r["dest_port"] else []
            match += [f"ipset {r['ipset']}"] if r["ipset"] else []
            lines.append(f"{_si(r['packets']):>6} {_si(r['bytes']):>6} {marker} "
                         f"{r['policy']:<16} {r['rule']:<16} {' '.join(match) or 'all'}")
        lines.append("")
    return "\n".join(lines)


def _si(n: int) -> str:
    """iptables -v style: 720, 12K, 3M."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size * 100:
            return f"{n // size}{unit}"
    return str(n)


def health(report: dict[str, Any], now: float) -> str:
    """A failing apply and the repairs of drift, when there is anything to say."""
    lines = []
    err = report.get("apply_error")
    if err:
        lines.append(f"Apply failing since {hms(now - err['since'])} ago "
                     f"({err['attempts']} attempts, next in {err['retry_in_s']:.0f}s): "
                     f"{err['reason']}")
    rep = report.get("repairs") or {}
    if rep.get("total"):
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(rep["by_kind"].items()))
        last = rep["recent"][-1] if rep.get("recent") else None
        line = f"Repairs: {rep['total']} ({kinds})"
        if last:
            who = f" by {last['who']}" if last.get("who") else ""
            line += f"; last {hms(now - last['time'])} ago: {last['what']}{who}"
        lines.append(line)
        if rep.get("backing_off_s"):
            lines.append(f"  something keeps changing mwan's kernel objects: repairs back off "
                         f"for {rep['backing_off_s']:.0f}s")
    return "\n".join(lines) + "\n" if lines else ""


def _size(n: int) -> str:
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def usage(report: dict[str, Any]) -> str:
    """Per-WAN usage and data caps (issue 15)."""
    lines = ["Usage (in / out; kept across restarts):"]
    for name, st in report["interfaces"].items():
        u = st.get("usage")
        if not u:
            continue
        line = (f" {name}: {_size(u['rx_bytes'])} / {_size(u['tx_bytes'])}, "
                f"{u['rx_packets']} / {u['tx_packets']} packets")
        if u.get("data_cap"):
            line += (f"; cap {_size(u['period_bytes'])} of {_size(u['data_cap'])} "
                     f"({u['cap_used_pct']:.0f}%, {u['data_cap_period']}, "
                     f"{u['data_cap_action']})")
            if st.get("standby"):
                line += ", in standby"
        lines.append(line)
    return "\n".join(lines) + "\n"


def ha(report: dict[str, Any], now: float) -> str:
    """This router's VRRP role and the conntrack sync (config ha only; mwan.ha.status)."""
    st = report.get("ha")
    if not st:
        return ""
    role = st["role"]
    if role == "STOPPED":
        role += f" (keepalived is not running; its hook last said {st['last_role'] or 'nothing'})"
    elif st.get("role_since"):
        role += f" for {hms(now - st['role_since'])}"
    sync = {"ok": "ok", "link-down": f"BROKEN: {st['sync_device']} is {st['link']}",
            "peer-unreachable": f"BROKEN: peer {st['peer']} unreachable "
            f"(neighbour {st['peer_neighbour']})",
            "conntrackd-down": "BROKEN: conntrackd does not answer"}[st["sync"]]
    lines = [f"HA: {role}", f" sync with {st['peer']} on {st['sync_device']}: {sync}"]
    s = st.get("stats")
    if s:
        lines.append(f" flows: {s['internal']} here, {s['external']} from the peer; "
                     f"packets {s['sent']} sent / {s['received']} received, {s['lost']} lost")
    return "\n".join(lines) + "\n"


def status(report: dict[str, Any], now: float) -> str:
    h = health(report, now) + ha(report, now)
    return "\n".join(([h] if h else []) + [interfaces(report, now), targets(report),
                                           usage(report), policies(report), connected(report),
                                           rules(report)])


def explain(result: dict[str, Any]) -> str:
    lines = [f"connection: {result['connection']}"]
    for step in result["steps"]:
        lines.append(f"  {step}")
    lines.append(f"=> {result['verdict']}")
    return "\n".join(lines) + "\n"
