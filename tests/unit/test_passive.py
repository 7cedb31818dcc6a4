"""Passive suspicion (track/passive.py): conntrack netlink parsing and the in-a-row count."""

from __future__ import annotations

import struct

from mwan.track.passive import (
    CTA_ID,
    CTA_MARK,
    CTA_STATUS,
    IPS_SEEN_REPLY,
    NLA_F_NESTED,
    NLM_F_CREATE,
    CtEvent,
    Suspicion,
    parse_events,
    wait_for,
)


def attr(kind: int, value: bytes, nested: bool = False) -> bytes:
    body = struct.pack("=HH", 4 + len(value), kind | (NLA_F_NESTED if nested else 0)) + value
    return body + b"\0" * (-len(body) % 4)


def ct_message(ident: int, mark: int, proto: int = 6, new: bool = True,
               replied: bool = False) -> bytes:
    tuple_orig = attr(1, attr(1, attr(1, bytes([192, 0, 2, 9])) + attr(2, bytes([198, 51, 100, 1])),
                              nested=True)
                      + attr(2, attr(1, bytes([proto])) + attr(2, b"\x30\x39") +
                             attr(3, b"\x00\x50"), nested=True), nested=True)
    payload = (struct.pack("=BBH", 2, 0, 0) + tuple_orig
               + attr(CTA_STATUS, struct.pack("!I", IPS_SEEN_REPLY if replied else 0x8))
               + attr(CTA_MARK, struct.pack("!I", mark)) + attr(CTA_ID, struct.pack("!I", ident)))
    flags = NLM_F_CREATE | 0x200 if new else 0
    return struct.pack("=IHHII", 16 + len(payload), (1 << 8) | 0, flags, 0, 0) + payload


def test_parse_tcp_connections_new_and_replied() -> None:
    buf = (ct_message(11, 0x100) + ct_message(11, 0x100, new=False, replied=True)
           + ct_message(12, 0x200, proto=17))  # udp: skipped
    assert parse_events(buf) == [CtEvent(True, 11, 0x100, False),
                                 CtEvent(False, 11, 0x100, True)]
    assert parse_events(b"\0" * 8) == []
    # a delete (msg type 2) is not a new/update announcement
    delete = bytearray(ct_message(13, 0x100))
    delete[4:6] = struct.pack("=H", (1 << 8) | 2)
    assert parse_events(bytes(delete)) == []


def test_three_unanswered_in_a_row_make_it_suspect() -> None:
    s = Suspicion(wait=1.0, threshold=3)
    assert not s.event(0.0, CtEvent(True, 1, 0x100, False))
    assert not s.event(0.1, CtEvent(True, 2, 0x100, False))
    assert not s.event(0.2, CtEvent(True, 3, 0x100, False))
    assert not s.expire(1.05)  # only the first has waited a second
    assert s.expire(1.25)  # all three: suspect, and the count starts over
    assert s.in_a_row == 0 and s.unanswered == 3


def test_an_answer_resets_the_count() -> None:
    s = Suspicion(wait=1.0, threshold=3)
    for i in range(2):
        s.event(0.0, CtEvent(True, i, 0x100, False))
    assert not s.expire(2.0) and s.in_a_row == 2
    s.event(2.1, CtEvent(True, 9, 0x100, False))
    s.event(2.2, CtEvent(False, 9, 0x100, True))  # SYN-ACK seen
    assert s.in_a_row == 0 and s.answered == 1
    assert not s.expire(10.0)  # nothing open any more


def test_wait_follows_the_probe_timeout_within_bounds() -> None:
    assert (wait_for(4), wait_for(1), wait_for(0.2)) == (2.0, 1.0, 0.5)
