"""Check a new config against the kernel before adopting it.

Validation (mwan.config) catches what it can from the text alone.  What is
left (what this kernel and its nft accept) is asked of the kernel itself:
the table the new config compiles to is built in nft's check mode (a
dry-run batch the kernel validates and then aborts), so a refusal changes
nothing, and the error names the config option behind the refused object.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config.model import Config, InitialState
from ..kernel.nft import CheckError
from ..plan.compile import compile_plan, config_part
from ..plan.names import FAMILIES, sticky_set, user_set
from ..plan.state import Desired, IfaceRuntime, KernelFacts
from .ifstate import IfaceStatus, addresses_for, gateway_for


def candidate_desired(cfg: Config, status: Mapping[str, IfaceStatus],
                      links: Mapping[str, Mapping[str, object]], facts: KernelFacts) -> Desired:
    """What ``cfg`` would compile to now, without changing the daemon's state."""
    runtime = {}
    for iface in cfg.enabled_interfaces:
        link = links.get(iface.device)
        st = status.get(iface.name)
        up = bool(link and link.get("up") and link.get("carrier")) and (st is None or st.admin_up)
        if st is not None and iface.tracked:
            online = st.online
        else:
            online = not iface.tracked or iface.initial_state == InitialState.ONLINE
        runtime[iface.name] = IfaceRuntime(
            name=iface.name, up=up, online=up and online,
            gateway=gateway_for(iface, facts) if up else None,
            addresses=addresses_for(iface, facts))
    return compile_plan(cfg, runtime, facts, config_part(cfg))


def refusal_message(cfg: Config, path: str, exc: CheckError) -> str:
    """FILE:LINE: section/option where the refused object comes from, else the object."""
    (_op, body), = exc.command.items()
    (kind, obj), = body.items()
    name = obj.get("name") if kind in ("set", "element") else None
    comment = obj.get("comment") if kind == "rule" else None
    for rule in cfg.rules:
        for fam in FAMILIES:
            if name is not None and rule.sticky and name == sticky_set(rule.name, fam):
                return (f"{path}:{rule.line}: section '{rule.name}' option 'sticky': {exc}"
                        f" (its set name {name} is taken by another set)")
            if name is not None and rule.ipset and name == user_set(rule.ipset, fam):
                return (f"{path}:{rule.line}: section '{rule.name}' option 'ipset': {exc}"
                        f" (set name {name} is taken by another set)")
        if comment is not None and comment in (rule.name, f"log {rule.name}"):
            return f"{path}:{rule.line}: section '{rule.name}': {exc}"
    return f"{path}: {exc}"
