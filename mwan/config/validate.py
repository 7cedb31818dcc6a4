"""UCI sections → the validated :class:`~mwan.config.model.Config`.

Every problem found is collected (not just the first) and reported together
as a :class:`~mwan.config.errors.ConfigError`, each naming file, line,
section and option.  Warnings (deprecated or unknown options) do not stop
the load and are kept on the model.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import fields as F
from .errors import ConfigError, Problem
from .fields import device_name_problem
from .marks import MarkSpace
from .model import (
    SECTION_TABLES,
    SPECIAL_POLICIES,
    Config,
    Globals,
    Ha,
    Interface,
    Member,
    Notify,
    Policy,
    Rule,
    VirtualAddress,
)
from .options import Spec
from .uci import UciSection, UciSyntaxError, parse_uci

T = TypeVar("T")

MAX_NAME = 15
MAX_LABEL_BITS = 128  # conntrack label bits (failback move, issue 15)

# derived from the option tables (mwan.config.model): never listed by hand
KNOWN_OPTIONS = {stype: {s.name for s in specs} for stype, specs in SECTION_TABLES.items()}
LIST_OPTIONS = {s.name for specs in SECTION_TABLES.values() for s in specs if s.is_list}


class _Reader:
    """Reads one section's options, recording problems instead of raising."""

    def __init__(self, path: str, section: UciSection, problems: list[Problem],
                 warnings: list[str]) -> None:
        self.path = path
        self.section = section
        self.problems = problems
        self.warnings = warnings

    def problem(self, option: str | None, message: str, line: int | None = None) -> None:
        if line is None:
            opt = self.section.get(option) if option else None
            line = opt.line if opt else self.section.line
        self.problems.append(Problem(self.path, line, self.section.name, option, message))

    def warn(self, option: str | None, message: str) -> None:
        opt = self.section.get(option) if option else None
        line = opt.line if opt else self.section.line
        self.warnings.append(str(Problem(self.path, line, self.section.name, option, message)))

    def scalar(self, option: str, reader: Callable[[str], T], default: T,
               check: Callable[[T], str | None] | None = None) -> T:
        opt = self.section.get(option)
        if opt is None:
            return default
        if opt.kind == "list" and len(opt.values) > 1:
            self.problem(option, "takes a single value, not a list")
            return default
        try:
            value = reader(opt.value)
        except F.BadValue as exc:
            self.problem(option, str(exc))
            return default
        why = check(value) if check is not None else None
        if why:
            self.problem(option, why)
        return value

    def many(self, option: str, reader: Callable[[tuple[str, ...]], T], default: T) -> T:
        opt = self.section.get(option)
        if opt is None:
            return default
        try:
            return reader(opt.values)
        except F.BadValue as exc:
            self.problem(option, str(exc))
            return default

    def each(self, option: str, reader: Callable[[str], T]) -> tuple[T, ...]:
        opt = self.section.get(option)
        if opt is None:
            return ()
        out: list[T] = []
        for value, line in zip(opt.values, opt.lines):
            try:
                out.append(reader(value))
            except F.BadValue as exc:
                self.problem(option, str(exc), line)
        return tuple(out)

    def option(self, spec: Spec, ctx: Mapping[str, Any]) -> Any:
        """One option read through its kind (unset: its default)."""
        kind = spec.kind
        default = ctx[spec.default_from] if spec.default_from else (
            None if spec.default is dataclasses.MISSING else spec.default)
        if kind.many:
            return self.many(spec.name, lambda values: kind.parse_all(values, ctx), default)
        if spec.is_list:
            return self.each(spec.name, lambda text: kind.parse(text, ctx)) or default
        opt = self.section.get(spec.name)
        if opt is not None and kind.blank_is_unset and opt.values == ("",):
            return default
        return self.scalar(spec.name, lambda text: kind.parse(text, ctx), default, kind.check)

    def options(self) -> dict[str, Any]:
        """Every option of the section's table, by name (deprecated ones warned about)."""
        specs = SECTION_TABLES[self.section.type]
        deprecated = {s.name: s.deprecated for s in specs if s.deprecated}
        for opt in self.section.options:  # in the file's order
            if opt.name in deprecated:
                self.warn(opt.name, deprecated[opt.name])
        values: dict[str, Any] = {}
        for spec in specs:
            values[spec.name] = self.option(spec, values)
        return values

    def check_unknown(self) -> None:
        known = KNOWN_OPTIONS.get(self.section.type, set())
        for opt in self.section.options:
            if opt.name not in known:
                self.warn(opt.name, "unknown option, ignored")
            elif opt.kind == "list" and opt.name not in LIST_OPTIONS and len(opt.values) > 1:
                self.problem(opt.name, "takes a single value, not a list")


