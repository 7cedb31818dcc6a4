"""Options as data: each option is declared once, as a field of the model.

A model field declared with :func:`opt` carries its :class:`Spec` in the
field's metadata: the option's kind (a small typed parser: bool, int with a
range, address, list of networks, port ranges, choice, ...), its default,
whether it is a UCI list, one line of help, and whether the web UI may
change it.  The dataclass body of each section type in
:mod:`mwan.config.model` is that section's option table (as VyOS's
interface-definitions or firewalld's ``IMPORT_EXPORT_STRUCTURE``):

    interval: int = opt(Int(1, 86400), 10, "seconds between two tests while steady")

The validator reads every option through its kind, ``show-config`` and the
API export through it, the web form takes its help text, default and
root-only mark from it, and :func:`json_schema` describes the exported
sections from it.  Adding an option is that one line plus its use.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from . import fields as F
from .values import IPAddress, IPNetwork, PortRange

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
Ctx = Mapping[str, Any]  # the section's options read so far (table order)


def json_value(v: Any) -> Any:
    """A parsed value as JSON data: enums by value, addresses and ports as text."""
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, tuple):
        return [json_value(x) for x in v]
    return str(v)  # addresses, networks, port ranges


class Kind(Generic[T]):
    """How one option's text becomes its value.

    ``parse`` raises :class:`~mwan.config.fields.BadValue` (the option is an
    error and keeps its default); ``check`` names a problem with a parsed
    value that is reported while the value is kept (the validator's later
    checks still see it).  A ``many`` kind reads all of a list's values at
    once (``parse_all``); any other kind reads one value, or each value of a
    list option.
    """

    many: ClassVar[bool] = False
    blank_is_unset: ClassVar[bool] = False  # ``option x ''`` means x is unset
    json_type: ClassVar[str] = "string"

    def parse(self, text: str, ctx: Ctx) -> T:
        raise NotImplementedError

    def parse_all(self, values: tuple[str, ...], ctx: Ctx) -> T:
        raise NotImplementedError

    def check(self, value: T) -> str | None:
        return None

    def export(self, value: T) -> Any:
        """The value as JSON data (show-config, the API)."""
        return json_value(value)

    def text(self, value: T) -> str:
        """The value as the UCI word that means it (the web form's defaults)."""
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(json_value(value))

    def schema(self) -> dict[str, Any]:
        return {"type": self.json_type}


class Bool(Kind[bool]):
    json_type = "boolean"

    def parse(self, text: str, ctx: Ctx) -> bool:
        return F.read_bool(text)


@dataclass(frozen=True)
class Int(Kind[int]):
    low: int | None = None
    high: int | None = None
    json_type = "integer"

    def parse(self, text: str, ctx: Ctx) -> int:
        if _DURATION_RE.fullmatch(text.strip().lower()) and not text.strip().isdigit():
            raise F.BadValue(f"{text!r} is not a whole number (only the timers interval, "
                             "timeout, failure_interval and recovery_interval take fractions)")
        return F.read_int(text, self.low, self.high)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if self.low is not None:
            out["minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return out


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?")


def read_duration(text: str, low: float, high: float) -> float:
    """Seconds: a whole number (mwan3), or a fraction ``0.2`` or milliseconds ``200ms``."""
    m = _DURATION_RE.fullmatch(text.strip().lower())
    if m is None:
        raise F.BadValue(f"{text!r} is not a duration (seconds, e.g. 10, 0.5 or 200ms)")
    value = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if value < low:
        raise F.BadValue(f"{text.strip()} is below the minimum {_seconds(low)} s")
    if value > high:
        raise F.BadValue(f"{text.strip()} is above the maximum {_seconds(high)} s")
    return value


def _seconds(value: float) -> str:
    """Seconds as mwan3 writes them: ``10`` for whole numbers, ``0.2`` otherwise."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Duration(Kind[float]):
    """Seconds; mwan3 takes whole numbers, mwan also fractions and milliseconds (``200ms``)."""

    low: float
    high: float
    json_type = "number"

    def parse(self, text: str, ctx: Ctx) -> float:
        return read_duration(text, self.low, self.high)

    def export(self, value: float) -> Any:
        return int(value) if float(value).is_integer() else float(value)

    def text(self, value: float) -> str:
        return _seconds(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.low, "maximum": self.high}


class MarkMask(Kind[int]):
    """``mmx_mask``: hexadecimal, at least 3 bits, at most the 14 that mwan's ip rules allow."""

    def parse(self, text: str, ctx: Ctx) -> int:
        return F.read_hex_mask(text)

    def check(self, value: int) -> str | None:
        return F.mark_mask_problem(value)

    def export(self, value: int) -> Any:
        return f"{value:#x}"

    def text(self, value: int) -> str:
        return f"{value:#X}".replace("0X", "0x")

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^0x[0-9a-f]+$"}


@dataclass(frozen=True)
class Choice(Kind[str]):
    choices: tuple[str, ...]

    def parse(self, text: str, ctx: Ctx) -> str:
        return F.read_choice(text, self.choices)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class EnumOf(Kind[E]):
    enum_type: type[E]

    def parse(self, text: str, ctx: Ctx) -> E:
        choices = tuple(str(m.value) for m in self.enum_type)
        return self.enum_type(F.read_choice(text, choices))

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": [m.value for m in self.enum_type]}


class Text(Kind[str]):
    def parse(self, text: str, ctx: Ctx) -> str:
        return text


class Device(Text):
    """A Linux interface name that nft matches literally (the kernel's dev_valid_name)."""

    blank_is_unset = True

    def check(self, value: str) -> str | None:
        return F.device_name_problem(value)


class DnsName(Kind[str]):
    """A DNS name to ask for (``track_dns_name``): ``.`` is the root; kept without the final dot."""

    def parse(self, text: str, ctx: Ctx) -> str:
        name = text.strip().rstrip(".")
        if len(name) > 253 or any(
                not re.fullmatch(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", label)
                for label in (name.split(".") if name else [])):
            raise F.BadValue(f"{text!r} is not a DNS name (labels of letters, digits, '-', "
                             "'_', each up to 63 characters; '.' for the root)")
        return name or "."


class PasswordHash(Text):
    """The web UI's password hash (``mwan3 web-password``); exported as ``(set)`` only."""

    def check(self, value: str) -> str | None:
        if not value.startswith("scrypt$"):
            return "not a password hash: set it with 'mwan3 web-password'"
        return None

    def export(self, value: str) -> Any:
        return "(set)"


class SetName(Kind[str]):
    """A rule's ``ipset``: a set name that is none of mwan's own sets."""

    def parse(self, text: str, ctx: Ctx) -> str:
        return F.read_ipset(text)


class Proto(Kind[str]):
    def parse(self, text: str, ctx: Ctx) -> str:
        return F.read_proto(text)


class Address(Kind[IPAddress]):
    """An IP address of the section's ``family`` (an interface's gateway and targets)."""

    def parse(self, text: str, ctx: Ctx) -> IPAddress:
        a = F.read_address(text)
        family = ctx.get("family", "ipv4")
        if a.version != (4 if family == "ipv4" else 6):
            raise F.BadValue(f"{text!r} is an IPv{a.version} address on an {family} interface")
        return a


class ListenAddress(Kind[str]):
    """An IP address of either family, kept as its normalized text."""

    def parse(self, text: str, ctx: Ctx) -> str:
        return str(F.read_address(text))


class Networks(Kind[tuple[IPNetwork, ...]]):
    """Addresses and CIDRs; each value may be a comma list."""

    many = True

    def parse_all(self, values: tuple[str, ...], ctx: Ctx) -> tuple[IPNetwork, ...]:
        return F.read_network_list(values)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


class Ports(Kind[tuple[PortRange, ...]]):
    """Ports and port ranges (``80``, ``80,443``, ``1000:2000``); each value may be a comma list."""

    many = True

    def parse_all(self, values: tuple[str, ...], ctx: Ctx) -> tuple[PortRange, ...]:
        return F.read_port_list(values)


@dataclass(frozen=True)
class Spec:
    """One option of a section type."""

    name: str
    kind: Kind[Any]
    default: Any  # the model's default (a parsed value), or dataclasses.MISSING
    help: str
    is_list: bool = False
    web: bool = True  # False: root only (names a program or file root uses, or a secret)
    default_from: str | None = None  # unset: the value of this other option
    deprecated: str | None = None  # accepted, warned about with this text, ignored

    @property
    def has_default(self) -> bool:
        return self.default is not dataclasses.MISSING and self.default not in (None, ())

    def default_text(self) -> str | None:
        """The default as the web form shows it, or None (no default)."""
        if self.default_from is not None:
            return f"{self.default_from}'s value"
        if not self.has_default:
            return None
        if self.is_list and not self.kind.many:
            return " ".join(self.kind.text(v) for v in self.default)
        return self.kind.text(self.default)

    def export(self, value: Any) -> Any:
        if value is None:
            return None
        if self.is_list and not self.kind.many:
            return [self.kind.export(v) for v in value]
        return self.kind.export(value)

    def schema(self) -> dict[str, Any]:
        one = self.kind.schema()
        if self.is_list:
            return {"type": "array", "items": one, "description": self.help}
        out = {**one, "description": self.help}
        if self.default is None:  # unset: null
            out["type"] = [one["type"], "null"]
        return out


_KEY = "mwan.option"


def opt(kind: Kind[Any], default: T, help: str, *, is_list: bool = False, web: bool = True,
        default_from: str | None = None, deprecated: str | None = None) -> T:
    """A model field that is a UCI option (see the module's docstring)."""
    spec = Spec("", kind, default, help, is_list or kind.many, web, default_from, deprecated)
    return dataclasses.field(default=default, metadata={_KEY: spec})


def required(kind: Kind[Any], help: str, *, web: bool = True) -> Any:
    """A model field that is a UCI option without a default (the validator supplies one)."""
    spec = Spec("", kind, dataclasses.MISSING, help, kind.many, web)
    return dataclasses.field(metadata={_KEY: spec})


def table(cls: type) -> tuple[Spec, ...]:
    """A section class's options, in declaration order, each named after its field."""
    return tuple(dataclasses.replace(f.metadata[_KEY], name=f.name)
                 for f in dataclasses.fields(cls) if _KEY in f.metadata)


def derived_fields(cls: type) -> tuple[str, ...]:
    """The section class's fields that are not options (name, id, line, resolved values)."""
    return tuple(f.name for f in dataclasses.fields(cls) if _KEY not in f.metadata)
