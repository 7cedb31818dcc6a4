"""The web UI's HTML, rendered on the server from the same report as ``--json``. Pure.

Every value is escaped; pages carry no inline script or style (the Content
Security Policy forbids them): /static/app.js refreshes the ``data-live``
part of a page from its /fragment/ URL every two seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

from aiohttp import web

from ..config.errors import Problem
from ..config.model import ROOT_ONLY, SECTION_TABLES
from ..config.uci import UciSection
from ..config.validate import KNOWN_OPTIONS, LIST_OPTIONS
from ..report.text import hms

NAV = (("overview", "/", "Overview"), ("rules", "/rules", "Rules"),
       ("connected", "/connected", "Connected"), ("log", "/log", "Log"),
       ("diagnostics", "/diagnostics", "Diagnostics"), ("config", "/config", "Config"))
SECTION_TYPES = ("interface", "member", "policy", "rule", "notify")
SECTION_TITLES = {"interface": "Interfaces", "member": "Members", "policy": "Policies",
                  "rule": "Rules", "notify": "Notifications"}
# ROOT_ONLY (from the option tables): options naming a program or a file that the daemon
# (root) runs or reads, and the password hash: shown, but they change only in the file
# each section type's option defaults (as placeholders) and help, from the option tables
DEFAULTS = {stype: {s.name: d for s in specs if (d := s.default_text()) is not None}
            for stype, specs in SECTION_TABLES.items()}
HELP = {stype: {s.name: s.help for s in specs} for stype, specs in SECTION_TABLES.items()}


def E(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def list_options(section_type: str) -> set[str]:
    return {o for o in KNOWN_OPTIONS.get(section_type, set()) if o in LIST_OPTIONS}


def _doc(title: str, main: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{E(title)} · mwan</title><link rel="stylesheet" href="/static/app.css">'
            f'<script src="/static/app.js" defer></script></head><body>{main}</body></html>')


def layout(active: str, body: str, session: Any, live: str | None = None) -> str:
    nav = "".join(f'<a href="{href}"{" class=active" if name == active else ""}>{label}</a>'
                  for name, href, label in NAV)
    logout = (f'<form method="post" action="/logout" class="logout">'
              f'<input type="hidden" name="csrf" value="{E(session.csrf)}">'
              f'<button type="submit">Log out</button></form>')
    live_attr = f' data-live="/fragment/{E(live)}"' if live else ""
    title = {n: lab for n, _h, lab in NAV}.get(active, active)
    return _doc(title, f'<header><strong>mwan</strong><nav>{nav}</nav>{logout}</header>'
                       f'<main id="main"{live_attr}>{body}</main>')


def login_page(message: str) -> str:
    msg = f'<p class="error" id="login-error">{E(message)}</p>' if message else ""
    return _doc("Log in", f'<main class="login"><h1>mwan</h1>{msg}'
                          f'<form method="post" action="/login">'
                          f'<label>Password <input type="password" name="password" id="password" '
                          f'autofocus autocomplete="current-password"></label>'
                          f'<button type="submit" id="login">Log in</button></form></main>')


# ------------------------------------------------------------------ overview

def _ago(now: float, t: float | None) -> str:
    return hms(now - t) if t else "-"


def chart(history: Sequence[Sequence[Any]], now: float, width: int = 360, height: int = 60
          ) -> str:
    """An SVG of the last hour: latency as a blue line, the quality window's jitter as an
    orange one (same ms scale), loss as red bars (0..100 %), offline shaded."""
    if not history:
        return '<svg class="chart" width="360" height="60"><text x="4" y="34">no data yet' \
               '</text></svg>'
    lats = [h[1] for h in history if h[1] is not None]
    top = max(lats) * 1.2 if lats else 1.0
    top = max(top, 1.0)

    def x(t: float) -> float:
        return round(width * (1 - (now - t) / 3600), 1)

    points = " ".join(f"{x(h[0])},{round(height - height * h[1] / top, 1)}"
                      for h in history if h[1] is not None)
    jitter = " ".join(f"{x(h[0])},{round(height - height * min(h[4], top) / top, 1)}"
                      for h in history if len(h) > 4 and h[4] is not None)
    bars = "".join(f'<rect x="{x(h[0])}" y="{round(height - height * h[2] / 100, 1)}" width="2" '
                   f'height="{round(height * h[2] / 100, 1)}" fill="#d33" opacity="0.5"/>'
                   for h in history if h[2])
    down = "".join(f'<rect x="{x(h[0])}" y="0" width="3" height="{height}" fill="#999" '
                   f'opacity="0.25"/>' for h in history if h[3] in ("offline", "disconnecting"))
    return (f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
            f' role="img"><title>latency (blue, max {top:.0f} ms), jitter (orange) and loss '
            f'(red), last hour</title>{down}'
            f'{bars}<polyline fill="none" stroke="#26c" stroke-width="1.5" points="{points}"/>'
            f'<polyline class="jitter" fill="none" stroke="#e80" stroke-width="1" '
            f'points="{jitter}"/>'
            f'<text x="{width - 4}" y="12" text-anchor="end" font-size="10">{top:.0f} ms</text>'
            f'</svg>')


def _size(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}B"
    return f"{n:.0f} B"


def usage_bar(u: dict[str, Any] | None, standby: bool = False, width: int = 120) -> str:
    """A WAN's usage (issue 15): a bar of its data-cap period against the cap, or the totals."""
    if not u:
        return "-"
    total = f"in {_size(u['rx_bytes'])}, out {_size(u['tx_bytes'])}"
    cap = u.get("data_cap")
    if not cap:
        return f'<span class="usage">{E(total)}</span>'
    pct = min(100.0, float(u.get("cap_used_pct") or 0))
    color = "#d33" if pct >= 95 else ("#e90" if pct >= 75 else "#3a3")
    label = (f"{_size(u['period_bytes'])} of {_size(cap)} ({pct:.0f}%, {u['data_cap_period']})"
             + (", standby" if standby else ""))
    return (f'<svg class="usage" width="{width}" height="10" role="img"><title>{E(label)}; '
            f'{E(total)}</title><rect width="{width}" height="10" fill="#eee"/>'
            f'<rect width="{round(width * pct / 100, 1)}" height="10" fill="{color}"/></svg>'
            f'<br><small>{E(label)}</small>')


