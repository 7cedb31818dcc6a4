"""How long the daemon took to start, phase by phase (one log line; bench.startup_bench reads it).

The phases are counted from the moment the kernel started the process
(``/proc/self/stat``, in clock ticks of 10 ms), so the interpreter's own
start-up is in the first one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

LINE_RE = re.compile(r"start-up \(s after the process started at (?P<t0>[0-9.]+)\): (?P<p>.*)$")


def process_started() -> float:
    """The wall-clock time this process started (10 ms resolution); now if /proc cannot say."""
    now_wall, now_boot = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
    except (OSError, IndexError, ValueError):
        return now_wall
    return now_wall - (now_boot - ticks / os.sysconf("SC_CLK_TCK"))


@dataclass
class StartClock:
    """Named moments of the start, in wall-clock seconds."""

    started: float = field(default_factory=process_started)
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, phase: str, at: float | None = None) -> None:
        self.marks.append((phase, time.time() if at is None else at))

    def line(self) -> str:
        phases = ", ".join(f"{name} {at - self.started:.3f}" for name, at in self.marks)
        return f"start-up (s after the process started at {self.started:.3f}): {phases}"


def parse_line(text: str) -> tuple[float, dict[str, float]] | None:
    """(process start, {phase: seconds after it}) from a log line that :meth:`StartClock.line`
    wrote, else None."""
    m = LINE_RE.search(text)
    if m is None:
        return None
    out: dict[str, float] = {}
    for part in m.group("p").split(", "):
        name, _, value = part.rpartition(" ")
        out[name] = float(value)
    return float(m.group("t0")), out
