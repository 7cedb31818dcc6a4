"""Config texts that unit tests share (no kernel: device names only)."""

# two WANs, wan (eth1) and wanb (eth2), members a and b, policies pa (a) and pab (a, b)
TWO_WANS = """
config interface 'wan'
	option enabled '1'
	option device 'eth1'
config interface 'wanb'
	option enabled '1'
	option device 'eth2'
config member 'a'
	option interface 'wan'
config member 'b'
	option interface 'wanb'
config policy 'pa'
	list use_member 'a'
config policy 'pab'
	list use_member 'a'
	list use_member 'b'
"""
