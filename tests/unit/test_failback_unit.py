"""Failback control (issue 15): which connections a 'move' policy deletes, and its label."""

from __future__ import annotations

import pytest

from mwan.config.errors import ConfigError
from mwan.config.validate import parse_config
from mwan.daemon.failback import choices_by_key, moves
from mwan.plan.compile import compile_nft
from mwan.plan.policy import failback_label
from mwan.plan.state import IfaceRuntime, KernelFacts

CONFIG = """
config interface 'wan'
	option enabled '1'
config interface 'wanb'
	option enabled '1'
config interface 'wanc'
	option enabled '1'
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m2'
	option interface 'wanb'
	option metric '2'
config member 'wanc_m3'
	option interface 'wanc'
	option metric '3'
config policy 'kp'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
config policy 'mv'
	list use_member 'wan_m1'
	list use_member 'wanb_m2'
	list use_member 'wanc_m3'
	option failback 'move'
"""


def rt(*online: str) -> dict[str, IfaceRuntime]:
    return {n: IfaceRuntime(n, up=True, online=n in online) for n in ("wan", "wanb", "wanc")}


def test_move_deletes_only_when_the_tier_gets_better() -> None:
    c = parse_config(CONFIG, "f")
    down = choices_by_key(c, rt("wanb", "wanc"))
    back = choices_by_key(c, rt("wan", "wanb", "wanc"))
    [mv] = moves(c, down, back)
    assert (mv.policy, mv.family, mv.bit, mv.interfaces, mv.to) == (
        "mv", "ipv4", 1, ("wanb", "wanc"), ("wan",))
    assert moves(c, back, down) == []  # failover: nothing deleted
    assert moves(c, back, back) == []
    assert moves(c, {}, back) == []  # the first apply
    # wanb back while wan stays down: wanc's connections of mv move to wanb
    [mid] = moves(c, choices_by_key(c, rt("wanc")), choices_by_key(c, rt("wanb", "wanc")))
    assert mid.interfaces == ("wanc",) and mid.to == ("wanb",)


def test_the_policy_chain_of_a_move_policy_sets_its_label_bit() -> None:
    c = parse_config(CONFIG, "f")
    table = compile_nft(c, rt("wan", "wanb", "wanc"), KernelFacts())
    chains = {ch.name: ch for ch in table.chains}
    mv = next(ch for n, ch in chains.items() if n.startswith("policy_mv"))
    kp = next(ch for n, ch in chains.items() if n.startswith("policy_kp"))
    assert mv.rules[0] == ({"mangle": {"key": {"ct": {"key": "label"}}, "value": 1}},)
    assert failback_label(c, "mv") == 1 and len(kp.rules) == 1  # keep: no label
    assert failback_label(c, "kp") is None


STICKY = """
config rule 'sm'
	option sticky '1'
	option use_policy 'mv'
config rule 'sk'
	option sticky '1'
	option use_policy 'kp'
"""


def test_a_move_policys_sticky_gates_set_its_label() -> None:
    c = parse_config(CONFIG + STICKY, "f")
    chains = {ch.name: ch for ch in compile_nft(c, rt("wan", "wanb", "wanc"), KernelFacts()).chains}
    label = {"mangle": {"key": {"ct": {"key": "label"}}, "value": 1}}
    # the gates of the active tier (wan) pass and label; the others are empty
    mv_gate, kp_gate = chains["stick_mv_1_v4"], chains["stick_kp_1_v4"]
    assert mv_gate.rules == ((label, {"goto": {"target": "mark_1"}}),), mv_gate
    assert kp_gate.rules == (({"goto": {"target": "mark_1"}},),), kp_gate
    assert chains["stick_mv_2_v4"].rules == () == chains["stick_mv_3_v4"].rules


def test_failback_options_name_file_and_line() -> None:
    with pytest.raises(ConfigError, match="f:23: section 'mv' option 'failback': 'back'"):
        parse_config(CONFIG.replace("'move'", "'back'"), "f")
    many = "".join(f"config policy 'p{k}'\n\toption failback 'move'\n" for k in range(129))
    with pytest.raises(ConfigError, match="f:258: section 'p128' option 'failback': move marks "
                       "the policy's connections with conntrack label bit 128"):
        parse_config(many, "f")


def test_idle_interval_must_not_be_shorter_than_interval() -> None:
    text = "config interface 'wan'\n\toption interval '10'\n\toption idle_interval '5'\n"
    with pytest.raises(ConfigError, match="f:3: section 'wan' option 'idle_interval': 5 s is "
                       "shorter than interval 10 s"):
        parse_config(text, "f")
    assert parse_config(text.replace("'5'", "'300'"), "f").interfaces[0].idle_interval == 300
