"""The chaos benchmark runs: a ~20 s storm with one action of each kind gives a report and cleans up.

Timings are the benchmark's business (bench/README.md); this only checks
that the harness works end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.lab
@pytest.mark.timeout(150)
def test_chaos_smoke_run_reports_and_cleans_up(lab_available: tuple[bool, str],
                                                tmp_path: Path) -> None:
    ok, reason = lab_available
    if not ok:
        pytest.skip(f"lab unavailable: {reason}")
    out = tmp_path / "chaos.json"
    res = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--storm", "smoke", "--duration", "20",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=140, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "| new connections attempted / failed |" in res.stdout
    rep = json.loads(out.read_text())
    assert rep["connections"]["attempted"] > 0
    assert rep["flows"]["opened"] >= rep["params"]["flows"]
    ran = {e["kind"] for e in rep["timeline"]}
    assert ran == set(rep["actions_planned"])
    assert set(rep["repairs"]) == {"nft_flush", "rules_del", "gateway"}
    assert rep["control"]["samples"] > 0
    assert rep["rss_mb"]["start"] is not None
    assert rep["leftovers"] == {"nft_tables": 0, "ip_rules": 0, "routes": 0}
    assert rep["lab"]["removed"]
    assert not [ns for ns in rep["lab"]["namespaces"] if os.path.exists(f"/run/netns/{ns}")]
