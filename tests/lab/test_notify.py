"""Notifications (issue 15) with a receiver inside the lab.

The receiver is a small HTTP server in the lab's inet namespace: ``/ok``
answers 200, ``/flaky`` answers 500 to its first two requests, ``/hang``
never answers in time.  mwan in the router POSTs each event there; the test
checks the documents, their signatures, the retries, and that a receiver
that hangs blocks neither the daemon's commands nor routing.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces
from mwan.notify.message import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.lab

RECEIVER = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out, seen = open(sys.argv[3], "a", buffering=1), {}
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = seen[self.path] = seen.get(self.path, 0) + 1
        out.write(json.dumps({"path": self.path, "n": n, "t": time.time(),
                              "headers": dict(self.headers), "body": body.decode()}) + "\\n")
        if self.path == "/hang":
            time.sleep(20)
        code = 500 if self.path == "/flaky" and n <= 2 else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
"""

ADDR, PORT = "198.51.100.30", 8080


def notify_sections(secret: str) -> str:
    base = f"http://{ADDR}:{PORT}"
    return f"""
config globals 'globals'
	option router_name 'lab-r1'

config notify 'ok'
	option url '{base}/ok'
	option secret '{secret}'
	list header 'Authorization: Bearer lab'

config notify 'flaky'
	option url '{base}/flaky'
	list event 'ifdown'
	option retries '3'

config notify 'hang'
	option url '{base}/hang'
	list event 'ifdown'
	option timeout '1'
	option retries '1'

config notify 'refused'
	option url 'http://{ADDR}:{PORT + 1}/'
	list event 'ifdown'
	option retries '1'
"""


def wait_for(pred: Callable[[], bool], timeout: float = 20.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_events_reach_the_receivers_signed_retried_and_never_block(
        lab: Lab, mwan: Callable[[str], MwanRouter], tmp_path: Path) -> None:
    log = tmp_path / "received"
    lab.ip(lab.inet, "addr", "add", f"{ADDR}/32", "dev", "lo")
    rx = lab.popen(lab.inet, ["python3", "-c", RECEIVER, ADDR, str(PORT), str(log)],
                   stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"

    def got(path: str | None = None) -> list[dict[str, Any]]:
        if not log.exists():
            return []
        recs = [json.loads(line) for line in log.read_text().splitlines()]
        return [r for r in recs if path is None or r["path"] == path]

    secret = "lab-s3cret"
    m = mwan(notify_sections(secret) + lab_interfaces(lab, ipv6=False))
    # the start's ifup events, each one JSON document, signed
    assert wait_for(lambda: {json.loads(r["body"])["interface"] for r in got("/ok")}
                    >= {"wan", "wanb"}), m.log()
    first = got("/ok")[0]
    doc = json.loads(first["body"])
    assert doc["router"] == "lab-r1" and doc["event"] == "ifup" and doc["text"].startswith(
        "[lab-r1] wan")
    assert {"reason", "time", "time_iso", "status", "targets"} <= set(doc)
    assert first["headers"]["Authorization"] == "Bearer lab"
    assert verify(secret, first["body"].encode(), first["headers"][SIGNATURE_HEADER])
    assert not verify("wrong", first["body"].encode(), first["headers"][SIGNATURE_HEADER])
    assert not got("/flaky") and not got("/hang")  # their filter: ifdown only

    started = time.monotonic()
    m.cli("ifdown", "wanb")
    assert time.monotonic() - started < 10  # the hanging receiver does not hold the command
    assert lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=5).ok == 5
    # flaky: two 500s, then taken (backoff 1 s, 2 s)
    assert wait_for(lambda: len(got("/flaky")) == 3), got("/flaky")
    flaky = got("/flaky")
    assert [json.loads(r["body"])["event"] for r in flaky] == ["ifdown"] * 3
    assert flaky[2]["t"] - flaky[0]["t"] >= 2.5  # backed off between attempts

    def counts() -> dict[str, Any]:
        return json.loads(m.cli("status", "--json").stdout)["notify"]  # type: ignore[no-any-return]

    assert wait_for(lambda: counts()["hang"]["failed"] == 1), counts()
    c = counts()
    assert c["flaky"]["sent"] == 1 and c["flaky"]["attempts_failed"] == 2
    assert c["hang"]["attempts_failed"] == 2 and "1 s" in c["hang"]["last_error"]
    assert c["ok"]["failed"] == 0 and c["ok"]["sent"] >= 3
    assert len(got("/hang")) == 2  # timeout, one retry, no more
    assert f"notify hang: wanb ifdown not delivered to {ADDR}:{PORT} after 2 attempts" in m.log()
    assert any(json.loads(r["body"])["event"] == "ifdown" for r in got("/ok"))
    # nothing listens there: refused, retried once, counted, logged
    assert wait_for(lambda: counts()["refused"]["failed"] == 1), counts()
    assert f"notify refused: wanb ifdown not delivered to {ADDR}:{PORT + 1}" in m.log()
