"""Regression (issue 11, item 4 and Low): configs that validated but that the kernel refuses.

Before the fix these all passed validation and then broke every apply (or,
for ``device '*'``, became an nft wildcard matching every device):
- ``ipset 'sticky_v4_a'`` next to a sticky rule ``a_v4``: both are the nft
  set ``sticky_v4_a_v4``; likewise ``ipset 'connected'`` is mwan's
  ``connected_v4``;
- ``mmx_mask '0xFFFFFFFF'``: the blackhole rule's priority 2000 + id does
  not fit an ip rule priority (and beyond 14 bits it sorts after main's);
- ``device '*'`` or ``'eth*'``.
Now each is a FILE:LINE error naming the option.
"""

from __future__ import annotations

import pytest

from mwan.config.errors import ConfigError, Problem
from mwan.config.validate import parse_config

PATH = "/etc/config/mwan3"
BASE = """\
config globals 'globals'
	option mmx_mask '{mask}'

config interface 'wan'
	option enabled '1'
	option device '{device}'

config member 'm'
	option interface 'wan'

config policy 'p'
	list use_member 'm'

config rule 'a_v4'
	option use_policy 'p'
	option sticky '1'

config rule 'b'
	option use_policy 'p'
	option ipset '{ipset}'
"""


def the_problem(mask: str = "0x3F00", device: str = "eth1", ipset: str = "hosts") -> Problem:
    with pytest.raises(ConfigError) as e:
        parse_config(BASE.format(mask=mask, device=device, ipset=ipset), PATH)
    (p,) = e.value.problems
    return p


def test_config_ipset_colliding_with_a_sticky_set_is_refused() -> None:
    p = the_problem(ipset="sticky_v4_a")
    assert (p.line, p.section, p.option) == (20, "b", "ipset")
    assert "'sticky_v4_a_v4'" in p.message


@pytest.mark.parametrize("ipset", ["connected", "custom", "dynamic"])
def test_config_ipset_named_like_a_bypass_set_is_refused(ipset: str) -> None:
    p = the_problem(ipset=ipset)
    assert (p.line, p.option) == (20, "ipset") and "reserved" in p.message


def test_config_mmx_mask_all_ones_is_refused() -> None:
    p = the_problem(mask="0xFFFFFFFF")
    assert (p.line, p.option) == (2, "mmx_mask") and "at most 14 bits" in p.message


@pytest.mark.parametrize("device", ["*", "eth*", "a b", "x/y"])
def test_config_device_wildcard_or_invalid_name_is_refused(device: str) -> None:
    p = the_problem(device=device)
    assert (p.line, p.section, p.option) == (6, "wan", "device")
