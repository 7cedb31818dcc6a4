"""Watch nftables for changes to mwan's table: netlink notifications, parsed just enough.

The kernel tells every listener of the ``NFNLGRP_NFTABLES`` group about each
committed batch: one message per object added or deleted (tables, chains,
rules, sets, set elements), then one ``NEWGEN`` message naming the process
that committed it.  mwan only needs to know *which* of its objects a batch
touched and *who* sent it, so the parser reads the headers and the first
name attributes and skips the rest (pyroute2's full decoder of every rule
expression would cost more than the apply that caused the messages).

mwan's own applies are most of the traffic (a full apply of a 1,000-rule
table is ~6,000 messages).  Every message of a batch carries, in its netlink
header, the port id of the socket that sent the batch, so once the port ids
of mwan's own nft sockets are known (:class:`Own`: seeded from
``/proc/self/net/netlink``, learned from each ``NEWGEN`` that names one of
mwan's threads) their messages are skipped after the header: only batches
of other processes are parsed.  A ``NEWGEN`` from one of those ports that
names another process (the port was given to someone else) makes
:meth:`Stream.feed` report notifications as lost, so the caller checks the
table by other means.

The message types are nfnetlink's (linux/netfilter/nf_tables.h); a unit test
checks them against pyroute2's tables (importing those costs the daemon
~0.5 MB).  The parser and the stream are pure (bytes in, values out) and
unit-tested without a kernel.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33
NFPROTO_INET = 1
RCVBUF = 8 << 20  # our own full apply of a 1,000-rule table is ~6,000 messages
RECV_BUF = 64 << 10  # one datagram: the kernel packs notifications into skbs of a few KB

NFNL_SUBSYS_NFTABLES = 10

# nf_tables message types (enum nf_tables_msg_types), by name
NFT_MSG = {
    "NEWTABLE": 0, "GETTABLE": 1, "DELTABLE": 2, "NEWCHAIN": 3, "GETCHAIN": 4, "DELCHAIN": 5,
    "NEWRULE": 6, "GETRULE": 7, "DELRULE": 8, "NEWSET": 9, "GETSET": 10, "DELSET": 11,
    "NEWSETELEM": 12, "GETSETELEM": 13, "DELSETELEM": 14, "NEWGEN": 15, "GETGEN": 16,
    "TRACE": 17, "NEWOBJ": 18, "GETOBJ": 19, "DELOBJ": 20, "GETOBJ_RESET": 21,
    "NEWFLOWTABLE": 22, "GETFLOWTABLE": 23, "DELFLOWTABLE": 24,
}
NEWGEN = NFT_MSG["NEWGEN"]
_NEWGEN_TYPE = NFNL_SUBSYS_NFTABLES << 8 | NEWGEN

# message type → (object kind, deleted, attribute number of the table name, of the object
# name): a rule names its chain, an element its set
_OBJECTS: dict[int, tuple[str, bool, int, int | None]] = {
    NFT_MSG[verb + msg]: (kind, verb == "DEL", 1, name_attr)
    for msg, kind, name_attr in (("TABLE", "table", None), ("CHAIN", "chain", 3),
                                 ("RULE", "rule", 2), ("SET", "set", 2),
                                 ("SETELEM", "element", 2), ("OBJ", "object", 2),
                                 ("FLOWTABLE", "flowtable", 2))
    for verb in ("NEW", "DEL")
}
NFTA_GEN_ID, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME = 1, 2, 3
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, port id


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


def _attrs(buf: bytes | bytearray, off: int, end: int) -> dict[int, bytes | bytearray]:
    out: dict[int, bytes | bytearray] = {}
    while off + 4 <= end:
        length, kind = struct.unpack_from("=HH", buf, off)
        if length < 4:
            break
        out.setdefault(kind & 0x3FFF, buf[off + 4:off + length])
        off += (length + 3) & ~3
    return out


def _string(value: bytes | bytearray | None) -> str | None:
    if value is None:
        return None
    return value.split(b"\0", 1)[0].decode(errors="replace")


def _message(buf: bytes | bytearray, off: int, end: int, mtype: int) -> ObjEvent | GenEvent | None:
    """One nftables message (its nfgenmsg and attributes in ``buf[off + 16:end]``)."""
    if mtype >> 8 != NFNL_SUBSYS_NFTABLES or off + 20 > end:
        return None
    msg = mtype & 0xFF
    if msg == NEWGEN:
        attrs = _attrs(buf, off + 20, end)
        gen = attrs.get(NFTA_GEN_ID)
        pid = attrs.get(NFTA_GEN_PROC_PID)
        return GenEvent(struct.unpack(">I", gen)[0] if gen and len(gen) == 4 else 0,
                        struct.unpack(">I", pid)[0] if pid and len(pid) == 4 else None,
                        _string(attrs.get(NFTA_GEN_PROC_NAME)))
    obj = _OBJECTS.get(msg)
    if obj is None:
        return None
    kind, deleted, table_attr, name_attr = obj
    attrs = _attrs(buf, off + 20, end)
    return ObjEvent(kind, deleted, buf[off + 16], _string(attrs.get(table_attr)) or "",
                    _string(attrs.get(name_attr)) if name_attr else None)


def parse(buf: bytes) -> Iterator[ObjEvent | GenEvent]:
    """The nftables notifications in one netlink datagram (others are skipped)."""
    off = 0
    while off + 16 <= len(buf):
        length, mtype, _flags, _seq, _port = _HEADER.unpack_from(buf, off)
        if length < 16:
            break
        ev = _message(buf, off, min(off + length, len(buf)), mtype)
        if ev is not None:
            yield ev
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


@dataclass
class Own:
    """Who mwan is, to the kernel: the thread ids a ``NEWGEN`` names for its batches
    (``pids``, shared with the caller), and the netlink port ids of its sockets."""

    pids: set[int]
    ports: set[int] = field(default_factory=set)


@dataclass
class Stream:
    """Notifications in, the batches of *other* processes that touched the table out.

    Messages sent from one of ``own.ports`` are skipped after their header;
    a ``NEWGEN`` naming one of ``own.pids`` teaches its port.  ``feed``
    returns the finished foreign batches and whether messages may have been
    skipped that were not mwan's (then check the table another way).
    """

    batcher: Batcher
    own: Own

    def feed(self, buf: bytes | bytearray) -> tuple[list[Batch], bool]:
        batches: list[Batch] = []
        suspect = False
        ports, unpack, n = self.own.ports, _HEADER.unpack_from, len(buf)
        off = 0
        while off + 16 <= n:
            length, mtype, _flags, _seq, port = unpack(buf, off)
            if length < 16:
                break
            if port in ports and mtype != _NEWGEN_TYPE:  # a message of one of mwan's batches
                off += (length + 3) & ~3
                continue
            ev = _message(buf, off, min(off + length, n), mtype)
            off += (length + 3) & ~3
            if ev is None:
                continue
            if isinstance(ev, GenEvent):
                mine = ev.pid is not None and ev.pid in self.own.pids
                if mine:
                    ports.add(port)
                    self.batcher.drop()  # what came before it (from an unknown port) was ours
                    continue
                if port in ports:  # that port is someone else's now: its messages were skipped
                    ports.discard(port)
                    suspect = True
            b = self.batcher.feed(ev)
            if b is not None:
                batches.append(b)
        return batches, suspect


def own_netfilter_ports(exclude: int | None = None) -> set[int]:
    """The port ids of this process's bound NETLINK_NETFILTER sockets (libnftables' among
    them once it has sent a command), from /proc; empty when /proc cannot tell."""
    inodes: set[int] = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
        with open("/proc/self/net/netlink", encoding="ascii") as fh:
            lines = fh.read().splitlines()[1:]
    except (OSError, ValueError):
        return set()
    out: set[int] = set()
    for line in lines:
        f = line.split()  # sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        if len(f) >= 10 and f[1] == str(NETLINK_NETFILTER) and int(f[9]) in inodes:
            out.add(int(f[2]))
    out.discard(exclude if exclude is not None else -1)
    return out


class NftMonitor:
    """A non-blocking netlink socket subscribed to the nftables group.

    ``read()`` returns the batches that touched the table since the last
    call and whether notifications were lost (the receive buffer overflowed:
    the caller must then check the table by other means).
    """

    def __init__(self, table: str, family: int = NFPROTO_INET, own: Own | None = None) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
        self.batcher = Batcher(family, table)
        self.own = own if own is not None else Own(set())  # no own ids: every batch is parsed
        self.stream = Stream(self.batcher, self.own)
        self._buf = bytearray(RECV_BUF)

    @property
    def port(self) -> int:
        """This socket's own port id (it sends nothing)."""
        return int(self.sock.getsockname()[0])

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[Batch], bool]:
        batches: list[Batch] = []
        lost = False
        while True:
            try:
                n = self.sock.recv_into(self._buf, 0, socket.MSG_TRUNC)  # n: the whole length
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    lost = True
                    self.batcher.drop()
                    continue
                raise
            if not n:
                break
            if n > len(self._buf):  # cut short: what it held is unknown; take more next time
                self._buf = bytearray(n)
                self.batcher.drop()
                lost = True
                continue
            found, suspect = self.stream.feed(self._buf[:n])
            batches += found
            lost = lost or suspect
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
