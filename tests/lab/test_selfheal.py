"""Self-healing: what others do to mwan's kernel objects is repaired, crashes are adopted.

Real kernel, real packets: mwan in a lab router with two WANs and a
balanced policy; someone deletes its nft table (``nft delete table``,
``nft flush ruleset`` as a firewall reload does), its ip rules, the routes
of a WAN table; mwan restores each with one apply, logs it, counts it, and
leaves everything else alone.  Timings belong in bench/chaos.py; here
deadlines are generous.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab

BALANCED = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config policy 'balanced'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
config rule 'sticky_https'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option use_policy 'balanced'
config rule 'listed'
	option ipset 'myset'
	option use_policy 'balanced'
config rule 'default'
	option use_policy 'balanced'
"""


def cfg(lab: Lab) -> str:
    return lab_interfaces(lab, ipv6=False) + BALANCED


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def has_table(lab: Lab) -> bool:
    return lab.exec(lab.router, "nft", "list", "table", "inet", "mwan", check=False
                    ).returncode == 0


def mwan_rules(lab: Lab) -> list[str]:
    out = lab.exec(lab.router, "ip", "-4", "rule", "show").stdout
    return [line for line in out.splitlines() if "proto 201" in line or "fwmark" in line]


def state(m: MwanRouter) -> dict:  # type: ignore[type-arg]
    return json.loads(m.cli("status", "--json").stdout)


def balanced_ok(lab: Lab) -> bool:
    res = lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=40)
    return res.ok == 40 and all(res.wans.get(k, 0) > 0 for k in (1, 2))


