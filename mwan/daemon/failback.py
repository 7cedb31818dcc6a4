"""Failback control per policy (issue 15): ``option failback 'keep'`` or ``'move'``.

``keep`` (the default) is mwan3's behaviour: a connection stays on the
member it began on until it ends.  With ``move``, when a preferred member
comes back (the policy's active tier gets a lower metric), the conntrack
entries of that policy's connections on less preferred members are deleted,
so their next packets are classified afresh and go to the preferred link
(a TCP connection whose source address changes ends; its client reconnects).

Which connections are the policy's: the conntrack mark says only the WAN,
and mmx_mask has no spare bits for a policy id.  So the policy chain of a
``move`` policy also sets one bit of the connection's conntrack label (``ct
label set N``, N = the policy's position among the policies, 0 to 127).
Deleting takes the entries whose mark is a less preferred member's AND
whose label has the policy's bit: other policies' connections on the same
WAN are never touched.  A sticky rule's connections from a known source
skip the policy chain; its gate chains (mwan.plan.sticky) set the same
label, so they move too, and stickiness does not send them back: a gate
passes only the members of the policy's active tier.

:func:`moves` is pure (the choices before and after an apply in, what to
delete out); :func:`delete_flows` does it in the kernel thread.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config.model import Config
from ..plan.policy import PolicyChoice, all_choices, failback_label, family_members

log = logging.getLogger("mwan")
MAX_LABEL_BITS = 128  # the kernel's conntrack labels


@dataclass(frozen=True)
class Move:
    policy: str
    family: str
    bit: int
    interfaces: tuple[str, ...]  # less preferred members whose connections of the policy go
    to: tuple[str, ...]  # the preferred tier now


def _tier(c: PolicyChoice) -> int | None:
    return min((s.metric for s in c.shares), default=None)


def moves(cfg: Config, before: Mapping[tuple[str, str], PolicyChoice],
          after: Mapping[tuple[str, str], PolicyChoice]) -> list[Move]:
    """What a ``move`` policy deletes after an apply: only when its tier got better."""
    out: list[Move] = []
    for (name, fam), now in after.items():
        policy = next((p for p in cfg.policies if p.name == name), None)
        old = before.get((name, fam))
        if policy is None or policy.failback != "move" or old is None:
            continue
        new_metric, old_metric = _tier(now), _tier(old)
        if new_metric is None or old_metric is None or new_metric >= old_metric:
            continue
        active = {s.interface for s in now.shares}
        worse = sorted({i for _m, i, metric, _w in family_members(cfg, policy, fam)  # type: ignore[arg-type]
                        if metric > new_metric and i not in active})
        if worse:
            bit = failback_label(cfg, name)
            assert bit is not None  # a move policy
            out.append(Move(name, fam, bit, tuple(worse), tuple(sorted(active))))
    return out


def choices_by_key(cfg: Config, runtime: Mapping[str, Any]) -> dict[tuple[str, str], PolicyChoice]:
    return {(c.policy, c.family): c for c in all_choices(cfg, runtime)}


def _tuple_of(entry: Any, family: int) -> Any:
    """The original-direction tuple of a dumped conntrack entry (for deleting it)."""
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    orig = entry.get_attr("CTA_TUPLE_ORIG")
    ip, proto = orig.get_attr("CTA_TUPLE_IP"), orig.get_attr("CTA_TUPLE_PROTO")
    v = "V4" if family == socket.AF_INET else "V6"
    return NFCTAttrTuple(family=family, saddr=ip.get_attr(f"CTA_IP_{v}_SRC"),
                         daddr=ip.get_attr(f"CTA_IP_{v}_DST"),
                         proto=proto.get_attr("CTA_PROTO_NUM"),
                         sport=proto.get_attr("CTA_PROTO_SRC_PORT"),
                         dport=proto.get_attr("CTA_PROTO_DST_PORT"))


def delete_flows(mark: int, mask: int, bit: int, family: str) -> int:
    """Delete the conntrack entries with ``mark & mask == mark`` and label ``bit`` (blocking)."""
    from pyroute2 import NFCTSocket
    from pyroute2.netlink.exceptions import NetlinkError

    af = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    sock = NFCTSocket(nfgen_family=af)
    try:
        doomed = []
        for e in sock.dump(mark=mark, mark_mask=mask):
            labels = e.get_attr("CTA_LABELS")
            if labels and (int(labels) >> bit) & 1:
                doomed.append(_tuple_of(e, af))
        n = 0
        for t in doomed:
            try:
                sock.entry("del", tuple_orig=t)
                n += 1
            except NetlinkError:  # ended meanwhile
                pass
        return n
    finally:
        sock.close()


class Failback:
    """Remembers each policy's choice; after an apply, moves what ``move`` policies ask."""

    def __init__(self) -> None:
        self.before: dict[tuple[str, str], PolicyChoice] = {}

    async def after_apply(self, cfg: Config, runtime: Mapping[str, Any],
                          mark_of: Callable[[str], int],
                          kernel: Callable[[Callable[[], int]], Any]) -> None:
        after = choices_by_key(cfg, runtime)
        todo = moves(cfg, self.before, after)
        self.before = after
        mask = cfg.globals.mmx_mask
        for mv in todo:
            for iface in mv.interfaces:
                mark = mark_of(iface)
                def k_delete(m: int = mark, mv: Move = mv) -> int:
                    return delete_flows(m, mask, mv.bit, mv.family)
                try:
                    n = await kernel(k_delete)
                except Exception as exc:  # noqa: BLE001 - routing goes on; logged
                    log.error("policy %s failback move: conntrack entries on %s not deleted: "
                              "%s", mv.policy, iface, exc)
                    continue
                log.info("policy %s failback move: %s is preferred again; deleted %d of the "
                         "policy's conntrack entries on %s (mark 0x%x) so they reconnect there",
                         mv.policy, "/".join(mv.to), n, iface, mark)
