"""High availability: two routers, keepalived (VRRP) and conntrackd (FTFW) (``config ha``).

:mod:`.gen` writes the three files a router needs (pure functions of the
model); :mod:`.status` reads what keepalived and conntrackd say.
"""
