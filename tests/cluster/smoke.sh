#!/usr/bin/env bash
# Checks that control-plane.sh gives what Sealant's tests rely on: two control
# planes side by side, ServiceAccount token Secrets, ownerReference garbage
# collection, and apiextensions.k8s.io/v1 CRDs. Needs `build` done and kubectl.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cp="${here}/control-plane.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sealant-smoke.XXXXXX")
dirs=("${work}/a" "${work}/b")

cleanup() {
  local d
  for d in "${dirs[@]}"; do "${cp}" stop "${d}" || true; done
  rm -rf "${work}"
}
trap cleanup EXIT

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

# Polls a command for up to $1 seconds.
eventually() {
  local timeout=$1 start=${SECONDS}
  shift
  until "$@" >/dev/null 2>&1; do
    [[ $((SECONDS - start)) -lt ${timeout} ]] || return 1
    sleep 1
  done
}

# Started together on purpose: port picking must not collide.
"${cp}" start "${dirs[0]}" & pid_a=$!
"${cp}" start "${dirs[1]}" & pid_b=$!
wait "${pid_a}" || fail "start ${dirs[0]}"
wait "${pid_b}" || fail "start ${dirs[1]}"

for d in "${dirs[@]}"; do
  k=(kubectl --kubeconfig "${d}/kubeconfig")
  "${cp}" status "${d}" >/dev/null || fail "status ${d}"
  "${k[@]}" get ns default >/dev/null || fail "get ns"

  "${k[@]}" create namespace smoke >/dev/null
  has_token() { [[ -n $("${k[@]}" -n smoke get sa default -o jsonpath='{.secrets[0].name}') ]]; }
  eventually 30 has_token || fail "no token Secret for smoke/default ServiceAccount (${d})"

  "${k[@]}" -n smoke create configmap owner --from-literal=a=b >/dev/null
  uid=$("${k[@]}" -n smoke get configmap owner -o jsonpath='{.metadata.uid}')
  "${k[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  namespace: smoke
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: "${uid}"}]
data: {key: value}
EOF
  "${k[@]}" -n smoke get configmap dependent >/dev/null || fail "dependent ConfigMap not created"
  "${k[@]}" -n smoke delete configmap owner >/dev/null
  dependent_gone() { ! "${k[@]}" -n smoke get configmap dependent; }
  eventually 30 dependent_gone || fail "garbage collector left smoke/dependent (${d})"

  "${k[@]}" apply -f - >/dev/null <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.smoke.sealant.dev}
spec:
  group: smoke.sealant.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
EOF
  "${k[@]}" wait --for condition=established --timeout=30s crd/widgets.smoke.sealant.dev >/dev/null
  printf 'apiVersion: smoke.sealant.dev/v1\nkind: Widget\nmetadata: {name: w, namespace: smoke}\nspec: {size: 3}\n' |
    "${k[@]}" apply --server-side -f - >/dev/null || fail "server-side apply of a Widget (${d})"
  echo "smoke: ok: ${d} ($(sed -n 's/^SEALANT_APISERVER=//p' "${d}/env"))"
done

for d in "${dirs[@]}"; do "${cp}" stop "${d}"; done
for d in "${dirs[@]}"; do
  [[ -z $(pgrep -f -- "${d}/" || true) ]] || fail "processes left for ${d}"
done
echo "2 passed, 0 failed"
