"""Run mwan inside a lab's router namespace (for tests, benchmarks and the demo).

The daemon gets its own config file and run dir in a private directory, so
several labs (each with its own router) can run side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Self

from mwan.lab.lab import Lab


def lab_interfaces(lab: Lab, ipv6: bool = True, **options: Any) -> str:
    """UCI interface sections for the lab's WANs: wan, wanb, wanc… (and wan6, wanb6… for v6).

    ``options`` are added to every interface (e.g. ``track_ip`` handled by
    the caller, ``interval=1``).
    """
    out = []
    for k in range(1, lab.isps + 1):
        for fam in ("ipv4", "ipv6") if ipv6 and lab.ipv6 else ("ipv4",):
            name = wan_name(k) + ("6" if fam == "ipv6" else "")
            lines = [f"config interface '{name}'", "\toption enabled '1'",
                     f"\toption device '{lab.wan_device(k)}'", f"\toption family '{fam}'"]
            for key, value in options.items():
                values = value if isinstance(value, (list, tuple)) else [value]
                kind = "list" if isinstance(value, (list, tuple)) else "option"
                lines += [f"\t{kind} {key} '{v}'" for v in values]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


# Two WANs as the tests use them: wan (weight 3) and wanb (weight 2) share
# "balanced" 60/40; "wan_wanb" fails over from wan to wanb; "wanb_only".
TWO_WAN_POLICIES = """
config member 'wan_m1'
	option interface 'wan'
	option weight '3'
config member 'wanb_m1'
	option interface 'wanb'
	option weight '2'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config policy 'wan_wanb'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config policy 'wanb_only'
	list use_member 'wanb_m1'
	option last_resort 'blackhole'
"""


def wan_name(k: int) -> str:
    """mwan3's naming: wan, wanb, wanc, …"""
    return "wan" if k == 1 else "wan" + chr(ord("a") + k - 1)


class MwanRouter:
    """mwan in the router of one lab: write its config, start, stop, run CLI commands."""

    def __init__(self, lab: Lab, config_text: str = "", workdir: str | None = None) -> None:
        self.lab = lab
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix=f"mwan-{lab.id}-")
        self.config = os.path.join(self.dir, "mwan3")
        self.run_dir = os.path.join(self.dir, "run")
        self.user_script = os.path.join(self.dir, "mwan3.user")
        if config_text:
            self.write_config(config_text)

    def write_config(self, text: str) -> None:
        with open(self.config, "w", encoding="utf-8") as fh:
            fh.write(text)

    def argv(self, *args: str) -> list[str]:
        return Lab.python("mwan.cli.main", "--config", self.config, "--network-config",
                          os.path.join(self.dir, "no-network-config"), "--run-dir", self.run_dir,
                          *args)

    def cli(self, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        # usage (issue 15) kept in this router's directory, not the host's /var/lib/mwan
        return self.lab.exec(self.lab.router, *self.argv(*args), check=check, timeout=timeout,
                             env={"MWAN_STATE_DIR": os.path.join(self.dir, "state")})

    def start(self) -> subprocess.CompletedProcess[str]:
        return self.cli("start")

    def stop(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli("stop", check=check)

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.run_dir, "mwan3.sock"))

    def log(self) -> str:
        try:
            with open(os.path.join(self.run_dir, "daemon.log"), encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.running():
            self.stop(check=False)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kernel_snapshot(lab: Lab) -> dict[str, str]:
    """The router's rules, routes of every table and nft ruleset, as text."""
    def run(*argv: str) -> str:
        return lab.exec(lab.router, *argv, check=False).stdout
    return {
        "rules4": run("ip", "-4", "rule", "show"),
        "rules6": run("ip", "-6", "rule", "show"),
        "routes4": run("ip", "-4", "route", "show", "table", "all"),
        "routes6": run("ip", "-6", "route", "show", "table", "all"),
        "nft": run("nft", "list", "ruleset"),
    }
