"""Where the daemon's log goes: the journal under systemd, else a plain line on stderr.

systemd sets ``$JOURNAL_STREAM`` for a service whose output it reads; when
stderr is that stream, the daemon logs through python3-systemd's JournalHandler, so each interface
event carries the structured fields ``INTERFACE=``, ``EVENT=`` and ``REASON=``
(passed with ``extra=`` where the event is logged) and ``journalctl
INTERFACE=wan`` finds them.  Without the binding, or off systemd, a plain line
goes to stderr.
"""

from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(asctime)s mwan[%(process)d] %(levelname)s: %(message)s"
SYSLOG_IDENTIFIER = "mwan"


def stderr_is_journal(journal_stream: str | None) -> bool:
    """Whether stderr is the journal stream systemd named (``DEV:INODE``), as sd-daemon(3) says
    to check: a process that inherited the variable but writes elsewhere (``mwan3 start``'s
    daemon.log) keeps its plain lines."""
    try:
        dev, ino = (int(x) for x in (journal_stream or "").split(":"))
        st = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def journal_handler() -> logging.Handler | None:
    """python3-systemd's journal handler, if systemd reads our output and the binding is there."""
    if not stderr_is_journal(os.environ.get("JOURNAL_STREAM")):
        return None
    try:
        from systemd import journal  # type: ignore[attr-defined]  # python3-systemd
    except ImportError:
        return None
    handler: logging.Handler = journal.JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def setup_logging(verbose: bool) -> logging.Handler:
    """Send the root logger's records to the journal or to stderr; the handler used."""
    handler = journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler
