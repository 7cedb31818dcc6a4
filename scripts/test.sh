#!/usr/bin/env bash
# One command for the whole test suite on a fresh Debian machine (as root):
# installs what is needed, then runs the unit tests and the namespace lab tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
