"""The config model: mwan3's defaults, the shipped example, and every validation rule."""

from __future__ import annotations

import ipaddress
from importlib import resources

import pytest

from mwan.config.errors import ConfigError, Problem
from mwan.config.model import InitialState
from mwan.config.validate import load_config, network_devices_from, parse_config

PATH = "/etc/config/mwan3"


def example_text() -> str:
    return resources.files("mwan").joinpath("data/mwan3.example").read_text()


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, PATH)
    return list(e.value.problems)


def one_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


BASE = """\
config interface 'wan'
	option enabled '1'

config member 'wan_m1'
	option interface 'wan'

config policy 'only'
	list use_member 'wan_m1'
"""


# ---------------------------------------------------------------- defaults

def test_shipped_example_loads() -> None:
    cfg = parse_config(example_text(), PATH)
    assert (len(cfg.interfaces), len(cfg.members), len(cfg.policies), len(cfg.rules)) \
        == (4, 10, 5, 3)
    assert [i.name for i in cfg.interfaces] == ["wan", "wan6", "wanb", "wanb6"]
    assert [i.id for i in cfg.interfaces] == [1, 2, 3, 4]
    assert {p.name for p in cfg.policies} >= {"balanced", "wan_wanb"}


def test_mwan3_defaults() -> None:
    cfg = parse_config(BASE + "config rule 'r'\n\toption use_policy 'only'\n", PATH)
    g = cfg.globals
    assert (g.mmx_mask, g.logging, g.loglevel, g.rt_table_lookup, g.user_script) == \
        (0x3F00, False, "notice", (), "/etc/mwan3.user")
    i = cfg.interfaces[0]
    assert (i.family, i.track_ip, i.track_method, i.reliability, i.count, i.timeout,
            i.interval, i.failure_interval, i.recovery_interval, i.keep_failure_interval,
            i.check_quality, i.failure_latency, i.recovery_latency, i.failure_loss,
            i.recovery_loss, i.initial_state, i.max_ttl, i.size, i.up, i.down,
            i.flush_conntrack, i.device, i.gateway) == \
        ("ipv4", (), "ping", 1, 1, 4, 10, 10, 10, False, False, 1000, 500, 40, 10,
         InitialState.ONLINE, 60, 56, 5, 5, (), "wan", None)
    m = cfg.members[0]
    assert (m.metric, m.weight) == (1, 1)
    assert cfg.policies[0].last_resort == "unreachable"
    r = cfg.rules[0]
    assert (r.proto, r.family, r.sticky, r.timeout, r.logging, r.ipset) == \
        ("all", "any", False, 600, False, None)


def test_failure_and_recovery_interval_default_to_interval() -> None:
    cfg = parse_config(BASE.replace("option enabled '1'", "option enabled '1'\n"
                                    "\toption interval '3'"), PATH)
    i = cfg.interfaces[0]
    assert (i.interval, i.failure_interval, i.recovery_interval) == (3, 3, 3)


def test_interface_disabled_by_default() -> None:
    cfg = parse_config("config interface 'wan'\n", PATH)
    assert not cfg.interfaces[0].enabled and cfg.enabled_interfaces == ()


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["a_name_of_16_chr", "bad-name", "dot.name"])
def test_policy_and_rule_names(name: str) -> None:
    for kind in ("policy", "rule"):
        text = BASE + f"\nconfig {kind} '{name}'\n\toption use_policy 'only'\n" \
            if kind == "rule" else BASE + f"\nconfig policy '{name}'\n"
        p = one_problem(text)
        assert p.line == 10, p
        if "." in name:  # not even a UCI name: a syntax error on that line
            assert "invalid section name" in p.message
        else:
            assert p.section == name
            assert "15" in p.message or "A-Z, a-z, 0-9 and _" in p.message, p


def test_fifteen_characters_are_fine() -> None:
    parse_config(BASE + "\nconfig rule 'r23456789012345'\n\toption use_policy 'only'\n", PATH)


def test_name_shared_between_sections() -> None:
    p = one_problem(BASE + "\nconfig rule 'wan_m1'\n\toption use_policy 'only'\n")
    assert p.line == 10 and p.section == "wan_m1"
    assert "already used by the member section at line 4" in p.message


# ---------------------------------------------------------------- references

def test_member_naming_unknown_interface() -> None:
    p = one_problem(BASE + "\nconfig member 'm2'\n\toption interface 'wanc'\n")
    assert (p.line, p.section, p.option) == (11, "m2", "interface")
    assert "unknown interface 'wanc'" in p.message


