#!/usr/bin/env bash
# Runs throwaway Kubernetes control planes (etcd + kube-apiserver +
# kube-controller-manager 1.20.2) as plain local processes, for tests on
# machines with no container engine and no kubelet. See README.md beside this.
#
#   control-plane.sh build          build and cache the kube binaries (once)
#   control-plane.sh build-node     also build the node's (kubelet, kube-proxy,
#                                   kube-scheduler, pause) and install containerd (node.sh)
#   control-plane.sh start DIR      start a control plane whose state lives in DIR
#   control-plane.sh stop DIR       stop it (only the processes it started)
#   control-plane.sh status DIR     say whether it is up (exit 0 if so)
#
# Faults, for tests of what runs against the control plane (same ports, flags,
# certificates and data as `start`; logs are appended to):
#   control-plane.sh stop-apiserver DIR / start-apiserver DIR   (SIGTERM; graceful)
#   control-plane.sh kill-apiserver DIR                         (SIGKILL: a crash)
#   control-plane.sh restart-apiserver DIR                      (kill-apiserver, then start)
#   control-plane.sh stop-etcd DIR / start-etcd DIR   (SIGTERM; data kept)
#   control-plane.sh pause-etcd DIR / resume-etcd DIR (SIGSTOP / SIGCONT)
set -euo pipefail

readonly K8S_VERSION=1.20.2
readonly CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/sealant"
readonly BIN_DIR="${CACHE_ROOT}/k8s-${K8S_VERSION}"
readonly APISERVER_BIN="${BIN_DIR}/kube-apiserver"
readonly CONTROLLER_MANAGER_BIN="${BIN_DIR}/kube-controller-manager"
# Written last by a successful build. Bump the recipe when the build changes,
# so binaries from an older recipe (e.g. with the reflect2 panic) are rebuilt.
readonly BUILD_STAMP="${BIN_DIR}/build-info"
readonly BUILD_RECIPE="recipe=2 reflect2=1.0.2"
readonly NODE_BUILD_STAMP="${BIN_DIR}/node-build-info"
readonly NODE_BUILD_RECIPE="node-recipe=1 reflect2=1.0.2"
readonly NODE_BINS=(kubelet kube-proxy kube-scheduler)
# What a node needs at run time (node.sh), besides gcc for the pause binary.
readonly NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack gcc libc6-dev file python3)

# The first address of this range (10.0.0.1) is the in-cluster address of the
# "kubernetes" Service, so it goes into the serving certificate. Nothing ever
# connects to it: there are no Pods.
readonly SERVICE_CIDR=10.0.0.0/24
readonly SERVICE_IP=10.0.0.1
readonly SA_ISSUER=https://kubernetes.default.svc.cluster.local
readonly READY_TIMEOUT=60
readonly STOP_TIMEOUT=15
# Stopped in this order, so nothing outlives what it talks to.
readonly COMPONENTS=(kube-controller-manager kube-apiserver etcd)

log() { printf '%s\n' "control-plane: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $0 build
       $0 build-node
       $0 start DIR
       $0 stop DIR
       $0 status DIR
       $0 stop-apiserver|kill-apiserver|start-apiserver|restart-apiserver DIR
       $0 stop-etcd|start-etcd|pause-etcd|resume-etcd DIR
EOF
  exit 2
}

