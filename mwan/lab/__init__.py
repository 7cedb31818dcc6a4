"""The network-namespace lab used by tests and the demo.

A router namespace with N WANs, each through its own ISP namespace to a
shared "internet" namespace that hosts an echo server and ping targets,
plus M LAN client namespaces behind the router's br-lan.  See
:class:`mwan.lab.lab.Lab`; addresses are in :mod:`mwan.lab.addressing`.
"""

from mwan.lab.lab import Lab
from mwan.lab.netns import LabError, cleanup_stale
from mwan.lab.results import ClientResult, IspCounters, PingResult

__all__ = ["ClientResult", "IspCounters", "Lab", "LabError", "PingResult", "cleanup_stale"]