def test_policy_naming_unknown_member() -> None:
    p = one_problem(BASE + "\tlist use_member 'nope'\n")
    assert (p.line, p.section, p.option) == (9, "only", "use_member")
    assert "unknown member 'nope'" in p.message


def test_rule_naming_unknown_policy_but_default_is_fine() -> None:
    p = one_problem(BASE + "\nconfig rule 'r'\n\toption use_policy 'nope'\n")
    assert (p.line, p.section, p.option) == (11, "r", "use_policy")
    assert "unknown policy 'nope'" in p.message
    for special in ("default", "unreachable", "blackhole"):
        parse_config(BASE + f"\nconfig rule 'r'\n\toption use_policy '{special}'\n", PATH)


# ---------------------------------------------------------------- tracking

def test_reliability_above_track_ip_count() -> None:
    text = BASE.replace("option enabled '1'", "option enabled '1'\n\tlist track_ip '192.0.2.1'"
                        "\n\toption reliability '2'")
    p = one_problem(text)
    assert (p.line, p.section, p.option) == (4, "wan", "reliability")


def test_arping_on_ipv6() -> None:
    p = one_problem("config interface 'wan6'\n\toption family 'ipv6'\n"
                    "\toption track_method 'arping'\n")
    assert (p.line, p.option) == (3, "track_method")


def test_unknown_track_method() -> None:
    p = one_problem("config interface 'wan'\n\toption track_method 'carrier-pigeon'\n")
    assert (p.line, p.option) == (2, "track_method")


def test_track_ip_of_the_wrong_family() -> None:
    p = one_problem("config interface 'wan'\n\tlist track_ip '2001:db8::1'\n")
    assert (p.line, p.option) == (2, "track_ip") and "IPv6" in p.message


def test_quality_thresholds_must_leave_a_band() -> None:
    p = one_problem("config interface 'wan'\n\toption check_quality '1'\n"
                    "\toption failure_loss '10'\n\toption recovery_loss '20'\n")
    assert p.option == "recovery_loss"


# ---------------------------------------------------------------- rules

def rule(**opts: str) -> str:
    return BASE + "\nconfig rule 'r'\n\toption use_policy 'only'\n" + "".join(
        f"\toption {k} '{v}'\n" for k, v in opts.items())


@pytest.mark.parametrize("opt", ["src_port", "dest_port"])
def test_ports_need_tcp_or_udp(opt: str) -> None:
    p = one_problem(rule(**{opt: "443"}))
    assert (p.line, p.option) == (12, opt) and "proto" in p.message
    p = one_problem(rule(proto="icmp", **{opt: "443"}))
    assert p.option == opt
    parse_config(rule(proto="tcp", **{opt: "443"}), PATH)
    parse_config(rule(proto="udp", **{opt: "1000:2000,53"}), PATH)


def test_ipv6_address_in_ipv4_rule_and_the_reverse() -> None:
    p = one_problem(rule(family="ipv4", dest_ip="2001:db8::/32"))
    assert (p.line, p.option) == (13, "dest_ip") and "IPv6 address in an ipv4 rule" in p.message
    p = one_problem(rule(family="ipv6", src_ip="192.0.2.0/24"))
    assert (p.line, p.option) == (13, "src_ip") and "IPv4 address in an ipv6 rule" in p.message


def test_rule_values_parse() -> None:
    cfg = parse_config(rule(proto="tcp", src_ip="192.0.2.1,198.51.100.0/24",
                            dest_port="80,443,8000:8080", sticky="1", timeout="30"), PATH)
    r = cfg.rules[0]
    assert r.src_ip == (ipaddress.ip_network("192.0.2.1/32"),
                        ipaddress.ip_network("198.51.100.0/24"))
    assert r.dest_port == ((80, 80), (443, 443), (8000, 8080)) or len(r.dest_port) == 3
    assert r.sticky and r.timeout == 30


@pytest.mark.parametrize("opt,value", [
    ("dest_ip", "192.0.2.300"), ("dest_ip", "192.0.2.0/33"), ("src_ip", "not-an-ip"),
    ("dest_ip", "192.0.2.1,,192.0.2.2"), ("dest_port", "0"), ("dest_port", "70000"),
    ("dest_port", "2000:1000"), ("dest_port", "80-"), ("dest_port", "http"),
    ("proto", "sctpx"), ("sticky", "maybe"), ("timeout", "-1"), ("timeout", "ten"),
    ("family", "ipv5"), ("logging", "2"),
])
def test_bad_rule_values(opt: str, value: str) -> None:
    extra = {"proto": "tcp"} if "port" in opt else {}
    p = one_problem(rule(**extra, **{opt: value}))
    assert p.option == opt and p.section == "r" and p.line >= 12, p


