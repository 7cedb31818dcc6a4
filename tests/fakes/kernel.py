"""An in-memory kernel for the appliers: netlink (rules, routes, links, addresses) and nft.

:class:`FakeIPRoute` implements the part of pyroute2's ``IPRoute`` that
:class:`mwan.kernel.routing.Routing` uses, with the kernel's answers: an
identical rule added twice is EEXIST, deleting what is not there is
ENOENT (rules) or ESRCH (routes), a route's key is (table, dst, metric), an
IPv6 route without a metric gets 1024, a rule's mark is reported only when
set.  :class:`FakeNft` implements libnftables' ``json_cmd`` for the commands
mwan sends, atomically (a failing batch changes nothing), with the kernel's
refusals: a chain or set in use (a jump, a ``@set`` reference, rules) cannot
be deleted, a rule needs its chain, sets and jump targets.  Its listing has
libnftables' JSON shape.  :class:`Chaos` makes a chosen fraction of calls fail.
"""

from __future__ import annotations

import errno
import json
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink.exceptions import ChaoticException, NetlinkError
from pyroute2.netlink.rtnl.fibmsg import FR_ACT_NAMES

from mwan.kernel.diff import normal_routes
from mwan.plan.state import RTPROT_MWAN, TABLE_FAMILY, TABLE_NAME, IpRule, NftTable, Route


class Msg(dict[str, Any]):
    """A netlink message: fields, and ``attrs`` that ``get`` also finds (as pyroute2's do)."""

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        for name, value in self.get("attrs", ()):
            if name == key:
                return value
        return default


@dataclass
class Link:
    index: int
    name: str
    up: bool = True


