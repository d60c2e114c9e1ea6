#!/usr/bin/env bash
# Runs a cargo-fuzz (libFuzzer) target. Not part of CI: it needs a nightly
# toolchain and runs for as long as you ask. CI runs each target's body
# (the crates' `fuzzing` modules) over a short seeded set of mutated valid
# inputs instead (`cargo test ... fuzzing`, stable toolchain, seconds).
#
#   scripts/fuzz.sh storage batch_parse [SECONDS]        # RecordBatch, records, compressed payloads, indexes
#   scripts/fuzz.sh storage checkpoint_parse [SECONDS]   # recovery-point, cleaner and leader-epoch checkpoints
#   scripts/fuzz.sh broker request_decode [SECONDS]      # request frames, every served API and version
#   scripts/fuzz.sh broker producer_snapshot [SECONDS]   # <offset>.snapshot producer-state files
#   scripts/fuzz.sh broker offsets_records [SECONDS]     # __consumer_offsets batches and records
#   scripts/fuzz.sh controller metadata_decode [SECONDS] # metadata records, image snapshots, Raft WAL and messages, RPC frames
#
# SCHED=idle scripts/fuzz.sh ... runs the fuzzer at idle priority.
# Crashes land in <crate>/fuzz/artifacts/<target>/; reproduce one with
#   (cd <crate> && cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>)
set -euo pipefail
cd "$(dirname "$0")/.."
crate=${1:?usage: scripts/fuzz.sh CRATE TARGET [SECONDS]}
target=${2:?usage: scripts/fuzz.sh CRATE TARGET [SECONDS]}
seconds=${3:-60}
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
# Seed the corpus with the valid samples CI's short run mutates (the
# crates' `fuzzing` tests write them when SLUICE_FUZZ_SEEDS is set).
SLUICE_FUZZ_SEEDS="$PWD/$crate/fuzz/corpus" cargo test -q -j2 -p "$crate" --lib fuzzing >/dev/null
cd "$crate"
# SCHED=idle runs it at idle priority (chrt -i 0), beside other work.
run=(cargo +nightly fuzz run "$target" -O -j1 -- -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1)
if [ "${SCHED:-}" = idle ]; then run=(chrt -i 0 "${run[@]}"); fi
"${run[@]}"
echo "corpus: $(find "fuzz/corpus/$target" -type f | wc -l) inputs, $(du -sh "fuzz/corpus/$target" | cut -f1)"