def test_deleted_table_is_restored(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    m = mwan(cfg(lab))
    lab.nft(lab.router, "add element inet mwan myset_v4 { 203.0.113.9 }")
    other = "table ip keepme {\n chain c {\n  type filter hook forward priority 0\n  counter\n }\n}\n"
    lab.nft(lab.router, other)
    lab.exec(lab.router, "nft", "delete", "table", "inet", "mwan")
    assert wait_for(lambda: has_table(lab)), m.log()
    assert balanced_ok(lab)
    st = state(m)
    assert st["repairs"]["total"] >= 1
    assert st["repairs"]["by_kind"].get("nft_table", 0) >= 1
    assert "nft" in (st["repairs"]["recent"][-1]["who"] or "")
    log = m.log()
    assert "repaired: nft table inet mwan deleted" in log
    assert "came back empty" in log and "myset_v4" in log
    # touch nothing that isn't mwan's
    assert lab.exec(lab.router, "nft", "list", "table", "ip", "keepme", check=False
                    ).returncode == 0
    text = m.cli("status").stdout
    assert "Repairs: " in text
    lab.exec(lab.router, "nft", "delete", "table", "ip", "keepme")


def test_flush_ruleset_then_firewall_reload(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    """`systemctl reload nftables`: flush ruleset, then the firewall's own tables come back."""
    m = mwan(cfg(lab))
    saved = lab.exec(lab.router, "nft", "list", "ruleset").stdout
    fw = "\n".join(_tables_except(saved, "inet mwan"))
    lab.exec(lab.router, "nft", "flush", "ruleset")
    lab.nft(lab.router, fw)  # the firewall's reload
    assert wait_for(lambda: has_table(lab)), m.log()
    assert balanced_ok(lab)  # NAT is the firewall's, marks are mwan's: both are back


def test_foreign_rule_in_mwan_chain_is_removed(lab: Lab, mwan: Callable[[str], MwanRouter]
                                               ) -> None:
    m = mwan(cfg(lab))
    lab.nft(lab.router, "insert rule inet mwan rules meta l4proto tcp accept")
    assert wait_for(lambda: "meta l4proto tcp accept" not in lab.exec(
        lab.router, "nft", "list", "chain", "inet", "mwan", "rules").stdout), m.log()
    assert state(m)["repairs"]["by_kind"].get("nft_rule", 0) >= 1


def test_deleted_ip_rules_and_routes_are_restored(lab: Lab, mwan: Callable[[str], MwanRouter]
                                                  ) -> None:
    m = mwan(cfg(lab))
    before = sorted(mwan_rules(lab))
    assert before
    for line in before:
        prio = line.split(":", 1)[0]
        lab.exec(lab.router, "ip", "-4", "rule", "del", "priority", prio, check=False)
    assert wait_for(lambda: sorted(mwan_rules(lab)) == before), m.log()
    routes_before = lab.exec(lab.router, "ip", "-4", "route", "show", "table", "1").stdout
    assert routes_before.strip()
    lab.exec(lab.router, "ip", "-4", "route", "flush", "table", "1")
    assert wait_for(lambda: lab.exec(lab.router, "ip", "-4", "route", "show", "table", "1"
                                     ).stdout == routes_before), m.log()
    # someone else's route replaces mwan's default route in the WAN's table
    lab.exec(lab.router, "ip", "-4", "route", "replace", "default", "via", lab.gateway(2),
             "dev", lab.wan_device(2), "table", "1", "proto", "static")
    assert wait_for(lambda: lab.exec(lab.router, "ip", "-4", "route", "show", "table", "1"
                                     ).stdout == routes_before), m.log()
    kinds = state(m)["repairs"]["by_kind"]
    assert kinds.get("ip_rule", 0) >= 1 and kinds.get("route", 0) >= 2
    assert balanced_ok(lab)


def test_own_applies_are_not_drift(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    m = mwan(cfg(lab))
    for _ in range(3):
        m.cli("ifdown", "wanb")
        m.cli("ifup", "wanb")
        m.cli("restart")
    time.sleep(0.5)
    assert state(m)["repairs"]["total"] == 0, m.log()


def test_a_fight_backs_off_loudly(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    m = mwan(cfg(lab))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:
        lab.exec(lab.router, "nft", "delete", "table", "inet", "mwan", check=False)
        time.sleep(0.1)
    st = state(m)
    # without a back-off, 60 deletions would be 60 repairs
    assert st["repairs"]["total"] < 20, st["repairs"]
    assert "keep being changed by someone else" in m.log()
    assert wait_for(lambda: has_table(lab), timeout=70), m.log()


def _tables_except(ruleset: str, skip: str) -> list[str]:
    """The `table ... { ... }` blocks of an `nft list ruleset`, less one."""
    out: list[str] = []
    cur: list[str] = []
    for line in ruleset.splitlines():
        if line.startswith("table "):
            cur = [line]
        elif cur:
            cur.append(line)
            if line == "}":
                if not cur[0].startswith(f"table {skip} "):
                    out.append("\n".join(cur))
                cur = []
    return out


# ---------------------------------------------------------------- crash and adoption
def daemon_pid(m: MwanRouter) -> int:
    return int(open(os.path.join(m.run_dir, "mwan3.pid")).read())


def test_kill9_then_start_adopts(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    """Fail-static, then adoption: long flows keep their WAN, no flush, no gap, no duplicates."""
    import subprocess

    tracked = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[0],
                             interval="1", up="3", down="3",
                             initial_state="offline") + BALANCED
    m = mwan(tracked)
    assert wait_for(lambda: all(i["online"] for i in state(m)["interfaces"].values()),
                    timeout=20), m.log()
    lab.nft(lab.router, "add element inet mwan myset_v4 { 203.0.113.9 }")
    flow_server = "198.51.100.20"
    lab.flow_echo(flow_server, 9000, duration=60)
    flows = lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "flows", "--dst", flow_server, "--port", "9000", "--count", "20",
        "--stall", "3", "--duration", "12"), stdout=subprocess.PIPE, text=True)
    time.sleep(2)  # the flows are established
    rules_before = sorted(mwan_rules(lab))
    nmon = lab.popen(lab.router, ["nft", "monitor", "tables"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    os.kill(daemon_pid(m), signal.SIGKILL)
    time.sleep(0.5)
    assert has_table(lab)  # fail-static
    assert balanced_ok(lab)  # still balanced with no daemon
    m.cli("start")  # over a stale pid file and socket
    st = state(m)
    assert all(i["online"] for i in st["interfaces"].values()), st  # no warm-up outage
    assert sorted(mwan_rules(lab)) == rules_before  # no duplicates
    assert "203.0.113.9" in lab.exec(lab.router, "nft", "list", "set", "inet", "mwan",
                                     "myset_v4").stdout
    out, _ = flows.communicate(timeout=60)
    nmon.terminate()
    events = nmon.communicate(timeout=5)[0]
    assert "delete table inet mwan" not in events  # no moment without the table
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    broken = [r for r in records if r["kind"] == "broken"]
    assert not broken, broken
    opened = {r["flow"]: r["seen"] for r in records if r["kind"] == "open" and r["gen"] == 0}
    ended = {r["flow"]: r["seen"] for r in records if r["kind"] == "end"}
    assert len(opened) == 20 and ended == opened  # every flow, through the WAN it began on
    assert len(set(opened.values())) == 2  # and they were balanced over both
    assert "adopting the datapath" in m.log()
    assert balanced_ok(lab)


# ---------------------------------------------------------------- systemd
def test_sd_notify_ready_after_apply_and_watchdog_from_the_loop(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As systemd runs it: Type=notify, WatchdogSec=; a stopped (hung) loop stops the pings."""
    import socket
    import subprocess

    sock_path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(20)
    m = MwanRouter(lab, cfg(lab))
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"}
    proc = lab.popen(lab.router, m.argv("daemon"), env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
    try:
        first = s.recv(4096).decode()
        assert "READY=1" in first, first
        assert has_table(lab)  # READY only after the first apply
        pings = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if "WATCHDOG=1" in s.recv(4096).decode():
                pings += 1
        assert pings >= 5  # every 0.2 s
        os.kill(proc.pid, signal.SIGSTOP)  # a hung loop
        s.settimeout(0.2)
        for _ in range(3):  # drain what was already queued
            try:
                s.recv(4096)
            except TimeoutError:
                break
        s.settimeout(1.0)
        with pytest.raises(TimeoutError):
            s.recv(4096)
        os.kill(proc.pid, signal.SIGCONT)
        s.settimeout(5)
        assert "WATCHDOG=1" in s.recv(4096).decode()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        s.close()
        m.close()
    assert not has_table(lab)


def test_repairs_in_metrics_and_web_log(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    from mwan.web.auth import hash_password

    head = (f"config globals 'globals'\n\toption web_enabled '1'\n"
            f"\tlist web_listen '{lab.lan_gateway(4)}'\n"
            f"\toption web_password_hash '{hash_password('pw-selfheal')}'\n")
    m = mwan(head + cfg(lab))
    lab.exec(lab.router, "nft", "delete", "table", "inet", "mwan")
    assert wait_for(lambda: has_table(lab)), m.log()
    base = f"http://{lab.lan_gateway(4)}:8086"

    def get(path: str) -> str:
        return lab.exec(lab.client_ns(1), "curl", "-s", "-u", "prometheus:pw-selfheal",
                        base + path, timeout=20).stdout

    assert wait_for(lambda: 'mwan_repairs_total{kind="nft_table"} 1.0' in get("/metrics"),
                    timeout=15), get("/metrics")
    text = get("/metrics")
    assert "mwan_apply_failing 0.0" in text
    events = json.loads(m.cli("status", "--json").stdout)["repairs"]["recent"]
    assert events and events[-1]["what"] == "nft table inet mwan deleted"


def test_flows_survive_deleted_ip_rules(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    """Until the repair, a packet that falls through to main is dropped by the guard chain
    (another WAN's mark must not leave by this WAN), not masqueraded to the wrong address:
    its flow is retransmitted after the repair instead of being reset (chaos bench finding)."""
    import subprocess

    m = mwan(cfg(lab))
    flow_server = "198.51.100.20"
    lab.flow_echo(flow_server, 9000, duration=60)
    flows = lab.popen(lab.client_ns(1), Lab.python(
        "mwan.lab.traffic", "flows", "--dst", flow_server, "--port", "9000", "--count", "20",
        "--interval", "0.05", "--stall", "4", "--duration", "10"),
        stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    for _ in range(5):
        for line in mwan_rules(lab):
            prio = line.split(":", 1)[0]
            lab.exec(lab.router, "ip", "-4", "rule", "del", "priority", prio, check=False)
        time.sleep(1)
    out, _ = flows.communicate(timeout=60)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    broken = [r for r in records if r["kind"] == "broken"]
    assert not broken, broken
    assert state(m)["repairs"]["by_kind"].get("ip_rule", 0) >= 1
    guard = lab.exec(lab.router, "nft", "list", "chain", "inet", "mwan", "guard").stdout
    assert "another WAN's mark" in guard


def test_a_rule_maps_deleted_element_is_restored(lab: Lab, mwan: Callable[[str], MwanRouter]
                                                 ) -> None:
    """Grouped rules (plan/group.py) live in a map: an element deleted by someone is repaired,
    and a restart by difference refills the map from the kernel's listing."""
    srv2 = lab.server2_addr(4)
    rules = "".join(f"config rule 'h{k}'\n\toption dest_ip '198.51.100.{200 + k}'\n"
                    "\toption use_policy 'balanced'\n" for k in range(5))
    rules += (f"config rule 'to_server2'\n\toption dest_ip '{srv2}'\n"
              "\toption use_policy 'wanb_only'\n")
    policies = ("config member 'wanb_only_m'\n\toption interface 'wanb'\n"
                "config policy 'wanb_only'\n\tlist use_member 'wanb_only_m'\n")
    m = mwan(cfg(lab).replace("config rule 'sticky_https'", policies + rules
                              + "config rule 'sticky_https'"))
    listing = lab.exec(lab.router, "nft", "list", "map", "inet", "mwan", "rules_v4_1").stdout
    assert srv2 in listing, listing
    assert lab.connect_many(lab.client_ns(1), srv2, 80, count=10).wans == {2: 10}
    lab.exec(lab.router, "nft", "delete", "element", "inet", "mwan", "rules_v4_1",
             f"{{ {srv2} }}")
    assert wait_for(lambda: srv2 in lab.exec(lab.router, "nft", "list", "map", "inet", "mwan",
                                             "rules_v4_1").stdout), m.log()
    assert state(m)["repairs"]["by_kind"].get("nft_element", 0) >= 1
    assert lab.connect_many(lab.client_ns(1), srv2, 80, count=10).wans == {2: 10}
    m.cli("restart")
    assert lab.connect_many(lab.client_ns(1), srv2, 80, count=10).wans == {2: 10}
