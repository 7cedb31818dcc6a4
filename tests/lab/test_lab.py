"""The lab itself works: real packets through router, ISPs and inet, faults, teardown.

The first tests are pure (no root); the rest build real namespaces.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from mwan.lab import Lab, addressing, cleanup_stale, topology
from mwan.lab.client import error_kind, parse_reply
from mwan.lab.netns import lab_ids, netns_names
from mwan.lab.results import parse_client_output, parse_ping

CLIENT = 1  # the LAN client used by most tests

# -- pure ---------------------------------------------------------------------


def test_wan_of_maps_masqueraded_sources_to_wans() -> None:
    assert addressing.wan_of("10.100.2.2", isps=3) == 2
    assert addressing.wan_of("2001:db8:100:3::2", isps=3) == 3
    assert addressing.wan_of("::ffff:10.100.1.2", isps=3) == 1
    assert addressing.wan_of("10.100.4.2", isps=3) is None
    assert addressing.wan_of("10.200.1.1", isps=3) is None
    assert addressing.wan_of("not an address", isps=3) is None


def test_internet_hosts_are_documentation_addresses() -> None:
    import ipaddress

    doc = [
        ipaddress.ip_network(n)
        for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
    ]
    for family in (4, 6):
        for host in addressing.internet_hosts(family):
            assert any(ipaddress.ip_address(host) in net for net in doc), host


def test_loss_script_and_validation() -> None:
    assert "mod 10000 < 4000" in topology.loss_nft(40)
    assert "add rule" not in topology.loss_nft(0)
    with pytest.raises(ValueError):
        topology.loss_nft(101)


def test_parsers() -> None:
    assert parse_ping("3 packets transmitted, 2 received, 33% packet loss").loss == pytest.approx(
        1 / 3
    )
    assert parse_ping("", "connect: Network is unreachable").loss == 1.0
    assert parse_reply(b"10.100.1.2 443\n") == ("10.100.1.2", 443)
    assert parse_reply(b"HTTP/1.0 200 OK") is None
    assert error_kind(ConnectionRefusedError()) == "refused"
    assert error_kind(TimeoutError()) == "timeout"
    raw = {
        "count": 3,
        "ok": 2,
        "seen": {"10.100.2.2": 2},
        "ports": {"80": 2},
        "errors": {"timeout": 1, "refused": 0, "unreachable": 0},
        "elapsed": 0.1,
    }
    r = parse_client_output(json.dumps(raw), isps=2)
    assert r.wans == {2: 2} and r.failed == 1 and r.only_wan == 2
    assert r.share(2) == pytest.approx(2 / 3)


# -- lab: build and plain connectivity ------------------------------------------


@pytest.mark.lab
def test_build_is_fast_and_configured_like_openwrt(lab: Lab) -> None:
    assert lab.build_seconds is not None and lab.build_seconds < 3
    assert set(lab.namespaces) <= set(netns_names())
    routes = lab.ip(lab.router, "route", "show", "default").stdout
    assert "via 10.100.1.1 dev wan1 metric 10" in routes
    assert "via 10.100.2.1 dev wan2 metric 20" in routes
    routes6 = lab.ip(lab.router, "-6", "route", "show", "default").stdout
    assert "via 2001:db8:100:2::1 dev wan2 metric 20" in routes6
    keys = [
        "net.ipv4.ip_forward",
        "net.ipv6.conf.all.forwarding",
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.default.rp_filter",
        "net.ipv4.conf.wan1.rp_filter",
        "net.ipv4.conf.wan2.rp_filter",
        "net.ipv4.conf.br-lan.rp_filter",
    ]
    values = lab.exec(lab.router, "sysctl", "-n", *keys).stdout.split()
    assert values == ["1", "1", "0", "0", "0", "0", "0"]
    assert "masquerade" in lab.exec(lab.router, "nft", "list", "table", "ip", "labnat").stdout


@pytest.mark.lab
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_client_reaches_server_via_lowest_metric_wan(lab: Lab, family: int, proto: str) -> None:
    r = lab.connect_many(
        lab.client_ns(CLIENT), lab.server_addr(family), 443, count=200, proto=proto
    )
    assert r.ok == 200, r.errors
    assert r.seen == {lab.wan_addr(1, family): 200}
    assert r.wans == {1: 200} and r.ports == {443: 200}
    assert lab.ping(lab.client_ns(CLIENT), lab.server_addr(family)).ok


@pytest.mark.lab
@pytest.mark.parametrize("lab", [{"isps": 3, "clients": 2}], indirect=True)
@pytest.mark.parametrize("family", [4, 6])
def test_each_isp_carries_traffic(lab: Lab, family: int) -> None:
    """Steer a client through each WAN with a temporary rule; the server sees that WAN."""
    fam = f"-{family}"
    client = lab.client_addr(2, family)
    lab.ip(lab.router, fam, "rule", "add", "from", client, "lookup", "1000", "pref", "1000")
    for k in range(1, 4):
        lab.ip(
            lab.router,
            fam,
            "route",
            "replace",
            "default",
            "via",
            lab.gateway(k, family),
            "dev",
            lab.wan_device(k),
            "table",
            "1000",
        )
        assert lab.which_wan(lab.client_ns(2), lab.server_addr(family), 80) == k
        assert lab.which_wan(lab.client_ns(2), lab.server2_addr(family), 53, proto="udp") == k
        ping = lab.ping(lab.router, lab.server_addr(family), iface=lab.wan_device(k))
        assert ping.ok, ping
    # the other client still uses the main table: wan1
    assert lab.which_wan(lab.client_ns(1), lab.server_addr(family), 80) == 1


@pytest.mark.lab
def test_any_port_is_answered_and_reported(lab: Lab) -> None:
    ns, dst = lab.client_ns(CLIENT), lab.server_addr(4)
    for port in [22, 80, 443, 8080, *range(5000, 5011)]:
        for proto in ("tcp", "udp"):
            r = lab.connect_many(ns, dst, port, count=2, proto=proto)
            assert r.ports == {port: 2} and r.wans == {1: 2}, (port, proto, r)


@pytest.mark.lab
def test_fixed_source_port_and_http(lab: Lab) -> None:
    ns = lab.client_ns(CLIENT)
    r = lab.connect_many(ns, lab.server_addr(4), 80, count=5, sport=40000)
    assert r.ok == 5, r.errors
    code = (
        "import urllib.request,sys;"
        "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    )
    for url in ("http://198.51.100.10:8080/", "http://[2001:db8:ffff::10]/probe"):
        out = lab.exec(ns, sys.executable, "-c", code, url).stdout.split()
        assert out[0] in (lab.wan_addr(1, 4), lab.wan_addr(1, 6)), out


@pytest.mark.lab
@pytest.mark.parametrize("family", [4, 6])
def test_track_targets_answer_ping_through_every_wan(lab: Lab, family: int) -> None:
    for k in (1, 2):
        for target in lab.track_targets(family):
            assert lab.ping(lab.router, target, iface=lab.wan_device(k), wait=2).ok, (k, target)


@pytest.mark.lab
def test_error_kinds(lab: Lab) -> None:
    ns = lab.client_ns(CLIENT)
    assert lab.connect_many(ns, lab.lan_gateway(4), 9).errors["refused"] == 1
    assert lab.connect_many(ns, lab.lan_gateway(6), 9, proto="udp").errors["refused"] == 1
    lab.ip(lab.router, "route", "add", "unreachable", "203.0.113.99/32")
    assert lab.connect_many(ns, "203.0.113.99", 80).errors["unreachable"] == 1
    assert lab.connect_many(lab.inet, "192.0.2.200", 80).errors["unreachable"] == 1
    lab.outage(1)
    r = lab.connect_many(ns, lab.server_addr(4), 80, count=4, timeout=0.3)
    assert r.errors["timeout"] == 4 and r.ok == 0


@pytest.mark.lab
@pytest.mark.parametrize("lab", [{"isps": 1, "clients": 0, "ipv6": False}], indirect=True)
def test_minimal_ipv4_only_lab(lab: Lab) -> None:
    assert lab.ping(lab.router, lab.server_addr(4)).ok
    assert "inet6 2001" not in lab.ip(lab.router, "addr", "show", "dev", "wan1").stdout
    assert lab.which_wan(lab.router, lab.server_addr(4), 443) == 1


# -- lab: faults --------------------------------------------------------------------


@pytest.mark.lab
@pytest.mark.parametrize("family", [4, 6])
def test_carrier_loss_and_restore(lab: Lab, family: int) -> None:
    assert lab.carrier(1)
    lab.cut_carrier(1)
    assert not lab.carrier(1) and lab.carrier(2)
    assert "NO-CARRIER" in lab.ip(lab.router, "link", "show", "dev", "wan1").stdout
    assert not lab.ping(lab.router, lab.gateway(1, family), iface="wan1", wait=0.5).ok
    assert lab.ping(lab.router, lab.server_addr(family), iface="wan2").ok
    lab.restore_carrier(1)
    assert lab.carrier(1)
    assert lab.ping(lab.router, lab.server_addr(family), iface="wan1", wait=2).ok
    assert lab.which_wan(lab.client_ns(CLIENT), lab.server_addr(family), 80) == 1


@pytest.mark.lab
@pytest.mark.parametrize("family", [4, 6])
def test_outage_keeps_carrier_but_stops_forwarding(lab: Lab, family: int) -> None:
    lab.outage(1)
    assert lab.carrier(1)
    assert lab.ping(lab.router, lab.gateway(1, family), iface="wan1").ok  # the ISP itself answers
    assert not lab.ping(lab.router, lab.server_addr(family), iface="wan1", wait=0.5).ok
    assert not lab.ping(lab.client_ns(CLIENT), lab.server_addr(family), wait=0.5).ok
    assert lab.ping(lab.router, lab.server_addr(family), iface="wan2").ok
    assert lab.isp_counters(1).outage > 0
    lab.end_outage(1)
    assert lab.ping(lab.client_ns(CLIENT), lab.server_addr(family)).ok


@pytest.mark.lab
def test_loss_is_in_a_plausible_band_and_clears(lab: Lab) -> None:
    ns, dst = lab.client_ns(CLIENT), lab.server_addr(4)
    lab.set_loss(1, 40)
    lossy = lab.ping(ns, dst, count=300, interval=0.002, wait=0.5)
    assert lossy.transmitted == 300 and 0.25 < lossy.loss < 0.55, lossy
    assert 0 < lab.isp_counters(1).loss <= 300 - lossy.received
    udp = lab.connect_many(ns, dst, 53, count=200, proto="udp", timeout=0.3, concurrency=50)
    assert 0.25 < udp.errors["timeout"] / 200 < 0.55, udp
    lab.clear_loss(1)
    assert lab.ping(ns, dst, count=100, interval=0.002).loss == 0


@pytest.mark.lab
@pytest.mark.parametrize("family", [4, 6])
def test_bcp38_drops_replies_leaving_by_the_wrong_wan(lab: Lab, family: int) -> None:
    """An inbound connection to wan1 whose replies are routed out wan2 never completes."""
    lab.serve(lab.router, [2222])
    peer = addressing.inet_addr(1, family)  # inet's source towards WAN 1
    r = lab.connect_many(lab.inet, lab.wan_addr(1, family), 2222)
    assert r.seen == {peer: 1} and r.ports == {2222: 1}
    plen = "32" if family == 4 else "128"
    lab.ip(
        lab.router,
        f"-{family}",
        "route",
        "add",
        f"{peer}/{plen}",
        "via",
        lab.gateway(2, family),
        "dev",
        "wan2",
    )
    before = lab.isp_counters(2).bcp38
    r = lab.connect_many(lab.inet, lab.wan_addr(1, family), 2222, timeout=0.5)
    assert r.ok == 0 and r.errors["timeout"] == 1
    assert lab.isp_counters(2).bcp38 > before


# -- lab: lifecycle ------------------------------------------------------------------


@pytest.mark.lab
def test_two_labs_side_by_side(make_lab: Callable[..., Lab]) -> None:
    one, two = make_lab(), make_lab(isps=3)
    assert one.id != two.id and not set(one.namespaces) & set(two.namespaces)
    for lab in (one, two):
        assert lab.which_wan(lab.client_ns(1), lab.server_addr(4), 80) == 1
    one.close()
    assert two.which_wan(two.client_ns(1), two.server_addr(6), 80) == 1


@pytest.mark.lab
def test_close_kills_processes_and_deletes_namespaces(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    sleeper = lab.popen(lab.router, ["sleep", "60"])
    lab.close()
    assert sleeper.poll() is not None
    assert not set(lab.namespaces) & set(netns_names())
    assert lab.id not in lab_ids()


BUILD_AND_WAIT = (
    "import sys, time\nfrom mwan.lab import Lab\n"
    "lab = Lab(isps=1).build()\nprint(lab.id, flush=True)\ntime.sleep(60)\n"
)


def _spawn_lab_process() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD_AND_WAIT], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lab_id = proc.stdout.readline().strip()
    assert lab_id in lab_ids(), "child did not build a lab"
    return proc, lab_id


@pytest.mark.lab
def test_sigterm_tears_the_lab_down(lab_available: tuple[bool, str]) -> None:
    if not lab_available[0]:
        pytest.skip(f"lab unavailable: {lab_available[1]}")
    proc, lab_id = _spawn_lab_process()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert lab_id not in lab_ids()


@pytest.mark.lab
def test_cleanup_stale_removes_only_dead_labs(lab: Lab) -> None:
    proc, lab_id = _spawn_lab_process()
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(10)
    assert lab_id in lab_ids()
    removed = cleanup_stale()
    assert all(name.startswith(lab_id) for name in removed) and removed
    assert lab_id not in lab_ids()
    assert lab.id in lab_ids()  # a live lab is left alone
    assert lab.which_wan(lab.client_ns(CLIENT), lab.server_addr(4), 80) == 1
