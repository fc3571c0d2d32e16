#!/usr/bin/env bash
# A throwaway one-node Kubernetes 1.20 cluster whose every process (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet,
# kube-proxy, the Pods) lives in a network namespace with no route out: its one
# link is a veth pair to this host, which forwards nothing from it. See README.md.
#
#   node.sh build                 control-plane.sh build-node (once; cached)
#   node.sh start DIR             start a node-backed cluster whose state lives in DIR
#   node.sh controller-image OUT  build seal-controller statically and write its OCI
#                                 image archive (localhost/sealant/seal-controller:e2e)
#   node.sh import DIR ARCHIVE    load an OCI image archive into the node's containerd
#   node.sh check-isolation DIR   exit 0 only if nothing from the namespace left it
#   node.sh stop DIR              stop everything start made: processes, containers,
#                                 mounts, the namespace, the host's iptables rules
# With SEALANT_NODE_OWNER_PID set, start also leaves a watchdog that runs stop
# once that process has exited, however it ended.
set -euo pipefail

readonly NODE_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=control-plane.sh
. "${NODE_SCRIPT_DIR}/control-plane.sh"

log() { printf '%s\n' "node: $*" >&2; }

readonly NODE_NAME=sealant-node
readonly PAUSE_IMAGE="localhost/sealant/pause:${K8S_VERSION}"
# The name tests/k8s-1.20-node/ gives the Deployment and CronJob.
readonly CONTROLLER_IMAGE=localhost/sealant/seal-controller:e2e
readonly RUST_TARGET=x86_64-unknown-linux-gnu
# Stopped in this order, before the control plane: nothing restarts a container
# once the kubelet is gone.
readonly NODE_COMPONENTS=(kubelet kube-proxy kube-scheduler containerd)

node_usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# DIR/node/net holds what start picked: the namespace, the veth names, addresses.
net_value() {
  sed -n "s/^$2=//p" "$1/node/net" 2>/dev/null
}

in_netns() {
  local dir=$1
  shift
  nsenter --net="/var/run/netns/$(net_value "${dir}" netns)" "$@"
}

ctr_node() {
  local dir=$1
  shift
  ctr --address "${dir}/node/containerd/containerd.sock" --namespace k8s.io "$@"
}

# ---------------------------------------------------------------------------
# network

# Picks 10.N.0.0/30 for the veth pair and 10.N.1.0/24 for the Pods, N unused
# by this host's routes and by any other node namespace; prints N.
pick_subnet() {
  local n tries=0 routes
  routes=$(ip -4 route show table all)
  while :; do
    tries=$((tries + 1))
    [[ ${tries} -lt 200 ]] || die "no free 10.N.0.0/16 found for the node"
    n=$((100 + RANDOM % 150))
    [[ -e /var/run/netns/sealant-node-${n} ]] && continue
    grep -qE "(^| )10\.${n}\." <<<"${routes}" && continue
    printf '%s\n' "${n}"
    return
  done
}

# The host side of the proof: FORWARD drops (and counts) anything in or out of
# the veth, INPUT drops (and counts) anything the namespace starts towards the
# host. Replies to what the host started (the tests' kubectl and seal) pass.
host_rules() {
  local dir=$1 host_if netns
  host_if=$(net_value "${dir}" host_if)
  netns=$(net_value "${dir}" netns)
  printf '%s\n' \
    "FORWARD -i ${host_if} -m comment --comment ${netns}-forward-in -j DROP" \
    "FORWARD -o ${host_if} -m comment --comment ${netns}-forward-out -j DROP" \
    "INPUT -i ${host_if} -m conntrack ! --ctstate ESTABLISHED,RELATED -m comment --comment ${netns}-input-new -j DROP"
}

