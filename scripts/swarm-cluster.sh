#!/usr/bin/env bash
# A real two-node Docker Swarm for tests: the local engine as manager, a second dockerd in a network
# namespace as worker.   Usage: swarm-cluster.sh start | status | stop
#
# start   makes what is missing (namespace, veth, worker dockerd, images, swarm, join, labels), waits until
#         the worker node is Ready and its engine says Swarm active, then prints facts, one key=value a line,
#         on stdout (everything else goes to stderr). Run again when all is up, it changes nothing and prints
#         the same facts; after the worker's dockerd was stopped it starts it again and waits for Ready.
# status  prints the facts and exits 0 when the cluster is up, says what is missing and exits 1 otherwise.
# stop    worker leaves and its node is removed, its dockerd stopped, namespace, veth, data root and run
#         folder deleted; the local engine leaves the swarm only when this script made it a manager.
#
# What was found on these machines (Debian 12, Docker 20.10.24 from docker.io, kernel without modules):
# - The manager must advertise an address the worker can reach: the host end of the veth (10.232.0.1).
#   `swarm init --advertise-addr 127.0.0.1` lets a worker in a namespace join once (the join names
#   10.232.0.1:2377), but the worker's gossip and VXLAN then go to 127.0.0.1, its own loopback: the overlay
#   DNS never learns the worker's tasks (NXDOMAIN) and no packet crosses. So: --advertise-addr and
#   --listen-addr 10.232.0.1:2377; --data-path-addr defaults to the advertise address, which is right.
#   A local engine that is already a manager advertising loopback cannot take this worker: start refuses.
# - Ports, all between the two ends of the veth (traffic to the host's own address: INPUT, never FORWARD,
#   so Docker's FORWARD DROP policy does not matter and no IP forwarding is needed): 2377/tcp (cluster
#   management, to the manager), 7946/tcp+udp (gossip, both ways), 4789/udp (VXLAN data path, both ways).
# - This kernel has no IPVS (CONFIG_IP_VS is not set, no /proc/net/ip_vs, no modules to load). Swarm's
#   routing mesh (ingress publishing) and service VIPs both need IPVS: a port published in ingress mode is
#   refused on every address (no DOCKER-INGRESS rules are even made; dockerd logs "Could not get ipvs
#   family information"), and a service name in VIP mode resolves to a VIP that never answers. What works:
#   overlay networks (VXLAN is built in) with endpoint_mode dnsrr, or `tasks.<service>`; ports published
#   with mode=host, on the address of the node that runs the task (10.232.0.2 for the worker). The fact
#   ipvs=yes|no says which applies.
# - `ip netns exec NS dockerd` fails: "Devices cgroup isn't mounted" (ip netns exec remounts /sys in a new
#   mount namespace, which hides the cgroup v1 mounts). `nsenter --net=/run/netns/NS` enters only the
#   network namespace and works; `unshare --uts` gives the worker its own hostname (gitops-w1) so the two
#   nodes do not both show as the machine's name.
# - No default route in the namespace: the worker pulls before it runs each task, and through the host a
#   DNS query is dropped by the FORWARD policy and times out after ~20 s per task. With only the veth's /24
#   the pull fails at once ("network unreachable") and the local image is used, as on the manager, whose
#   pull fails at once too. Images come from `docker save | docker load` (no registry).
# - A node is marked Down after about 3 dispatcher heartbeats: init sets --dispatcher-heartbeat 2s (about
#   5 s to Down instead of 15 s). A graceful stop of the worker's dockerd waits for its containers (busybox
#   httpd as PID 1 ignores SIGTERM): --shutdown-timeout 2 keeps that short.
# - A worker dockerd killed with SIGKILL leaves its pidfile (the next dockerd refuses to start) and its
#   containerd's (the next dockerd says "containerd is still running" of what is by then a zombie, and
#   times out): start removes both first. Its containers keep running under their shims: stop starts the
#   worker's dockerd again so that it removes them itself.
# - The worker's `docker swarm leave` takes about 6.5 s (stop takes about 8 s in all).
# - busybox-static's `wget -T` segfaults (exit 139); wrap wget in `timeout` instead.
# - `swarm leave --force` leaves the docker_gwbridge network behind: stop removes it when init made it.
set -euo pipefail

