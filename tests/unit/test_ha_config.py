"""config ha (issue 13): validation, the generated files (golden), the hook, the drop rule,
the status readers.  Pure: no root, no keepalived needed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mwan.config.errors import ConfigError
from mwan.config.model import Ha
from mwan.config.validate import parse_config
from mwan.ha import gen
from mwan.ha.status import parse_role, parse_stats, sync_state
from mwan.plan.compile import compile_nft
from mwan.plan.ha import MIDSTREAM_COMMENT, midstream_drop
from mwan.report import text

GOLDEN = Path(__file__).with_name("golden") / "ha"

BASE = """config globals 'globals'

config interface 'wan'
	option enabled '1'
	option device 'wan1'

config interface 'wanb'
	option enabled '1'
	option device 'wan2'

config member 'wan_m1'
	option interface 'wan'

config member 'wanb_m1'
	option interface 'wanb'

config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'

config rule 'default_rule'
	option use_policy 'balanced'
"""
HA = """
config ha 'ha'
	option router_id 'ra'
	option priority '150'
	option advert_int '0.2'
	option sync_device 'sync0'
	option sync_address '10.254.0.1'
	option peer '10.254.0.2'
	list virtual_address 'br-lan 192.168.1.1/24'
	list virtual_address 'wan1 10.100.1.254/24'
	list virtual_address 'wan2 10.100.2.254/24'
