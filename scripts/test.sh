#!/usr/bin/env bash
# The whole test suite against a real Docker Engine (installed and started when missing).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k planner -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
