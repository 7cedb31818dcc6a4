"""The option tables: each option declared once, and everything else derived from them."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from mwan.cli.main import main
from mwan.config import model
from mwan.config.errors import ConfigError
from mwan.config.export import config_schema, config_to_dict, non_options
from mwan.config.fields import BadValue
from mwan.config.model import ROOT_ONLY, SECTION_CLASSES, SECTION_TABLES, Interface
from mwan.config.options import Device, MarkMask, SetName, Spec, derived_fields
from mwan.config.uci import parse_uci
from mwan.config.validate import KNOWN_OPTIONS, LIST_OPTIONS, parse_config
from mwan.track.machine import Params
from mwan.web import pages

EXAMPLE = resources.files("mwan").joinpath("data/mwan3.example").read_text()
# model fields that are not options: the section's name and line, and what validate derives
DERIVED = {"globals": {"line"}, "interface": {"name", "id", "line"},
           "member": {"name", "line"}, "policy": {"name", "line"},
           "rule": {"name", "src_device", "line"}, "notify": {"name", "line"},
           "ha": {"name", "vips", "line"}}  # issue 13


def specs(stype: str) -> dict[str, Spec]:
    return {s.name: s for s in SECTION_TABLES[stype]}


@pytest.mark.parametrize("stype", list(SECTION_CLASSES))
def test_every_model_field_is_an_option_or_derived(stype: str) -> None:
    names = {f.name for f in dataclasses.fields(SECTION_CLASSES[stype])}
    assert set(specs(stype)) == names - DERIVED[stype]
    assert set(derived_fields(SECTION_CLASSES[stype])) == DERIVED[stype]
    assert KNOWN_OPTIONS[stype] == set(specs(stype))


def test_list_options_and_root_only_come_from_the_tables() -> None:
    assert LIST_OPTIONS == {"track_ip", "flush_conntrack", "use_member", "rt_table_lookup",
                            "src_ip", "dest_ip", "src_port", "dest_port", "web_listen",
                            "header", "event",  # notify (issue 15)
                            "virtual_address"}  # ha (issue 13)
    # the security review's root-only options (issue 11): the web UI may not change them
    assert ROOT_ONLY == {"user_script", "web_cert", "web_key", "web_password_hash",
                         "state_dir", "secret",  # issue 15: usage file, webhook secret
                         "run_dir", "conf_dir"}  # issue 13: where root's HA files go
    assert pages.ROOT_ONLY is ROOT_ONLY


@pytest.mark.parametrize("stype", list(SECTION_CLASSES))
def test_each_option_has_one_line_of_help(stype: str) -> None:
    for spec in SECTION_TABLES[stype]:
        assert spec.help and "\n" not in spec.help and len(spec.help) <= 90, spec.name


@pytest.mark.parametrize("stype", list(SECTION_CLASSES))
def test_defaults_are_values_their_kind_reads_back(stype: str) -> None:
    """A default written as the web form shows it parses to the model's default."""
    for spec in SECTION_TABLES[stype]:
        if spec.default_from is not None:
            assert spec.default == specs(stype)[spec.default_from].default, spec.name
            continue
        if not spec.has_default:
            continue
        ctx: dict[str, object] = {}
        if spec.is_list:
            assert tuple(spec.kind.parse(spec.kind.text(v), ctx) for v in spec.default) \
                == spec.default, spec.name
        else:
            assert spec.kind.parse(spec.kind.text(spec.default), ctx) == spec.default, spec.name
        assert spec.kind.check(spec.default) is None, spec.name


def test_mwan3_defaults() -> None:
    """mwan3's defaults (docs/architecture.md, mwan3 §1), in the tables."""
    i, g, r = specs("interface"), specs("globals"), specs("rule")
    assert {k: i[k].default for k in ("enabled", "family", "track_method", "reliability",
                                      "count", "timeout", "interval", "up", "down", "size",
                                      "max_ttl", "failure_latency", "recovery_latency",
                                      "failure_loss", "recovery_loss")} == {
        "enabled": False, "family": "ipv4", "track_method": "ping", "reliability": 1,
        "count": 1, "timeout": 4, "interval": 10, "up": 5, "down": 5, "size": 56,
        "max_ttl": 60, "failure_latency": 1000, "recovery_latency": 500, "failure_loss": 40,
        "recovery_loss": 10}
    assert i["failure_interval"].default_from == i["recovery_interval"].default_from \
        == "interval"
    assert (g["mmx_mask"].default, g["loglevel"].default) == (0x3F00, "notice")
    assert (r["family"].default, r["proto"].default, r["timeout"].default) == ("any", "all", 600)
    assert specs("member")["metric"].default == specs("member")["weight"].default == 1
    assert specs("policy")["last_resort"].default == "unreachable"


