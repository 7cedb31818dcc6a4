"""Issue 16 item 1: the Debian package, as CI checks it on this machine (root).

Builds it with ./scripts/build-deb.sh, installs it with dpkg, runs `mwan3
check` on the shipped config, runs mwan in a lab router through
/usr/sbin/mwan3, purges it and checks that nothing is left behind: no file of
the package, no /run/mwan3, no nft table or ip rule of mwan's in this
namespace.  lintian, when installed, reports nothing but the overridden tags.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
MWAN3 = "/usr/sbin/mwan3"
RUN_DIR = "/run/mwan3"  # the package's default, which prerm's `mwan3 stop` uses
STATE_DIR = "/var/lib/mwan"  # globals state_dir's default: usage.json


def run(*argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout,
                          cwd="/")


class PackagedRouter(MwanRouter):
    """mwan in a lab router, run as the package installed it."""

    def argv(self, *args: str) -> list[str]:
        return [MWAN3, "--config", self.config, "--network-config",
                os.path.join(self.dir, "no-network-config"), "--run-dir", self.run_dir, *args]


def installed() -> bool:
    res = run("dpkg-query", "-W", "-f=${Status}", "mwan", check=False)
    return "install ok installed" in res.stdout


def host_state() -> dict[str, str]:
    """What of mwan's could be in this (the host's) namespace."""
    return {
        "nft": run("nft", "list", "tables", check=False).stdout,
        "rules4": run("ip", "-4", "rule", "show", "proto", "201", check=False).stdout,
        "rules6": run("ip", "-6", "rule", "show", "proto", "201", check=False).stdout,
    }


def router_state(lab: Lab) -> dict[str, str]:
    return {"nft": lab.exec(lab.router, "nft", "list", "tables").stdout,
            "rules": lab.exec(lab.router, "ip", "-4", "rule", "show", "proto", "201").stdout,
            "routes": lab.exec(lab.router, "ip", "-4", "route", "show", "table", "all",
                               "proto", "201").stdout}


def test_package_builds_installs_runs_and_purges_clean(lab: Lab,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("installs a package: needs root")
    for tool in ("dpkg-deb", "fakeroot", "dpkg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if installed() or os.path.exists(MWAN3) or os.path.exists("/etc/config/mwan3") or \
            os.path.exists(RUN_DIR):
        pytest.skip("mwan is already installed on this machine: not touching it")
    monkeypatch.delenv("MWAN_STATE_DIR", raising=False)  # the package's own state dir
    saved_state = f"{STATE_DIR}.saved-by-test-{os.getpid()}"
    if os.path.exists(STATE_DIR):  # a lab daemon's or bench's, not a package's: keep it aside
        os.rename(STATE_DIR, saved_state)
    try:
        _build_install_run_purge(lab)
    finally:
        if os.path.exists(saved_state):
            shutil.rmtree(STATE_DIR, ignore_errors=True)
            os.rename(saved_state, STATE_DIR)


def _build_install_run_purge(lab: Lab) -> None:
    build = run(str(ROOT / "scripts" / "build-deb.sh"))
    deb = str(ROOT / build.stdout.strip().splitlines()[-1])
    assert os.path.basename(deb).startswith("mwan_") and deb.endswith(".deb")
    before = host_state()
    etc_config_existed = os.path.isdir("/etc/config")

    if shutil.which("lintian"):
        lint = run("lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb,
                   check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr

    res = run("dpkg", "-i", deb, check=False)
    r: PackagedRouter | None = None
    pid = 0
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        files = run("dpkg-query", "-L", "mwan").stdout.split()
        for path in (MWAN3, "/lib/systemd/system/mwan.service", "/etc/config/mwan3",
                     "/etc/mwan3.user", "/usr/share/man/man8/mwan3.8.gz",
                     "/usr/share/bash-completion/completions/mwan3"):
            assert path in files and os.path.exists(path), path
        unit = Path("/lib/systemd/system/mwan.service").read_text()
        assert "ExecStart=/usr/sbin/mwan3 daemon" in unit and "/usr/local" not in unit
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mwan").stdout
        assert "/etc/config/mwan3" in conffiles and "/etc/mwan3.user" in conffiles
        version = run(MWAN3, "--version").stdout
        assert version.startswith("mwan3 (mwan) ")
        check = run(MWAN3, "check", check=False)  # the shipped, commented config
        assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout + check.stderr
        # the bundled libraries are the packaged venv's, python3-nftables Debian's
        where = run("/usr/lib/mwan/bin/python3", "-P", "-c",
                    "import json, mwan, pyroute2, aiohttp, nftables; print(json.dumps("
                    "[mwan.__file__, pyroute2.__file__, aiohttp.__file__, nftables.__file__]))")
        mods = json.loads(where.stdout)
        assert all(m.startswith("/usr/lib/mwan/") for m in mods[:3]), mods
        assert mods[3].startswith("/usr/lib/python3/dist-packages/"), mods

        # a lab router run by /usr/sbin/mwan3, with the default run dir: removing the
        # package must stop it (prerm runs in the router's namespace here, as on a router)
        text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:2], interval=1,
                              failure_interval=1, recovery_interval=1, timeout=1, up=1,
                              down=2) + TWO_WAN_POLICIES
        r = PackagedRouter(lab, text)
        r.run_dir = RUN_DIR
        router_before = router_state(lab)
        start = r.cli("start", check=False)
        assert start.returncode == 0, start.stdout + start.stderr + r.log()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ifaces = r.cli("interfaces", "--json", check=False)
            if ifaces.returncode == 0 and all(
                    i["status"] == "online"
                    for i in json.loads(ifaces.stdout)["interfaces"].values()):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"WANs not online: {ifaces.stdout}{ifaces.stderr}{r.log()}")
        pid = int(Path(RUN_DIR, "mwan3.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        assert cmdline[0] == "/usr/lib/mwan/bin/python3", cmdline
        assert "table inet mwan" in router_state(lab)["nft"]
    finally:
        files = run("dpkg-query", "-L", "mwan", check=False).stdout.split()
        purge = lab.exec(lab.router, "dpkg", "--purge", "mwan", check=False, timeout=120)
        if r is not None:
            r.close()
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert not installed()
    assert pid and not os.path.exists(f"/proc/{pid}"), "the daemon outlived its package"
    assert router_state(lab) == router_before  # it removed what it made
    # every file is gone (directories other packages share stay); its own directories below
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    assert left == [], left
    for path in ("/usr/lib/mwan", RUN_DIR, STATE_DIR, "/etc/mwan3.user", "/etc/config/mwan3",
                 "/usr/share/doc/mwan", "/usr/share/man/man8/mwan3.8.gz"):
        assert not os.path.lexists(path), path
    if not etc_config_existed:
        assert not os.path.exists("/etc/config")
    assert host_state() == before
