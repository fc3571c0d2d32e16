#!/usr/bin/env bash
# Mutation testing of crates/core with cargo-mutants: how many injected bugs does the suite
# catch? Not part of .ci/run: all of crates/core takes hours on 2 cores. Results and the
# survivors, with why each is equivalent or which test now kills it: docs/testing.md.
#
# Usage: ./tests/mutants.sh                         all of crates/core
#        ./tests/mutants.sh -f crates/core/src/rewrap.rs   one file (any cargo-mutants flag)
# MUTANTS_JOBS=2 runs two mutants at once. Output: target/mutants/mutants.out/
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null; then
  cargo install cargo-mutants --locked --version 27.1.0
fi
# Each mutant is built and tested in a copy of the tree; debug info only slows the links.
export CARGO_PROFILE_DEV_DEBUG=0
exec cargo mutants -p sealant-core --test-tool nextest \
  --output target/mutants -j "${MUTANTS_JOBS:-1}" "$@"