def test_this_weeks_checks_are_kinds_in_the_tables() -> None:
    """Flap dampening, the device name, reserved ipset names, the mmx_mask bit limit."""
    i = specs("interface")
    assert {"flap_threshold", "flap_window", "flap_holddown"} <= set(i)
    assert isinstance(i["device"].kind, Device)
    assert i["device"].kind.check("eth*") and i["device"].kind.check("eth1") is None
    ipset = specs("rule")["ipset"].kind
    assert isinstance(ipset, SetName)
    with pytest.raises(BadValue, match="reserved"):
        ipset.parse("connected", {})
    mask = specs("globals")["mmx_mask"].kind
    assert isinstance(mask, MarkMask)
    assert mask.check(0xFF0000) is None and "14 bits" in (mask.check(0xFFFFFFFF) or "")


def test_show_config_json_keys_are_the_table_and_validate_against_its_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "mwan3"
    conf.write_text(EXAMPLE)
    assert main(["--config", str(conf), "--network-config", "/nonexistent", "show-config",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["globals"]) == set(specs("globals"))
    for key, stype in (("interfaces", "interface"), ("members", "member"),
                       ("policies", "policy"), ("rules", "rule")):
        for sec in data[key]:
            assert set(sec) == set(specs(stype)) | set(non_options(stype)), stype
    assert main(["--config", str(conf), "show-config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == config_schema()
    jsonschema.Draft202012Validator(schema).validate(data)
    bad = {**data, "interfaces": [{**data["interfaces"][0], "interval": "ten"}]}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


def test_show_config_text_lists_exactly_the_table_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "mwan3"
    conf.write_text(EXAMPLE)
    assert main(["--config", str(conf), "--network-config", "/nonexistent", "show-config"]) == 0
    out = capsys.readouterr().out
    for sec in parse_uci(out, "show-config"):
        names = {o.name for o in sec.options}
        assert names <= set(specs(sec.type)), sec.type
        # every option with a value is printed (only unset ones, None or empty, are not)
        unset = {s.name for s in SECTION_TABLES[sec.type] if s.default in (None, ())}
        assert set(specs(sec.type)) - names <= unset, sec.type


def test_web_form_lists_exactly_the_table_options() -> None:
    sections = parse_uci(EXAMPLE, "mwan3")
    body = pages.config_body(sections, [], None, "", {}, "csrf")
    for stype in pages.SECTION_TYPES:
        sec = next((s for s in sections if s.type == stype), None)
        if sec is None:  # notify: not in the example (tests/unit/test_notify.py has its form)
            continue
        form = body[body.index(f'id="form-{sec.name}"'):]
        form = form[:form.index("</form>")]
        assert set(re.findall(r"<span>([a-z_]+)</span>", form)) == set(specs(stype)), stype
        for spec in SECTION_TABLES[stype]:
            assert f'title="{spec.help}"' in form.replace("&#x27;", "'"), spec.name
    wan = body[body.index('id="form-wan"'):]
    assert 'name="opt:interval" value="" placeholder="default: 10"' in wan
    assert "placeholder=\"default: interval&#x27;s value\"" in wan


def test_tracker_params_are_the_interface_options() -> None:
    i = Interface("wan", 1, "eth1", up=2, down=3, reliability=2, interval=7,
                  failure_interval=3, recovery_interval=4, keep_failure_interval=True,
                  check_quality=True, failure_latency=900, recovery_latency=400,
                  failure_loss=30, recovery_loss=5,
                  initial_state=model.InitialState.OFFLINE)
    p = Params.of(i)
    for f in dataclasses.fields(Params):
        if f.name != "initial_online":
            assert f.name in specs("interface"), f.name
            assert getattr(p, f.name) == getattr(i, f.name), f.name
            assert f.default == specs("interface")[f.name].default, f.name
    assert p.initial_online is False
    assert Params() == Params.of(Interface("wan", 1, "eth1"))


def test_deprecated_options_warn_in_file_order() -> None:
    cfg = parse_config("config globals 'globals'\n\toption local_source 'lan'\n"
                       "\toption rtmon_interval '5'\n", "f")
    assert cfg.warnings == (
        "f:2: section 'globals' option 'local_source': deprecated and ignored since mwan3 2.7",
        ("f:3: section 'globals' option 'rtmon_interval': deprecated and ignored: routes are "
         "followed by netlink events"))


def test_a_blank_device_means_unset() -> None:
    """``option device ''`` falls back to the network config, as before the tables."""
    cfg = parse_config("config interface 'wan'\n\toption device ''\n", "f", {"wan": "eth7"})
    assert cfg.interfaces[0].device == "eth7"
    with pytest.raises(ConfigError, match="f:2: section 'wan' option 'device'"):
        parse_config("config interface 'wan'\n\toption device ' '\n", "f")


def test_config_to_dict_exports_through_the_kinds() -> None:
    cfg = parse_config(EXAMPLE.replace(
        "option mmx_mask '0x3F00'",
        "option mmx_mask '0xFF0000'\n\toption web_password_hash 'scrypt$secret'"), "mwan3")
    data = config_to_dict(cfg)
    assert data["globals"]["mmx_mask"] == "0xff0000"
    assert data["globals"]["web_password_hash"] == "(set)"
    assert data["interfaces"][0]["initial_state"] == "online"