def quality_note(st: dict[str, Any]) -> str:
    """Under the status: degraded and why, and the quality window (issue 14)."""
    q = st.get("quality")
    if not q or not q.get("sent"):
        return ""
    lat, jit = q.get("latency_ms"), q.get("jitter_ms")
    window = (f'{q["window_s"]:g} s: {_ms(lat)}, jitter {_ms(jit)}, loss '
              f'{q.get("loss_pct") or 0:.0f}%')
    degraded = (f'<br><small class="degraded">degraded: {E(q.get("reason"))}</small>'
                if st.get("degraded") else "")
    return f'{degraded}<br><small class="window">{E(window)}</small>'


def ha_html(ha: dict[str, Any] | None) -> str:
    """This router's VRRP role and the sync (config ha only; read by mwan.ha.status)."""
    if not ha:
        return ""
    sync = ha["sync"]
    why = {"ok": "ok", "link-down": f"broken: {ha['sync_device']} is {ha['link']}",
           "peer-unreachable": f"broken: peer {ha['peer']} unreachable",
           "conntrackd-down": "broken: conntrackd does not answer"}.get(sync, sync)
    stats = ha.get("stats") or {}
    flows = (f", {stats['internal']} flows here, {stats['external']} from the peer"
             if stats else "")
    return (f'<p id="ha" class="ha" data-role="{E(ha["role"])}" data-sync="{E(sync)}">'
            f'HA role <b>{E(ha["role"])}</b>; sync with {E(ha["peer"])}: '
            f'<span class="{"ok" if sync == "ok" else "bad"}">{E(why)}</span>{E(flows)}</p>')


