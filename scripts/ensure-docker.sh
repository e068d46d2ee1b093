#!/usr/bin/env bash
# Make sure a Docker Engine is installed and answering on the default socket.
# Safe to run again: installs only what is missing, starts dockerd only when it is not running.
# Prints nothing on success but a one-line summary; the daemon's output goes to $GITOPS_DOCKERD_LOG.
set -euo pipefail

log=${GITOPS_DOCKERD_LOG:-/var/log/gitops-dockerd.log}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /bin/busybox ] || ! busybox --list >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io and busybox-static (Debian packages)" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io busybox-static >/dev/null
fi

if docker version >/dev/null 2>&1; then
  echo "ensure-docker: engine already running ($(docker version --format '{{.Server.Version}}'))" >&2
  exit 0
fi

echo "ensure-docker: starting dockerd (log: $log)" >&2
# Detached, stdin from /dev/null and output in a file: a daemon holding the caller's pipes would keep
# a CI run from ending.
$SUDO setsid dockerd >"$log" 2>&1 </dev/null &
echo $! >/tmp/gitops-dockerd.pid
for _ in $(seq 1 120); do
  if docker version >/dev/null 2>&1; then
    echo "ensure-docker: engine up ($(docker version --format '{{.Server.Version}}'))" >&2
    exit 0
  fi
  sleep 0.25
done
echo "ensure-docker: dockerd did not answer within 30 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
