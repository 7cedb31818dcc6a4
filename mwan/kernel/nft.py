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
from dataclasses import dataclass
from typing import Any

from ..plan.state import TABLE_FAMILY, TABLE_NAME, NftChain, NftSet, NftTable

log = logging.getLogger(__name__)


class NftError(RuntimeError):
    """libnftables refused a batch (nothing was changed: the batch is atomic)."""


CHECK_TABLE = "mwan_check"


class CheckError(NftError):
    """The kernel would refuse a table: ``command`` is the first command it refuses."""

    def __init__(self, command: dict[str, Any], reason: str) -> None:
        self.command = command
        self.reason = reason
        super().__init__(f"the kernel refuses {describe_command(command)}: {reason}")


def _first_line(err: str) -> str:
    for line in err.splitlines():
        line = line.strip()
        if line:
            return line.split("Error: ", 1)[-1]
    return err


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


def full_batch(table: NftTable, name: str = TABLE_NAME) -> list[dict[str, Any]]:
    """Every command that builds ``table`` from nothing, under the table name ``name``."""
    def renamed(d: dict[str, Any]) -> dict[str, Any]:
        d = dict(d)
        d["table"] = name
        return d

    batch: list[dict[str, Any]] = [{"add": {"table": {"family": TABLE_FAMILY, "name": name}}}]
    batch += [{"add": {"chain": renamed(c.definition())}} for c in table.chains]
    batch += [{"add": {"set": renamed(s.definition())}} for s in table.sets]
    for s in table.sets:
        if s.elements:
            batch.append({"add": {"element": renamed(_elements_cmd("add", s)["add"]["element"])}})
    for c in table.chains:
        for i, rule in enumerate(c.rules):
            r: dict[str, Any] = {"family": TABLE_FAMILY, "table": name, "chain": c.name,
                                 "expr": list(rule)}
            if i < len(c.comments) and c.comments[i]:
                r["comment"] = c.comments[i]
            batch.append({"add": {"rule": r}})
    return batch


def _nftables() -> Any:
    try:
        import nftables  # Debian's python3-nftables
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise NftError("the python3-nftables binding is not installed "
                       "(apt-get install python3-nftables)") from exc
    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(False)
    return nft


def _table_obj() -> dict[str, Any]:
    return {"family": TABLE_FAMILY, "name": TABLE_NAME}


def _elements_cmd(op: str, s: NftSet) -> dict[str, Any]:
    return {op: {"element": {"family": TABLE_FAMILY, "table": TABLE_NAME, "name": s.name,
                             "elem": list(s.elements or ())}}}


@dataclass(frozen=True)
class ApplyStats:
    commands: int
    chains_changed: int
    sets_changed: int

    @property
    def changed(self) -> bool:
        return self.commands > 0


