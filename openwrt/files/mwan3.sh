#!/bin/sh
# /usr/sbin/mwan3 on OpenWrt: the mwan command in the system python3
exec python3 -P -m mwan.cli.main "$@"
