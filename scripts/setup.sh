#!/usr/bin/env bash
# Prepare this checkout: Docker Engine running, a virtualenv in .venv with gitops installed (editable,
# with test tools), and the local images built. Safe to run again; each step skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh

# Tests reach the local engine over ssh:// too (sshd on loopback): the ssh client and server.
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
  echo "setup: installing openssh-server and openssh-client (Debian packages)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; }
fi

# Tests run a real image registry (tests/registryutil.py): distribution, packaged by Debian.
if ! command -v docker-registry >/dev/null 2>&1; then
  echo "setup: installing docker-registry (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; }
fi

# The web page's tests drive a real browser (tests/test_web_browser.py): Debian's chromium, headless.
if [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing chromium and chromium-driver (Debian packages)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "setup: chromium could not be installed: the browser tests skip (and fail when CI=true)" >&2
fi

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
