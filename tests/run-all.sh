#!/usr/bin/env bash
# Runs every test: formatting, lints, unit, property, CLI and interop tests.
# Installs what it needs on a fresh machine. Usage: ./tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./tests/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --no-fail-fast
fi
