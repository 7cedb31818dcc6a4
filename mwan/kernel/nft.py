"""Make the kernel's ``inet mwan`` table match a desired :class:`NftTable`.

Everything goes through libnftables' JSON API in ONE batch per apply, which
the kernel commits as one transaction: a packet sees the old ruleset or the
new one, never a mix.  The batch is a difference: chains whose content did
not change are not touched, sets keep their elements unless mwan owns them
(bypass sets) or their shape changed.  User sets (``ipset`` rules, filled by
dnsmasq's ``nftset=``) and sticky maps keep their contents across applies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..plan.nftexpr import looked_up
from ..plan.state import TABLE_FAMILY, TABLE_NAME, NftTable
from .diff import NOTHING, NftKnown, full_batch, known_from_listing, nft_batch

log = logging.getLogger(__name__)


class NftError(RuntimeError):
    """libnftables refused a batch (nothing was changed: the batch is atomic).

    ``batch``: the JSON commands of the batch that failed, as firewalld's
    error carries them; the message stays one readable line.
    """

    def __init__(self, message: str, batch: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.batch: list[dict[str, Any]] = list(batch)


CHECK_TABLE = "mwan_check"


class CheckError(NftError):
    """The kernel would refuse a table: ``command`` is the first command it refuses."""

    def __init__(self, command: dict[str, Any], reason: str,
                 batch: Sequence[dict[str, Any]] = ()) -> None:
        self.command = command
        self.reason = reason
        super().__init__(f"the kernel refuses {describe_command(command)}: {reason}",
                         batch or [command])


def _first_line(err: str) -> str:
    for line in err.splitlines():
        line = line.strip()
        if line:
            return line.split("Error: ", 1)[-1]
    return err


def _errors(err: str) -> str:
    """libnftables' error text as one line: each distinct error once, without positions."""
    seen: list[str] = []
    for line in err.splitlines():
        line = line.strip().split("Error: ", 1)[-1]
        if line and line not in seen:
            seen.append(line)
    return "; ".join(seen)


def describe_command(cmd: dict[str, Any]) -> str:
    """``add set sticky_v4_a`` / ``add rule in chain rules ('https')`` for a batch command."""
    (op, body), = cmd.items()
    (kind, obj), = body.items()
    if kind == "rule":
        what = f"a rule in chain {obj.get('chain')}"
        if obj.get("comment"):
            what += f" ({obj['comment']})"
        return f"{op} {what}"
    if kind == "element":
        return f"{op} elements of set {obj.get('name')}"
    return f"{op} {kind} {obj.get('name')}"


# compact, non-ASCII kept as is (libnftables reads UTF-8), no cycle check (the
# batch is a tree): half the time of ``json.dumps`` with its defaults
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))


class FastJson:
    """libnftables' handle, with a ``json_cmd`` that serializes the batch faster.

    The binding's own ``json_cmd`` is ``json.dumps`` (ASCII, with spaces and
    a cycle check) then ``cmd``; for a full table (1.3 MB) that is 40 ms of
    the apply.  Everything else is the handle's.
    """

    def __init__(self, nft: Any) -> None:
        self._nft = nft

    def json_cmd(self, root: dict[str, Any]) -> tuple[int, Any, str]:
        rc, out, err = self._nft.cmd(_ENCODER.encode(root).encode())
        out, err = out.decode(), err.decode()
        return rc, (json.loads(out) if out else out), err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nft, name)


def _nftables() -> Any:
    try:
        import nftables  # Debian's python3-nftables
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise NftError("the python3-nftables binding is not installed "
                       "(apt-get install python3-nftables)") from exc
    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(False)
    return FastJson(nft)


def _table_obj() -> dict[str, Any]:
    return {"family": TABLE_FAMILY, "name": TABLE_NAME}


def _missing(err: str) -> bool:
    """libnftables' answer to listing something that does not exist."""
    return "No such file or directory" in err


@dataclass(frozen=True)
class ApplyStats:
    commands: int  # in the batch sent (0: nothing to change)