@pytest.mark.parametrize("opt,value", [
    ("interval", "0"), ("interval", "x"), ("timeout", "1.5x"), ("up", "2.5"), ("up", "-1"), ("down", ""),
    ("enabled", "yes please"), ("check_quality", "2"), ("initial_state", "maybe"),
    ("max_ttl", "256"), ("size", "70000"), ("gateway", "10.0.0.300"), ("family", "ip4"),
    ("flush_conntrack", "always"), ("failure_loss", "101"),
])
def test_bad_interface_values(opt: str, value: str) -> None:
    p = one_problem(f"config interface 'wan'\n\toption {opt} '{value}'\n")
    assert (p.line, p.section, p.option) == (2, "wan", opt), p


@pytest.mark.parametrize("opt,value", [("metric", "0"), ("metric", "abc"), ("weight", "0"),
                                       ("weight", "1001")])
def test_bad_member_values(opt: str, value: str) -> None:
    p = one_problem(BASE + f"\tlist use_member 'm2'\nconfig member 'm2'\n"
                    f"\toption interface 'wan'\n\toption {opt} '{value}'\n")
    assert (p.section, p.option, p.line) == ("m2", opt, 12), p


def test_bad_globals_values() -> None:
    p = one_problem("config globals 'globals'\n\toption mmx_mask 'zz'\n")
    assert (p.line, p.option) == (2, "mmx_mask")
    p = one_problem("config globals 'globals'\n\toption logging 'sometimes'\n")
    assert (p.line, p.option) == (2, "logging")
    p = one_problem("config policy 'p'\n\toption last_resort 'explode'\n")
    assert (p.line, p.option) == (2, "last_resort")


def test_booleans_accept_uci_spellings() -> None:
    for yes in ("1", "on", "true", "yes", "enabled"):
        assert parse_config(f"config interface 'wan'\n\toption enabled '{yes}'\n",
                            PATH).interfaces[0].enabled
    for no in ("0", "off", "false", "no", "disabled"):
        assert not parse_config(f"config interface 'wan'\n\toption enabled '{no}'\n",
                                PATH).interfaces[0].enabled


# ---------------------------------------------------------------- marks

def many_interfaces(n: int, mask: str = "0x3F00") -> str:
    return f"config globals 'globals'\n\toption mmx_mask '{mask}'\n\n" + "".join(
        f"config interface 'w{k}'\n\toption enabled '1'\n\toption device 'd{k}'\n\n"
        for k in range(1, n + 1))


def test_sixty_interfaces_fit_the_default_mask() -> None:
    assert len(parse_config(many_interfaces(60), PATH).interfaces) == 60


def test_more_interfaces_than_the_mask_has_room_for() -> None:
    p = one_problem(many_interfaces(61))
    assert p.section == "w61" and p.line == 4 + 60 * 4 and "too many interfaces" in p.message
    p = one_problem(many_interfaces(5, "0x700"))  # 3 bits: 2^3 - 4 = 4 interfaces
    assert p.section == "w5" and "room for 4" in p.message


# ---------------------------------------------------------------- the whole file

def test_every_problem_is_reported_in_line_order() -> None:
    text = BASE + """
config member 'm2'
	option interface 'nope'
	option weight 'heavy'

config rule 'a-rule'
	option use_policy 'missing'
	option dest_port '22'
"""
    found = problems(text)
    assert [p.line for p in found] == sorted(p.line for p in found)
    where = {(p.section, p.option) for p in found}
    assert {("m2", "interface"), ("m2", "weight"), ("a-rule", "use_policy"),
            ("a-rule", "dest_port")} <= where
    assert any(p.section == "a-rule" and p.option is None for p in found)
    assert all(str(p).startswith(f"{PATH}:{p.line}: section '{p.section}'") for p in found)


def test_syntax_error_is_a_config_error_with_line() -> None:
    p = one_problem(BASE + "\toption broken 'quote\n")
    assert p.line == 9 and "unterminated" in p.message


def test_deprecated_options_warn() -> None:
    cfg = parse_config("config globals 'globals'\n\toption rtmon_interval '5'\n"
                       "\toption local_source 'lan'\n\toption frobnicate '1'\n", PATH)
    text = "\n".join(cfg.warnings)
    assert "rtmon_interval" in text and "local_source" in text and "frobnicate" in text
    assert f"{PATH}:2:" in text


