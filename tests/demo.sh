#!/usr/bin/env bash
# The whole Sealant loop on this machine: a local Kubernetes control plane (built once from
# Debian's source package, then cached), deploy/ applied, the controller running as its
# ServiceAccount, a Secret sealed with `seal`, applied with kubectl and opened by the cluster.
# Usage: ./tests/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing what is missing (age, kubectl, curl)"
./tests/install-deps.sh kubectl:kubernetes-client curl:curl

step "the local control plane: etcd + kube-apiserver + kube-controller-manager 1.20.2"
./tests/cluster/control-plane.sh build

step "building seal and seal-controller"
cargo build -q -p seal-cli -p sealant-controller
seal="$root/target/debug/seal"
controller="$root/target/debug/seal-controller"

work=$(mktemp -d)
cleanup() {
  [[ -n "${controller_pid:-}" ]] && kill "$controller_pid" 2>/dev/null || true
  ./tests/cluster/control-plane.sh stop "$work/cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "starting a control plane"
mkdir -p "$work/cluster"
./tests/cluster/control-plane.sh start "$work/cluster"
set -a; . "$work/cluster/env"; set +a

step "kubectl apply -k tests/k8s-1.20/  (deploy/ for this 1.20 control plane: namespace, CRD, RBAC, Deployment, Service, rotation CronJob)"
kubectl apply -k tests/k8s-1.20/
echo "(there is no kubelet here, so the Deployment's Pods never start: the controller runs as a"
echo " local process instead, with the deploy/ ServiceAccount's token and RBAC)"
until token_secret=$(kubectl -n sealant-system get serviceaccount seal-controller -o jsonpath='{.secrets[0].name}' 2>/dev/null) && [[ -n $token_secret ]]; do sleep 0.5; done
token=$(kubectl -n sealant-system get secret "$token_secret" -o jsonpath='{.data.token}' | base64 -d)
cat > "$work/sa.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$SEALANT_APISERVER", certificate-authority: "$SEALANT_CA_FILE"}}]
users: [{name: seal-controller, user: {token: "$token"}}]
contexts: [{name: sa, context: {cluster: local, user: seal-controller}}]
current-context: sa
YAML

step "starting seal-controller as system:serviceaccount:sealant-system:seal-controller"
KUBECONFIG="$work/sa.kubeconfig" "$controller" --namespace sealant-system --listen-addr 127.0.0.1:0 \
  >"$work/controller.log" 2>&1 &
controller_pid=$!
until recipients=$("$seal" fetch-keys 2>/dev/null); do sleep 0.5; done
echo "the cluster generated its key; seal fetch-keys:"
echo "$recipients"

step "a Secret, sealed (no plaintext file touches the disk)"
kubectl create namespace prod >/dev/null
kubectl create secret generic db -n prod --from-literal=username=admin --from-literal=password=hunter2 \
  --dry-run=client -o yaml | "$seal" -w "$work/db.yaml"
cat "$work/db.yaml"

step "seal check: safe to commit"
"$seal" check "$work/db.yaml"

step "kubectl apply -f db.yaml"
kubectl apply -f "$work/db.yaml"
until kubectl -n prod get secret db >/dev/null 2>&1; do sleep 0.2; done
kubectl -n prod get sealedsecret db
kubectl -n prod get secret db
printf 'decrypted password: %s\n' "$(kubectl -n prod get secret db -o jsonpath='{.data.password}' | base64 -d)"

step "drift correction: edit the Secret by hand"
kubectl -n prod patch secret db -p '{"data":{"password":"ZWRpdGVk"}}' >/dev/null
sleep 1
printf 'password a second later: %s\n' "$(kubectl -n prod get secret db -o jsonpath='{.data.password}' | base64 -d)"

step "break-glass: the cluster's key, exported, opens the value with the stock age CLI"
key_secret=$(kubectl -n sealant-system get secret -l sealant.dev/key=true -o jsonpath='{.items[0].metadata.name}')
kubectl -n sealant-system get secret "$key_secret" -o jsonpath='{.data.key\.txt}' | base64 -d > "$work/key.txt"
grep -m1 '^    password: ' "$work/db.yaml" | awk '{print $2}' | base64 -d | age -d -i "$work/key.txt"
echo

step "the controller's log holds no secret"
if grep -q -e hunter2 -e AGE-SECRET-KEY "$work/controller.log"; then echo "LEAK"; exit 1; fi
tail -n 5 "$work/controller.log"
printf '\ndone: everything above ran against a real API server; it is stopped now.\n'