def _read_globals(r: _Reader) -> Globals:
    v = r.options()
    if v["web_enabled"] and v["web_password_hash"] is None:
        r.problem("web_enabled", "the web UI needs a password: set one with 'mwan3 web-password'")
    cert, key = v["web_cert"], v["web_key"]
    if (cert is None) != (key is None):
        r.problem("web_cert" if cert is None else "web_key",
                  "web_cert and web_key go together (TLS needs both)")
    if not v["state_dir"].startswith("/"):
        r.problem("state_dir", f"{v['state_dir']!r} is not an absolute path")
    return Globals(**v, line=r.section.line)


def _read_interface(r: _Reader, ident: int, network_devices: Mapping[str, str]) -> Interface:
    name = r.section.name
    v = r.options()
    if v["device"] is None:  # unset: from the network config, else the section's name
        device: str = network_devices.get(name) or name
        v["device"] = device
        why = device_name_problem(device)
        if why:
            r.problem("device", why)
    track_ip, reliability = v["track_ip"], v["reliability"]
    if track_ip and reliability > len(track_ip):
        r.problem("reliability", f"{reliability} is more than the {len(track_ip)} track_ip "
                  "targets; the interface could never come online")
    method = v["track_method"]
    if method in ("arping", "nping-arp") and v["family"] == "ipv6":
        r.problem("track_method", f"{method} works only on ipv4 interfaces")
    iface = Interface(name=name, id=ident, **v, line=r.section.line)
    _data_cap_problems(r, iface)
    _quality_problems(r, iface)
    if iface.flap_threshold == 1:
        r.problem("flap_threshold", "1 would hold the interface down at its first transition; "
                  "use 0 (off) or at least 2")
    if iface.check_quality:
        if iface.recovery_latency > iface.failure_latency:
            r.problem("recovery_latency", f"{iface.recovery_latency} ms is above failure_latency "
                      f"{iface.failure_latency} ms")
        if iface.recovery_loss > iface.failure_loss:
            r.problem("recovery_loss", f"{iface.recovery_loss}% is above failure_loss "
                      f"{iface.failure_loss}%")
    return iface


def _quality_problems(r: _Reader, iface: Interface) -> None:
    """The quality window and its levels (issue 14): thresholds in order, a long enough window."""
    levels = [getattr(iface, f"{lv}_{m}") for lv in ("warn", "down")
              for m in ("latency", "jitter", "loss") if hasattr(iface, f"{lv}_{m}")]
    if (r.section.get("quality_window") is not None or any(x is not None for x in levels)) \
            and iface.quality_window < iface.interval:
        r.problem("quality_window", f"{iface.quality_window:g} s is shorter than interval "
                  f"{iface.interval:g} s: the window would hold at most one round")
    for lv in ("warn", "down"):
        for m, unit in (("latency", " ms"), ("jitter", " ms"), ("loss", "%")):
            limit = getattr(iface, f"{lv}_{m}", None)
            rec = getattr(iface, f"{lv}_{m}_recovery", None)
            if rec is not None and limit is None:
                r.problem(f"{lv}_{m}_recovery", f"needs {lv}_{m} (the level it recovers from)")
            elif rec is not None and limit is not None and rec >= limit:
                r.problem(f"{lv}_{m}_recovery", f"{rec}{unit} is not below {lv}_{m} "
                          f"{limit}{unit}: the level could never be left")
    for m, unit in (("latency", " ms"), ("loss", "%")):
        warn, down = getattr(iface, f"warn_{m}"), getattr(iface, f"down_{m}")
        if warn is not None and down is not None and warn >= down:
            r.problem(f"warn_{m}", f"{warn}{unit} is not below down_{m} {down}{unit}: the "
                      "warning level comes before the down level")
    if iface.track_passive and not iface.tracked:
        r.warn("track_passive", "ignored without track_ip (nothing to probe)")


def _read_member(r: _Reader) -> Member:
    if r.section.get("interface") is None:
        r.problem("interface", "missing: a member must name an interface")
    v = r.options()
    return Member(name=r.section.name, **{**v, "interface": v["interface"] or ""},
                  line=r.section.line)