ns=gitops-w1
veth_host=gitops-w1-h
veth_ns=gitops-w1-n
prefix=10.232.0
manager_addr=$prefix.1
worker_addr=$prefix.2
worker_bridge=gitops-w1-br
worker_bridge_cidr=10.232.1.1/24
worker_pool=10.232.16.0/20
run=/run/gitops-w1
data=/var/lib/gitops-w1
state=$data/cluster.state          # beside the worker's data: survives a reboot like the swarm state does
worker_sock=unix://$run/docker.sock
images="local/busybox:1 local/web:1 local/web:2"
timeout_s=${GITOPS_SWARM_START_TIMEOUT:-60}
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "swarm-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
dw() { DOCKER_HOST=$worker_sock docker "$@"; }
deadline=$((SECONDS + timeout_s))
left() { [ "$SECONDS" -lt "$deadline" ]; }
# wait_for DESCRIPTION COMMAND...: run COMMAND every 0.1 s until it succeeds or the deadline passes
wait_for() {
  local what=$1; shift
  until "$@" >/dev/null 2>&1; do
    left || { log "gave up after ${timeout_s}s waiting for $what"; return 1; }
    sleep 0.1
  done
}
# has TEXT COMMAND...: COMMAND's output contains TEXT (no `| grep -q`: with pipefail, grep leaving early
# makes the writer die of SIGPIPE and the pipeline fail although the text was there)
has() { local text=$1 out; shift; out=$("$@" 2>/dev/null) || return 1; [[ $out == *"$text"* ]]; }
state_get() { [ -f "$state" ] && sed -n "s/^$1=//p" "$state" | tail -n 1; return 0; }
state_set() { mkdir -p "$data"; { grep -v "^$1=" "$state" 2>/dev/null || true; echo "$1=$2"; } >"$state.tmp"; mv "$state.tmp" "$state"; }

need_tools() {
  local missing=""
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, a second dockerd)"
  command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
  { command -v nsenter && command -v unshare && command -v flock; } >/dev/null 2>&1 || missing="$missing util-linux"
  if [ -n "$missing" ]; then
    log "installing$missing (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
  fi
}

lock() {
  exec 9>/run/gitops-swarm-cluster.lock
  flock -w "$timeout_s" 9 || die "another swarm-cluster.sh holds /run/gitops-swarm-cluster.lock"
}

# IPVS: built in, or a module dockerd would load itself (it runs modprobe ip_vs on swarm init)
ipvs() {
  [ -e /proc/net/ip_vs ] || { command -v modprobe >/dev/null 2>&1 && modprobe -q ip_vs 2>/dev/null; } || true
  if [ -e /proc/net/ip_vs ]; then echo yes; else echo no; fi
}
worker_up() { dw version >/dev/null 2>&1; }
manager_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
worker_state() { dw info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
worker_id() { dw info --format '{{.Swarm.NodeID}}' 2>/dev/null; }
node_ready() { [ "$(docker node inspect "$1" --format '{{.Status.State}}' 2>/dev/null)" = ready ]; }
worker_active() { [ "$(worker_state)" = active ]; }

make_network() {
  [ -e "/run/netns/$ns" ] || { log "network namespace $ns"; ip netns add "$ns"; }
  if ip link show "$veth_host" >/dev/null 2>&1 && ! ip -n "$ns" link show "$veth_ns" >/dev/null 2>&1; then
    ip link del "$veth_host"   # its peer is in a namespace that is gone
  fi
  if ! ip link show "$veth_host" >/dev/null 2>&1; then
    log "veth $veth_host ($manager_addr) <-> $ns/$veth_ns ($worker_addr)"
    ip -n "$ns" link del "$veth_ns" 2>/dev/null || true
    ip link add "$veth_host" type veth peer name "$veth_ns" netns "$ns"
  fi
  has "inet $manager_addr/" ip addr show dev "$veth_host" || ip addr add "$manager_addr/24" dev "$veth_host"
  ip link set "$veth_host" up
  ip -n "$ns" link set lo up
  has "inet $worker_addr/" ip -n "$ns" addr show dev "$veth_ns" || ip -n "$ns" addr add "$worker_addr/24" dev "$veth_ns"
  ip -n "$ns" link set "$veth_ns" up
  # the worker's own bridge, inside its namespace (never --bridge none: see ENGINE.md)
  ip -n "$ns" link show "$worker_bridge" >/dev/null 2>&1 || ip -n "$ns" link add "$worker_bridge" type bridge
  has "inet $worker_bridge_cidr" ip -n "$ns" addr show dev "$worker_bridge" \
    || ip -n "$ns" addr add "$worker_bridge_cidr" dev "$worker_bridge"
  ip -n "$ns" link set "$worker_bridge" up
}

# alive PID: PID runs (a zombie does not: its parent, not us, reaps it, sometimes much later)
alive() { local st=""; [ -n "$1" ] && [ -r "/proc/$1/stat" ] && read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null && [ "$st" != Z ]; }
# ours PID: PID is the worker's dockerd (checked by its command line: a pid from a stale pidfile may be reused)
ours() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && has "$worker_sock" tr '\0' ' ' <"/proc/$1/cmdline"; }