def overview_body(rep: dict[str, Any], events: list[dict[str, Any]], now: float,
                  csrf: str) -> str:
    rows = []
    for name, st in rep["interfaces"].items():
        status = st.get("status") or ("online" if st.get("online") else "offline")
        targets = st.get("targets") or []
        lats = [t["latency_ms"] for t in targets if t.get("latency_ms") is not None]
        losses = [t["loss_pct"] for t in targets if t.get("loss_pct") is not None]
        lat = f"{sum(lats) / len(lats):.1f} ms" if lats else "-"
        loss = f"{sum(losses) / len(losses):.0f}%" if losses else "-"
        action = "ifdown" if st.get("admin_up", True) else "ifup"
        button = (f'<form method="post" action="/interfaces/{E(name)}/{action}">'
                  f'<input type="hidden" name="csrf" value="{E(csrf)}">'
                  f'<button type="submit" id="{action}-{E(name)}">{action}</button></form>')
        rows.append(
            f'<tr id="iface-{E(name)}" data-status="{E(status)}"><td>{E(name)}</td>'
            f'<td>{E(st.get("device"))}</td>'
            f'<td class="status {E(status)}">{E(status)}{quality_note(st)}</td>'
            f'<td>{_ago(now, st.get("online_since")) if st.get("online") else "-"}</td>'
            f'<td>{E(lat)}</td><td>{E(loss)}</td><td>{E(st.get("score"))}</td>'
            f'<td>{E(st.get("tracking"))}</td><td>{chart(st.get("history") or [], now)}</td>'
            f'<td>{usage_bar(st.get("usage"), bool(st.get("standby")))}</td>'
            f'<td>{button}</td></tr>')
    table = ('<table class="ifaces"><thead><tr><th>interface</th><th>device</th><th>status</th>'
             '<th>online for</th><th>latency</th><th>loss</th><th>score</th><th>tracking</th>'
             '<th>last hour</th><th>usage</th><th></th></tr></thead><tbody>' + "".join(rows)
             + '</tbody></table>')
    return (f'<h1>Overview</h1><p class="meta">up {hms(rep.get("uptime_s"))}, last apply '
            f'{_ms(rep.get("last_apply_ms"))}</p>{ha_html(rep.get("ha"))}{table}<h2>Policies</h2>'
            f'{policies_html(rep["policies"])}<h2>Recent events</h2>{events_table(events)}')


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def policies_html(pols: dict[str, dict[str, Any]]) -> str:
    out = ['<div class="policies">']
    for fam, per in pols.items():
        out.append(f'<div><h3>{E(fam)}</h3><table><tbody>')
        for name, p in per.items():
            if p["members"]:
                shares = ", ".join(f'{E(m["interface"])} {m["percent"]:.0f}%'
                                   for m in p["members"])
            else:
                shares = f'<em>{E(p["last_resort"])}</em> (no member online)'
            out.append(f'<tr id="policy-{E(fam)}-{E(name)}"><td>{E(name)}</td><td>{shares}'
                       f'</td></tr>')
        out.append("</tbody></table></div>")
    out.append("</div>")
    return "".join(out)


def events_table(events: list[dict[str, Any]]) -> str:
    if not events:
        return '<p class="meta">none yet</p>'
    rows = "".join(f'<tr><td>{E(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["time"])))}'
                   f'</td><td>{E(e["interface"])}</td><td>{E(e["action"])}</td>'
                   f'<td>{E(e["reason"])}</td></tr>' for e in events)
    return ('<table class="events"><thead><tr><th>time</th><th>interface</th><th>event</th>'
            f'<th>reason</th></tr></thead><tbody>{rows}</tbody></table>')


