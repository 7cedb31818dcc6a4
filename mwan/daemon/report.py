"""Read-only control commands: the report behind status/interfaces/policies/... and explain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..kernel.nft import chain_rules_with_counters, set_networks
from ..plan.compile import user_set
from ..report import data
from ..report.explain import explain
from .control import ControlError

if TYPE_CHECKING:
    from .core import Daemon

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def handlers(daemon: Daemon) -> dict[str, Handler]:
    async def report(args: dict[str, Any]) -> Any:
        state = await daemon.control.handlers["state"]({})
        nft_rules = await daemon.kernel(
            lambda: chain_rules_with_counters(daemon._k_applier().nft, "rules"))
        runtime = daemon.runtime()
        return {
            **state,
            "policies": data.policies(daemon.cfg, runtime),
            "connected": data.connected(daemon.cfg, daemon.facts),
            "rules": data.rule_counters(daemon.cfg, nft_rules),
        }

    def k_ipsets() -> dict[str, list[str]]:
        nft = daemon._k_applier().nft
        out: dict[str, list[str]] = {}
        for name in sorted({r.ipset for r in daemon.cfg.rules if r.ipset is not None}):
            out[name] = [n for fam in ("ipv4", "ipv6")
                         for n in set_networks(nft, user_set(name, fam)) or []]
        return out

    async def do_explain(args: dict[str, Any]) -> Any:
        ipsets = await daemon.kernel(k_ipsets)
        try:
            return explain(daemon.cfg, daemon.runtime(), data.connected(daemon.cfg, daemon.facts),
                           str(args["src"]), str(args["dst"]), str(args.get("proto") or "tcp"),
                           args.get("sport"), args.get("dport"), ipsets)
        except (KeyError, ValueError) as exc:
            raise ControlError(f"bad explain arguments: {exc}") from None

    return {"report": report, "explain": do_explain}
