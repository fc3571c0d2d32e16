#!/usr/bin/env bash
# The Sealant loop on this machine: make a key, seal a Secret, check the repo, open it again
# with `seal unseal` and with the stock `age` CLI (break-glass).
# Usage: ./tests/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./tests/install-deps.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building seal"
cargo build --release -q -p seal-cli
seal="$PWD/target/release/seal"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

step "seal keygen: the cluster's key (normally the controller makes and keeps it)"
recipient=$("$seal" keygen -o cluster.key)
echo "recipient: $recipient"
cat > .sealant.yaml <<YAML
recipients:
  demo-cluster: $recipient
rules:
  - path: "clusters/demo/**"
    recipients: [demo-cluster]
YAML
echo "wrote .sealant.yaml"

step "a plaintext Secret, as kubectl prints it"
mkdir -p clusters/demo
if command -v kubectl >/dev/null; then
  kubectl create secret generic db -n prod --from-literal=username=admin --from-literal=password=hunter2 \
    --dry-run=client -o yaml > secret.yaml
else
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  username: admin\n  password: hunter2\n' > secret.yaml
fi
cat secret.yaml

step "seal: the SealedSecret that is safe to commit"
"$seal" secret.yaml -w clusters/demo/db.yaml
cat clusters/demo/db.yaml

step "seal check: the repo holds no plaintext Secret (secret.yaml would fail it)"
"$seal" check clusters
if "$seal" check secret.yaml; then echo "unexpected: check passed"; exit 1; fi

step "seal merge: change one value; the diff shows only that value's line"
cp clusters/demo/db.yaml before.yaml
"$seal" merge clusters/demo/db.yaml --from-literal password=n3w-passw0rd
diff before.yaml clusters/demo/db.yaml | cut -c1-60 || true

step "seal unseal (recovery with the backed-up key)"
"$seal" unseal -i cluster.key clusters/demo/db.yaml

step "break-glass with the stock age CLI"
grep -m1 '^    password: ' clusters/demo/db.yaml | awk '{print $2}' | base64 -d | age -d -i cluster.key
echo

step "moving it to another namespace is refused (strict scope)"
sed 's/namespace: prod/namespace: staging/' clusters/demo/db.yaml > moved.yaml
"$seal" unseal -i cluster.key moved.yaml || true
printf '\ndone.\n'