as_root() {
  if [[ ${EUID} -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------------------
# build

APT_UPDATED=0
apt_update_once() {
  if [[ ${APT_UPDATED} -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
}

ensure_packages() {
  local pkg missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${pkg}")
    fi
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update_once
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Adds a deb-src entry that reuses the URIs (and key) of the machine's own
# Debian list, so the source comes from the same mirror as the binaries.
ensure_deb_src() {
  if apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    return
  fi
  local list=/etc/apt/sources.list.d/debian.sources
  local target=/etc/apt/sources.list.d/sealant-deb-src.sources
  [[ -r ${list} ]] || die "${list} not found: add a deb-src entry for bookworm main by hand"
  local uris signed_by
  # The stanza whose Suites has plain "bookworm" (not bookworm-security).
  uris=$(awk 'BEGIN { RS = "" } /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t\n]|$)/ {
      if (match($0, /(^|\n)URIs:[^\n]*/)) { s = substr($0, RSTART, RLENGTH); sub(/^\n?URIs:[ \t]*/, "", s); print s; exit } }' "${list}")
  signed_by=$(awk 'BEGIN { RS = "" } /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t\n]|$)/ {
      if (match($0, /(^|\n)Signed-By:[^\n]*/)) { s = substr($0, RSTART, RLENGTH); sub(/^\n?Signed-By:[ \t]*/, "", s); print s; exit } }' "${list}")
  [[ -n ${uris} ]] || die "no bookworm stanza with URIs in ${list}"
  log "adding deb-src entry ${target} (${uris} bookworm main)"
  {
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\n' "${uris}"
    [[ -z ${signed_by} ]] || printf 'Signed-By: %s\n' "${signed_by}"
  } | as_root tee "${target}" >/dev/null
  APT_UPDATED=0
  apt_update_once
}

have_binaries() {
  [[ -x ${APISERVER_BIN} && -x ${CONTROLLER_MANAGER_BIN} ]] &&
    grep -qxF "${BUILD_RECIPE}" "${BUILD_STAMP}" 2>/dev/null
}

have_node_binaries() {
  local bin
  for bin in "${NODE_BINS[@]}" pause; do
    [[ -x ${BIN_DIR}/${bin} ]] || return 1
  done
  grep -qxF "${NODE_BUILD_RECIPE}" "${NODE_BUILD_STAMP}" 2>/dev/null
}

# Downloads Debian's kubernetes source package into WORK and prepares it for
# a GOPATH-mode `make` in WORK/kubernetes-VERSION.
fetch_k8s_source() {
  local work=$1
  ensure_packages golang-go golang-github-modern-go-reflect2-dev rsync make tar gzip
  ensure_deb_src
  rm -rf "${work}"
  mkdir -p "${work}"
  log "downloading Debian's kubernetes source package into ${work}"
  (cd "${work}" && apt-get source --download-only -qq kubernetes >/dev/null 2>&1) ||
    die "apt-get source --download-only kubernetes failed (is the deb-src entry reachable?)"

  local orig
  orig=$(find "${work}" -maxdepth 1 -name "kubernetes_*really${K8S_VERSION}.orig.tar.*" -print -quit)
  [[ -n ${orig} ]] || die "Debian's kubernetes source is not ${K8S_VERSION}: $(ls "${work}")"
  # Debian's patches only touch kubectl's printers, so the upstream tarball
  # (which carries vendor/) is all the server binaries need.
  tar -xf "${orig}" -C "${work}"
  local src="${work}/kubernetes-${K8S_VERSION}"
  [[ -d ${src} ]] || die "unexpected layout in ${orig}"

  # 1.20 vendors reflect2 1.0.1, which reads Go's internal map type layout;
  # built with Go >= 1.18 the apiserver then panics (nil pointer in
  # UnsafeMapType.Key) decoding e.g. CRDs or objects with ownerReferences.
  # reflect2 1.0.2 (Debian's package) fixes it and keeps the same API; the
  # GOPATH-mode build below does not check vendor/modules.txt.
  local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  local vendored="${src}/vendor/github.com/modern-go/reflect2"
  rm -rf "${vendored}"
  mkdir -p "${vendored}"
  find "${reflect2}" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp -t "${vendored}" {} +

  # A plain `go build` fails (go.mod and vendor/ disagree); the Makefile
  # builds in GOPATH mode, which needs the tree at k8s.io/kubernetes.
  mkdir -p "${src}/.go/src/k8s.io"
  ln -sfn ../../.. "${src}/.go/src/k8s.io/kubernetes"
}

# Runs `make WHAT=...` in SRC with a progress line every 15 s, then copies the
# named binaries into BIN_DIR.
make_k8s() {
  local work=$1 src=$2 build_log=$3
  shift 3
  local what=("$@")
  log "building ${what[*]} (several minutes on 2 cores; log: ${build_log})"
  local start=${SECONDS}
  (
    cd "${src}"
    # Debian's Go first: 1.20's build scripts are not tested against newer ones.
    export PATH="/usr/lib/go/bin:${PATH}"
    export GOPATH="${src}/.go" GOCACHE="${work}/gocache" CGO_ENABLED=0 GOFLAGS=
    exec make WHAT="${what[*]/#/cmd/}"
  ) >"${build_log}" 2>&1 8>&- &
  local make_pid=$! next_report=$((SECONDS + 15))
  while kill -0 "${make_pid}" 2>/dev/null; do
    sleep 1
    if [[ ${SECONDS} -ge ${next_report} ]] && kill -0 "${make_pid}" 2>/dev/null; then
      log "still building: $((SECONDS - start)) s elapsed"
      next_report=$((next_report + 15))
    fi
  done
  if ! wait "${make_pid}"; then
    log "build failed after $((SECONDS - start)) s; last lines of ${build_log}:"
    tail -n 40 "${build_log}" >&2
    die "build failed (sources kept in ${work})"
  fi

  local out="${src}/_output/local/bin/linux/amd64"
  mkdir -p "${BIN_DIR}"
  local bin
  for bin in "${what[@]}"; do
    [[ -x ${out}/${bin} ]] || die "${bin} missing from ${out} after the build"
    install_binary "${out}/${bin}" "${bin}"
  done
  log "built in $((SECONDS - start)) s: ${BIN_DIR}"
}

# Copy then rename, so a reader never sees a half-written binary.
install_binary() {
  local from=$1 name=$2
  cp "${from}" "${BIN_DIR}/.${name}.tmp"
  mv "${BIN_DIR}/.${name}.tmp" "${BIN_DIR}/${name}"
}

remove_build_tree() {
  log "removing the build tree (sources and Go build cache; can take a minute)"
  rm -rf "$1"
}

cmd_build() {
  # Runtime needs (etcd, cert generation, port probing, readiness checks),
  # checked even when the binaries are cached: cheap when already there.
  ensure_packages etcd-server openssl iproute2 curl
  if have_binaries; then
    log "cached: ${BIN_DIR}"
    return
  fi

  mkdir -p "${CACHE_ROOT}"
  # Two test runs may call build at once: the second waits and then finds the cache.
  exec 8>"${CACHE_ROOT}/k8s-${K8S_VERSION}.build.lock"
  flock 8
  if have_binaries; then
    log "cached: ${BIN_DIR}"
    return
  fi

  local work="${CACHE_ROOT}/k8s-${K8S_VERSION}-build"
  local src="${work}/kubernetes-${K8S_VERSION}"
  fetch_k8s_source "${work}"
  make_k8s "${work}" "${src}" "${CACHE_ROOT}/k8s-${K8S_VERSION}-build.log" \
    kube-apiserver kube-controller-manager
  printf '%s\n' "${BUILD_RECIPE}" >"${BUILD_STAMP}"
  remove_build_tree "${work}"
}

# The node (node.sh): kubelet, kube-proxy and kube-scheduler from the same
# source tree, and the pause binary every Pod sandbox runs, built statically
# from the tree's C source. A separate stamp, so the control plane's cached
# binaries are not rebuilt.
cmd_build_node() {
  ensure_packages etcd-server openssl iproute2 curl "${NODE_PACKAGES[@]}"
  if have_binaries && have_node_binaries; then
    log "cached: control plane and node binaries in ${BIN_DIR}"
    return
  fi
  mkdir -p "${CACHE_ROOT}"
  exec 8>"${CACHE_ROOT}/k8s-${K8S_VERSION}.build.lock"
  flock 8
  # On a fresh machine all five binaries come from one `make`: they share most
  # of their packages, so one build is minutes shorter than two.
  local what=() control_plane=0 node=0
  if ! have_binaries; then
    what+=(kube-apiserver kube-controller-manager)
    control_plane=1
  fi
  if ! have_node_binaries; then
    what+=("${NODE_BINS[@]}")
    node=1
  fi
  if [[ ${#what[@]} -eq 0 ]]; then
    log "cached: control plane and node binaries in ${BIN_DIR}"
    return
  fi

  local work="${CACHE_ROOT}/k8s-${K8S_VERSION}-node-build"
  local src="${work}/kubernetes-${K8S_VERSION}"
  fetch_k8s_source "${work}"
  make_k8s "${work}" "${src}" "${CACHE_ROOT}/k8s-${K8S_VERSION}-node-build.log" "${what[@]}"
  if [[ ${node} -eq 1 ]]; then
    # pause.c takes no libraries but libc; static, so the image needs nothing else.
    gcc -Os -Wall -Werror -static -DVERSION="v${K8S_VERSION}-sealant" \
      -o "${work}/pause" "${src}/build/pause/linux/pause.c" ||
      die "gcc -static of ${src}/build/pause/linux/pause.c failed"
    install_binary "${work}/pause" pause
    printf '%s\n' "${NODE_BUILD_RECIPE}" >"${NODE_BUILD_STAMP}"
  fi
  [[ ${control_plane} -eq 0 ]] || printf '%s\n' "${BUILD_RECIPE}" >"${BUILD_STAMP}"
  remove_build_tree "${work}"
}

# ---------------------------------------------------------------------------
# process bookkeeping

# Prints the pid recorded for a component if that process is still ours:
# alive, not a zombie, and its command line names DIR (guards against pid reuse).
live_pid() {
  local dir=$1 name=$2 pid state
  local pidfile="${dir}/run/${name}.pid"
  [[ -r ${pidfile} ]] || return 1
  pid=$(<"${pidfile}")
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{ print $3 }' "/proc/${pid}/stat" 2>/dev/null) || return 1
  # Containers often lack an init that reaps orphans; a zombie has exited.
  [[ ${state} != Z ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${dir}/" || return 1
  printf '%s\n' "${pid}"
}

# Whether NAME still runs, for the waits after a start. A process exec'ing (setsid, then
# nsenter, then the component) briefly shows an empty command line, which live_pid cannot
# tell from an exit: a node start failed with "containerd exited" while containerd ran. So only
# two misses 0.2 s apart mean it exited.
still_running() {
  local dir=$1 name=$2
  live_pid "${dir}" "${name}" >/dev/null && return 0
  sleep 0.2
  live_pid "${dir}" "${name}" >/dev/null
}

# Detached (own session, no inherited terminal or lock fds) so that the caller
# exiting, or a Ctrl-C aimed at it, does not take the control plane down.
launch() {
  local dir=$1 name=$2
  shift 2
  # Appends: a component restarted by a fault subcommand keeps its earlier log.
  setsid "$@" </dev/null >>"${dir}/logs/${name}.log" 2>&1 9>&- &
  local pid=$! waited=0 state
  printf '%s\n' "${pid}" >"${dir}/run/${name}.pid"
  # Until the child has exec'd, its command line is still this script's, which
  # live_pid does not recognise: a check in that window took a starting
  # component for a dead one. Wait for the exec (or an exit).
  until live_pid "${dir}" "${name}" >/dev/null || [[ ${waited} -ge 100 ]]; do
    state=$(awk '{ print $3 }' "/proc/${pid}/stat" 2>/dev/null) || break
    [[ ${state} != Z ]] || break
    sleep 0.05
    waited=$((waited + 1))
  done
}

# SIGTERM (then SIGKILL after STOP_TIMEOUT), or with a third argument KILL, SIGKILL at once.
stop_component() {
  local dir=$1 name=$2 signal=${3:-TERM} pid waited=0
  if pid=$(live_pid "${dir}" "${name}"); then
    kill "-${signal}" "${pid}" 2>/dev/null || true
    # A paused (SIGSTOPped, see pause-etcd) process only acts on SIGTERM once continued.
    kill -CONT "${pid}" 2>/dev/null || true
    while live_pid "${dir}" "${name}" >/dev/null; do
      if [[ ${waited} -ge $((STOP_TIMEOUT * 10)) ]]; then
        log "${name} (pid ${pid}) ignored SIGTERM for ${STOP_TIMEOUT} s: killing"
        kill -KILL "${pid}" 2>/dev/null || true
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    log "stopped ${name} (pid ${pid})"
  fi
  rm -f "${dir}/run/${name}.pid"
}

# ---------------------------------------------------------------------------
# start

# Prints N distinct free TCP ports. Drawn below the kernel's ephemeral range
# (32768+) so that an outgoing connection cannot grab one before it is bound.
pick_ports() {
  local count=$1 port picked=() tries=0
  local used
  used=" $(ss -Htan | awk '{ n = split($4, a, ":"); printf "%s ", a[n] }') "
  while [[ ${#picked[@]} -lt ${count} ]]; do
    tries=$((tries + 1))
    [[ ${tries} -lt 1000 ]] || die "no free loopback port found"
    port=$((10000 + RANDOM % 22000))
    [[ ${used} != *" ${port} "* ]] || continue
    used+="${port} "
    picked+=("${port}")
  done
  printf '%s\n' "${picked[@]}"
}

wait_listening() {
  local port=$1 name=$2 dir=$3 deadline=$((SECONDS + READY_TIMEOUT))
  until [[ -n $(ss -Htln "sport = :${port}") ]]; do
    still_running "${dir}" "${name}" || fail_start "${dir}" "${name} exited before listening on ${port}" "${name}"
    [[ ${SECONDS} -lt ${deadline} ]] || fail_start "${dir}" "${name} not listening on ${port} after ${READY_TIMEOUT} s" "${name}"
    sleep 0.2
  done
}

fail_start() {
  local dir=$1 message=$2 name=$3
  log "error: ${message}; last lines of ${dir}/logs/${name}.log:"
  tail -n 30 "${dir}/logs/${name}.log" >&2 || true
  cmd_stop "${dir}" 2>/dev/null || true
  exit 1
}

write_pki() {
  local pki=$1
  (
    cd "${pki}"
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 30 \
      -keyout ca.key -out ca.crt -subj "/CN=sealant-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    # Signed by the CA rather than self-signed: rustls rejects a self-signed
    # leaf used as its own trust anchor.
    openssl req -new -nodes -newkey rsa:2048 -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    cat >apiserver.ext <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:${SERVICE_IP},${CONTROL_PLANE_EXTRA_SANS:+${CONTROL_PLANE_EXTRA_SANS},}DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -sha256 -days 30 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    rm -f apiserver.csr apiserver.ext ca.srl
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
  ) || die "openssl failed writing ${pki}"
}

write_kubeconfig() {
  local path=$1 server=$2 ca=$3 user=$4 token=$5
  cat >"${path}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sealant-test
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 "${ca}")
users:
- name: ${user}
  user:
    token: ${token}
contexts:
- name: sealant-test
  context:
    cluster: sealant-test
    user: ${user}
current-context: sealant-test
EOF
  chmod 600 "${path}"
}

# The etcd and kube-apiserver launches, shared by start and the fault subcommands:
# ports come from DIR/run/ports, so a relaunch listens where the first did.
port_of() {
  local dir=$1 key=$2 port
  port=$(sed -n "s/^${key}=//p" "${dir}/run/ports" 2>/dev/null)
  [[ ${port} =~ ^[0-9]+$ ]] || die "no ${key} port in ${dir}/run/ports: not started by '$0 start'?"
  printf '%s\n' "${port}"
}

launch_etcd() {
  local dir=$1 client_port peer_port
  client_port=$(port_of "${dir}" etcd_client)
  peer_port=$(port_of "${dir}" etcd_peer)
  local etcd_url="http://127.0.0.1:${client_port}"
  local peer_url="http://127.0.0.1:${peer_port}"
  # (Debian's etcd 3.4 has no --unsafe-no-fsync; each fsync costs a little.)
  launch "${dir}" etcd etcd \
    --name sealant-test \
    --data-dir "${dir}/etcd-data" \
    --listen-client-urls "${etcd_url}" --advertise-client-urls "${etcd_url}" \
    --listen-peer-urls "${peer_url}" --initial-advertise-peer-urls "${peer_url}" \
    --initial-cluster "sealant-test=${peer_url}"
  wait_listening "${client_port}" etcd "${dir}"
}

launch_apiserver() {
  local dir=$1 etcd_port apiserver_port
  etcd_port=$(port_of "${dir}" etcd_client)
  apiserver_port=$(port_of "${dir}" apiserver)
  local pki="${dir}/pki"
  local extra_apiserver=()
  read -ra extra_apiserver <"${dir}/run/kube-apiserver.extra-args" || true
  # With a loopback bind address the apiserver advertises the default route's
  # interface address in the "kubernetes" Endpoints (nothing connects to it),
  # and refuses to start without a default route (e.g. in a fresh network
  # namespace). Loopback is the fallback: it works, but the Endpoints sync then
  # logs an error every 10 s, since Endpoints may not hold loopback addresses.
  local advertise=()
  if [[ -z "$(ip -4 route show default 2>/dev/null)$(ip -6 route show default 2>/dev/null)" ]]; then
    advertise=(--advertise-address 127.0.0.1)
  fi
  launch "${dir}" kube-apiserver "${APISERVER_BIN}" \
    --etcd-servers "http://127.0.0.1:${etcd_port}" \
    --bind-address 127.0.0.1 --secure-port "${apiserver_port}" \
    --insecure-port 0 \
    --cert-dir "${dir}/apiserver-certs" \
    --tls-cert-file "${pki}/apiserver.crt" --tls-private-key-file "${pki}/apiserver.key" \
    --client-ca-file "${pki}/ca.crt" \
    --token-auth-file "${pki}/tokens.csv" \
    --service-account-key-file "${pki}/sa.pub" \
    --service-account-signing-key-file "${pki}/sa.key" \
    --service-account-issuer "${SA_ISSUER}" \
    --authorization-mode RBAC \
    --service-cluster-ip-range "${SERVICE_CIDR}" \
    "${advertise[@]}" "${extra_apiserver[@]}"
  wait_listening "${apiserver_port}" kube-apiserver "${dir}"
}

wait_apiserver_ready() {
  local dir=$1 server=$2 token=$3 deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS --max-time 5 --cacert "${dir}/pki/ca.crt" -H "Authorization: Bearer ${token}" \
      "${server}/readyz" 2>/dev/null | grep -qx ok; do
    still_running "${dir}" etcd || fail_start "${dir}" "etcd exited" etcd
    still_running "${dir}" kube-apiserver || fail_start "${dir}" "kube-apiserver exited" kube-apiserver
    [[ ${SECONDS} -lt ${deadline} ]] ||
      fail_start "${dir}" "kube-apiserver not ready after ${READY_TIMEOUT} s" kube-apiserver
    sleep 0.5
  done
}

cmd_start() {
  local dir=$1 name
  mkdir -p "${dir}"
  dir=$(cd "${dir}" && pwd -P)
  have_binaries || die "no (current) kube binaries in ${BIN_DIR}: run '$0 build' first"
  local tool
  for tool in etcd openssl ss ip curl setsid flock; do
    command -v "${tool}" >/dev/null || die "${tool} not found: run '$0 build' first"
  done
  for name in "${COMPONENTS[@]}"; do
    if live_pid "${dir}" "${name}" >/dev/null; then
      die "a control plane is already running in ${dir}: '$0 stop ${dir}' first"
    fi
  done

  # Every start is a fresh cluster. Only the paths this script creates are
  # removed, never DIR itself.
  rm -rf "${dir}/etcd-data" "${dir}/pki" "${dir}/logs" "${dir}/run" "${dir}/apiserver-certs" \
    "${dir}/kubeconfig" "${dir}/controller-manager.kubeconfig" "${dir}/env"
  mkdir -p "${dir}/pki" "${dir}/logs" "${dir}/run" "${dir}/apiserver-certs"
  chmod 700 "${dir}/pki"

  write_pki "${dir}/pki"
  local admin_token kcm_token
  admin_token=$(openssl rand -hex 32)
  kcm_token=$(openssl rand -hex 32)
  # The controller-manager gets its own user (for readable audit/logs) but
  # system:masters, since without per-controller credentials the garbage
  # collector must be able to delete anything.
  printf '%s,admin,admin,"system:masters"\n%s,system:kube-controller-manager,kcm,"system:masters"\n' \
    "${admin_token}" "${kcm_token}" >"${dir}/pki/tokens.csv"
  chmod 600 "${dir}/pki/tokens.csv"

  # Serialise port picking with other starts on this machine until our
  # listeners are bound, so two control planes started together never pick
  # the same port.
  exec 9>"${TMPDIR:-/tmp}/sealant-control-plane.ports.lock"
  flock 9
  local ports etcd_client_port etcd_peer_port apiserver_port
  mapfile -t ports < <(pick_ports 3)
  [[ ${#ports[@]} -eq 3 ]] || die "could not pick free loopback ports"
  etcd_client_port=${ports[0]}
  etcd_peer_port=${ports[1]}
  apiserver_port=${ports[2]}
  printf 'etcd_client=%s\netcd_peer=%s\napiserver=%s\n' \
    "${etcd_client_port}" "${etcd_peer_port}" "${apiserver_port}" >"${dir}/run/ports"

  # Kept for the fault subcommands, which relaunch with the same flags.
  printf '%s\n' "${KUBE_APISERVER_EXTRA_ARGS:-}" >"${dir}/run/kube-apiserver.extra-args"
  launch_etcd "${dir}"
  launch_apiserver "${dir}"
  exec 9>&-

  local pki="${dir}/pki" extra_kcm=()
  read -ra extra_kcm <<<"${KUBE_CONTROLLER_MANAGER_EXTRA_ARGS:-}"
  local server="https://127.0.0.1:${apiserver_port}"
  write_kubeconfig "${dir}/kubeconfig" "${server}" "${pki}/ca.crt" admin "${admin_token}"
  write_kubeconfig "${dir}/controller-manager.kubeconfig" "${server}" "${pki}/ca.crt" \
    system:kube-controller-manager "${kcm_token}"

  wait_apiserver_ready "${dir}" "${server}" "${admin_token}"
  local deadline=$((SECONDS + READY_TIMEOUT))

  # Only the controllers tests rely on: ownerReference garbage collection,
  # namespace deletion, and ServiceAccounts with token Secrets (1.20 behaviour).
  # No ports: nothing scrapes it, and fewer ports means fewer clashes.
  launch "${dir}" kube-controller-manager "${CONTROLLER_MANAGER_BIN}" \
    --kubeconfig "${dir}/controller-manager.kubeconfig" \
    --controllers garbagecollector,namespace,serviceaccount-token,serviceaccount \
    --service-account-private-key-file "${pki}/sa.key" \
    --root-ca-file "${pki}/ca.crt" \
    --leader-elect=false \
    --port 0 --secure-port 0 \
    "${extra_kcm[@]}"

  # Tests usually act as a ServiceAccount right away, so "started" means the
  # controllers have created the default one.
  until curl -fsS --max-time 5 -o /dev/null --cacert "${pki}/ca.crt" \
      -H "Authorization: Bearer ${admin_token}" \
      "${server}/api/v1/namespaces/default/serviceaccounts/default" 2>/dev/null; do
    still_running "${dir}" kube-controller-manager ||
      fail_start "${dir}" "kube-controller-manager exited" kube-controller-manager
    [[ ${SECONDS} -lt ${deadline} ]] ||
      fail_start "${dir}" "no default ServiceAccount after ${READY_TIMEOUT} s" kube-controller-manager
    sleep 0.5
  done

  {
    printf 'KUBECONFIG=%q\n' "${dir}/kubeconfig"
    printf 'SEALANT_APISERVER=%q\n' "${server}"
    printf 'SEALANT_ADMIN_TOKEN=%q\n' "${admin_token}"
    printf 'SEALANT_CA_FILE=%q\n' "${pki}/ca.crt"
  } >"${dir}/env"
  chmod 600 "${dir}/env"
  log "up: ${server} (kubeconfig ${dir}/kubeconfig, env ${dir}/env)"
}

# ---------------------------------------------------------------------------
# stop / status

cmd_stop() {
  local dir=$1 name
  if [[ ! -d ${dir} ]]; then
    return 0
  fi
  dir=$(cd "${dir}" && pwd -P)
  for name in "${COMPONENTS[@]}"; do
    stop_component "${dir}" "${name}"
  done
}

cmd_status() {
  local dir=$1 name pid up=0 down=0
  if [[ ! -d ${dir} ]]; then
    echo "down: ${dir} does not exist"
    return 3
  fi
  dir=$(cd "${dir}" && pwd -P)
  for name in "${COMPONENTS[@]}"; do
    if pid=$(live_pid "${dir}" "${name}"); then
      echo "${name}: running (pid ${pid})"
      up=$((up + 1))
    else
      echo "${name}: not running"
      down=$((down + 1))
    fi
  done
  if [[ ${up} -eq 0 ]]; then
    echo "down"
    return 3
  fi
  local server token ready=no
  server=$(sed -n 's/^SEALANT_APISERVER=//p' "${dir}/env" 2>/dev/null || true)
  token=$(sed -n 's/^SEALANT_ADMIN_TOKEN=//p' "${dir}/env" 2>/dev/null || true)
  if [[ -n ${server} ]] && curl -fsS --max-time 5 --cacert "${dir}/pki/ca.crt" \
      -H "Authorization: Bearer ${token}" "${server}/readyz" 2>/dev/null | grep -qx ok; then
    ready=yes
  fi
  if [[ ${down} -eq 0 && ${ready} == yes ]]; then
    echo "up: ${server} (KUBECONFIG=${dir}/kubeconfig)"
    return 0
  fi
  echo "degraded: ${down} component(s) not running, readyz ok: ${ready}"
  return 1
}

# ---------------------------------------------------------------------------
# faults

# Resolves DIR and checks that `start` made it.
started_dir() {
  local dir=$1
  [[ -d ${dir} && -r ${dir}/run/ports && -r ${dir}/env ]] || die "${dir}: no control plane started there"
  (cd "${dir}" && pwd -P)
}

env_value() {
  sed -n "s/^$2=//p" "$1/env"
}

# Graceful (SIGTERM) by default; KILL as a second argument makes it a crash.
cmd_stop_apiserver() {
  local dir
  dir=$(started_dir "$1")
  stop_component "${dir}" kube-apiserver "${2:-TERM}"
}

cmd_start_apiserver() {
  local dir
  dir=$(started_dir "$1")
  live_pid "${dir}" kube-apiserver >/dev/null && die "kube-apiserver is already running in ${dir}"
  launch_apiserver "${dir}"
  wait_apiserver_ready "${dir}" "$(env_value "${dir}" SEALANT_APISERVER)" \
    "$(env_value "${dir}" SEALANT_ADMIN_TOKEN)"
  log "kube-apiserver up again (pid $(live_pid "${dir}" kube-apiserver))"
}

cmd_stop_etcd() {
  local dir
  dir=$(started_dir "$1")
  stop_component "${dir}" etcd
}

cmd_start_etcd() {
  local dir
  dir=$(started_dir "$1")
  live_pid "${dir}" etcd >/dev/null && die "etcd is already running in ${dir}"
  launch_etcd "${dir}"
  log "etcd up again (pid $(live_pid "${dir}" etcd))"
}

# SIGSTOP: etcd keeps its sockets but answers nothing, as a hung disk or a
# network partition would look to the apiserver.
cmd_signal_etcd() {
  local dir pid
  dir=$(started_dir "$1")
  pid=$(live_pid "${dir}" etcd) || die "etcd is not running in ${dir}"
  kill "-$2" "${pid}"
  log "sent SIG$2 to etcd (pid ${pid})"
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd=$1
  shift
  case ${cmd} in
    build) [[ $# -eq 0 ]] || usage; cmd_build ;;
    build-node) [[ $# -eq 0 ]] || usage; cmd_build_node ;;
    start) [[ $# -eq 1 ]] || usage; cmd_start "$1" ;;
    stop) [[ $# -eq 1 ]] || usage; cmd_stop "$1" ;;
    status) [[ $# -eq 1 ]] || usage; cmd_status "$1" ;;
    stop-apiserver) [[ $# -eq 1 ]] || usage; cmd_stop_apiserver "$1" ;;
    kill-apiserver) [[ $# -eq 1 ]] || usage; cmd_stop_apiserver "$1" KILL ;;
    start-apiserver) [[ $# -eq 1 ]] || usage; cmd_start_apiserver "$1" ;;
    # A crash and a restart: SIGKILL (a graceful stop waits out open watches, 15 s+).
    restart-apiserver) [[ $# -eq 1 ]] || usage; cmd_stop_apiserver "$1" KILL; cmd_start_apiserver "$1" ;;
    stop-etcd) [[ $# -eq 1 ]] || usage; cmd_stop_etcd "$1" ;;
    start-etcd) [[ $# -eq 1 ]] || usage; cmd_start_etcd "$1" ;;
    pause-etcd) [[ $# -eq 1 ]] || usage; cmd_signal_etcd "$1" STOP ;;
    resume-etcd) [[ $# -eq 1 ]] || usage; cmd_signal_etcd "$1" CONT ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

# node.sh sources this file for its helpers.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
