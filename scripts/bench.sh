#!/usr/bin/env bash
# make bench: run every benchmark against the real stack and print all figures as a table.
# Each benchmark merges its named figures into target/bench/results.json (or $BENCH_RESULTS)
# through anineplus_testkit::bench::record; the file is started afresh here, so after a
# run it holds exactly this run's figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BENCH_RESULTS="${BENCH_RESULTS:-$PWD/target/bench/results.json}"

# Sizes (each overridable). These keep the whole run, release build included, within
# about 15 minutes on the 2-core development machine.
export BENCH_DOCS="${BENCH_DOCS:-50000}"                 # stack_baseline: raw _bulk docs
export BENCH_RECORDS="${BENCH_RECORDS:-200000}"          # stack_baseline: Kafka records
export BENCH_AVRO_RECORDS="${BENCH_AVRO_RECORDS:-50000}" # avro_decode: records per round
export BENCH_SECONDS="${BENCH_SECONDS:-3}"               # registry_ids: seconds of load
export BENCH_SECS="${BENCH_SECS:-10}"                    # api_vs_pgbench: seconds per arm
export BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-16}"      # api_vs_pgbench: clients
export BENCH_EVENTS="${BENCH_EVENTS:-100000}"            # pipelines indexer: events
export BENCH_FRESHNESS_MUTATIONS="${BENCH_FRESHNESS_MUTATIONS:-200}"  # freshness: mutations
export BENCH_FRESHNESS_RATE="${BENCH_FRESHNESS_RATE:-20}"             # freshness: per second
export BENCH_LOG_RECORDS="${BENCH_LOG_RECORDS:-100000}"  # logs: log records
export BENCH_LOG_CALLS="${BENCH_LOG_CALLS:-200000}"      # ship: log calls per round
export BENCH_STATE_RECORDS="${BENCH_STATE_RECORDS:-200000}"   # state: deltas per arm
export BENCH_SEARCH_SECS="${BENCH_SEARCH_SECS:-10}"       # search: seconds per latency run
export BENCH_RESTORE_RECORDS="${BENCH_RESTORE_RECORDS:-300000}" # state: changelog records restored

export BENCH_PYTHON_ROUNDS="${BENCH_PYTHON_ROUNDS:-1}"    # indexer_vs_python: (ours, peer, peer, ours) rounds

bash scripts/stack/up.sh
# The Python peer of the indexer bench: a venv under .stack/, from PyPI the first time.
BENCH_PYTHON="${BENCH_PYTHON:-$(bash scripts/bench/python-env.sh)}"
export BENCH_PYTHON
rm -f "$BENCH_RESULTS"
started=$SECONDS
# Bench targets only (`--bench '*'`): every `harness = false` binary of every crate, without
# building the libraries' unit tests in release mode for nothing.
cargo bench --workspace --bench '*'
echo "bench: all benchmarks ran in $((SECONDS - started)) s (build included); figures in $BENCH_RESULTS"
cargo run -q -p anineplus-testkit --bin bench-report