@dataclass
class FakeIPRoute:
    links: list[Link] = field(default_factory=list)
    addrs: list[tuple[int, str, int, int]] = field(default_factory=list)  # family, addr, len, idx
    rules: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    # ------------------------------------------------------------ links and addresses
    def get_links(self) -> list[Msg]:
        self.calls += 1
        return [Msg(index=ln.index, flags=0x10001 if ln.up else 0,
                    attrs=[("IFLA_IFNAME", ln.name), ("IFLA_CARRIER", int(ln.up)),
                           ("IFLA_OPERSTATE", "UP" if ln.up else "DOWN")])
                for ln in self.links]

    def get_addr(self) -> list[Msg]:
        self.calls += 1
        return [Msg(family=f, prefixlen=n, index=i, attrs=[("IFA_ADDRESS", a), ("IFA_LOCAL", a)])
                for f, a, n, i in self.addrs]

    # ------------------------------------------------------------ rules
    def get_rules(self, family: int) -> list[Msg]:
        self.calls += 1
        out = []
        for r in self.rules:
            if r["family"] != family:
                continue
            attrs: list[tuple[str, Any]] = [("FRA_PRIORITY", r["priority"]),
                                            ("FRA_TABLE", r["table"]),
                                            ("FRA_PROTOCOL", r["protocol"])]
            if r["fwmark"]:
                attrs.append(("FRA_FWMARK", r["fwmark"]))
            if r["fwmark"] or r["fwmask"]:
                attrs.append(("FRA_FWMASK", r["fwmask"]))
            if r["iifname"] is not None:
                attrs.append(("FRA_IIFNAME", r["iifname"]))
            out.append(Msg(family=family, action=r["action"], table=min(r["table"], 252),
                           attrs=attrs))
        return out

    def rule(self, cmd: str, *, family: int, priority: int, protocol: int = 0,
             action: str = "FR_ACT_TO_TBL", table: int = 0, fwmark: int = 0, fwmask: int = 0,
             iifname: str | None = None) -> None:
        self.calls += 1
        r = {"family": family, "priority": priority, "protocol": protocol,
             "action": FR_ACT_NAMES[action], "table": table, "fwmark": fwmark,
             "fwmask": fwmask, "iifname": iifname}
        if cmd == "add":
            if r in self.rules:
                raise NetlinkError(errno.EEXIST, "File exists")
            self.rules.append(r)
            self.rules.sort(key=lambda x: x["priority"])
        elif cmd == "del":
            if r not in self.rules:
                raise NetlinkError(errno.ENOENT, "No such file or directory")
            self.rules.remove(r)
        else:
            raise NotImplementedError(cmd)

    # ------------------------------------------------------------ routes
    def get_routes(self, family: int, table: int | None = None) -> list[Msg]:
        self.calls += 1
        out = []
        for r in self.routes:
            if r["family"] != family or (table is not None and r["table"] != table):
                continue
            attrs: list[tuple[str, Any]] = [("RTA_TABLE", r["table"])]
            for key, attr in (("dst", "RTA_DST"), ("oif", "RTA_OIF"),
                              ("gateway", "RTA_GATEWAY"), ("prefsrc", "RTA_PREFSRC"),
                              ("priority", "RTA_PRIORITY")):
                if r[key] is not None:
                    attrs.append((attr, r[key]))
            out.append(Msg(family=family, table=min(r["table"], 252), dst_len=r["dst_len"],
                           proto=r["proto"], scope=r["scope"], type=r["type"], attrs=attrs))
        return out

    def route(self, cmd: str, *, family: int, table: int, dst: str, proto: int = 0,
              type: int = 1, scope: int = 0, oif: int | None = None,
              gateway: str | None = None, prefsrc: str | None = None,
              priority: int | None = None) -> None:
        self.calls += 1
        if dst == "default":
            addr, plen = None, 0
        else:
            a, _, n = dst.partition("/")
            addr, plen = a, int(n)
        if priority is None and family == socket.AF_INET6:
            priority = 1024
        r = {"family": family, "table": table, "dst": addr, "dst_len": plen, "proto": proto,
             "type": type, "scope": scope, "oif": oif, "gateway": gateway, "prefsrc": prefsrc,
             "priority": priority}
        key = ("family", "table", "dst", "dst_len", "priority")
        same = [x for x in self.routes if all(x[k] == r[k] for k in key)]
        if cmd in ("add", "replace"):
            if oif is not None and oif not in {ln.index for ln in self.links}:
                raise NetlinkError(errno.ENODEV, "No such device")
            if same and cmd == "add":
                raise NetlinkError(errno.EEXIST, "File exists")
            if same:
                self.routes[self.routes.index(same[0])] = r
            else:
                self.routes.append(r)
        elif cmd == "del":
            match = [x for x in same
                     if all(r[k] is None or x[k] == r[k] for k in ("oif", "gateway"))
                     and x["proto"] == proto]
            if not match:
                raise NetlinkError(errno.ESRCH, "No such process")
            self.routes.remove(match[0])
        else:
            raise NotImplementedError(cmd)

    # ------------------------------------------------------------ what the tests check
    def device(self, index: int | None) -> str | None:
        return next((ln.name for ln in self.links if ln.index == index), None)

    def mwan_rules(self) -> set[IpRule]:
        """mwan's rules (proto 201), as :class:`IpRule`."""
        action = {v: k for k, v in {"lookup": FR_ACT_NAMES["FR_ACT_TO_TBL"],
                                     "blackhole": FR_ACT_NAMES["FR_ACT_BLACKHOLE"],
                                     "unreachable": FR_ACT_NAMES["FR_ACT_UNREACHABLE"]}.items()}
        fam = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
        return {IpRule(r["priority"], fam[r["family"]], action[r["action"]],  # type: ignore[arg-type]
                       table=r["table"] if action[r["action"]] == "lookup" else None,
                       fwmark=r["fwmark"] or None, fwmask=r["fwmask"] if r["fwmark"] else None,
                       iif=r["iifname"])
                for r in self.rules if r["protocol"] == RTPROT_MWAN}

    def mwan_routes(self) -> set[Route]:
        """mwan's routes (proto 201), as :class:`Route` in the kernel's form."""
        fam = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
        types = {1: "unicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw"}
        return {Route(r["table"], fam[r["family"]],  # type: ignore[arg-type]
                      "default" if r["dst"] is None else f"{r['dst']}/{r['dst_len']}",
                      dev=self.device(r["oif"]), gateway=r["gateway"], prefsrc=r["prefsrc"],
                      metric=r["priority"], scope=r["scope"], type=types[r["type"]])
                for r in self.routes if r["proto"] == RTPROT_MWAN}


# ---------------------------------------------------------------- nft


class NftRefused(Exception):
    pass