def rules_body(rep: dict[str, Any]) -> str:
    rows = []
    for r in rep["rules"]:
        match = []
        if r["proto"] != "all":
            match.append(str(r["proto"]))
        for key, label in (("src_ip", "src"), ("dest_ip", "dst"), ("src_port", "sport"),
                           ("dest_port", "dport")):
            if r[key]:
                match.append(f"{label} {','.join(r[key])}")
        if r["ipset"]:
            match.append(f"ipset {r['ipset']}")
        rows.append(f'<tr id="rule-{E(r["rule"])}-{E(r["family"])}"><td>{E(r["rule"])}</td>'
                    f'<td>{E(r["family"])}</td><td>{E(" ".join(match) or "all")}</td>'
                    f'<td>{E(r["policy"])}{" (sticky)" if r["sticky"] else ""}</td>'
                    f'<td class="num packets">{r["packets"]}</td>'
                    f'<td class="num">{r["bytes"]}</td></tr>')
    return ('<h1>Rules</h1><p class="meta">first match wins; counters are new connections\' '
            'first packets, live</p><table><thead><tr><th>rule</th><th>family</th><th>match</th>'
            '<th>policy</th><th>packets</th><th>bytes</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def connected_body(rep: dict[str, Any]) -> str:
    out = ["<h1>Connected networks</h1><p class=meta>traffic to these uses the main table</p>"]
    for fam, nets in rep["connected"].items():
        items = "".join(f"<li>{E(n)}</li>" for n in nets) or "<li><em>none</em></li>"
        out.append(f'<h2>{E(fam)}</h2><ul id="connected-{E(fam)}">{items}</ul>')
    return "".join(out)


def log_body(events: list[dict[str, Any]]) -> str:
    return "<h1>Transitions</h1>" + events_table(events)


def diagnostics_body(ifaces: list[str], form: dict[str, str], explain: dict[str, Any] | None,
                     ping: dict[str, Any] | None, error: str, csrf: str = "") -> str:
    def val(k: str, default: str = "") -> str:
        return E(form.get(k, default))

    protos = "".join(f'<option{" selected" if form.get("proto", "tcp") == p else ""}>{p}</option>'
                     for p in ("tcp", "udp", "icmp"))
    opts = "".join(f'<option{" selected" if form.get("interface") == i else ""}>{E(i)}</option>'
                   for i in ifaces)
    out = ["<h1>Diagnostics</h1>"]
    if error:
        out.append(f'<p class="error" id="diag-error">{E(error)}</p>')
    out.append(
        f'<h2>Explain</h2><form method="post" action="/diagnostics" id="explain-form">'
        f'<input type="hidden" name="csrf" value="{E(csrf)}"><input type="hidden" name="do" '
        f'value="explain"><label>source <input name="src" value="{val("src")}"></label>'
        f'<label>destination <input name="dst" value="{val("dst")}"></label>'
        f'<label>proto <select name="proto">{protos}</select></label>'
        f'<label>sport <input name="sport" size="6" value="{val("sport")}"></label>'
        f'<label>dport <input name="dport" size="6" value="{val("dport")}"></label>'
        f'<button type="submit">Explain</button></form>')
    if explain is not None:
        steps = "".join(f"<li>{E(s)}</li>" for s in explain["steps"])
        out.append(f'<div id="explain-result"><p>{E(explain["connection"])}</p><ol>{steps}</ol>'
                   f'<p><strong>⇒ {E(explain["verdict"])}</strong></p></div>')
    out.append(
        f'<h2>Ping through a WAN</h2><form method="post" action="/diagnostics" id="ping-form">'
        f'<input type="hidden" name="csrf" value="{E(csrf)}"><input type="hidden" name="do" '
        f'value="ping"><label>interface <select name="interface">{opts}</select></label>'
        f'<label>target <input name="target" value="{val("target")}"></label>'
        f'<label>count <input name="count" size="3" value="{val("count", "3")}"></label>'
        f'<button type="submit">Ping</button></form>')
    if ping is not None:
        lat = "-" if ping["latency_ms"] is None else f'{ping["latency_ms"]:.1f} ms'
        out.append(f'<p id="ping-result">{E(ping["target"])} via {E(ping["interface"])} '
                   f'({E(ping["device"])}): {ping["received"]}/{ping["sent"]} answered, '
                   f'average {E(lat)}{" — " + E(ping["error"]) if ping["error"] else ""}</p>')
    return "".join(out)


# ------------------------------------------------------------------ config editor

def _problem_list(problems: Sequence[Problem], elem_id: str = "config-errors") -> str:
    if not problems:
        return ""
    items = "".join(f'<li data-line="{p.line}">{E(str(p))}</li>' for p in problems)
    return f'<ul class="error" id="{elem_id}">{items}</ul>'


def _field(sec: UciSection, opt: str, problems: Sequence[Problem],
           form: dict[str, str]) -> str:
    current = sec.get(opt)
    key = f"opt:{opt}"
    is_list = opt in LIST_OPTIONS
    if key in form:
        value = form[key]
    elif current is None:
        value = ""
    else:
        value = "\n".join(current.values) if is_list else current.value
    errs = "".join(f'<span class="error field-error">{E(str(p))}</span>'
                   for p in problems if p.section == sec.name and p.option == opt)
    name = f'{E(key)}'
    if is_list:
        widget = f'<textarea name="{name}" rows="{max(2, value.count(chr(10)) + 1)}">' \
                 f'{E(value)}</textarea>'
    else:
        default = DEFAULTS.get(sec.type, {}).get(opt)
        ph = f' placeholder="default: {E(default)}"' if default is not None else ""
        widget = f'<input name="{name}" value="{E(value)}"{ph}>'
    if opt in ROOT_ONLY:  # shown, not sent: a disabled field is not part of the form
        value = "(set)" if opt == "secret" and value else value  # a webhook's (issue 15)
        widget = (f'<input value="{E(value)}" disabled title="can only be changed from the '
                  f'CLI or the file, as root"><span class="meta">root only</span>')
    cls = ' class="set"' if current is not None else ""
    help_ = HELP.get(sec.type, {}).get(opt, "")
    return (f'<label{cls} title="{E(help_)}"><span>{E(opt)}</span>{widget}'
            f'<span class="meta help">{E(help_)}</span>{errs}</label>')


def config_body(sections: Sequence[UciSection], problems: Sequence[Problem], focus: str | None,
                message: str, form: dict[str, str], csrf: str = "") -> str:
    out = [('<h1>Configuration</h1><p class="meta">Each section is validated with the same model '
           'as <code>mwan3 check</code> and applied at once; the file keeps its comments. '
           '<a href="/config/raw">Edit the whole file</a></p>')]
    if message:
        cls = "error" if problems else "ok"
        out.append(f'<p class="{cls}" id="config-message">{E(message)}</p>')
    out.append(_problem_list(problems))
    for stype in SECTION_TYPES:
        out.append(f"<h2>{E(SECTION_TITLES.get(stype, stype.capitalize()))}</h2>")
        for sec in sections:
            if sec.type != stype:
                continue
            known = sorted(KNOWN_OPTIONS.get(stype, set()),
                           key=lambda o: (sec.get(o) is None, o))
            fields = "".join(_field(sec, o, problems if sec.name == focus else (), form
                                    if sec.name == focus else {}) for o in known)
            out.append(
                f'<details class="section" id="sec-{E(sec.name)}"'
                f'{" open" if sec.name == focus else ""}><summary>{E(sec.name)} '
                f'<span class="meta">line {sec.line}</span></summary>'
                f'<form method="post" action="/config/section" id="form-{E(sec.name)}">'
                f'<input type="hidden" name="csrf" value="{E(csrf)}">'
                f'<input type="hidden" name="section" value="{E(sec.name)}">{fields}'
                f'<button type="submit" name="save">Save and apply</button></form>'
                f'<form method="post" action="/config/delete" class="delete">'
                f'<input type="hidden" name="csrf" value="{E(csrf)}">'
                f'<input type="hidden" name="section" value="{E(sec.name)}">'
                f'<button type="submit">Delete {E(sec.name)}</button></form></details>')
    types = "".join(f"<option>{t}</option>" for t in SECTION_TYPES)
    out.append(f'<h2>Add a section</h2><form method="post" action="/config/add" id="add-form">'
               f'<input type="hidden" name="csrf" value="{E(csrf)}">'
               f'<label>type <select name="type">{types}</select></label>'
               f'<label>name <input name="name"></label><button type="submit">Add</button>'
               f'</form>')
    return "".join(out)


def raw_body(text: str, problems: Sequence[Problem], message: str, csrf: str = "",
             confirm: bool = False) -> str:
    bad = {p.line for p in problems}
    gutter = "".join(f'<span{" class=bad" if i in bad else ""}>{i}</span>'
                     for i in range(1, text.count("\n") + 2))
    msg = ""
    if message:
        msg = f'<p class="{"error" if problems else "ok"}" id="config-message">{E(message)}</p>'
    return (f'<h1>Configuration file</h1>{msg}{_problem_list(problems)}'
            f'<form method="post" action="/config/raw" id="raw-form">'
            f'<input type="hidden" name="csrf" value="{E(csrf)}"><div class="editor">'
            f'<pre class="gutter">{gutter}</pre><textarea name="text" id="raw-text" rows="40" '
            f'spellcheck="false">{E(text)}</textarea></div>'
            + ('<label><input type="checkbox" name="confirm_empty" value="1" '
               'id="confirm-empty"> yes, remove every interface</label>' if confirm else '')
            + '<button type="submit" id="raw-apply">Validate and apply</button></form>')
