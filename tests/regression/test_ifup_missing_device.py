"""Issue 11 (low): `mwan3 ifup` of an interface whose device does not exist said "online".

It now says what is missing, and the interface is not reported online.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter

from .lab_helpers import config, first_rounds, online

pytestmark = pytest.mark.lab

GHOST = """
config interface 'ghost'
	option enabled '1'
	option device 'mwghost9'
	option family 'ipv4'
"""


@pytest.mark.parametrize("tracked", [True, False])
def test_ifup_names_the_missing_device(lab: Lab, mwan: Callable[[str], MwanRouter],
                                       tracked: bool) -> None:
    ghost = GHOST + ("\tlist track_ip '192.0.2.1'\n" if tracked else "")
    r = mwan(config(lab, extra=ghost))
    first_rounds(r, "wan")
    r.cli("ifdown", "ghost")
    res = r.cli("ifup", "ghost")
    assert res.stdout.strip() == ("interface ghost: device mwghost9 does not exist; "
                                  "it comes online when it appears"), res.stdout
    assert not online(r, "ghost")
