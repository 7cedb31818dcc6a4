"""mwan's daemon.

Importing it makes pyroute2 load lean (only the parts the daemon uses;
:mod:`.lean`), before any of its modules imports pyroute2.
"""

from .lean import lean_pyroute2

lean_pyroute2()
