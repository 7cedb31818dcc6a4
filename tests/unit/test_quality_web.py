"""The quality window in /metrics and on the overview page (issue 14), from a report dict."""

from __future__ import annotations

import asyncio
from typing import Any

from mwan.web import pages
from mwan.web.metrics import Metrics

WINDOW = {"sent": 100, "received": 88, "latency_ms": 20.0, "jitter_ms": 3.5, "loss_pct": 12.0}
REPORT: dict[str, Any] = {
    "interfaces": {"wan": {
        "online": True, "status": "online", "tracking": "active", "targets": [
            {"ip": "192.0.2.1", "status": "up", "latency_ms": 19.0, "loss_pct": 0.0,
             "window": WINDOW}],
        "quality": {**WINDOW, "window_s": 60, "level": "degraded", "reason": "loss 12%"},
        "degraded": True, "suspicions": 2, "transitions": {"degraded": 1},
        "history": [[100.0, 20.0, 0.0, "online", 3.0], [200.0, 25.0, 25.0, "online", 6.0]]}},
    "rules": [], "policies": {}, "uptime_s": 5}


class Door:
    def subscribe(self, listener: object) -> object:
        return lambda: None

    async def call(self, cmd: str, args: object = None) -> Any:
        return REPORT


def test_metrics_show_the_windows_the_level_and_suspicions() -> None:
    body, _ = asyncio.run(Metrics(Door()).render())  # type: ignore[arg-type]
    text = body.decode()
    assert 'mwan_interface_window_loss_ratio{interface="wan"} 0.12' in text
    assert 'mwan_interface_window_jitter_milliseconds{interface="wan"} 3.5' in text
    assert 'mwan_interface_window_latency_milliseconds{interface="wan"} 20.0' in text
    assert 'mwan_target_window_loss_ratio{interface="wan",target="192.0.2.1"} 0.12' in text
    assert 'mwan_interface_degraded{interface="wan"} 1.0' in text
    assert 'mwan_interface_suspicions_total{interface="wan"} 2.0' in text


def test_chart_draws_jitter_and_loss_as_well_as_latency() -> None:
    svg = pages.chart(REPORT["interfaces"]["wan"]["history"], 300.0)
    assert 'class="jitter"' in svg and 'fill="#d33"' in svg and 'stroke="#26c"' in svg
    # old 4-element history (no jitter) still draws
    assert "<polyline" in pages.chart([(100.0, 5.0, 0.0, "online")], 300.0)


def test_overview_says_degraded_and_why() -> None:
    note = pages.quality_note(REPORT["interfaces"]["wan"])
    assert "degraded: loss 12%" in note and "jitter 3.5 ms" in note
