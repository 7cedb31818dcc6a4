"""What ``config ha`` adds to the compiled table: one rule, first in ``prerouting``.

On takeover keepalived moves the addresses (and the peers' traffic) a few
tens of ms before the notify hook has committed conntrackd's flows into the
kernel.  A mid-stream TCP packet in that window would create a loose
conntrack entry with a freshly classified (maybe another WAN's) mark, or
reach the local stack and be answered with a RST.  Dropping TCP that is
``ct state new`` but not a bare SYN closes the window: the endpoints
retransmit after the commit (HA-NOTES, pitfall 2).  Without ``config ha``
nothing changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mwan.config.model import Config

from . import nftexpr as X
from .state import NftChain

MIDSTREAM_COMMENT = "mwan ha: mid-stream tcp without a conntrack entry"


def midstream_drop() -> tuple[Any, ...]:
    """``ct state new tcp flags & (fin|syn|rst|ack) != syn counter drop``."""
    return (
        X.match(X.ct("state"), "new", "in"),
        X.match({"&": [X.payload("tcp", "flags"), ["fin", "syn", "rst", "ack"]]}, "syn", "!="),
        X.counter(),
        {"drop": None},
    )


def with_ha(cfg: Config, prerouting: NftChain) -> NftChain:
    """``prerouting`` with the mid-stream drop first when this router is one of a pair."""
    if cfg.ha is None or not cfg.ha.enabled:
        return prerouting
    comments = (MIDSTREAM_COMMENT, *(prerouting.comments or (None,) * len(prerouting.rules)))
    return dataclasses.replace(prerouting, rules=(midstream_drop(), *prerouting.rules),
                               comments=comments)


def ha_base_chains(cfg: Config, chains: list[NftChain]) -> list[NftChain]:
    """The base chains, with :func:`with_ha` applied to ``prerouting``."""
    return [with_ha(cfg, c) if c.name == "prerouting" else c for c in chains]
