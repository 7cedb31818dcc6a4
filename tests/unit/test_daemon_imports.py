"""Issue 17: with the web UI off, the daemon never loads aiohttp or prometheus-client, and
loads pyroute2 lean (its RSS target is 40 MB).

A fresh interpreter does what ``mwan3 daemon`` does before it touches the kernel: build
the CLI's parser, import the daemon, build it from a config without ``web_enabled``,
and start the optional services that config asks for (none), then lists what it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CONFIG = """
config globals 'globals'
	option mmx_mask '0x3F00'
config interface 'wan'
	option enabled '1'
	option device 'eth1'
	list track_ip '192.0.2.1'
config interface 'wanb'
	option enabled '1'
	option device 'eth2'
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config rule 'https'
	option proto 'tcp'
	option dest_port '443'
	option use_policy 'balanced'
"""

SCRIPT = """
import asyncio, json, sys
from mwan.cli.main import build_parser
build_parser()
from mwan.config.validate import parse_config
from mwan.daemon.core import Daemon

run_dir = sys.argv[1]
d = Daemon(run_dir + "/mwan3", run_dir + "/network", run_dir,
           cfg=parse_config(sys.argv[2], run_dir + "/mwan3"))

async def optional_services():  # what Daemon.run starts besides the kernel's parts
    await d._sync_notify()
    await d._sync_web()

asyncio.run(optional_services())
print(json.dumps({"web": d.web is not None, "modules": sorted(sys.modules)}))
"""

HEAVY = ("aiohttp", "prometheus_client", "multidict", "yarl", "pyroute2.ndb", "pyroute2.ipdb",
         "sqlite3", "importlib.metadata")


def loaded(tmp_path) -> tuple[bool, list[str]]:  # type: ignore[no-untyped-def]
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path), CONFIG],
                         capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["web"], data["modules"]


def test_daemon_with_web_off_loads_no_web_stack_and_lean_pyroute2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    web, modules = loaded(tmp_path)
    assert not web
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    assert "pyroute2.iproute.linux" in modules  # the parts it uses are there


def test_lean_pyroute2_still_gives_the_whole_library_when_asked() -> None:
    code = textwrap.dedent("""
        import sys
        import mwan.daemon  # installs the lean package module
        from pyroute2 import IPRoute, NFCTSocket
        assert "pyroute2.ndb" not in sys.modules
        import pyroute2
        from pyroute2.iproute.linux import IPRoute as linux_iproute
        assert IPRoute is linux_iproute and pyroute2.IPRoute is IPRoute
        print(pyroute2.NDB.__name__, pyroute2.__version__ != "", "pyroute2.ndb" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["NDB", "True", "True"]
