#!/usr/bin/env bash
# The main job: bring example-repo up on the local Docker Engine, then show what runs.
# Installs and starts what is missing (scripts/setup.sh). A second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/gitops validate example-repo