# The containerd of a worker dockerd that was killed hard: a new dockerd finds its pidfile, takes it for
# running ("containerd is still running") even when it is a zombie, and times out waiting for its socket.
stop_orphan_containerd() {
  local cpid
  cpid=$(cat "$run/exec/containerd/containerd.pid" 2>/dev/null || true)
  if alive "$cpid" && has "$run/exec/containerd" tr '\0' ' ' <"/proc/$cpid/cmdline"; then
    log "stopping the containerd a killed worker dockerd left (pid $cpid)"
    kill "$cpid" 2>/dev/null || true
    wait_for "containerd $cpid to exit" eval "! alive $cpid" || kill -9 "$cpid" 2>/dev/null || true
  fi
  rm -f "$run/exec/containerd/containerd.pid"
}

start_worker_engine() {
  local pid
  if worker_up; then return 0; fi
  mkdir -p "$run" "$data"
  pid=$(cat "$run/docker.pid" 2>/dev/null || true)
  if ours "$pid"; then
    log "the worker's dockerd (pid $pid) runs but does not answer yet: waiting for it"
    wait_for "the worker's dockerd to answer on $worker_sock" worker_up || { tail -n 20 "$run/dockerd.log" >&2; return 1; }
    return 0
  fi
  rm -f "$run/docker.pid"   # left by a dockerd that was killed: the next one refuses to start beside it
  stop_orphan_containerd
  log "starting the worker's dockerd in $ns (log: $run/dockerd.log)"
  # nsenter, not `ip netns exec` (see the top); unshare --uts for the node's own hostname.
  setsid unshare --uts sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec nsenter --net="/run/netns/$0" "$@"' "$ns" \
    dockerd -H "$worker_sock" --data-root "$data/docker" --exec-root "$run/exec" --pidfile "$run/docker.pid" \
    --bridge "$worker_bridge" --default-address-pool "base=$worker_pool,size=24" --shutdown-timeout 2 \
    >>"$run/dockerd.log" 2>&1 </dev/null 9>&- &
  pid=$!   # setsid does not fork here (not a group leader), so this is dockerd's pid once it has exec'd
  until worker_up; do
    if ! alive "$pid" || ! left; then
      log "the worker's dockerd $(alive "$pid" && echo "did not answer within ${timeout_s}s" || echo exited); its log:"
      tail -n 20 "$run/dockerd.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

load_images() {
  local image missing=""
  for image in $images; do docker image inspect "$image" >/dev/null 2>&1 || missing="$missing $image"; done
  if [ -n "$missing" ]; then log "building the local images (missing:$missing)"; bash "$here/build-images.sh"; fi
  for image in $images; do
    if [ "$(dw image inspect --format '{{.Id}}' "$image" 2>/dev/null)" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
      log "loading $image into the worker"
      docker save "$image" | dw load -q >/dev/null
    fi
  done
}

make_manager() {
  local st addr
  st=$(manager_state)
  addr=$(docker info --format '{{.Swarm.NodeAddr}}' 2>/dev/null)
  if [ "$st" != inactive ] && [ "$st" != active ] && [ "$addr" = "$manager_addr" ]; then
    log "the local engine's swarm on $manager_addr is '$st' (its veth was gone?): leaving it to make it anew"
    docker swarm leave --force >/dev/null
    st=inactive
  fi
  if [ "$st" = inactive ]; then
    if [ -z "$(state_get gwbridge_before)" ]; then   # the first init of ours decides: a later one finds our own
      if docker network inspect docker_gwbridge >/dev/null 2>&1; then state_set gwbridge_before 1; else state_set gwbridge_before 0; fi
    fi
    log "docker swarm init --advertise-addr $manager_addr on the local engine"
    docker swarm init --advertise-addr "$manager_addr" --listen-addr "$manager_addr:2377" \
      --dispatcher-heartbeat 2s >/dev/null
    state_set made_manager 1
    return 0
  fi
  [ "$st" = active ] || die "the local engine's swarm state is '$st'; expected inactive or active"
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] \
    || die "the local engine is a swarm worker of another cluster, not a manager"
  if [ "$addr" = "$manager_addr" ] && [ -z "$(state_get made_manager)" ]; then
    state_set made_manager 1   # our address: made by an earlier run whose state was lost
  fi
  case "$addr" in
    "$manager_addr") ;;
    127.*|::1) die "the local engine is already a swarm manager advertising $addr, which a worker in a network namespace cannot reach (its loopback is its own). Leave that swarm (docker swarm leave --force) and run start again." ;;
    *)
      has " inet $addr/" ip -o addr show \
        || die "the local engine is a manager advertising $addr, which is not an address of this machine"
      log "the local engine is already a manager advertising $addr: the worker reaches it through the veth"
      ip -n "$ns" route replace "$addr/32" via "$manager_addr"
      ;;
  esac
}

