"""The connection-rate benchmark runs: one quick round gives a table with ratios and cleans up.

The rates are the benchmark's business (bench/README.md); this only checks
that the harness works end to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.lab
@pytest.mark.timeout(90)
def test_cps_bench_quick_round_prints_ratios_and_cleans_up(lab_available: tuple[bool, str],
                                                           tmp_path: Path) -> None:
    ok, reason = lab_available
    if not ok:
        pytest.skip(f"lab unavailable: {reason}")
    out = tmp_path / "cps.txt"
    res = subprocess.run(
        [sys.executable, "-m", "bench.cps_bench", "--quick", "--reps", "1", "--seconds", "1",
         "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "mwan 1000 rules / none: " in res.stdout
    assert "out of wan2 as the last rule says" in res.stdout
    assert "mwan 1000 rules / none: " in out.read_text()
    assert not list(Path("/run/netns").glob("mwcps*"))
