"""UCI sections → the validated :class:`~mwan.config.model.Config`.

Every problem found is collected (not just the first) and reported together
as a :class:`~mwan.config.errors.ConfigError`, each naming file, line,
section and option.  Warnings (deprecated or unknown options) do not stop
the load and are kept on the model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..plan.names import FWMARK_PRIORITY, reserved_ipset
from . import fields as F
from .errors import ConfigError, Problem
from .marks import MarkSpace
from .model import (
    FLUSH_EVENTS,
    LAST_RESORTS,
    LOG_LEVELS,
    SPECIAL_POLICIES,
    TRACK_METHODS,
    Config,
    Globals,
    InitialState,
    Interface,
    IPNetwork,
    Member,
    Policy,
    PortRange,
    Rule,
)
from .uci import UciSection, UciSyntaxError, char_name, parse_uci

T = TypeVar("T")

MAX_NAME = 15

GLOBAL_OPTIONS = {
    "mmx_mask", "logging", "loglevel", "rt_table_lookup", "source_routing",
    "local_source", "rtmon_interval", "user_script",
    # web UI options (read by mwan.web)
    "web_enabled", "web_listen", "web_port", "web_password_hash", "web_cert", "web_key",
}
INTERFACE_OPTIONS = {
    "enabled", "device", "gateway", "family", "track_ip", "track_method", "httping_ssl",
    "track_port", "reliability", "count", "timeout", "interval", "failure_interval",
    "recovery_interval", "keep_failure_interval", "check_quality", "failure_latency",
    "recovery_latency", "failure_loss", "recovery_loss", "initial_state", "max_ttl", "size",
    "up", "down", "flush_conntrack", "flap_threshold", "flap_window", "flap_holddown",
}
MEMBER_OPTIONS = {"interface", "metric", "weight"}
POLICY_OPTIONS = {"use_member", "last_resort"}
RULE_OPTIONS = {
    "use_policy", "src_ip", "src_port", "proto", "dest_ip", "dest_port", "ipset", "sticky",
    "timeout", "family", "logging", "src_iface",
}
KNOWN_OPTIONS = {
    "globals": GLOBAL_OPTIONS,
    "interface": INTERFACE_OPTIONS,
    "member": MEMBER_OPTIONS,
    "policy": POLICY_OPTIONS,
    "rule": RULE_OPTIONS,
}
LIST_OPTIONS = {"track_ip", "flush_conntrack", "use_member", "rt_table_lookup",
                "src_ip", "dest_ip", "src_port", "dest_port", "web_listen"}


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

    def scalar(self, option: str, reader: Callable[[str], T], default: T) -> T:
        opt = self.section.get(option)
        if opt is None:
            return default
        if opt.kind == "list" and len(opt.values) > 1:
            self.problem(option, "takes a single value, not a list")
            return default
        try:
            return reader(opt.value)
        except F.BadValue as exc:
            self.problem(option, str(exc))
            return default

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

    def check_unknown(self) -> None:
        known = KNOWN_OPTIONS.get(self.section.type, set())
        for opt in self.section.options:
            if opt.name not in known:
                self.warn(opt.name, "unknown option, ignored")
            elif opt.kind == "list" and opt.name not in LIST_OPTIONS and len(opt.values) > 1:
                self.problem(opt.name, "takes a single value, not a list")


def _read_globals(r: _Reader) -> Globals:
    if r.section.get("rtmon_interval") is not None:
        r.warn("rtmon_interval", "deprecated and ignored: routes are followed by netlink events")
    if r.section.get("local_source") is not None:
        r.warn("local_source", "deprecated and ignored since mwan3 2.7")
    web_enabled = r.scalar("web_enabled", F.read_bool, False)
    listen = r.each("web_listen", lambda t: str(F.read_address(t))) or ("127.0.0.1",)
    pw_hash = r.scalar("web_password_hash", str, None)
    if pw_hash is not None and not pw_hash.startswith("scrypt$"):
        r.problem("web_password_hash", "not a password hash: set it with 'mwan3 web-password'")
    if web_enabled and pw_hash is None:
        r.problem("web_enabled", "the web UI needs a password: set one with 'mwan3 web-password'")
    cert, key = r.scalar("web_cert", str, None), r.scalar("web_key", str, None)
    if (cert is None) != (key is None):
        r.problem("web_cert" if cert is None else "web_key",
                  "web_cert and web_key go together (TLS needs both)")
    return Globals(
        web_enabled=web_enabled,
        web_listen=listen,
        web_port=r.scalar("web_port", lambda t: F.read_int(t, 1, 65535), 8086),
        web_password_hash=pw_hash,
        web_cert=cert,
        web_key=key,
        mmx_mask=r.scalar("mmx_mask", F.read_hex_mask, 0x3F00),
        logging=r.scalar("logging", F.read_bool, False),
        loglevel=r.scalar("loglevel", lambda t: F.read_choice(t, LOG_LEVELS), "notice"),
        rt_table_lookup=r.each("rt_table_lookup", lambda t: F.read_int(t, 1, 0xFFFFFFFF)),
        source_routing=r.scalar("source_routing", F.read_bool, False),
        local_source=r.scalar("local_source", str, None),
        rtmon_interval=r.scalar("rtmon_interval", lambda t: F.read_int(t, 0), None),
        user_script=r.scalar("user_script", str, "/etc/mwan3.user"),
        line=r.section.line,
    )


def _read_interface(r: _Reader, ident: int, network_devices: Mapping[str, str]) -> Interface:
    name = r.section.name
    family = r.scalar("family", lambda t: F.read_choice(t, ("ipv4", "ipv6")), "ipv4")
    version = 4 if family == "ipv4" else 6

    def addr_of_family(text: str) -> Any:
        a = F.read_address(text)
        if a.version != version:
            raise F.BadValue(f"{text!r} is an IPv{a.version} address on an {family} interface")
        return a

    interval = r.scalar("interval", lambda t: F.read_int(t, 1, 86400), 10)
    track_ip = r.each("track_ip", addr_of_family)
    reliability = r.scalar("reliability", lambda t: F.read_int(t, 1, 100), 1)
    if track_ip and reliability > len(track_ip):
        r.problem("reliability", f"{reliability} is more than the {len(track_ip)} track_ip "
                  "targets; the interface could never come online")
    method = r.scalar("track_method", lambda t: F.read_choice(t, TRACK_METHODS), "ping")
    if method in ("arping", "nping-arp") and family == "ipv6":
        r.problem("track_method", f"{method} works only on ipv4 interfaces")
    device = r.scalar("device", str, None) or network_devices.get(name) or name
    why = device_name_problem(device)
    if why:
        r.problem("device", why)
    iface = Interface(
        name=name,
        id=ident,
        device=device,
        enabled=r.scalar("enabled", F.read_bool, False),
        family=family,  # type: ignore[arg-type]
        gateway=r.scalar("gateway", addr_of_family, None),
        track_ip=track_ip,
        track_method=method,
        httping_ssl=r.scalar("httping_ssl", F.read_bool, False),
        track_port=r.scalar("track_port", lambda t: F.read_int(t, 1, 65535), None),
        reliability=reliability,
        count=r.scalar("count", lambda t: F.read_int(t, 1, 100), 1),
        timeout=r.scalar("timeout", lambda t: F.read_int(t, 1, 60), 4),
        interval=interval,
        failure_interval=r.scalar("failure_interval", lambda t: F.read_int(t, 1, 86400), interval),
        recovery_interval=r.scalar("recovery_interval", lambda t: F.read_int(t, 1, 86400),
                                   interval),
        keep_failure_interval=r.scalar("keep_failure_interval", F.read_bool, False),
        check_quality=r.scalar("check_quality", F.read_bool, False),
        failure_latency=r.scalar("failure_latency", lambda t: F.read_int(t, 1, 1000000), 1000),
        recovery_latency=r.scalar("recovery_latency", lambda t: F.read_int(t, 1, 1000000), 500),
        failure_loss=r.scalar("failure_loss", lambda t: F.read_int(t, 0, 100), 40),
        recovery_loss=r.scalar("recovery_loss", lambda t: F.read_int(t, 0, 100), 10),
        initial_state=InitialState(
            r.scalar("initial_state", lambda t: F.read_choice(t, ("online", "offline")), "online")
        ),
        max_ttl=r.scalar("max_ttl", lambda t: F.read_int(t, 1, 255), 60),
        size=r.scalar("size", lambda t: F.read_int(t, 1, 65507), 56),
        up=r.scalar("up", lambda t: F.read_int(t, 1, 1000), 5),
        down=r.scalar("down", lambda t: F.read_int(t, 1, 1000), 5),
        flush_conntrack=r.each("flush_conntrack", lambda t: F.read_choice(t, FLUSH_EVENTS)),
        flap_threshold=r.scalar("flap_threshold", lambda t: F.read_int(t, 0, 1000), 0),
        flap_window=r.scalar("flap_window", lambda t: F.read_int(t, 1, 86400), 60),
        flap_holddown=r.scalar("flap_holddown", lambda t: F.read_int(t, 1, 86400), 120),
        line=r.section.line,
    )
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


def _read_member(r: _Reader) -> Member:
    if r.section.get("interface") is None:
        r.problem("interface", "missing: a member must name an interface")
    return Member(
        name=r.section.name,
        interface=r.scalar("interface", str, ""),
        metric=r.scalar("metric", lambda t: F.read_int(t, 1, 256), 1),
        weight=r.scalar("weight", lambda t: F.read_int(t, 1, 1000), 1),
        line=r.section.line,
    )


def _read_policy(r: _Reader) -> Policy:
    return Policy(
        name=r.section.name,
        use_member=r.each("use_member", str),
        last_resort=r.scalar("last_resort", lambda t: F.read_choice(t, LAST_RESORTS),
                             "unreachable"),
        line=r.section.line,
    )


def _read_rule(r: _Reader) -> Rule:
    if r.section.get("use_policy") is None:
        r.problem("use_policy", "missing: a rule must name a policy (or default, "
                  "unreachable, blackhole)")
    family = r.scalar("family", lambda t: F.read_choice(t, ("ipv4", "ipv6", "any")), "any")
    proto = r.scalar("proto", F.read_proto, "all")
    no_nets: tuple[IPNetwork, ...] = ()
    src_ip = r.many("src_ip", F.read_network_list, no_nets)
    dest_ip = r.many("dest_ip", F.read_network_list, no_nets)
    for opt, nets in (("src_ip", src_ip), ("dest_ip", dest_ip)):
        for net in nets:
            if family == "ipv4" and net.version == 6:
                r.problem(opt, f"{net} is an IPv6 address in an ipv4 rule")
            elif family == "ipv6" and net.version == 4:
                r.problem(opt, f"{net} is an IPv4 address in an ipv6 rule")
    if family == "any" and src_ip and dest_ip and \
            not ({n.version for n in src_ip} & {n.version for n in dest_ip}):
        r.problem("dest_ip", "src_ip and dest_ip have no address family in common")
    no_ports: tuple[PortRange, ...] = ()
    src_port = r.many("src_port", F.read_port_list, no_ports)
    dest_port = r.many("dest_port", F.read_port_list, no_ports)
    for opt, ports in (("src_port", src_port), ("dest_port", dest_port)):
        if ports and proto not in ("tcp", "udp"):
            r.problem(opt, f"ports need proto tcp or udp (proto is {proto})")
    if proto == "icmp" and family == "ipv6":
        r.problem("proto", "icmp in an ipv6 rule; use icmpv6")
    sticky = r.scalar("sticky", F.read_bool, False)
    use_policy = r.scalar("use_policy", str, "")
    if sticky and use_policy in SPECIAL_POLICIES:
        r.warn("sticky", f"ignored with use_policy {use_policy}")
        sticky = False
    return Rule(
        name=r.section.name,
        use_policy=use_policy,
        src_ip=src_ip,
        src_port=src_port,
        proto=proto,
        dest_ip=dest_ip,
        dest_port=dest_port,
        ipset=r.scalar("ipset", read_ipset, None),
        sticky=sticky,
        timeout=r.scalar("timeout", lambda t: F.read_int(t, 1, 1000000), 600),
        family=family,  # type: ignore[arg-type]
        logging=r.scalar("logging", F.read_bool, False),
        src_iface=r.scalar("src_iface", str, None),
        line=r.section.line,
    )


# Linux refuses these in a device name (dev_valid_name); nft reads '*' as a
# wildcard and quotes and backslashes as its own syntax.
_DEVICE_KERNEL_REFUSES = "/:"
_DEVICE_NFT_SPECIAL = "*\"'\\"
MAIN_RULE_PRIORITY = 32766  # the kernel's "from all lookup main"
FIRST_KERNEL_TABLE = 253  # routing tables 253-255 are default, main and local


def device_name_problem(device: str) -> str | None:
    """Why ``device`` cannot be a Linux interface name that nft matches literally, or None.

    The kernel's ``dev_valid_name``: 1-15 bytes, not ``.`` or ``..``, no
    ``/``, ``:`` or blank.  mwan also refuses what nft would read as syntax
    (``*`` is a wildcard: ``eth*`` would match every eth device) and anything
    but printable ASCII.
    """
    if not device:
        return "is empty; give the Linux device name, e.g. 'eth1'"
    size = len(device.encode())
    if size > 15:
        return f"{device!r} is longer than the 15 bytes of a Linux device name"
    if device in (".", ".."):
        return f"{device!r} is not a Linux device name"
    for c in device:
        if c in _DEVICE_NFT_SPECIAL:
            return (f"{device!r}: {c!r} is not allowed in a device name (nft would read it as "
                    f"{'a wildcard' if c == '*' else 'quoting'}); name one device, e.g. 'eth1'")
        if c in _DEVICE_KERNEL_REFUSES or c.isspace() or not (c.isascii() and c.isprintable()):
            return (f"{device!r}: {char_name(c)} is not allowed in a Linux device name "
                    "(the kernel refuses '/', ':' and blanks; mwan takes printable ASCII)")
    return None


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


def read_ipset(text: str) -> str:
    """A rule's ``ipset``: a valid set name that is none of mwan's own sets."""
    name = F.read_set_name(text)
    theirs = reserved_ipset(name)
    if theirs is not None:
        raise F.BadValue(f"{name!r} is reserved: its nft set {theirs!r} is one mwan names itself "
                         "(connected, custom, dynamic and sticky_v4_RULE / sticky_v6_RULE); "
                         "name the set differently")
    return name


def _mark_space_problems(path: str, space: MarkSpace, globals_sec: UciSection | None,
                         interfaces: list[Interface]) -> list[Problem]:
    """mmx_mask must leave room for the interfaces and keep mwan's ip rules before main's."""
    out: list[Problem] = []
    highest = FWMARK_PRIORITY + space.unreachable_id  # the 'fwmark ... unreachable' rule
    if highest >= MAIN_RULE_PRIORITY:
        opt = globals_sec.get("mmx_mask") if globals_sec is not None else None
        out.append(Problem(
            path, opt.line if opt else 0, globals_sec.name if globals_sec else None, "mmx_mask",
            f"{space.mask:#x} has {space.bits} bits: the reserved ids (blackhole "
            f"{space.blackhole_id}, unreachable {space.unreachable_id}) would need ip rule "
            f"priority {highest}, past the main table's rule at {MAIN_RULE_PRIORITY}; use at "
            f"most 14 bits, e.g. 0x3F00 (the default) or 0xFF0000"))
        return out
    room = min(space.max_interfaces, FIRST_KERNEL_TABLE - 1)
    if len(interfaces) > room:
        why = (f"mmx_mask {space.mask:#x} has room for {room}" if room == space.max_interfaces
               else f"routing tables {FIRST_KERNEL_TABLE}-255 are the kernel's, so there is "
               f"room for {room}")
        out.append(Problem(path, interfaces[room].line, interfaces[room].name, None,
                           f"too many interfaces: {why}, this is number {room + 1}"))
    return out


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
    for sec in sections:
        r = _Reader(path, sec, problems, warnings)
        if sec.type not in KNOWN_OPTIONS:
            r.warn(None, f"unknown section type {sec.type!r}, ignored")
            continue
        r.check_unknown()
        if sec.type != "globals":
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
            policies.append(_read_policy(r))
        elif sec.type == "rule":
            rules.append(_read_rule(r))
    globals_ = globals_ or Globals()
    by_name = {s.name: s for s in sections}

    def ref_problem(section: str, option: str, message: str, line: int) -> None:
        problems.append(Problem(path, line, section, option, message))

    space = MarkSpace(globals_.mmx_mask)
    globals_sec = next((s for s in sections if s.type == "globals"), None)
    problems.extend(_mark_space_problems(path, space, globals_sec, interfaces))
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