# ---------------------------------------------------------------- devices

def test_device_from_network_config(tmp_path: pytest.TempPathFactory) -> None:
    network = """
config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'
config interface 'wanb'
	option ifname 'eth2 eth3'
config interface 'lan'
	option device '@wan'
"""
    assert network_devices_from(network, "net") == {"wan": "eth1", "wanb": "eth2"}
    cfg_path = tmp_path / "mwan3"  # type: ignore[operator]
    net_path = tmp_path / "network"  # type: ignore[operator]
    cfg_path.write_text("config interface 'wan'\nconfig interface 'wanb'\n"
                        "\toption device 'ppp0'\nconfig interface 'wanc'\n")
    net_path.write_text(network)
    cfg = load_config(str(cfg_path), str(net_path))
    # option device wins, then the network file, then the name itself
    assert [i.device for i in cfg.interfaces] == ["eth1", "ppp0", "wanc"]
    cfg = load_config(str(cfg_path), str(tmp_path / "absent"))  # type: ignore[operator]
    assert [i.device for i in cfg.interfaces] == ["wan", "ppp0", "wanc"]


def test_unreadable_file() -> None:
    with pytest.raises(ConfigError) as e:
        load_config("/nonexistent/mwan3")
    assert "/nonexistent/mwan3:0: cannot read" in str(e.value)


# ------------------------------------------- configs the kernel would refuse

@pytest.mark.parametrize("device,fragment", [
    ("eth*", "'*' is not allowed"),
    ("*", "wildcard"),
    ('eth"0', "quoting"),
    ("eth\\0", "quoting"),
    ("a/b", "U+002F SOLIDUS"),
    ("eth0:1", "U+003A COLON"),
    ("eth 0", "U+0020 SPACE"),
    ("eth0\u00a0", "U+00A0 NO-BREAK SPACE"),
    ("ethé", "U+00E9"),
    (".", "not a Linux device name"),
    ("..", "not a Linux device name"),
    ("abcdefghijklmnop", "longer than the 15 bytes"),
    ("éééééééé", "longer than the 15 bytes"),  # 8 characters, 16 bytes
])
def test_device_must_be_a_kernel_device_name(device: str, fragment: str) -> None:
    quoted = device.replace("'", "'\\''")
    p = one_problem(f"config interface 'wan'\n\toption enabled '1'\n\toption device '{quoted}'\n")
    assert (p.section, p.option, p.line) == ("wan", "device", 3)
    assert fragment in p.message


def test_an_empty_device_still_means_the_interface_name() -> None:
    cfg = parse_config("config interface 'wan'\n\toption device ''\n", PATH)
    assert cfg.interfaces[0].device == "wan"


@pytest.mark.parametrize("device", ["eth0", "eth0.2", "br-lan", "pppoe-wan", "wlan0-1", "wg0",
                                    "lte_1", "a", "abcdefghijklmno", "phy0-ap0", "veth@x"])
def test_ordinary_device_names_are_accepted(device: str) -> None:
    cfg = parse_config(f"config interface 'wan'\n\toption device '{device}'\n", PATH)
    assert cfg.interfaces[0].device == device


def test_a_device_from_the_network_file_is_checked_too() -> None:
    p = one_problem_with_devices("config interface 'wan'\n\toption enabled '1'\n",
                                 {"wan": "eth*"})
    assert (p.section, p.line) == ("wan", 1) and "wildcard" in p.message


def one_problem_with_devices(text: str, devices: dict[str, str]) -> Problem:
    with pytest.raises(ConfigError) as e:
        parse_config(text, PATH, devices)
    (p,) = e.value.problems
    return p


@pytest.mark.parametrize("ipset,own", [
    ("connected", "connected_v4"), ("custom", "custom_v4"), ("dynamic", "dynamic_v4"),
    ("sticky_v4_a", "sticky_v4_a_v4"), ("sticky_v6_a", "sticky_v6_a_v4"),
    ("sticky_v4", "sticky_v4_v4"),
])
def test_an_ipset_named_like_mwans_own_sets_is_refused(ipset: str, own: str) -> None:
    p = one_problem(BASE + f"config rule 'r'\n\toption use_policy 'only'\n"
                    f"\toption ipset '{ipset}'\n")
    assert (p.section, p.option, p.line) == ("r", "ipset", 11)
    assert "reserved" in p.message and repr(own) in p.message