"""


def ha_of(text: str) -> Ha:
    ha = parse_config(BASE + text, "/etc/config/mwan3").ha
    assert ha is not None
    return ha


def golden(name: str, data: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
    assert data == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 to accept"


# ------------------------------------------------------------------ validation

def test_config_ha_is_read_with_defaults() -> None:
    ha = ha_of(HA)
    assert (ha.priority, ha.advert_int, ha.preempt, ha.vrid, ha.sync_prefix) == (
        150, 0.2, False, 51, 30)
    assert [str(v) for v in ha.vips] == ["br-lan 192.168.1.1/24", "wan1 10.100.1.254/24",
                                         "wan2 10.100.2.254/24"]
    assert ha.run_dir == "/run/mwan3-ha" and ha.conf_dir == "/etc/mwan3/ha"


def test_without_config_ha_nothing_changes() -> None:
    cfg = parse_config(BASE, "x")
    assert cfg.ha is None


@pytest.mark.parametrize(("change", "line", "message"), [
    (("option peer '10.254.0.2'", "option peer '10.254.1.2'"), 30, "not on sync_address's"),
    (("option peer '10.254.0.2'", "option peer '10.254.0.1'"), 30, "own sync_address"),
    (("\toption peer '10.254.0.2'\n", ""), 24, "option 'peer': missing"),
    (("'wan1 10.100.1.254/24'", "'wan1'"), 32, "not 'DEVICE ADDRESS/LEN'"),
    (("'wan1 10.100.1.254/24'", "'wan1 10.100.1.300/24'"), 32, "not ADDRESS/LEN"),
    (("'wan2 10.100.2.254/24'", "'wan1 10.100.2.254/24'"), 31, "one virtual address per"),
    (("option priority '150'", "option priority '255'"), 26, "priority"),
    (("option advert_int '0.2'", "option advert_int 'fast'"), 27, "not a duration"),
    (("option router_id 'ra'", "option router_id 'r a;x'"), 25, "router_id"),
    (("option router_id 'ra'", "option run_dir '/run/$(x)'"), 25, "run_dir"),
])
def test_bad_config_ha_gets_file_line_errors(change: tuple[str, str], line: int,
                                             message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(BASE + HA.replace(*change), "/etc/config/mwan3")
    msg = str(exc.value)
    assert f"/etc/config/mwan3:{line}:" in msg and message in msg, msg


def test_a_second_ha_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="a second ha section"):
        parse_config(BASE + HA + HA.replace("'ha'", "'ha2'"), "x")


# ------------------------------------------------------------------ generated files

PATHS = gen.Paths("/run/mwan3-ha", "/etc/mwan3/ha")


def test_golden_keepalived_conf() -> None:
    golden("keepalived.conf", gen.keepalived_conf(ha_of(HA), PATHS))


def test_golden_conntrackd_conf() -> None:
    golden("conntrackd.conf", gen.conntrackd_conf(ha_of(HA), PATHS))


def test_golden_notify_hook() -> None:
    golden("notify.sh", gen.notify_hook(ha_of(HA), PATHS))


def test_keepalived_conf_shape() -> None:
    conf = gen.keepalived_conf(ha_of(HA), PATHS)
    assert conf.count("vrrp_instance ") == 3 and conf.count("state BACKUP") == 3
    assert conf.count("nopreempt") == 3  # preemption off by default
    assert "virtual_router_id 53" in conf and "advert_int 0.2" in conf
    preempt = gen.keepalived_conf(replace(ha_of(HA), preempt=True), PATHS)
    assert "nopreempt" not in preempt
    assert "advert_int 1\n" in gen.keepalived_conf(replace(ha_of(HA), advert_int=1.0), PATHS)


def test_conntrackd_ignores_the_vips_and_the_sync_link_not_the_lan() -> None:
    conf = gen.conntrackd_conf(ha_of(HA), PATHS)
    for addr in ("127.0.0.1", "10.254.0.0/30", "192.168.1.1", "10.100.1.254", "10.100.2.254"):
        assert f"IPv4_address {addr}\n" in conf
    assert "192.168.1.0" not in conf
    assert "UNIX {\n\t\tPath /run/mwan3-ha/conntrackd.ctl" in conf  # never the host's socket
    assert "LockFile /run/mwan3-ha/conntrackd.lock" in conf


def test_blackhole_route_and_daemon_argv() -> None:
    assert gen.blackhole_route(ha_of(HA)) == ["route", "replace", "blackhole", "10.254.0.0/30",
                                              "metric", "1000"]
    argv = PATHS.keepalived_argv()
    assert argv[:4] == ["keepalived", "-n", "-l", "-P"]
    assert "/run/mwan3-ha/keepalived.pid" in argv and "/run/mwan3-ha/vrrp.pid" in argv


def test_the_hook_runs_conntrackd_as_the_primary_backup_script_does(tmp_path: Path) -> None:
    """The generated hook, run by sh against a fake conntrackd that records its arguments."""
    calls = tmp_path / "calls"
    fake = tmp_path / "conntrackd"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    paths = gen.Paths(str(tmp_path / "run"), str(tmp_path / "conf"))
    os.makedirs(paths.run_dir)
    hook = tmp_path / "notify.sh"
    hook.write_text(gen.notify_hook(ha_of(HA), paths, str(fake)))
    conf = paths.conntrackd_conf
    expected = {"primary": ["-c", "-f", "-R", "-B"], "backup": ["-t", "-n"], "fault": ["-t"]}
    for arg, steps in expected.items():
        calls.write_text("")
        subprocess.run(["sh", str(hook), arg], check=True)
        assert calls.read_text().split("\n")[:-1] == [f"-C {conf} {s}" for s in steps]
        role = {"primary": "MASTER", "backup": "BACKUP", "fault": "FAULT"}[arg]
        assert parse_role(Path(paths.role_file).read_text())[0] == role
    assert subprocess.run(["sh", str(hook), "bogus"], check=False).returncode == 2


def test_ha_config_command_writes_the_files(tmp_path: Path) -> None:
    from mwan.cli.main import main
    cfg = tmp_path / "mwan3"
    run_dir = tmp_path / "run"
    cfg.write_text(BASE + HA + f"\toption run_dir '{run_dir}'\n")
    out = tmp_path / "out"
    assert main(["--config", str(cfg), "--network-config", "/nonexistent", "ha-config",
                 "--dir", str(out), "-q"]) == 0
    assert sorted(os.listdir(out)) == ["conntrackd.conf", "keepalived.conf", "notify.sh"]
    assert os.stat(out / "notify.sh").st_mode & 0o777 == 0o755
    assert f'"{out}/notify.sh primary"' in (out / "keepalived.conf").read_text()
    cfg.write_text(BASE)
    assert main(["--config", str(cfg), "--network-config", "/nonexistent", "ha-config",
                 "--dir", str(out)]) == 1


# ------------------------------------------------------------------ the drop rule

def prerouting(cfg: Any) -> Any:
    table = compile_nft(cfg, {}, _facts())
    return next(c for c in table.chains if c.name == "prerouting")


def _facts() -> Any:
    from mwan.plan.state import KernelFacts
    return KernelFacts(routes=(), addresses=(), devices=("wan1", "wan2"))


def test_golden_prerouting_with_and_without_ha() -> None:
    without = prerouting(parse_config(BASE, "x"))
    with_ha = prerouting(parse_config(BASE + HA, "x"))
    golden("prerouting_without_ha.json", json.dumps(
        [list(without.rules), list(without.comments)], indent=1) + "\n")
    golden("prerouting_with_ha.json", json.dumps(
        [list(with_ha.rules), list(with_ha.comments)], indent=1) + "\n")
    assert with_ha.rules == (midstream_drop(), *without.rules)
    assert with_ha.comments[0] == MIDSTREAM_COMMENT
    assert len(with_ha.comments) == len(with_ha.rules)


def test_a_disabled_ha_section_adds_no_rule() -> None:
    cfg = parse_config(BASE + HA + "\toption enabled '0'\n", "x")
    assert prerouting(cfg).rules == prerouting(parse_config(BASE, "x")).rules


# ------------------------------------------------------------------ status

CONNTRACKD_S = """cache internal:
current active connections:\t          20
connections created:\t\t          20\tfailed:\t           0