def _read_policy(r: _Reader, index: int) -> Policy:
    p = Policy(name=r.section.name, **r.options(), line=r.section.line)
    if p.failback == "move" and index >= MAX_LABEL_BITS:
        r.problem("failback", f"move marks the policy's connections with conntrack label bit "
                  f"{index} (its position); the kernel has {MAX_LABEL_BITS}: move it up")
    return p


def _read_rule(r: _Reader) -> Rule:
    if r.section.get("use_policy") is None:
        r.problem("use_policy", "missing: a rule must name a policy (or default, "
                  "unreachable, blackhole)")
    v = r.options()
    family, src_ip, dest_ip = v["family"], v["src_ip"], v["dest_ip"]
    for opt, nets in (("src_ip", src_ip), ("dest_ip", dest_ip)):
        for net in nets:
            if family == "ipv4" and net.version == 6:
                r.problem(opt, f"{net} is an IPv6 address in an ipv4 rule")
            elif family == "ipv6" and net.version == 4:
                r.problem(opt, f"{net} is an IPv4 address in an ipv6 rule")
    if family == "any" and src_ip and dest_ip and \
            not ({n.version for n in src_ip} & {n.version for n in dest_ip}):
        r.problem("dest_ip", "src_ip and dest_ip have no address family in common")
    proto = v["proto"]
    for opt in ("src_port", "dest_port"):
        if v[opt] and proto not in ("tcp", "udp"):
            r.problem(opt, f"ports need proto tcp or udp (proto is {proto})")
    if proto == "icmp" and family == "ipv6":
        r.problem("proto", "icmp in an ipv6 rule; use icmpv6")
    v["use_policy"] = v["use_policy"] or ""
    if v["sticky"] and v["use_policy"] in SPECIAL_POLICIES:
        r.warn("sticky", f"ignored with use_policy {v['use_policy']}")
        v["sticky"] = False
    return Rule(name=r.section.name, **v, line=r.section.line)


_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
_SAFE_WORD = re.compile(r"[A-Za-z0-9._-]{1,32}")


def _virtual_address(text: str) -> VirtualAddress:
    """``DEVICE ADDRESS/LEN`` (config ha's virtual_address)."""
    words = text.split()
    if len(words) != 2 or "/" not in words[1]:
        raise F.BadValue(f"{text!r} is not 'DEVICE ADDRESS/LEN' (e.g. 'br-lan 192.168.1.1/24')")
    device, cidr = words
    why = device_name_problem(device)
    if why:
        raise F.BadValue(f"device {why}")
    try:
        iface = ipaddress.ip_interface(cidr)
    except ValueError:
        raise F.BadValue(f"{cidr!r} is not ADDRESS/LEN") from None
    return VirtualAddress(device, iface.ip, iface.network.prefixlen)


def _read_ha(r: _Reader) -> Ha:
    for option in ("sync_device", "sync_address", "peer"):
        if r.section.get(option) is None:
            r.problem(option, "missing: config ha needs sync_device, sync_address and peer")
    v = r.options()
    vips = r.each("virtual_address", _virtual_address)
    if not r.section.get("virtual_address"):
        r.problem("virtual_address", "missing: at least one 'DEVICE ADDRESS/LEN' (the LAN "
                  "gateway, each WAN's SNAT address)")
    if vips and v["vrid"] + len(vips) - 1 > 255:
        r.problem("vrid", f"{v['vrid']} + {len(vips)} virtual addresses goes past 255")
    if len({va.device for va in vips}) != len(vips):
        r.problem("virtual_address", "one virtual address per device")
    mine, peer, plen = v["sync_address"], v["peer"], v["sync_prefix"]
    if mine is not None and peer is not None:
        if mine.version != 4 or peer.version != 4:
            r.problem("peer", "the sync link is IPv4 (conntrackd's UDP transport here)")
        elif mine == peer:
            r.problem("peer", f"{peer} is this router's own sync_address")
        elif ipaddress.ip_interface(f"{mine}/{plen}").network != \
                ipaddress.ip_interface(f"{peer}/{plen}").network:
            r.problem("peer", f"{peer} is not on sync_address's network {mine}/{plen}")
    for option in ("run_dir", "conf_dir"):
        if not _SAFE_PATH.fullmatch(v[option]):
            r.problem(option, f"{v[option]!r} is not an absolute path of letters, digits "
                      "and ._/-")
    if not _SAFE_WORD.fullmatch(v["router_id"]):
        r.problem("router_id", "1 to 32 letters, digits and ._-")
    placeholder = ipaddress.ip_address("0.0.0.0")
    return Ha(name=r.section.name or "ha",
              **{**v, "sync_device": v["sync_device"] or "",
                 "sync_address": mine or placeholder, "peer": peer or placeholder},
              vips=vips, line=r.section.line)