join_worker() {
  local st id addr
  addr=$(docker info --format '{{.Swarm.NodeAddr}}')
  st=$(worker_state)
  id=$(worker_id)
  if [ "$st" = active ] && [ -n "$id" ] && docker node inspect "$id" >/dev/null 2>&1; then return 0; fi
  if [ "$st" = pending ] || { [ "$st" = active ] && [ -n "$id" ] && ! docker node inspect "$id" >/dev/null 2>&1; }; then
    # a worker of a swarm that is gone (the manager left and was made anew): leave it for a fresh join
    log "the worker belongs to a swarm this manager does not know: leaving it"
    dw swarm leave --force >/dev/null 2>&1 || true
  fi
  log "joining the worker with the worker token"
  timeout "$((deadline - SECONDS > 5 ? deadline - SECONDS : 5))" env DOCKER_HOST="$worker_sock" docker swarm join \
    --token "$(docker swarm join-token -q worker)" --advertise-addr "$worker_addr" --listen-addr "$worker_addr:2377" \
    "$addr:2377" >/dev/null
}

label_nodes() {
  local wid mid
  wid=$(worker_id)
  mid=$(docker info --format '{{.Swarm.NodeID}}')
  # nodes of earlier workers of this swarm (same hostname, Down) are ours: remove them
  for old in $(docker node ls --filter "name=$ns" --format '{{.ID}} {{.Hostname}} {{.Status}}' | awk -v h="$ns" '$2 == h && $3 == "Down" {print $1}'); do
    [ "$old" = "$wid" ] || docker node rm --force "$old" >/dev/null 2>&1 || true
  done
  set_labels "$mid" gitops.test/role=manager zone=a
  set_labels "$wid" gitops.test/role=worker zone=b
  [ "$(state_get made_manager)" = 1 ] || state_set manager_labels "$mid"
}

