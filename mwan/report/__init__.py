"""What ``status``, ``interfaces``, ``policies``, ``connected``, ``rules`` and ``explain`` show.

Pure: the daemon's report (a JSON-ready dict) in, text out; and the
explanation of where a connection would go, from the config, the interface
states and the bypass networks the last apply used.
"""