class NftApplier:
    """Keeps what it applied, so the next apply is a small difference.

    ``nft``: a libnftables handle with JSON output (tests hand in a fake).
    """

    def __init__(self, nft: Any | None = None) -> None:
        self._nft = nft if nft is not None else _nftables()
        self._known: NftKnown | None = None  # None: read the kernel on the next apply

    @property
    def known(self) -> NftKnown | None:
        """What the next apply takes the kernel's table to be (None: it lists the kernel)."""
        return self._known

    # ---------------------------------------------------------------- kernel io
    def run(self, commands: list[dict[str, Any]]) -> Any:
        if not commands:
            return None
        rc, out, err = self._nft.json_cmd({"nftables": commands})
        if rc != 0:
            raise NftError(f"nft refused a batch of {len(commands)} commands: "
                           f"{_errors(err) or out}", commands)
        return out

    def _list(self, kind: str, name: str | None) -> tuple[int, Any, str]:
        obj: dict[str, Any] = {"family": TABLE_FAMILY}
        if kind == "table":
            obj["name"] = TABLE_NAME
        else:
            obj.update(table=TABLE_NAME, name=name)
        rc, out, err = self._nft.json_cmd({"nftables": [{"list": {kind: obj}}]})
        return rc, out, err

    def listing(self, kind: str, name: str | None = None) -> list[dict[str, Any]] | None:
        """List the table (or one chain/set of it); None if it does not exist."""
        rc, out, _err = self._list(kind, name)
        if rc != 0:
            return None
        return out["nftables"]  # type: ignore[no-any-return]

    def list_table(self) -> list[dict[str, Any]] | None:
        return self.listing("table")

    def table_exists(self) -> bool:
        """Whether ``inet mwan`` exists, from the list of tables (not the table's contents:
        with 1,000 rules its listing takes a quarter of a second)."""
        rc, out, err = self._nft.json_cmd({"nftables": [{"list": {"tables": None}}]})
        if rc != 0:
            raise NftError(f"cannot list the nft tables: {_first_line(err)}")
        return any(o.get("table", {}).get("name") == TABLE_NAME
                   and o["table"].get("family") == TABLE_FAMILY for o in out["nftables"])

    def _load_kernel_state(self) -> NftKnown:
        """What exists now; every existing chain counts as changed.

        A listing that fails for another reason than a missing table raises:
        taking it for an empty table would append every rule a second time.
        """
        rc, out, err = self._list("table", None)
        if rc != 0:
            if _missing(err):
                return NOTHING
            raise NftError(f"cannot list table {TABLE_FAMILY} {TABLE_NAME}: {_first_line(err)}")
        return known_from_listing(out["nftables"])

    # ---------------------------------------------------------------- apply
    def apply(self, table: NftTable) -> ApplyStats:
        if self._known is None:
            self._known = self._load_kernel_state()
        batch = nft_batch(table, self._known)
        self.run(batch)  # atomic: on failure the kernel (and what is known of it) is unchanged
        self._known = NftKnown.applied(table)
        return ApplyStats(len(batch))

    def check(self, table: NftTable) -> None:
        """Have the kernel check ``table`` without changing anything (nft's check mode).

        The whole table is built from nothing in a scratch table of another
        name, as a dry-run batch: the kernel validates every command, then
        aborts.  Raises :class:`CheckError` naming the first command it refuses.
        """
        batch = full_batch(table, CHECK_TABLE)
        checker = _nftables()
        checker.set_dry_run(True)

        def refused(n: int) -> str | None:
            rc, _out, err = checker.json_cmd({"nftables": batch[:n]})
            return None if rc == 0 else (err.strip() or "refused")

        err = refused(len(batch))
        if err is None:
            return
        lo, hi = 1, len(batch)  # the shortest failing prefix: its last command is the culprit
        while lo < hi:
            mid = (lo + hi) // 2
            if refused(mid) is None:
                lo = mid + 1
            else:
                hi = mid
        raise CheckError(batch[lo - 1], _first_line(refused(lo) or err), batch)

    def shape_drift(self, table: NftTable) -> list[str]:
        """What the kernel's table lacks of ``table``'s chains and sets (by name)."""
        objs = self.list_table()
        if objs is None:
            return ["nft table inet mwan missing"]
        chains = {o["chain"]["name"] for o in objs if "chain" in o}
        sets = {(o.get("set") or o["map"])["name"] for o in objs if "set" in o or "map" in o}
        out = [f"chain {c.name} missing" for c in table.chains if c.name not in chains]
        out += [f"set {s.name} missing" for s in table.sets if s.name not in sets]
        return out

    def remove(self) -> bool:
        """Delete the whole table (and everything in it); True if it existed."""
        self._known = None
        cmd = [{"delete": {"table": _table_obj()}}]
        rc, out, err = self._nft.json_cmd({"nftables": cmd})
        if rc != 0:
            if _missing(err):
                return False
            raise NftError(f"nft refused a batch of 1 commands: {_errors(err) or out}", cmd)
        return True

    def forget(self) -> None:
        """Drop the memory of what was applied (the next apply re-reads the kernel)."""
        self._known = None


def rules_with_counters(applier: NftApplier, chain: str
                        ) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """The rules of one chain as listed (with counter values and comments), and the elements
    (with their counters and comments) of the named maps those rules look up, by name."""
    objs = applier.listing("chain", chain) or []
    rules = [o["rule"] for o in objs if "rule" in o]
    maps: dict[str, list[Any]] = {}
    for r in rules:
        name = looked_up(r.get("expr", ()))
        if name is not None and name not in maps:
            listed = applier.listing("map", name) or []
            maps[name] = [e for o in listed if "map" in o for e in o["map"].get("elem", ())]
    return rules, maps


def set_networks(applier: NftApplier, name: str) -> list[str] | None:
    """The addresses/networks in one set of the table, as CIDR strings (None: no such set)."""
    objs = applier.listing("set", name)
    if objs is None:
        return None
    out: list[str] = []
    for o in objs:
        for e in (o.get("set") or {}).get("elem", ()) or ():
            out.extend(element_networks(e))
    return out


def element_networks(e: Any) -> list[str]:
    """One set element as nft lists it → CIDR strings (addresses, prefixes, ranges)."""
    if isinstance(e, dict) and "elem" in e:
        e = e["elem"].get("val")
    if isinstance(e, str):
        return [e]
    if isinstance(e, dict) and "prefix" in e:
        return [f"{e['prefix']['addr']}/{e['prefix']['len']}"]
    if isinstance(e, dict) and "range" in e:
        import ipaddress
        lo, hi = (ipaddress.ip_address(str(x)) for x in e["range"])
        return [str(n) for n in ipaddress.summarize_address_range(lo, hi)]
    return []
