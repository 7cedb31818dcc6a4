"""Kinds of the notify, usage and data-cap options, and the data-cap period's calendar.

``data_cap '20G'``: bytes with a decimal (K, M, G, T: powers of 1000, as
ISPs count) or binary (KiB, MiB, GiB, TiB) unit.  ``data_cap_period``:
``daily``, ``weekly [mon..sun]`` (default mon) or ``monthly [1..31]``
(default 1; a day past the month's end means its last day); periods start
at local midnight.  Pure: the daemon hands in the time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit

from . import fields as F
from .options import Ctx, Kind, Text

UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt](?:i?b)?|b)?")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# headers mwan writes itself
RESERVED_HEADERS = frozenset({"content-type", "content-length", "x-mwan-signature", "host"})


def read_size(text: str) -> int:
    m = _SIZE_RE.fullmatch(text.strip().lower())
    if m is None:
        raise F.BadValue(f"{text!r} is not a size (bytes, or with a unit: 500M, 20G, 1.5T, "
                         "10GiB)")
    unit = (m.group(2) or "").removesuffix("b") if m.group(2) not in ("kib", "mib", "gib",
                                                                     "tib") else m.group(2)
    value = int(float(m.group(1)) * UNITS[unit or ""])
    if value <= 0:
        raise F.BadValue(f"{text!r}: a data cap must be more than 0 bytes")
    return value


def size_text(n: int) -> str:
    """Bytes as a short decimal size: ``20G``, ``1.5T``, ``512M``, ``900``."""
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


class Size(Kind[int]):
    json_type = "integer"

    def parse(self, text: str, ctx: Ctx) -> int:
        return read_size(text)

    def text(self, value: int) -> str:
        return size_text(value)


def read_period(text: str) -> str:
    """``daily``, ``weekly [DAY]``, ``monthly [N]`` → its normal form (``monthly 1``)."""
    words = text.strip().lower().split()
    if words and words[0] == "daily" and len(words) == 1:
        return "daily"
    if words and words[0] == "weekly" and len(words) <= 2:
        day = words[1][:3] if len(words) == 2 else "mon"
        if day not in WEEKDAYS:
            raise F.BadValue(f"{text!r}: weekly takes a day, one of {', '.join(WEEKDAYS)}")
        return f"weekly {day}"
    if words and words[0] == "monthly" and len(words) <= 2:
        n = words[1] if len(words) == 2 else "1"
        if not n.isdigit() or not 1 <= int(n) <= 31:
            raise F.BadValue(f"{text!r}: monthly takes the day the period starts, 1 to 31")
        return f"monthly {int(n)}"
    raise F.BadValue(f"{text!r} is not a period: daily, weekly [mon..sun], monthly [1..31]")


class Period(Kind[str]):
    def parse(self, text: str, ctx: Ctx) -> str:
        return read_period(text)


def _month_day(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, min(day, calendar.monthrange(year, month)[1]))


def period_bounds(period: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of the period (normal form) that holds ``now`` (naive local time)."""
    words = period.split()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if words[0] == "daily":
        return midnight, midnight + dt.timedelta(days=1)
    if words[0] == "weekly":
        back = (now.weekday() - WEEKDAYS.index(words[1])) % 7
        start = midnight - dt.timedelta(days=back)
        return start, start + dt.timedelta(days=7)
    day = int(words[1])
    start = _month_day(now.year, now.month, day)
    if start > now:
        year, month = (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)
        start = _month_day(year, month, day)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, _month_day(year, month, day)


def period_start(period: str, now: float) -> float:
    """The epoch time the period holding ``now`` (epoch) started, in local time."""
    start, _ = period_bounds(period, dt.datetime.fromtimestamp(now))
    return start.timestamp()


class Url(Kind[str]):
    """An http(s) URL with a host (a webhook)."""

    def parse(self, text: str, ctx: Ctx) -> str:
        url = text.strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise F.BadValue(f"{text!r} is not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise F.BadValue(f"{text!r} is not an http:// or https:// URL with a host")
        if any(c.isspace() for c in url):
            raise F.BadValue(f"{text!r}: a URL has no spaces")
        return url


class Header(Kind[str]):
    """``Name: value``, one HTTP header (not one mwan writes itself)."""

    def parse(self, text: str, ctx: Ctx) -> str:
        name, sep, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.fullmatch(name):
            raise F.BadValue(f"{text!r} is not a header 'Name: value'")
        if any(c in value for c in "\r\n\0"):
            raise F.BadValue(f"header {name}: the value has a line break")
        if name.lower() in RESERVED_HEADERS:
            raise F.BadValue(f"header {name} is written by mwan itself")
        return f"{name}: {value}"


class Secret(Text):
    """A secret: read, never exported (shown as ``(set)``)."""

    def export(self, value: str) -> Any:
        return "(set)" if value else value
