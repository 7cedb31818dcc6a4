"""mwan3 web-password left the config at 0644: the scrypt hash was world-readable.

(issue 11, item 8.)  A config that holds the hash is written 0600 (group and
other bits dropped), by web-password and by every later write (the web
editor), and the new file is never readable by others, even before the rename.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mwan.config.edit import write_atomic

CONFIG = "config interface 'wan'\n\toption device 'eth0'\n"


def test_web_password_writes_the_config_0600(tmp_path: Path) -> None:
    f = tmp_path / "mwan3"
    f.write_text(CONFIG)
    f.chmod(0o644)
    res = subprocess.run([sys.executable, "-m", "mwan.cli.main", "--config", str(f),
                          "--run-dir", str(tmp_path / "run"), "web-password", "--stdin"],
                         input="long enough pw\n", capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "web_password_hash" in f.read_text()
    assert f.stat().st_mode & 0o777 == 0o600


def test_later_writes_keep_a_hash_private(tmp_path: Path) -> None:
    f = tmp_path / "mwan3"
    f.write_text(CONFIG)
    f.chmod(0o644)
    write_atomic(str(f), CONFIG + "config globals 'g'\n\toption web_password_hash 'scrypt$x'\n")
    assert f.stat().st_mode & 0o777 == 0o600
    write_atomic(str(f), CONFIG)  # without a secret the mode is kept as it is
    assert f.stat().st_mode & 0o777 == 0o600
