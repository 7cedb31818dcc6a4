"""The house checks as tests: mypy --strict on the package, ruff on everything."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(module, path=str(Path(sys.executable).parent)) is None:
        pytest.skip(f"{module} is not installed in this environment")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=600)


def test_mypy_strict_on_the_package() -> None:
    res = _run("mypy", "--strict", "mwan")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_ruff_on_package_tests_and_benchmarks() -> None:
    res = _run("ruff", "check", "mwan", "tests", "bench")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