set_labels() {
  local node=$1 want have args=()
  shift
  have=$(docker node inspect "$node" --format '{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}')
  for want in "$@"; do
    case " $have " in *" $want "*) ;; *) args+=(--label-add "$want") ;; esac
  done
  [ ${#args[@]} -eq 0 ] || docker node update "${args[@]}" "$node" >/dev/null
}

facts() {
  local wid mid
  wid=$(worker_id)
  mid=$(docker info --format '{{.Swarm.NodeID}}')
  cat <<FACTS
manager_addr=$(docker info --format '{{.Swarm.NodeAddr}}')
manager_node_id=$mid
manager_hostname=$(docker node inspect "$mid" --format '{{.Description.Hostname}}')
manager_host=${DOCKER_HOST:-unix:///var/run/docker.sock}
manager_made_here=$([ "$(state_get made_manager)" = 1 ] && echo yes || echo no)
join_addr=$(docker info --format '{{.Swarm.NodeAddr}}'):2377
worker_addr=$worker_addr
worker_node_id=$wid
worker_hostname=$(docker node inspect "$wid" --format '{{.Description.Hostname}}')
worker_host=$worker_sock
worker_pidfile=$run/docker.pid
worker_log=$run/dockerd.log
netns=$ns
veth_host=$veth_host
veth_worker=$veth_ns
subnet=$prefix.0/24
ipvs=$(ipvs)
FACTS
}

check_up() {
  local problems=""
  [ -e "/run/netns/$ns" ] || problems="$problems; no namespace $ns"
  has 'state UP' ip link show "$veth_host" || problems="$problems; veth $veth_host missing or down"
  worker_up || problems="$problems; the worker's dockerd does not answer on $worker_sock"
  [ "$(manager_state)" = active ] || problems="$problems; the local engine is not in a swarm"
  if worker_up; then
    worker_active || problems="$problems; the worker's swarm state is '$(worker_state)'"
    local wid; wid=$(worker_id)
    { [ -n "$wid" ] && node_ready "$wid"; } || problems="$problems; the worker node is not Ready"
  fi
  [ -z "$problems" ] || { log "not up: ${problems#; }"; return 1; }
}

cmd_start() {
  need_tools
  lock
  docker version >/dev/null 2>&1 || bash "$here/ensure-docker.sh" 9>&-
  make_network
  start_worker_engine
  load_images
  make_manager
  join_worker
  wait_for "the worker's engine to say Swarm active" worker_active
  wait_for "the worker node to be Ready" node_ready "$(worker_id)"
  label_nodes
  log "up in ${SECONDS}s"
  facts
}

cmd_status() {
  command -v docker >/dev/null 2>&1 || { log "not up: no docker"; return 1; }
  check_up || return 1
  facts
}

cmd_stop() {
  need_tools
  lock
  local wid="" mid pid
  if ! worker_up && [ -d "$data/docker" ]; then
    # a worker dockerd killed hard leaves its containers running under their shims: bring it back so that
    # it removes them itself, rather than hunt down processes
    log "the worker's dockerd is down: starting it to clean up"
    { make_network && start_worker_engine; } || log "could not start it; going on"
  fi
  if worker_up; then
    wid=$(worker_id)
    # everything on the worker is ours: remove its containers now rather than wait for their stop timeouts
    dw ps -aq | xargs -r env DOCKER_HOST="$worker_sock" docker rm -f >/dev/null 2>&1 || true
    if [ "$(worker_state)" != inactive ]; then log "the worker leaves the swarm"; dw swarm leave --force >/dev/null || true; fi
  fi
  if [ "$(manager_state)" = active ]; then
    [ -n "$wid" ] && docker node rm --force "$wid" >/dev/null 2>&1 || true
    if [ "$(state_get made_manager)" = 1 ]; then
      log "the local engine leaves the swarm this script made"
      docker swarm leave --force >/dev/null
      if [ "$(state_get gwbridge_before)" = 0 ] && docker network inspect docker_gwbridge >/dev/null 2>&1; then
        docker network rm docker_gwbridge >/dev/null || log "could not remove docker_gwbridge (still in use?)"
      fi
    else
      for old in $(docker node ls --filter "name=$ns" --format '{{.ID}} {{.Hostname}}' | awk -v h="$ns" '$2 == h {print $1}'); do
        docker node rm --force "$old" >/dev/null 2>&1 || true
      done
      mid=$(state_get manager_labels)
      [ -z "$mid" ] || docker node update --label-rm gitops.test/role --label-rm zone "$mid" >/dev/null 2>&1 || true
    fi
  fi
  if [ -f "$run/docker.pid" ]; then
    pid=$(cat "$run/docker.pid")
    if ours "$pid"; then
      log "stopping the worker's dockerd (pid $pid)"
      kill "$pid" 2>/dev/null || true
      wait_for "the worker's dockerd to exit" eval "! alive $pid" || { kill -9 "$pid" 2>/dev/null || true; }
    fi
  fi
  # its containerd exits with it; one left over (dockerd killed hard) is stopped by the pid it recorded
  stop_orphan_containerd
  if [ -e "/run/netns/$ns" ]; then log "deleting namespace $ns and its veth"; ip netns del "$ns"; fi
  ip link del "$veth_host" 2>/dev/null || true
  # mounts the worker's dockerd may have left (a hard kill): unmount before deleting its folders
  for m in $(awk '{print $2}' /proc/self/mounts | grep -E "^($run|$data)(/|$)" | sort -r); do umount -l "$m" || true; done
  [ ! -f "$run/dockerd.log" ] || mv "$run/dockerd.log" /var/log/gitops-swarm-worker.log   # for a post mortem
  rm -rf --one-file-system "$run" "$data"
  log "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 start | status | stop" >&2; exit 2 ;;
esac
