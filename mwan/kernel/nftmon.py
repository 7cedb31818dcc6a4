"""Watch nftables for changes to mwan's table: netlink notifications, parsed just enough.

The kernel tells every listener of the ``NFNLGRP_NFTABLES`` group about each
committed batch: one message per object added or deleted (tables, chains,
rules, sets, set elements), then one ``NEWGEN`` message naming the process
that committed it.  mwan only needs to know *which* of its objects a batch
touched and *who* sent it, so the parser reads the headers and the first
name attributes and skips the rest (pyroute2's full decoder of every rule
expression would cost more than the apply that caused the messages).

The constants come from pyroute2's tables; the parser and the batcher are
pure (bytes in, values out) and unit-tested without a kernel.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES
from pyroute2.netlink.nfnetlink import nftsocket as nft

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33
NFPROTO_INET = 1
RCVBUF = 8 << 20  # our own full apply of a 1,000-rule table is ~6,000 messages

# message type → (object kind, attribute number of the table name, of the object name)
_OBJECTS: dict[int, tuple[str, int, int | None]] = {
    nft.NFT_MSG_NEWTABLE: ("table", 1, None),
    nft.NFT_MSG_DELTABLE: ("table", 1, None),
    nft.NFT_MSG_NEWCHAIN: ("chain", 1, 3),
    nft.NFT_MSG_DELCHAIN: ("chain", 1, 3),
    nft.NFT_MSG_NEWRULE: ("rule", 1, 2),  # the object is the rule's chain
    nft.NFT_MSG_DELRULE: ("rule", 1, 2),
    nft.NFT_MSG_NEWSET: ("set", 1, 2),
    nft.NFT_MSG_DELSET: ("set", 1, 2),
    nft.NFT_MSG_NEWSETELEM: ("element", 1, 2),  # the object is the element's set
    nft.NFT_MSG_DELSETELEM: ("element", 1, 2),
    nft.NFT_MSG_NEWOBJ: ("object", 1, 2),
    nft.NFT_MSG_DELOBJ: ("object", 1, 2),
    nft.NFT_MSG_NEWFLOWTABLE: ("flowtable", 1, 2),
    nft.NFT_MSG_DELFLOWTABLE: ("flowtable", 1, 2),
}
_DELETES = {nft.NFT_MSG_DELTABLE, nft.NFT_MSG_DELCHAIN, nft.NFT_MSG_DELRULE,
            nft.NFT_MSG_DELSET, nft.NFT_MSG_DELSETELEM, nft.NFT_MSG_DELOBJ,
            nft.NFT_MSG_DELFLOWTABLE}
NFTA_GEN_ID, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME = 1, 2, 3


@dataclass(frozen=True)
class ObjEvent:
    """One object of one table added or deleted."""

    kind: str  # table, chain, rule, set, element, object, flowtable
    deleted: bool
    family: int
    table: str
    name: str | None  # chain (rules too), set (elements too), ...


@dataclass(frozen=True)
class GenEvent:
    """The end of a committed batch: its generation and the process that sent it."""

    gen_id: int
    pid: int | None
    proc: str | None


@dataclass(frozen=True)
class Batch:
    """The objects of one table that one committed batch touched."""

    events: tuple[ObjEvent, ...]
    pid: int | None
    proc: str | None

    def who(self) -> str:
        return f"{self.proc or '?'}[{self.pid if self.pid is not None else '?'}]"


def _attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        length, kind = struct.unpack_from("=HH", buf, off)
        if length < 4:
            break
        out.setdefault(kind & 0x3FFF, buf[off + 4:off + length])
        off += (length + 3) & ~3
    return out


def _string(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b"\0", 1)[0].decode(errors="replace")


def parse(buf: bytes) -> Iterator[ObjEvent | GenEvent]:
    """The nftables notifications in one netlink datagram (others are skipped)."""
    off = 0
    while off + 16 <= len(buf):
        length, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        end = min(off + length, len(buf))
        if mtype >> 8 == NFNL_SUBSYS_NFTABLES and off + 20 <= end:
            msg = mtype & 0xFF
            family = buf[off + 16]
            attrs = _attrs(buf, off + 20, end)
            if msg == nft.NFT_MSG_NEWGEN:
                gen = attrs.get(NFTA_GEN_ID)
                pid = attrs.get(NFTA_GEN_PROC_PID)
                yield GenEvent(struct.unpack(">I", gen)[0] if gen and len(gen) == 4 else 0,
                               struct.unpack(">I", pid)[0] if pid and len(pid) == 4 else None,
                               _string(attrs.get(NFTA_GEN_PROC_NAME)))
            elif msg in _OBJECTS:
                kind, table_attr, name_attr = _OBJECTS[msg]
                yield ObjEvent(kind, msg in _DELETES, family,
                               _string(attrs.get(table_attr)) or "",
                               _string(attrs.get(name_attr)) if name_attr else None)
        off += (length + 3) & ~3


@dataclass
class Batcher:
    """Collects one table's object events until their batch's NEWGEN names the sender."""

    family: int
    table: str
    _pending: list[ObjEvent] = field(default_factory=list)

    def drop(self) -> None:
        """Forget a batch whose end was lost (the receive buffer overflowed)."""
        self._pending = []

    def feed(self, ev: ObjEvent | GenEvent) -> Batch | None:
        if isinstance(ev, ObjEvent):
            if ev.family == self.family and ev.table == self.table:
                self._pending.append(ev)
            return None
        if not self._pending:
            return None
        batch = Batch(tuple(self._pending), ev.pid, ev.proc)
        self._pending = []
        return batch


class NftMonitor:
    """A non-blocking netlink socket subscribed to the nftables group.

    ``read()`` returns the batches that touched the table since the last
    call and whether notifications were lost (the receive buffer overflowed:
    the caller must then check the table by other means).
    """

    def __init__(self, table: str, family: int = NFPROTO_INET) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
        self.batcher = Batcher(family, table)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[Batch], bool]:
        batches: list[Batch] = []
        lost = False
        while True:
            try:
                buf = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    lost = True
                    self.batcher.drop()
                    continue
                raise
            if not buf:
                break
            for ev in parse(buf):
                b = self.batcher.feed(ev)
                if b is not None:
                    batches.append(b)
        return batches, lost

    def close(self) -> None:
        self.sock.close()


def own_thread_id() -> int:
    """The id the kernel reports as NFTA_GEN_PROC_PID for batches sent from this thread."""
    try:
        import threading
        return threading.get_native_id()
    except (ImportError, AttributeError):  # pragma: no cover
        return os.getpid()
