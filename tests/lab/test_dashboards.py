"""Issue 16 item 4: contrib/grafana/mwan.json and contrib/prometheus/alerts.yml name
only metrics that a running daemon's /metrics serves, and promtool accepts the rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
DASHBOARD = CONTRIB / "grafana" / "mwan.json"
ALERTS = CONTRIB / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bmwan_[a-z_]+\b")
PROMETHEUS_OWN = {"up"}  # Prometheus's own series, named in MwanAbsent


def named_metrics() -> dict[str, set[str]]:
    """The mwan metric names each file's queries use."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    alert_exprs = re.findall(r"^\s+expr: (.*)$", ALERTS.read_text(), re.MULTILINE)
    return {"grafana": {m for e in exprs for m in METRIC.findall(e)},
            "alerts": {m for e in alert_exprs for m in METRIC.findall(e)}}


def exposed(text: str) -> set[str]:
    """Names with at least one sample in a Prometheus text exposition."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_files_parse_and_name_metrics() -> None:
    names = named_metrics()
    assert {"mwan_interface_online", "mwan_target_latency_milliseconds", "mwan_target_loss_ratio",
            "mwan_interface_bytes_total", "mwan_interface_transitions_total",
            "mwan_repairs_total"} <= names["grafana"]
    assert {"mwan_interface_status", "mwan_interface_online", "mwan_interface_degraded",
            "mwan_interface_data_cap_bytes", "mwan_repairs_total"} <= names["alerts"]


def test_promtool_accepts_the_rules() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    res = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                         text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.lab
def test_every_named_metric_is_served(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    from mwan.web.auth import hash_password

    head = (f"config globals 'globals'\n\toption web_enabled '1'\n"
            f"\tlist web_listen '{lab.lan_gateway(4)}'\n"
            f"\toption web_password_hash '{hash_password('pw-dash')}'\n")
    text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], interval=1,
                          failure_interval=1, recovery_interval=1, timeout=1, up=1, down=2,
                          data_cap="10G")
    r = mwan(head + text + TWO_WAN_POLICIES)
    url = f"http://{lab.lan_gateway(4)}:8086/metrics"
    want = set().union(*named_metrics().values()) - PROMETHEUS_OWN
    got: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # probe results (latency, loss) come after the first test
        res = lab.exec(lab.client_ns(1), "curl", "-s", "-u", "prometheus:pw-dash", url,
                       timeout=20, check=False)
        got = exposed(res.stdout)
        if want <= got:
            break
        time.sleep(0.5)
    assert want <= got, f"not in /metrics: {sorted(want - got)}\n{r.log()}"
