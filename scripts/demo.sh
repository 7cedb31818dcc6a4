#!/usr/bin/env bash
# One command for the demo on a fresh Debian machine (as root): installs what
# is needed, builds the namespace lab and runs mwan in its router.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m mwan.lab.demo "$@"
