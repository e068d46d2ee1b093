#!/usr/bin/env bash
# Prepare this checkout: Docker Engine running, a virtualenv in .venv with gitops installed (editable,
# with test tools), and the local images built. Safe to run again; each step skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.gitops-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing gitops and its test tools into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

bash scripts/build-images.sh