@pytest.mark.parametrize("ipset", ["youtube", "sticky", "sticky_a", "connected_v4", "vpn_hosts"])
def test_other_ipset_names_are_fine(ipset: str) -> None:
    cfg = parse_config(BASE + f"config rule 'r'\n\toption use_policy 'only'\n"
                       f"\toption ipset '{ipset}'\n", PATH)
    assert cfg.rules[0].ipset == ipset


def test_reserved_ipset_names_cover_every_set_the_compiler_makes() -> None:
    from mwan.plan.compile import compile_nft
    from mwan.plan.names import reserved_ipset
    from mwan.plan.state import KernelFacts

    cfg = parse_config(BASE + "config rule 'a_v4'\n\toption use_policy 'only'\n"
                       "\toption sticky '1'\n\toption ipset 'hosts'\n", PATH)
    table = compile_nft(cfg, {}, KernelFacts())
    own = {s.name for s in table.sets} - {"hosts_v4", "hosts_v6"}
    assert own  # connected_v4, ..., sticky_v4_a_v4, sticky_v6_a_v4
    for name in own:
        for sfx in ("_v4", "_v6"):
            if name.endswith(sfx):
                assert reserved_ipset(name[: -len(sfx)]) is not None, name


@pytest.mark.parametrize("mask", ["0xFFFFFFFF", "0xFFFF", "0x7FFF0000", "0xFFFE"])
def test_a_mask_whose_ids_leave_the_ip_rule_range_is_refused(mask: str) -> None:
    p = one_problem(f"config globals 'globals'\n\toption mmx_mask '{mask}'\n" + BASE)
    assert (p.section, p.option, p.line) == ("globals", "mmx_mask", 2)
    assert "past the main table's rule" in p.message and "at most 14 bits" in p.message


@pytest.mark.parametrize("mask", ["0x3F00", "0xFF0000", "0x3FFF0000", "0xFF00", "0x700"])
def test_masks_up_to_fourteen_bits_are_fine(mask: str) -> None:
    cfg = parse_config(f"config globals 'globals'\n\toption mmx_mask '{mask}'\n" + BASE, PATH)
    assert cfg.globals.mmx_mask == int(mask, 16)


def test_interfaces_stop_before_the_kernels_routing_tables() -> None:
    # 9 bits would allow 508 ids, but tables 253-255 are default, main and local
    p = one_problem(many_interfaces(253, "0x1FF00"))
    assert p.section == "w253" and "routing tables 253-255" in p.message and "room for 252" \
        in p.message
    assert len(parse_config(many_interfaces(252, "0x1FF00"), PATH).interfaces) == 252


# ------------------------------------------------ files as users write them

def test_config_file_with_bom_and_crlf_loads_like_the_plain_one(tmp_path: pytest.TempPathFactory
                                                                 ) -> None:
    plain = example_text()
    f = tmp_path / "mwan3"  # type: ignore[operator]
    f.write_bytes(b"\xef\xbb\xbf" + plain.replace("\n", "\r\n").encode())
    assert load_config(str(f), "").interfaces == parse_config(plain, str(f)).interfaces


def test_an_empty_file_is_an_empty_config(tmp_path: pytest.TempPathFactory) -> None:
    f = tmp_path / "mwan3"  # type: ignore[operator]
    f.write_bytes(b"")
    cfg = load_config(str(f), "")
    assert cfg.interfaces == () and cfg.rules == ()


def test_a_binary_file_is_a_clear_error_with_its_line(tmp_path: pytest.TempPathFactory) -> None:
    f = tmp_path / "mwan3"  # type: ignore[operator]
    f.write_bytes(b"config interface 'wan'\n\x7fELF\x02\x01\x01\x00\xff\xfe\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(f), "")
    (p,) = e.value.problems
    assert p.line == 2 and "not UTF-8 text: byte 0xff at column 9" in p.message
    f.write_bytes(b"config interface 'wan'\n\x00\x00\x00\x00\n")  # valid UTF-8, still binary
    with pytest.raises(ConfigError) as e:
        load_config(str(f), "")
    (p,) = e.value.problems
    assert p.line == 2 and "U+0000 NULL" in p.message


def test_fifty_thousand_sections_still_load() -> None:
    text = BASE + "".join(f"config rule 'r{k}'\n\toption use_policy 'only'\n"
                          f"\toption dest_port '{k % 65535 + 1}'\n\toption proto 'tcp'\n"
                          for k in range(50000))
    cfg = parse_config(text, PATH)
    assert len(cfg.rules) == 50000 and cfg.rules[-1].line == 9 + 49999 * 4