cache external:
current active connections:\t           7
connections created:\t\t           7\tfailed:\t           0

traffic processed:
                   0 Bytes                         0 Pckts

UDP traffic (active device=sync0):
                6932 Bytes sent                   16 Bytes recv
                  87 Pckts sent                    1 Pckts recv
                   0 Error send                    3 Error recv

message tracking:
                   0 Malformed msgs                    2 Lost msgs
"""


def test_parse_conntrackd_stats() -> None:
    s = parse_stats(CONNTRACKD_S)
    assert s is not None
    assert (s.internal, s.external, s.sent, s.received, s.send_errors, s.receive_errors,
            s.lost) == (20, 7, 87, 1, 0, 3, 2)
    assert parse_stats("connect: No such file or directory") is None


def test_parse_role_file() -> None:
    assert parse_role("MASTER 1764570000\n") == ("MASTER", 1764570000.0)
    assert parse_role("") == (None, None)
    assert parse_role("rm -rf 12") == (None, None)


@pytest.mark.parametrize(("ok", "link", "neigh", "state"), [
    (True, "up", "REACHABLE", "ok"), (True, "up", None, "ok"),
    (True, "up", "FAILED", "peer-unreachable"), (True, "up", "INCOMPLETE", "peer-unreachable"),
    (True, "down", "FAILED", "link-down"), (True, "missing", None, "link-down"),
    (True, "lowerlayerdown", None, "link-down"), (False, "up", "REACHABLE", "conntrackd-down"),
])
def test_sync_state(ok: bool, link: str, neigh: str | None, state: str) -> None:
    assert sync_state(ok, link, neigh) == state


def test_status_text_shows_the_role_and_a_broken_sync() -> None:
    st = {"role": "BACKUP", "last_role": "BACKUP", "role_since": 100.0, "keepalived": True,
          "sync": "peer-unreachable", "sync_device": "sync0", "link": "up",
          "peer": "10.254.0.2", "peer_neighbour": "FAILED",
          "stats": {"internal": 1, "external": 20, "sent": 5, "received": 4, "send_errors": 0,
                    "receive_errors": 0, "lost": 0}}
    out = text.ha({"ha": st}, 160.0)
    assert out.startswith("HA: BACKUP for ")
    assert "BROKEN: peer 10.254.0.2 unreachable (neighbour FAILED)" in out
    assert "20 from the peer" in out
    stopped = text.ha({"ha": {**st, "role": "STOPPED", "sync": "ok"}}, 160.0)
    assert "keepalived is not running; its hook last said BACKUP" in stopped
    assert text.ha({}, 0) == ""


# ------------------------------------------------------------------ web UI and /metrics

HA_STATE = {"role": "MASTER", "last_role": "MASTER", "role_since": 1.0, "keepalived": True,
            "sync": "link-down", "sync_device": "sync0", "link": "down", "peer": "10.254.0.2",
            "peer_neighbour": None,
            "stats": {"internal": 20, "external": 3, "sent": 1, "received": 1, "send_errors": 0,
                      "receive_errors": 0, "lost": 4}}


def test_overview_shows_the_role_and_a_broken_sync() -> None:
    from mwan.web.pages import ha_html
    out = ha_html(HA_STATE)
    assert 'data-role="MASTER"' in out and 'data-sync="link-down"' in out
    assert "broken: sync0 is down" in out and "20 flows here, 3 from the peer" in out
    assert ha_html(None) == ""


def test_metrics_ha_role_and_sync() -> None:
    from mwan.web.metrics import ha_metrics
    fams = {f.name: f for f in ha_metrics({"ha": HA_STATE})}
    roles = {s.labels["role"]: s.value for s in fams["mwan_ha_role"].samples}
    assert roles["MASTER"] == 1.0 and roles["BACKUP"] == 0.0
    assert fams["mwan_ha_sync_ok"].samples[0].value == 0.0
    sync = {s.labels["state"]: s.value for s in fams["mwan_ha_sync_state"].samples}
    assert sync["link-down"] == 1.0 and sync["ok"] == 0.0
    flows = {s.labels["cache"]: s.value for s in fams["mwan_ha_sync_flows"].samples}
    assert flows == {"internal": 20.0, "external": 3.0}
    assert list(ha_metrics({})) == []


# ------------------------------------------------------------------ the lab's topology (pure)

def test_ha_lab_topology_scripts() -> None:
    from mwan.lab import ha_topology as T
    n = T.HaNames("mwl123abc", 2, 1)
    assert n.router == "mwl123abc-ra" and n.all[:3] == ("mwl123abc-ra", "mwl123abc-rb",
                                                        "mwl123abc-sw")
    host = T.host_batch(n)
    assert "link add sync0 netns mwl123abc-ra type veth peer name sync0 netns mwl123abc-rb" \
        in host
    assert host.count("type bridge") == 3  # the LAN switch and one per ISP
    assert "link set rtr address 02:00:00:00:02:01" in T.isp_batch(2)
    assert 'oifname "wan2" ip saddr 192.168.1.0/24 snat ip to 10.100.2.254' in T.router_nft(n)
    assert "route add blackhole 10.254.0.0/30 metric 1000" in T.router_batch(n, "b")
    cfg = parse_config(BASE + T.ha_section("b", 2, 0.2, "/run/x/b/ha", "/run/x/b/conf"), "x")
    assert cfg.ha is not None and cfg.ha.priority == 100 and str(cfg.ha.peer) == "10.254.0.1"


def test_show_config_keeps_config_ha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """show-config writes the ha section back (a fixpoint), --json has it, matching --schema."""
    import jsonschema

    from mwan.cli.main import main
    from mwan.config.export import config_schema, config_to_dict
    cfg = tmp_path / "mwan3"
    cfg.write_text(BASE + HA)
    assert main(["--config", str(cfg), "--network-config", "/nonexistent", "show-config"]) == 0
    out = capsys.readouterr().out
    assert "config ha 'ha'" in out and "list virtual_address 'wan2 10.100.2.254/24'" in out
    again = parse_config(out, "again").ha
    assert again is not None and again == replace(ha_of(HA), line=again.line)
    data = config_to_dict(parse_config(BASE + HA, "x"))
    jsonschema.Draft202012Validator(config_schema()).validate(data)
    assert data["ha"]["vips"][0] == "br-lan 192.168.1.1/24"
    assert "ha" not in config_to_dict(parse_config(BASE, "x"))  # one router: unchanged
