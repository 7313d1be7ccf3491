#!/usr/bin/env bash
# make bench: run every benchmark against the real stack and print all figures as a table.
# Each benchmark merges its named figures into target/bench/results.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BENCH_RESULTS="${BENCH_RESULTS:-$PWD/target/bench/results.json}"
bash scripts/stack/up.sh
rm -f "$BENCH_RESULTS"
cargo bench --workspace
cargo run -q -p anineplus-testkit --bin bench-report