def _plain(obj: Any) -> Any:
    """What libnftables sees of a Python object: JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _jumps(expr: Any) -> set[str]:
    return {o[k]["target"] for o in _walk(expr) if isinstance(o, dict)
            for k in ("jump", "goto") if isinstance(o.get(k), dict)}


def _set_refs(expr: Any) -> set[str]:
    return {o[1:] for o in _walk(expr) if isinstance(o, str) and o.startswith("@")}


@dataclass
class FakeTable:
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → definition
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # chain → rules
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → definition
    elements: dict[str, list[Any]] = field(default_factory=dict)  # set → elements
    # chain → (jump targets, sets) its rules refer to, one entry per rule
    refs: dict[str, list[tuple[set[str], set[str]]]] = field(default_factory=dict)

    def copy(self) -> FakeTable:
        """A copy to change (rules and elements themselves are never changed in place)."""
        return FakeTable(dict(self.chains), {k: list(v) for k, v in self.rules.items()},
                         dict(self.sets), {k: list(v) for k, v in self.elements.items()},
                         {k: list(v) for k, v in self.refs.items()})


@dataclass
class FakeNft:
    """``json_cmd`` over one ``inet mwan`` table (other tables are refused)."""

    table: FakeTable | None = None
    batches: list[list[dict[str, Any]]] = field(default_factory=list)

    def json_cmd(self, cmd: dict[str, Any]) -> tuple[int, Any, str]:
        commands = _plain(cmd)["nftables"]
        if len(commands) == 1 and "list" in commands[0]:
            return self._list(commands[0]["list"])
        work = self.table.copy() if self.table is not None else None
        try:
            for c in commands:
                work = self._do(work, c)
        except NftRefused as exc:
            return 1, "", f"internal:0:0-0: Error: Could not process rule: {exc}\n\n"
        self.table = work
        self.batches.append(commands)
        return 0, "", ""

    # ------------------------------------------------------------ listing
    def _list(self, what: dict[str, Any]) -> tuple[int, Any, str]:
        (kind, obj), = what.items()
        t = self.table
        meta = {"metainfo": {"version": "1.0.6", "json_schema_version": 1}}
        name = obj.get("name")
        if t is None or obj.get("table", name if kind == "table" else None) != TABLE_NAME or \
                (kind == "chain" and name not in t.chains) or \
                (kind in ("set", "map") and name not in t.sets):
            return -1, "", "internal:0:0-0: Error: No such file or directory\n\n"
        out: list[dict[str, Any]] = [meta]
        if kind == "table":
            out.append({"table": {"family": TABLE_FAMILY, "name": TABLE_NAME, "handle": 1}})
        sets = t.sets if kind == "table" else ({name: t.sets[name]} if kind in ("set", "map")
                                               else {})
        for n, d in sets.items():
            s = {k: v for k, v in d.items()}
            flags = list(s.get("flags", ()))
            if "timeout" in s and "timeout" not in flags:
                flags.append("timeout")  # as the kernel reports a set with a timeout
            if flags:
                s["flags"] = flags
            if t.elements.get(n):
                s["elem"] = list(t.elements[n])
            out.append({"map": s} if "map" in s else {"set": s})
        chains = t.chains if kind == "table" else ({name: t.chains[name]}
                                                   if kind == "chain" else {})
        for n, d in chains.items():
            out.append({"chain": dict(d)})
        for n in chains:
            out += [{"rule": r} for r in t.rules[n]]
        return 0, {"nftables": out}, ""

    # ------------------------------------------------------------ commands
    def _do(self, t: FakeTable | None, c: dict[str, Any]) -> FakeTable | None:
        (op, body), = c.items()
        (kind, obj), = body.items()
        if obj.get("family") != TABLE_FAMILY or \
                obj.get("name" if kind == "table" else "table") != TABLE_NAME:
            raise NftRefused("Operation not supported")
        if kind == "table":
            if op == "add":
                return t if t is not None else FakeTable()
            if op == "delete":
                if t is None:
                    raise NftRefused("No such file or directory")
                return None
            raise NftRefused(f"{op} table: not supported")
        if t is None:
            raise NftRefused("No such file or directory")
        name = obj.get("name")
        if kind == "chain":
            self._chain(t, op, obj)
        elif kind in ("set", "map"):
            self._set(t, op, obj, kind)
        elif kind == "element":
            if name not in t.sets:
                raise NftRefused("No such file or directory")
            if op != "add":
                raise NftRefused(f"{op} element: not supported")
            elems = t.elements.setdefault(name, [])
            elems += [e for e in obj["elem"] if e not in elems]
        elif kind == "rule":
            if op != "add":
                raise NftRefused(f"{op} rule: not supported")
            chain = obj["chain"]
            jumps, sets = _jumps(obj["expr"]), _set_refs(obj["expr"])
            if chain not in t.chains or not sets <= set(t.sets) or not jumps <= set(t.chains):
                raise NftRefused("No such file or directory")
            rule = {k: v for k, v in obj.items() if k in ("family", "table", "chain", "expr",
                                                            "comment")}
            t.rules[chain].append(rule)
            t.refs[chain].append((jumps, sets))
        else:
            raise NftRefused(f"{kind}: not supported")
        return t

    def _in_use(self, t: FakeTable, kind: int, name: str) -> bool:
        """Whether a rule jumps to chain ``name`` (kind 0) or refers to set ``name`` (1)."""
        return any(name in r[kind] for refs in t.refs.values() for r in refs)

    def _chain(self, t: FakeTable, op: str, obj: dict[str, Any]) -> None:
        name = obj["name"]
        if op == "add":
            t.chains.setdefault(name, obj)
            t.rules.setdefault(name, [])
            t.refs.setdefault(name, [])
        elif name not in t.chains:
            raise NftRefused("No such file or directory")
        elif op == "flush":
            t.rules[name], t.refs[name] = [], []
        elif op == "delete":
            if t.rules[name] or self._in_use(t, 0, name):
                raise NftRefused("Device or resource busy")
            del t.chains[name], t.rules[name], t.refs[name]
        else:
            raise NftRefused(f"{op} chain: not supported")

    def _set(self, t: FakeTable, op: str, obj: dict[str, Any], kind: str = "set") -> None:
        name = obj["name"]
        if op == "add":
            if name in t.sets and t.sets[name] != obj:
                raise NftRefused("File exists")
            t.sets.setdefault(name, obj)
            t.elements.setdefault(name, [])
        elif name not in t.sets:
            raise NftRefused("No such file or directory")
        elif op == "flush":
            if (kind == "map") != ("map" in t.sets[name]):  # libnftables: "flush set" of a map
                raise NftRefused("No such file or directory")
            t.elements[name] = []
        elif op == "delete":
            if self._in_use(t, 1, name):
                raise NftRefused("Device or resource busy")
            del t.sets[name], t.elements[name]
        else:
            raise NftRefused(f"{op} set: not supported")

    # ------------------------------------------------------------ what the tests check
    def differences(self, want: NftTable) -> list[str]:
        """How the table differs from ``want`` ([]: equal; kept sets: only their shape)."""
        t = self.table
        if t is None:
            return ["no table"]
        out = []
        wchains = {c.name: c for c in want.chains}
        if set(t.chains) != set(wchains):
            out.append(f"chains {sorted(set(t.chains) ^ set(wchains))}")
        for n, c in wchains.items():
            if n not in t.chains:
                continue
            if t.chains[n] != _plain(c.definition()):
                out.append(f"chain {n} definition")
            rules = [{"expr": list(r), **({"comment": c.comments[i]} if i < len(c.comments)
                                          and c.comments[i] else {})}
                     for i, r in enumerate(c.rules)]
            have = [{k: v for k, v in r.items() if k in ("expr", "comment")} for r in t.rules[n]]
            if have != _plain(rules):
                out.append(f"chain {n} rules")
        wsets = {s.name: s for s in want.sets}
        if set(t.sets) != set(wsets):
            out.append(f"sets {sorted(set(t.sets) ^ set(wsets))}")
        for n, s in wsets.items():
            if n not in t.sets:
                continue
            if t.sets[n] != _plain(s.definition()):
                out.append(f"set {n} shape")
            if s.elements is not None and \
                    sorted(map(json.dumps, t.elements[n])) != \
                    sorted(map(json.dumps, _plain(list(s.elements)))):
                out.append(f"set {n} elements")
        return out


# ---------------------------------------------------------------- chaos


@dataclass
class Chaos:
    """Wraps a fake: a ``rate`` of the calls to ``methods`` fail before they do anything.

    pyroute2's ``ChaoticIPRoute`` does this to a real netlink socket (it
    raises ``ChaoticException``); this one wraps any object, and raises
    :class:`NetlinkError` (EBUSY, ENOBUFS) as well, or for ``json_cmd``
    answers as libnftables does when the kernel refuses a batch.
    """

    inner: Any
    rate: float
    rng: random.Random
    methods: tuple[str, ...] = ("get_links", "get_addr", "get_rules", "rule", "get_routes",
                                "route", "json_cmd")
    failures: int = 0
    on: bool = True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.methods:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.on and self.rng.random() < self.rate:
                self.failures += 1
                if name == "json_cmd":
                    return 1, "", ("internal:0:0-0: Error: Could not process rule: "
                                   "Resource temporarily unavailable\n\n")
                raise self.rng.choice([NetlinkError(errno.EBUSY, "Device or resource busy"),
                                       NetlinkError(errno.ENOBUFS, "No buffer space"),
                                       ChaoticException()])
            return attr(*args, **kwargs)
        return call


def routes_equal(ipr: FakeIPRoute, want: tuple[Route, ...]) -> bool:
    return ipr.mwan_routes() == normal_routes(want)


@dataclass
class Faults:
    """Wraps a fake: the next call of a method that ``when`` matches fails, once.

    ``error``: the exception to raise, or for ``json_cmd`` the (rc, out, err)
    answer to give instead of running the batch.
    """

    inner: Any
    pending: list[tuple[str, Callable[..., bool], Any]] = field(default_factory=list)

    def fail(self, method: str, error: Any,
             when: Callable[..., bool] = lambda *args, **kwargs: True) -> None:
        self.pending.append((method, when, error))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            for fault in self.pending:
                method, when, error = fault
                if method == name and when(*args, **kwargs):
                    self.pending.remove(fault)
                    if isinstance(error, BaseException):
                        raise error
                    return error
            return attr(*args, **kwargs)
        return call
