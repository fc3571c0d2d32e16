#!/usr/bin/env bash
# Runs one fuzz target for a while and prints what it did.
#
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
#
# TARGET is open_value, mutate_sealed, read_manifest or http_body; SECONDS defaults to 60.
# The growing corpus is fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET, which stays
# untouched); findings land in fuzz/artifacts/TARGET/; the log in fuzz/TARGET.log.
# One job, no fork: the machines have 2 cores. Needs `cargo install cargo-fuzz`; no nightly
# toolchain is needed (RUSTC_BOOTSTRAP=1 lets stable take cargo-fuzz's -Z sanitizer flags).
set -euo pipefail

target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
cd "$(dirname "$0")"
[ -d "seeds/$target" ] || { echo "no such target: $target (see fuzz/fuzz_targets/)" >&2; exit 2; }

mkdir -p "corpus/$target"
log="$target.log"
status=0
# -timeout: one input taking 10 s is a finding (a hang); -rss_limit_mb: so is 2 GiB of memory.
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" \
    >"$log" 2>&1 || status=$?

# The last status line ("#N DONE cov: .. ft: .. corp: ..", or the last pulse before a crash).
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
field() { sed -n "s/.* $1: \([^ ]*\).*/\1/p" <<<"$last"; }
corpus_files=$(find "corpus/$target" -type f | wc -l)
findings=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)

echo "target:     $target"
echo "seconds:    $seconds (requested)"
echo "exit:       $status"
echo "execs:      ${execs:-$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")}"
echo "execs/s:    ${rate:-$(field exec/s)}"
echo "cov:        $(field cov)"
echo "ft:         $(field ft)"
echo "corpus:     $(field corp) (files in corpus/$target: $corpus_files)"
echo "peak rss:   ${rss:-?} MB"
echo "findings:   $findings file(s) in artifacts/$target/"
grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked|Slowest|.*-- timeout|.*out-of-memory)' "$log" | head -n 20 || true
exit "$status"
