#!/usr/bin/env bash
# Build the local images example-repo and the tests use. No registry is reachable, so every image
# is built FROM scratch around busybox-static. Idempotent: docker's build cache makes reruns ~instant.
#   local/busybox:1   sh, httpd, wget, nc, sleep: base for everything else
#   local/web:1,2     httpd on :8080 serving "web v1" / "web v2" from /www (for rolling updates)
set -euo pipefail
export DOCKER_BUILDKIT=0   # the classic builder: buildx is not packaged here; this also silences its notice
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || { echo "build-images: busybox-static is missing (run scripts/ensure-docker.sh)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/sh", "-c", "mkdir -p /tmp /www /data /etc && echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>/etc/passwd"]
CMD ["/bin/sh"]
DOCKERFILE
docker build -q -t local/busybox:1 "$ctx" >/dev/null

for v in 1 2; do
  mkdir -p "$ctx/web$v"
  cat >"$ctx/web$v/Dockerfile" <<DOCKERFILE
FROM local/busybox:1
RUN echo "web v$v" >/www/index.html && echo ok >/www/healthz
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
DOCKERFILE
  docker build -q -t "local/web:$v" "$ctx/web$v" >/dev/null
done
echo "build-images: local/busybox:1 local/web:1 local/web:2" >&2
