#!/usr/bin/env bash
# The main job: bring example-repo up on the local Docker Engine and show what runs.
# Installs and starts what is missing (scripts/setup.sh). Running it again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The example's one secret is a SOPS file; its age key lives in .gitops-example/ (never committed), made on the
# first run, which then encrypts a new password to it (scripts/example-key.sh).
bash scripts/example-key.sh
export SOPS_AGE_KEY_FILE=$PWD/.gitops-example/age-key.txt  # what --age-key-file sets
gitops=.venv/bin/gitops
$gitops validate example-repo
$gitops apply example-repo --yes
echo
echo "Running (project shop):"
docker ps --filter label=io.gitops.project=shop --format '  {{.Names}}\t{{.Status}}\t{{.Ports}}'
port=$(docker ps --filter label=io.gitops.service=web --filter label=io.gitops.project=shop \
         --format '{{.Ports}}' | head -n 1 | sed -E 's/.*:([0-9]+)->.*/\1/')
if [ -n "$port" ]; then
  echo "web answers on http://127.0.0.1:$port/ : $(wget -q -O - "http://127.0.0.1:$port/" 2>/dev/null || busybox wget -q -O - "http://127.0.0.1:$port/")"
fi
echo "Next: edit example-repo (e.g. image: local/web:2 in services/web.yaml), then '$gitops --age-key-file .gitops-example/age-key.txt plan example-repo' and run this again."
