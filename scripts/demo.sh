#!/usr/bin/env bash
# One command for the demo on a fresh Debian machine (as root): installs what
# is needed, then `python -m mwan.lab.demo SUBCOMMAND`: start (the default:
# builds the namespace lab, runs mwan in its router, web UI on
# http://127.0.0.1:8086/), status, cut/restore WAN, loss WAN PCT, mwan3 ARGS,
# start --ha (two routers), fail-router/restore-router a|b,
# stop.  See --help.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-start}" in
    start|-*) ./scripts/setup.sh ;;  # the other sub-commands need a demo that runs already
    *) [ -x .venv/bin/python ] || ./scripts/setup.sh ;;
esac
exec .venv/bin/python -m mwan.lab.demo "$@"