class NftApplier:
    """Keeps what it applied, so the next apply is a small difference."""

    def __init__(self) -> None:
        self._nft = _nftables()
        self._chains: dict[str, NftChain | str] | None = None  # name → chain ("?": unknown)
        self._sets: dict[str, NftSet] | None = None

    # ---------------------------------------------------------------- kernel io
    def run(self, commands: list[dict[str, Any]]) -> Any:
        if not commands:
            return None
        rc, out, err = self._nft.json_cmd({"nftables": commands})
        if rc != 0:
            raise NftError(f"nft refused the batch: {err.strip() or out}")
        return out

    def listing(self, kind: str, name: str | None = None) -> list[dict[str, Any]] | None:
        """List the table (or one chain/set of it); None if it does not exist."""
        obj: dict[str, Any] = {"family": TABLE_FAMILY}
        if kind == "table":
            obj["name"] = TABLE_NAME
        else:
            obj.update(table=TABLE_NAME, name=name)
        rc, out, _err = self._nft.json_cmd({"nftables": [{"list": {kind: obj}}]})
        if rc != 0:
            return None
        return out["nftables"]  # type: ignore[no-any-return]

    def list_table(self) -> list[dict[str, Any]] | None:
        return self.listing("table")

    def _load_kernel_state(self) -> tuple[dict[str, NftChain | str], dict[str, NftSet]]:
        """What exists now; every existing chain counts as changed."""
        objs = self.list_table() or []
        chains: dict[str, NftChain | str] = {}
        sets: dict[str, NftSet] = {}
        for o in objs:
            if "chain" in o:
                chains[o["chain"]["name"]] = "?"
            elif "set" in o:
                s = o["set"]
                kind = tuple(s["type"]) if isinstance(s["type"], list) else s["type"]
                sets[s["name"]] = NftSet(s["name"], kind, tuple(s.get("flags", ())),
                                         s.get("timeout"), elements=("?",))
        return chains, sets

    # ---------------------------------------------------------------- apply
    def apply(self, table: NftTable) -> ApplyStats:
        if self._chains is None or self._sets is None:
            self._chains, self._sets = self._load_kernel_state()
        old_chains, old_sets = self._chains, self._sets
        want_chains = {c.name: c for c in table.chains}
        want_sets = {s.name: s for s in table.sets}

        batch: list[dict[str, Any]] = []
        recreate = [n for n, s in want_sets.items()
                    if n in old_sets and old_sets[n].shape() != s.shape()]
        changed = [c for c in table.chains
                   if recreate or old_chains.get(c.name) != c]
        stale_chains = [n for n in old_chains if n not in want_chains]
        stale_sets = [n for n in old_sets if n not in want_sets]

        for c in changed:
            if c.name not in old_chains:
                batch.append({"add": {"chain": c.definition()}})
        for s in table.sets:
            if s.name not in old_sets:
                batch.append({"add": {"set": s.definition()}})
        for c in changed:
            if c.name in old_chains:
                batch.append({"flush": {"chain": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                                  "name": c.name}}})
        for name in stale_chains:
            batch.append({"flush": {"chain": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                              "name": name}}})
        for name in recreate:
            batch.append({"delete": {"set": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                             "name": name}}})
            batch.append({"add": {"set": want_sets[name].definition()}})
        sets_changed = len(recreate)
        for s in table.sets:
            if s.elements is None:
                continue
            old = old_sets.get(s.name)
            if old is not None and s.name not in recreate and old.elements == s.elements:
                continue
            if old is not None and s.name not in recreate:
                batch.append({"flush": {"set": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                                "name": s.name}}})
            if s.elements:
                batch.append(_elements_cmd("add", s))
            sets_changed += 1
        for c in changed:
            for i, rule in enumerate(c.rules):
                r: dict[str, Any] = {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                     "chain": c.name, "expr": list(rule)}
                if i < len(c.comments) and c.comments[i]:
                    r["comment"] = c.comments[i]
                batch.append({"add": {"rule": r}})
        for name in stale_chains:
            batch.append({"delete": {"chain": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                               "name": name}}})
        for name in stale_sets:
            batch.append({"delete": {"set": {"family": TABLE_FAMILY, "table": TABLE_NAME,
                                             "name": name}}})
        sets_changed += len(stale_sets) + len([s for s in table.sets if s.name not in old_sets])
        if batch:
            batch.insert(0, {"add": {"table": _table_obj()}})
        self.run(batch)
        self._chains = {c.name: c for c in table.chains}
        self._sets = dict(want_sets)
        return ApplyStats(len(batch), len(changed) + len(stale_chains), sets_changed)

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
        raise CheckError(batch[lo - 1], _first_line(refused(lo) or err))

    def shape_drift(self, table: NftTable) -> list[str]:
        """What the kernel's table lacks of ``table``'s chains and sets (by name)."""
        objs = self.list_table()
        if objs is None:
            return ["nft table inet mwan missing"]
        chains = {o["chain"]["name"] for o in objs if "chain" in o}
        sets = {o["set"]["name"] for o in objs if "set" in o}
        out = [f"chain {c.name} missing" for c in table.chains if c.name not in chains]
        out += [f"set {s.name} missing" for s in table.sets if s.name not in sets]
        return out

    def remove(self) -> bool:
        """Delete the whole table (and everything in it); True if it existed."""
        self._chains, self._sets = None, None
        if self.list_table() is None:
            return False
        self.run([{"delete": {"table": _table_obj()}}])
        return True

    def forget(self) -> None:
        """Drop the memory of what was applied (the next apply re-reads the kernel)."""
        self._chains, self._sets = None, None


def chain_rules_with_counters(applier: NftApplier, chain: str) -> list[dict[str, Any]]:
    """The rules of one chain as listed (with counter values and comments)."""
    objs = applier.listing("chain", chain) or []
    return [o["rule"] for o in objs if "rule" in o]


def describe(chain: NftChain) -> str:  # pragma: no cover - debugging aid
    return json.dumps({"chain": chain.definition(), "rules": chain.rules}, indent=1)


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