def _read_notify(r: _Reader) -> Notify:
    """A ``config notify`` section: a webhook (issue 15)."""
    if r.section.get("url") is None:
        r.problem("url", "missing: a notify section needs the URL events are POSTed to")
    v = r.options()
    return Notify(name=r.section.name, **{**v, "url": v["url"] or ""}, line=r.section.line)


def _data_cap_problems(r: _Reader, iface: Interface) -> None:
    if iface.idle_interval is not None and iface.idle_interval < iface.interval:
        r.problem("idle_interval", f"{iface.idle_interval} s is shorter than interval "
                  f"{iface.interval:g} s; it is meant to probe less often")
    if iface.data_cap is None:
        defaults = {f.name: f.default for f in dataclasses.fields(Interface)}
        for option in ("data_cap_period", "data_cap_action"):
            # set, and not to its default (show-config writes every option with its value)
            if r.section.get(option) is not None and getattr(iface, option) != defaults[option]:
                r.warn(option, "ignored without data_cap")


FIRST_KERNEL_TABLE = 253  # routing tables 253-255 are default, main and local


def src_iface_device(name: str, interfaces: Mapping[str, Interface],
                     network_devices: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the device a rule's ``src_iface`` matches, or why there is none).

    mwan3 matches ``-i <device>``: the device of an interface section here,
    or of any interface of /etc/config/network (``lan`` → ``br-lan``).
    """
    if name in interfaces:
        return interfaces[name].device, None
    device = network_devices.get(name)
    if device is None:
        return None, (f"unknown interface {name!r}: neither an interface section here nor an "
                      "interface with a device in the network config")
    why = device_name_problem(device)
    if why:
        return None, f"interface {name!r} of the network config: device {why}"
    return device, None


def _room_problems(path: str, space: MarkSpace, interfaces: list[Interface]) -> list[Problem]:
    """mmx_mask (if its ids fit before main's ip rule) must leave room for the interfaces."""
    if F.mark_mask_problem(space.mask):
        return []  # mmx_mask's own error (its kind's check)
    room = min(space.max_interfaces, FIRST_KERNEL_TABLE - 1)
    if len(interfaces) <= room:
        return []
    why = (f"mmx_mask {space.mask:#x} has room for {room}" if room == space.max_interfaces
           else f"routing tables {FIRST_KERNEL_TABLE}-255 are the kernel's, so there is "
           f"room for {room}")
    return [Problem(path, interfaces[room].line, interfaces[room].name, None,
                    f"too many interfaces: {why}, this is number {room + 1}")]


def build_config(sections: tuple[UciSection, ...], path: str,
                 network_devices: Mapping[str, str] | None = None) -> Config:
    """Validate parsed sections and build the model, or raise ConfigError."""
    network_devices = network_devices or {}
    problems: list[Problem] = []
    warnings: list[str] = []
    seen: dict[str, UciSection] = {}
    globals_: Globals | None = None
    interfaces: list[Interface] = []
    members: list[Member] = []
    policies: list[Policy] = []
    rules: list[Rule] = []
    ha: Ha | None = None
    notifies: list[Notify] = []
    for sec in sections:
        r = _Reader(path, sec, problems, warnings)
        if sec.type not in KNOWN_OPTIONS:
            r.warn(None, f"unknown section type {sec.type!r}, ignored")
            continue
        r.check_unknown()
        if sec.type not in ("globals", "ha"):
            if sec.anonymous:
                r.problem(None, f"a {sec.type} section needs a name")
                continue
            why = F.check_name(sec.name)
            if why:
                r.problem(None, why)
            if sec.type in ("policy", "rule", "interface") and len(sec.name) > MAX_NAME:
                r.problem(None, f"name is {len(sec.name)} characters; mwan3 allows at most "
                          f"{MAX_NAME}")
            other = seen.get(sec.name)
            if other is not None:
                r.problem(None, f"name already used by the {other.type} section at line "
                          f"{other.line}")
            else:
                seen[sec.name] = sec
        if sec.type == "globals":
            if globals_ is not None:
                r.problem(None, "a second globals section")
            globals_ = _read_globals(r)
        elif sec.type == "interface":
            interfaces.append(_read_interface(r, len(interfaces) + 1, network_devices))
        elif sec.type == "member":
            members.append(_read_member(r))
        elif sec.type == "policy":
            policies.append(_read_policy(r, len(policies)))
        elif sec.type == "rule":
            rules.append(_read_rule(r))
        elif sec.type == "ha":
            if ha is not None:
                r.problem(None, "a second ha section (one per router)")
            ha = _read_ha(r)
        elif sec.type == "notify":
            notifies.append(_read_notify(r))
    globals_ = globals_ or Globals()
    by_name = {s.name: s for s in sections}

    def ref_problem(section: str, option: str, message: str, line: int) -> None:
        problems.append(Problem(path, line, section, option, message))

    problems.extend(_room_problems(path, MarkSpace(globals_.mmx_mask), interfaces))
    iface_names = {i.name: i for i in interfaces}
    devices: dict[str, Interface] = {}
    for i in interfaces:
        if i.enabled and i.device in devices:
            other_if = devices[i.device]
            if other_if.family == i.family:
                opt = by_name[i.name].get("device")
                ref_problem(i.name, "device", f"device {i.device!r} is already used by "
                            f"interface {other_if.name!r}", opt.line if opt else i.line)
        devices.setdefault(i.device, i)
    member_names = {m.name: m for m in members}
    for m in members:
        if m.interface and m.interface not in iface_names:
            opt = by_name[m.name].get("interface")
            ref_problem(m.name, "interface", f"unknown interface {m.interface!r}",
                        opt.line if opt else m.line)
    for p in policies:
        opt = by_name[p.name].get("use_member")
        for mname, line in zip(p.use_member, opt.lines if opt else ()):
            if mname not in member_names:
                ref_problem(p.name, "use_member", f"unknown member {mname!r}", line)
    policy_names = {p.name for p in policies}
    for k, rule in enumerate(rules):
        sec = by_name[rule.name]
        if rule.use_policy and rule.use_policy not in policy_names \
                and rule.use_policy not in SPECIAL_POLICIES:
            opt = sec.get("use_policy")
            ref_problem(rule.name, "use_policy", f"unknown policy {rule.use_policy!r}",
                        opt.line if opt else rule.line)
        if rule.src_iface is not None:
            opt = sec.get("src_iface")
            device, why = src_iface_device(rule.src_iface, iface_names, network_devices)
            if why:
                ref_problem(rule.name, "src_iface", why, opt.line if opt else rule.line)
            rules[k] = dataclasses.replace(rule, src_device=device)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return Config(
        path=path,
        globals=globals_,
        interfaces=tuple(interfaces),
        members=tuple(members),
        policies=tuple(policies),
        rules=tuple(rules),
        warnings=tuple(warnings),
        ha=ha,
        notifies=tuple(notifies),
    )


def parse_config(text: str, path: str = "<config>",
                 network_devices: Mapping[str, str] | None = None) -> Config:
    """UCI text → validated Config (pure; raises ConfigError)."""
    try:
        sections = parse_uci(text, path)
    except UciSyntaxError as exc:
        raise ConfigError([Problem(path, exc.line, None, None, exc.message)]) from None
    return build_config(sections, path, network_devices)


def network_devices_from(text: str, path: str) -> dict[str, str]:
    """The device of each logical interface in an OpenWrt /etc/config/network."""
    out: dict[str, str] = {}
    try:
        sections = parse_uci(text, path)
    except UciSyntaxError:
        return out
    for sec in sections:
        if sec.type != "interface" or sec.anonymous:
            continue
        opt = sec.get("device") or sec.get("ifname")
        if opt is not None and opt.values and not opt.value.startswith("@"):
            out[sec.name] = opt.value.split()[0]
    return out


def load_config(path: str, network_path: str = "/etc/config/network") -> Config:
    """Read and validate the config file (and the network file for devices)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError([Problem(path, 0, None, None, f"cannot read: {exc.strerror}")]) from None
    return parse_config(decode_config(data, path), path, read_network_devices(network_path))


def decode_config(data: bytes, path: str) -> str:
    """UTF-8 config bytes as text, or a ConfigError at the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([Problem(
            path, line, None, None, f"not UTF-8 text: byte {data[exc.start]:#04x} at column "
            f"{column} (a binary file, or text saved in another encoding: save it as UTF-8)")]
        ) from None


def read_network_devices(network_path: str) -> dict[str, str]:
    """The devices named in the OpenWrt network file, if there is one (else none)."""
    if network_path and os.path.exists(network_path):
        try:
            with open(network_path, encoding="utf-8") as fh:
                return network_devices_from(fh.read(), network_path)
        except (OSError, UnicodeDecodeError):
            pass
    return {}
