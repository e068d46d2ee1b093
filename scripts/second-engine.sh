#!/usr/bin/env bash
# A second Docker Engine on this machine, for multi-host tests (see ENGINE.md):
#   own socket unix:///run/gitops-h2/docker.sock, own data root and exec root, own bridge br-gitops-h2,
#   and tcp://127.0.0.1:$PORT with TLS client verification (certs in /run/gitops-h2/certs).
# Usage: second-engine.sh start [PORT] | stop.  The local images are loaded into it on start.
set -euo pipefail
root=/run/gitops-h2
port=${2:-23760}
case "${1:-}" in
start)
  mkdir -p "$root/certs" /var/lib/gitops-h2
  if ! ip link show br-gitops-h2 >/dev/null 2>&1; then
    ip link add br-gitops-h2 type bridge
    ip addr add 10.231.0.1/24 dev br-gitops-h2
    ip link set br-gitops-h2 up
  fi
  certs=$root/certs
  if [ ! -f "$certs/key.pem" ]; then
    ( cd "$certs"
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gitops-test-ca" -keyout ca-key.pem -out ca.pem 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out server-cert.pem 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj "/CN=gitops-client" -keyout key.pem -out client.csr 2>/dev/null
      printf 'extendedKeyUsage=clientAuth\n' >client.ext
      openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile client.ext -out cert.pem 2>/dev/null )
  fi
  if ! DOCKER_HOST=unix://$root/docker.sock docker version >/dev/null 2>&1; then
    setsid dockerd -H "unix://$root/docker.sock" -H "tcp://127.0.0.1:$port" \
      --tlsverify --tlscacert "$certs/ca.pem" --tlscert "$certs/server-cert.pem" --tlskey "$certs/server-key.pem" \
      --data-root /var/lib/gitops-h2 --exec-root "$root/exec" --pidfile "$root/docker.pid" \
      --bridge br-gitops-h2 --iptables=false --ip-masq=false >"$root/dockerd.log" 2>&1 </dev/null &
  fi
  # both listeners: the unix socket answers a little before the TLS port
  for _ in $(seq 1 120); do
    if DOCKER_HOST=unix://$root/docker.sock docker version >/dev/null 2>&1 && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      break
    fi
    sleep 0.25
  done
  DOCKER_HOST=unix://$root/docker.sock docker version >/dev/null
  for image in local/busybox:1 local/web:1 local/web:2; do
    if ! DOCKER_HOST=unix://$root/docker.sock docker image inspect "$image" >/dev/null 2>&1; then
      docker save "$image" | DOCKER_HOST=unix://$root/docker.sock docker load -q >/dev/null
    fi
  done
  echo "unix://$root/docker.sock tcp://127.0.0.1:$port $certs"
  ;;
stop)
  if [ -f "$root/docker.pid" ]; then
    kill "$(cat "$root/docker.pid")" 2>/dev/null || true
    for _ in $(seq 1 40); do [ -f "$root/docker.pid" ] || break; sleep 0.25; done
  fi
  ;;
*) echo "usage: $0 start [PORT] | stop" >&2; exit 2 ;;
esac