setup_network() {
  local dir=$1 n netns host_if ns_if
  exec 7>"${TMPDIR:-/tmp}/sealant-node.net.lock"
  flock 7
  n=$(pick_subnet)
  netns="sealant-node-${n}"
  host_if="sn${n}h"
  ns_if="sn${n}n"
  {
    printf 'netns=%s\nhost_if=%s\nns_if=%s\n' "${netns}" "${host_if}" "${ns_if}"
    printf 'host_addr=10.%s.0.1\nnode_addr=10.%s.0.2\npod_cidr=10.%s.1.0/24\n' "${n}" "${n}" "${n}"
  } >"${dir}/node/net"
  ip netns add "${netns}"
  exec 7>&-
  ip link add "${host_if}" type veth peer name "${ns_if}"
  # No IPv6 on the link: no router solicitations or neighbour discovery either.
  sysctl -qw "net.ipv6.conf.${host_if}.disable_ipv6=1" 2>/dev/null || true
  ip link set "${ns_if}" netns "${netns}"
  ip addr add "10.${n}.0.1/30" dev "${host_if}"
  ip link set "${host_if}" up
  in_netns "${dir}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
  in_netns "${dir}" ip link set lo up
  in_netns "${dir}" ip addr add "10.${n}.0.2/30" dev "${ns_if}"
  in_netns "${dir}" ip link set "${ns_if}" up
  local rule
  while IFS= read -r rule; do
    # shellcheck disable=SC2086 # a rule is words
    iptables -w -I ${rule}
  done < <(host_rules "${dir}")
  printf 'host-rules=added\n' >>"${dir}/node/net"
}

# Exit 0 only if the namespace has no default route (nor any route but its own
# link and the Pods' bridge) and the host's counting rules saw no packet.
cmd_check_isolation() {
  local dir=$1 bad=0 routes rule chain comment counted
  dir=$(node_dir "${dir}")
  routes=$(in_netns "${dir}" ip -4 route show table all type unicast)
  if grep -qE '^default|0\.0\.0\.0/0' <<<"${routes}"; then
    log "the node namespace has a default route: ${routes}"
    bad=1
  fi
  if [[ -n $(in_netns "${dir}" ip -6 route show default 2>/dev/null) ]]; then
    log "the node namespace has an IPv6 default route"
    bad=1
  fi
  while IFS= read -r rule; do
    chain=${rule%% *}
    comment=$(sed -E 's/.*--comment ([^ ]+).*/\1/' <<<"${rule}")
    counted=$(iptables -w -L "${chain}" -v -x -n | awk -v c="/* ${comment} */" 'index($0, c) { print $1 }')
    if [[ -z ${counted} ]]; then
      log "host rule missing: ${rule}"
      bad=1
    elif [[ ${counted} != 0 ]]; then
      log "${counted} packet(s) from or to the node namespace hit: ${rule}"
      bad=1
    fi
  done < <(host_rules "${dir}")
  [[ ${bad} -eq 0 ]] || exit 1
  log "isolated: no default route in $(net_value "${dir}" netns); host FORWARD/INPUT drop counters all 0"
}

# ---------------------------------------------------------------------------
# start

