"""The daemon's start-up line (issue 17): written once ready, read back by bench.startup_bench."""

from __future__ import annotations

import time

from mwan.daemon.startclock import StartClock, parse_line, process_started


def test_the_line_round_trips() -> None:
    clock = StartClock(started=1000.0)
    clock.mark("imports done", 1000.25)
    clock.mark("first apply done", 1000.5)
    line = f"2026-12-01 10:00:00,000 mwan[1] INFO: {clock.line()}\n"
    assert parse_line(line) == (1000.0, {"imports done": 0.25, "first apply done": 0.5})
    assert parse_line("mwan started: 2 interfaces") is None


def test_this_process_started_in_the_past() -> None:
    assert 0 <= time.time() - process_started() < 3600