write_containerd_config() {
  local dir=$1 pod_cidr
  pod_cidr=$(net_value "${dir}" pod_cidr)
  local c="${dir}/node/containerd"
  mkdir -p "${c}/root" "${c}/state" "${c}/runc" "${dir}/node/cni/net.d" "${dir}/node/cni/ipam"
  cat >"${c}/config.toml" <<EOF
version = 2
root = "${c}/root"
state = "${c}/state"
[grpc]
  address = "${c}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # Never pulled: imported by node.sh.
  sandbox_image = "${PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE, runc cannot give the sandbox oom_score_adj -998
  # ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory, so stop can unmount them.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "${c}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/node/cni/net.d"
    max_conf_num = 1
EOF
  # A bridge in the node namespace; the Pods' default route goes to it, and from
  # there nowhere: the namespace itself has no default route.
  cat >"${dir}/node/cni/net.d/10-sealant.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$(net_value "${dir}" netns)",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${dir}/node/cni/ipam",
        "ranges": [[{ "subnet": "${pod_cidr}" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
}

wait_for_file() {
  local dir=$1 name=$2 path=$3 deadline=$((SECONDS + READY_TIMEOUT))
  until [[ -S ${path} ]]; do
    still_running "${dir}" "${name}" || node_fail "${dir}" "${name} exited" "${name}"
    [[ ${SECONDS} -lt ${deadline} ]] || node_fail "${dir}" "no ${path} after ${READY_TIMEOUT} s" "${name}"
    sleep 0.2
  done
}

node_fail() {
  local dir=$1 message=$2 name=$3
  log "error: ${message}; last lines of ${dir}/logs/${name}.log:"
  tail -n 30 "${dir}/logs/${name}.log" >&2 || true
  exit 1
}

# Set while start runs: any exit before the node is up (die, node_fail, a failed
# command under set -e) stops whatever was started.
NODE_STARTING=""
stop_unfinished_start() {
  [[ -z ${NODE_STARTING} ]] || cmd_node_stop "${NODE_STARTING}" || true
}

# Runs in the node namespace, detached and recorded like control-plane.sh's components.
launch_in_netns() {
  local dir=$1 name=$2
  shift 2
  launch "${dir}" "${name}" nsenter --net="/var/run/netns/$(net_value "${dir}" netns)" "$@"
}

kubectl_node() {
  local dir=$1
  shift
  KUBECONFIG="${dir}/kubeconfig.host" kubectl "$@"
}

cmd_node_start() {
  local dir=$1
  mkdir -p "${dir}"
  dir=$(cd "${dir}" && pwd -P)
  have_node_binaries || die "no (current) node binaries in ${BIN_DIR}: run '$0 build' first"
  local tool
  for tool in containerd ctr runc iptables conntrack nsenter findmnt python3 kubectl; do
    command -v "${tool}" >/dev/null || die "${tool} not found: run '$0 build' first"
  done
  [[ ! -e ${dir}/node/net ]] || die "a node was started in ${dir}: '$0 stop ${dir}' first"
  rm -rf "${dir}/node"
  mkdir -p "${dir}/node" "${dir}/logs" "${dir}/run"
  : >"${dir}/node/started"
  NODE_STARTING=${dir}
  trap stop_unfinished_start EXIT

  setup_network "${dir}"
  local node_addr pod_cidr
  node_addr=$(net_value "${dir}" node_addr)
  pod_cidr=$(net_value "${dir}" pod_cidr)

  # The control plane, inside the namespace. The apiserver listens on every
  # address there (the host reaches it over the veth, Pods through kube-proxy)
  # and advertises the node address in the "kubernetes" Endpoints.
  CONTROL_PLANE_EXTRA_SANS="IP:${node_addr}" \
    KUBE_APISERVER_EXTRA_ARGS="--bind-address 0.0.0.0 --advertise-address ${node_addr} --kubelet-preferred-address-types InternalIP ${KUBE_APISERVER_EXTRA_ARGS:-}" \
    KUBE_CONTROLLER_MANAGER_EXTRA_ARGS="--controllers deployment,replicaset,job,cronjob,endpoint,endpointslice,endpointslicemirroring,podgc,disruption,nodelifecycle ${KUBE_CONTROLLER_MANAGER_EXTRA_ARGS:-}" \
    in_netns "${dir}" "${NODE_SCRIPT_DIR}/control-plane.sh" start "${dir}" ||
    die "the control plane did not start"

  local port token
  port=$(port_of "${dir}" apiserver)
  token=$(env_value "${dir}" SEALANT_ADMIN_TOKEN)
  # The components use DIR/kubeconfig (127.0.0.1, inside the namespace); the
  # host's tests use the node address.
  write_kubeconfig "${dir}/kubeconfig.host" "https://${node_addr}:${port}" "${dir}/pki/ca.crt" admin "${token}"
  {
    printf 'KUBECONFIG=%q\n' "${dir}/kubeconfig.host"
    printf 'SEALANT_APISERVER=%q\n' "https://${node_addr}:${port}"
    printf 'SEALANT_ADMIN_TOKEN=%q\n' "${token}"
    printf 'SEALANT_CA_FILE=%q\n' "${dir}/pki/ca.crt"
    printf 'SEALANT_NODE_NETNS=%q\n' "$(net_value "${dir}" netns)"
  } >"${dir}/env"

  write_containerd_config "${dir}"
  launch_in_netns "${dir}" containerd containerd --config "${dir}/node/containerd/config.toml"
  wait_for_file "${dir}" containerd "${dir}/node/containerd/containerd.sock"

  python3 "${NODE_SCRIPT_DIR}/oci-image.py" --name "${PAUSE_IMAGE}" --out "${dir}/node/pause.tar" \
    --entrypoint /pause --user 65535:65535 "${BIN_DIR}/pause:/pause" >/dev/null
  ctr_node "${dir}" images import "${dir}/node/pause.tar" >/dev/null ||
    node_fail "${dir}" "ctr images import of the pause image failed" containerd

  mkdir -p "${dir}/node/kubelet"
  launch_in_netns "${dir}" kubelet "${BIN_DIR}/kubelet" \
    --kubeconfig "${dir}/kubeconfig" \
    --root-dir "${dir}/node/kubelet" \
    --cert-dir "${dir}/node/kubelet/pki" \
    --volume-plugin-dir "${dir}/node/kubelet/volume-plugins" \
    --container-runtime remote \
    --container-runtime-endpoint "unix://${dir}/node/containerd/containerd.sock" \
    --fail-swap-on=false --cgroup-driver cgroupfs --cgroups-per-qos=false \
    --enforce-node-allocatable= --eviction-hard= --resolv-conf= \
    --image-gc-high-threshold 100 --image-gc-low-threshold 99 \
    --read-only-port 0 \
    --cluster-domain cluster.local \
    --node-ip "${node_addr}" --hostname-override "${NODE_NAME}"
  launch_in_netns "${dir}" kube-proxy "${BIN_DIR}/kube-proxy" \
    --kubeconfig "${dir}/kubeconfig" \
    --proxy-mode iptables --conntrack-max-per-core 0 \
    --cluster-cidr "${pod_cidr}" \
    --hostname-override "${NODE_NAME}"
  launch_in_netns "${dir}" kube-scheduler "${BIN_DIR}/kube-scheduler" \
    --kubeconfig "${dir}/kubeconfig" \
    --leader-elect=false --port 0 --secure-port 0

  local deadline=$((SECONDS + 120)) ready=""
  until [[ ${ready} == True ]]; do
    local name
    for name in kubelet kube-proxy kube-scheduler containerd; do
      still_running "${dir}" "${name}" || node_fail "${dir}" "${name} exited" "${name}"
    done
    [[ ${SECONDS} -lt ${deadline} ]] || node_fail "${dir}" "node ${NODE_NAME} not Ready after 120 s" kubelet
    sleep 1
    ready=$(kubectl_node "${dir}" get node "${NODE_NAME}" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  done
  NODE_STARTING=""
  start_watchdog "${dir}"
  log "up: node ${NODE_NAME} Ready in namespace $(net_value "${dir}" netns) (env ${dir}/env)"
}

# With SEALANT_NODE_OWNER_PID (the test process), a detached watchdog runs
# `stop DIR` once that process is gone, even if it was killed (a test timeout's
# SIGKILL runs no destructor).
start_watchdog() {
  local dir=$1 owner=${SEALANT_NODE_OWNER_PID:-}
  [[ -n ${owner} ]] || return 0
  [[ ${owner} =~ ^[0-9]+$ ]] || die "SEALANT_NODE_OWNER_PID=${owner}: not a pid"
  # The last argument names DIR/, so live_pid (and stop) recognise it.
  launch "${dir}" watchdog bash -c \
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" stop "${3%/}"' \
    watchdog "${owner}" "${NODE_SCRIPT_DIR}/node.sh" "${dir}/"
}

cmd_import() {
  local dir=$1 archive=$2
  dir=$(node_dir "${dir}")
  ctr_node "${dir}" images import "${archive}" >&2 || die "ctr images import ${archive} failed"
}

# The image deploy/Dockerfile describes, without its bases (no registry here):
# the same static binary, entrypoint, user and port, and no shell. A separate
# target directory, so the debug build the tests use is left alone.
cmd_controller_image() {
  local out=$1 root target
  root=$(cd "${NODE_SCRIPT_DIR}/../.." && pwd -P)
  target="${root}/target/image"
  log "building seal-controller statically (${target}; minutes on a first run)"
  (
    cd "${root}"
    # --target: RUSTFLAGS then apply to the binary only, not to build scripts.
    CARGO_TARGET_DIR="${target}" CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=0 \
      RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --quiet -p sealant-controller --bin seal-controller --target "${RUST_TARGET}"
  ) || die "cargo build of the static seal-controller failed"
  local bin="${target}/${RUST_TARGET}/debug/seal-controller"
  # Nothing in the image to resolve shared libraries against.
  # `file` says "static-pie linked" (or "statically linked"), ldd "statically
  # linked" (or "not a dynamic executable"), for a binary with no interpreter.
  local kind libs
  kind=$(file -b "${bin}")
  libs=$(ldd "${bin}" 2>&1 || true)
  if [[ ${kind} != *static* || ${kind} == *interpreter* ||
    ! ${libs} =~ (statically linked|not a dynamic executable) ]]; then
    die "${bin} is not static: ${kind}; ldd: ${libs}"
  fi
  python3 "${NODE_SCRIPT_DIR}/oci-image.py" --name "${CONTROLLER_IMAGE}" --out "${out}" \
    --entrypoint /seal-controller --user 65532:65532 --port 8080 "${bin}:/seal-controller" >/dev/null
  log "wrote ${out} (${CONTROLLER_IMAGE})"
}

node_dir() {
  local dir=$1
  [[ -d ${dir} && -r ${dir}/node/net ]] || die "${dir}: no node started there"
  (cd "${dir}" && pwd -P)
}

# ---------------------------------------------------------------------------
# stop

# Pids of processes whose cgroup names one of the given container ids.
container_pids() {
  local ids=$1 pid
  [[ -n ${ids} ]] || return 0
  for pid in /proc/[0-9]*; do
    grep -qFf <(printf '%s\n' "${ids}") "${pid}/cgroup" 2>/dev/null && printf '%s\n' "${pid#/proc/}"
  done
  return 0
}

cmd_node_stop() {
  local dir=$1 name
  [[ -d ${dir} ]] || return 0
  dir=$(cd "${dir}" && pwd -P)
  [[ -r ${dir}/node/net ]] || { cmd_stop "${dir}"; return 0; }

  # The watchdog, unless this is it (it execs this script: same pid).
  local watchdog
  if watchdog=$(live_pid "${dir}" watchdog) && [[ ${watchdog} != "$$" ]]; then
    stop_component "${dir}" watchdog
  fi
  for name in kubelet kube-proxy kube-scheduler; do
    stop_component "${dir}" "${name}"
  done

  # Every container, killed (no grace: the kubelet that would give it is gone).
  local ids="" id
  if live_pid "${dir}" containerd >/dev/null; then
    ids=$(ctr_node "${dir}" containers list --quiet 2>/dev/null || true)
    for id in ${ids}; do
      ctr_node "${dir}" tasks kill --signal SIGKILL "${id}" >/dev/null 2>&1 || true
    done
    for id in ${ids}; do
      ctr_node "${dir}" tasks delete --force "${id}" >/dev/null 2>&1 || true
      ctr_node "${dir}" containers delete "${id}" >/dev/null 2>&1 || true
    done
  fi
  stop_component "${dir}" containerd
  # Shims outlive containerd; they name its socket on their command line.
  local pid sock="${dir}/node/containerd/containerd.sock"
  for pid in /proc/[0-9]*; do
    { tr '\0' ' ' <"${pid}/cmdline"; } 2>/dev/null | grep -qF -- "-address ${sock} " || continue
    kill -KILL "${pid#/proc/}" 2>/dev/null || true
  done
  for pid in $(container_pids "${ids}"); do
    kill -KILL "${pid}" 2>/dev/null || true
  done

  cmd_stop "${dir}"

  # Mounts under DIR (overlay root filesystems, Pod volumes, Pod network
  # namespaces), deepest first.
  local mnt
  while IFS= read -r mnt; do
    umount -l "${mnt}" 2>/dev/null || log "could not unmount ${mnt}"
  done < <(findmnt -rn -o TARGET | awk -v d="${dir}/" 'index($0, d) == 1' | sort -r)

  local rule
  if grep -q '^host-rules=added' "${dir}/node/net"; then
    while IFS= read -r rule; do
      # shellcheck disable=SC2086 # a rule is words
      iptables -w -D ${rule} 2>/dev/null || log "host rule already gone: ${rule}"
    done < <(host_rules "${dir}")
    sed -i '/^host-rules=/d' "${dir}/node/net"
  fi
  local netns host_if
  netns=$(net_value "${dir}" netns)
  host_if=$(net_value "${dir}" host_if)
  # Deleting the namespace deletes its end of the veth, and with it the host's.
  [[ ! -e /var/run/netns/${netns} ]] || ip netns delete "${netns}"
  ! ip link show "${host_if}" >/dev/null 2>&1 || ip link delete "${host_if}"

  # What the kubelet and CNI write outside DIR: Pod log directories and CNI's
  # result cache (named after the network, i.e. the namespace).
  if [[ -e ${dir}/node/started ]]; then
    find /var/log/pods -mindepth 1 -maxdepth 1 -newer "${dir}/node/started" -exec rm -rf {} + 2>/dev/null || true
    find /var/log/containers -maxdepth 1 -xtype l -delete 2>/dev/null || true
  fi
  rm -f /var/lib/cni/results/"${netns}"-* 2>/dev/null || true
  # The loopback network's entries are named after the sandbox (a container id).
  for id in ${ids}; do
    rm -f /var/lib/cni/results/cni-loopback-"${id}"-* 2>/dev/null || true
  done
  # containerd 1.6's shims put their sockets in /run/containerd/s whatever the
  # configured state directory; left empty, it is removed.
  rmdir /run/containerd/s /run/containerd /var/lib/cni/results /var/lib/cni 2>/dev/null || true
  rm -f "${dir}/node/net"
  log "stopped: node, control plane, namespace ${netns} and host rules removed"
}

node_main() {
  [[ $# -ge 1 ]] || node_usage
  local cmd=$1
  shift
  case ${cmd} in
    build) [[ $# -eq 0 ]] || node_usage; cmd_build_node ;;
    start) [[ $# -eq 1 ]] || node_usage; cmd_node_start "$1" ;;
    stop) [[ $# -eq 1 ]] || node_usage; cmd_node_stop "$1" ;;
    controller-image) [[ $# -eq 1 ]] || node_usage; cmd_controller_image "$1" ;;
    import) [[ $# -eq 2 ]] || node_usage; cmd_import "$1" "$2" ;;
    check-isolation) [[ $# -eq 1 ]] || node_usage; cmd_check_isolation "$1" ;;
    *) node_usage ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  node_main "$@"
fi
